//! In-memory postings: for every `name=value` pair, the series that carry it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;
use roaring::RoaringTreemap;

use super::matcher::{Matcher, ValueSel};
use super::symbols::{SymbolTable, SymbolsRead};

/// Value symbol → the series carrying `name=value`.
type ValuePostings = HashMap<u32, RoaringTreemap>;

/// The head's inverted index from label pairs to series ids.
///
/// Written only when a series is created or garbage-collected, read by every query, hence one
/// `RwLock` over the whole map: a query sees a consistent snapshot of all lists it touches.
///
/// Callers must not add empty label values (Prometheus drops them at ingestion); if they did,
/// such a pair would still behave like an absent label in [`MemPostings::select`].
#[derive(Debug, Default)]
pub struct MemPostings {
    inner: RwLock<Inner>,
}

/// Everything behind the postings lock.
///
/// Invariants: no value list is empty and no name has an empty value map (`remove` drops
/// them), so a name present in `by_label` has at least one series; every id in any list is
/// also in `all`; a series has at most one value per name.
#[derive(Debug, Default)]
struct Inner {
    /// Name symbol → value symbol → series ids.
    by_label: HashMap<u32, ValuePostings>,
    /// Every series id, including series without labels.
    all: RoaringTreemap,
}

/// One row of [`CardinalityStats`]: a name (or `name=value` pair) and its count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Metric name, label name, or `name=value`, depending on the list.
    pub name: String,
    /// The count the list is about.
    pub count: u64,
}

/// Cardinality figures for Prometheus's `/api/v1/status/tsdb`. Every list holds at most the
/// requested `top` rows, sorted by count descending, ties by name ascending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardinalityStats {
    /// Number of series.
    pub num_series: u64,
    /// Number of distinct `name=value` pairs.
    pub num_label_pairs: u64,
    /// Series per metric name (value of `__name__`) — `seriesCountByMetricName`.
    pub series_count_by_metric_name: Vec<Stat>,
    /// Distinct values per label name — `labelValueCountByLabelName`.
    pub label_value_count_by_label_name: Vec<Stat>,
    /// Series that carry each label name.
    pub series_count_by_label_name: Vec<Stat>,
    /// Bytes of label values per label name, counted once per series (`memoryInBytesByLabelName`).
    pub memory_in_bytes_by_label_name: Vec<Stat>,
    /// Series per `name=value` pair — `seriesCountByLabelValuePair`.
    pub series_count_by_label_pair: Vec<Stat>,
}

/// The label that holds the metric name.
const METRIC_NAME: &str = "__name__";

impl MemPostings {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a new series with its `(name symbol, value symbol)` pairs.
    pub fn add(&self, series_id: u64, labels: &[(u32, u32)]) {
        let mut inner = self.inner.write();
        inner.all.insert(series_id);
        for &(name, value) in labels {
            inner
                .by_label
                .entry(name)
                .or_default()
                .entry(value)
                .or_default()
                .insert(series_id);
        }
    }

    /// Forgets a series; `labels` must be the pairs it was added with. Lists and names that
    /// become empty are dropped, so they vanish from label names and values.
    pub fn remove(&self, series_id: u64, labels: &[(u32, u32)]) {
        let mut inner = self.inner.write();
        inner.all.remove(series_id);
        for &(name, value) in labels {
            let Some(values) = inner.by_label.get_mut(&name) else {
                continue;
            };
            if let Some(list) = values.get_mut(&value) {
                list.remove(series_id);
                if list.is_empty() {
                    values.remove(&value);
                }
            }
            if values.is_empty() {
                inner.by_label.remove(&name);
            }
        }
    }

    /// The series that pass every matcher, with Prometheus's semantics: a series lacking a
    /// label is tested as if its value were `""`.
    ///
    /// An empty `matchers` slice selects every series. PromQL's rule that a selector needs at
    /// least one matcher that does not match the empty string is the query layer's to enforce.
    ///
    /// Matchers that do not match `""` are intersected first, cheapest (smallest postings)
    /// first; then matchers that do match `""` subtract the postings of the values they reject
    /// (Prometheus's `inversePostingsForMatcher`). Set regexes are answered by looking up each
    /// value; only other regexes test every value of their label.
    pub fn select(&self, symbols: &SymbolTable, matchers: &[Matcher]) -> RoaringTreemap {
        // Lock order: symbols, then postings (see the module doc).
        let syms = symbols.read();
        let inner = self.inner.read();
        if matchers.is_empty() {
            return inner.all.clone();
        }

        let mut intersect = Vec::new();
        let mut subtract = Vec::new();
        for m in matchers {
            let values = syms
                .lookup(m.name())
                .and_then(|name| inner.by_label.get(&name));
            let (positive, sel) = m.postings_plan();
            let step = Step::plan(m, positive, values, sel, &syms);
            if positive {
                if step.is_empty() {
                    return RoaringTreemap::new();
                }
                intersect.push(step);
            } else if !step.is_empty() {
                subtract.push(step);
            }
        }
        intersect.sort_by_key(|s| s.cost);
        subtract.sort_by_key(|s| s.cost);

        let mut result: Option<RoaringTreemap> = None;
        for step in &intersect {
            match &mut result {
                None => result = Some(step.union(&syms)),
                Some(acc) => step.intersect_into(acc, &syms),
            }
            if result.as_ref().is_some_and(RoaringTreemap::is_empty) {
                return RoaringTreemap::new();
            }
        }
        let mut result = result.unwrap_or_else(|| inner.all.clone());
        for step in &subtract {
            if result.is_empty() {
                break;
            }
            step.subtract_from(&mut result, &syms);
        }
        result
    }

    /// Label names carried by at least one series of `within` (by any series if `None`),
    /// sorted bytewise.
    pub fn label_names(
        &self,
        symbols: &SymbolTable,
        within: Option<&RoaringTreemap>,
    ) -> Vec<Arc<str>> {
        let syms = symbols.read();
        let inner = self.inner.read();
        let mut names: Vec<Arc<str>> = inner
            .by_label
            .iter()
            .filter(|(_, values)| match within {
                None => true,
                Some(w) => values.values().any(|list| !list.is_disjoint(w)),
            })
            .map(|(&name, _)| resolve(&syms, name))
            .collect();
        names.sort_unstable();
        names
    }

    /// Values of label `name` carried by at least one series of `within` (by any series if
    /// `None`), sorted bytewise. Empty for an unknown name.
    pub fn label_values(
        &self,
        symbols: &SymbolTable,
        name: &str,
        within: Option<&RoaringTreemap>,
    ) -> Vec<Arc<str>> {
        let syms = symbols.read();
        let inner = self.inner.read();
        let Some(values) = syms.lookup(name).and_then(|n| inner.by_label.get(&n)) else {
            return Vec::new();
        };
        let mut out: Vec<Arc<str>> = values
            .iter()
            .filter(|(_, list)| within.is_none_or(|w| !list.is_disjoint(w)))
            .map(|(&value, _)| resolve(&syms, value))
            .collect();
        out.sort_unstable();
        out
    }

    /// Every series id.
    pub fn all(&self) -> RoaringTreemap {
        self.inner.read().all.clone()
    }

    /// Number of series.
    pub fn num_series(&self) -> u64 {
        self.inner.read().all.len()
    }

    /// Approximate heap memory in bytes: the bitmaps' serialized sizes (close to their
    /// in-memory size) plus the hash maps' slots.
    pub fn heap_bytes(&self) -> usize {
        let inner = self.inner.read();
        let value_slot = std::mem::size_of::<(u32, RoaringTreemap)>() + 1;
        let name_slot = std::mem::size_of::<(u32, ValuePostings)>() + 1;
        let mut bytes = inner.all.serialized_size() + inner.by_label.capacity() * name_slot;
        for values in inner.by_label.values() {
            bytes += values.capacity() * value_slot;
            bytes += values
                .values()
                .map(RoaringTreemap::serialized_size)
                .sum::<usize>();
        }
        bytes
    }

    /// Cardinality figures, each list cut to its `top` largest rows.
    pub fn cardinality_stats(&self, symbols: &SymbolTable, top: usize) -> CardinalityStats {
        let syms = symbols.read();
        let inner = self.inner.read();
        let metric_name = syms.lookup(METRIC_NAME);

        let mut by_metric = TopN::new(top);
        let mut value_counts = TopN::new(top);
        let mut series_counts = TopN::new(top);
        let mut memory = TopN::new(top);
        let mut pairs = TopN::new(top);
        let mut num_label_pairs = 0u64;
        for (&name_sym, values) in &inner.by_label {
            let name = resolve_str(&syms, name_sym);
            num_label_pairs += values.len() as u64;
            let mut series = 0u64;
            let mut bytes = 0u64;
            for (&value_sym, list) in values {
                let value = resolve_str(&syms, value_sym);
                let n = list.len();
                // A series has one value per name, so the per-value counts add up to the
                // number of series carrying the name without building their union.
                series += n;
                bytes += value.len() as u64 * n;
                if Some(name_sym) == metric_name {
                    by_metric.push(n, (value, ""));
                }
                pairs.push(n, (name, value));
            }
            value_counts.push(values.len() as u64, (name, ""));
            series_counts.push(series, (name, ""));
            memory.push(bytes, (name, ""));
        }
        CardinalityStats {
            num_series: inner.all.len(),
            num_label_pairs,
            series_count_by_metric_name: by_metric.into_stats(|(v, _)| v.to_owned()),
            label_value_count_by_label_name: value_counts.into_stats(|(n, _)| n.to_owned()),
            series_count_by_label_name: series_counts.into_stats(|(n, _)| n.to_owned()),
            memory_in_bytes_by_label_name: memory.into_stats(|(n, _)| n.to_owned()),
            series_count_by_label_pair: pairs.into_stats(|(n, v)| format!("{n}={v}")),
        }
    }
}

fn resolve(syms: &SymbolsRead<'_>, id: u32) -> Arc<str> {
    syms.arc(id)
        .unwrap_or_else(|| panic!("BUG: postings refer to unknown symbol {id}"))
}

fn resolve_str<'a>(syms: &'a SymbolsRead<'_>, id: u32) -> &'a str {
    syms.str(id)
        .unwrap_or_else(|| panic!("BUG: postings refer to unknown symbol {id}"))
}

/// A heap entry of [`TopN`]: a count and a two-part key (name, or name and value).
type TopRow<'a> = Reverse<(u64, Reverse<(&'a str, &'a str)>)>;

/// Keeps the `n` rows with the largest counts, ties broken by the smaller key, without
/// materializing a string per row (there may be millions of label pairs).
struct TopN<'a> {
    n: usize,
    /// A min-heap on (count, reversed key): its top is the row to evict first.
    heap: BinaryHeap<TopRow<'a>>,
}

impl<'a> TopN<'a> {
    fn new(n: usize) -> Self {
        TopN {
            n,
            heap: BinaryHeap::with_capacity(n.saturating_add(1).min(1024)),
        }
    }

    fn push(&mut self, count: u64, key: (&'a str, &'a str)) {
        if self.n == 0 {
            return;
        }
        self.heap.push(Reverse((count, Reverse(key))));
        if self.heap.len() > self.n {
            self.heap.pop();
        }
    }

    fn into_stats(self, name: impl Fn((&str, &str)) -> String) -> Vec<Stat> {
        // Ascending order of `Reverse(..)` is descending count, then ascending key.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse((count, Reverse(key)))| Stat {
                name: name(key),
                count,
            })
            .collect()
    }
}

/// One matcher, resolved against the postings under the read lock.
struct Step<'a> {
    matcher: &'a Matcher,
    /// See [`Matcher::postings_plan`].
    positive: bool,
    /// The label's value lists; `None` if no series has the label.
    values: Option<&'a ValuePostings>,
    how: How<'a>,
    /// Sort key: look-ups before scans, then the estimated number of series touched.
    cost: (u8, u64),
}

enum How<'a> {
    /// The postings lists of the selected values, already looked up.
    Lists(Vec<&'a RoaringTreemap>),
    /// All values of the label except those with these symbols.
    AllBut(Vec<u32>),
    /// Test every value of the label with the matcher.
    Scan,
}

impl<'a> Step<'a> {
    fn plan(
        matcher: &'a Matcher,
        positive: bool,
        values: Option<&'a ValuePostings>,
        sel: ValueSel<'_>,
        syms: &SymbolsRead<'_>,
    ) -> Step<'a> {
        // See `Matcher::postings_plan`: the empty value is never selected.
        let empty = syms.lookup("");
        let how = match (values, sel) {
            // A label no series has: nothing to select from.
            (None, _) | (_, ValueSel::Nothing) => How::Lists(Vec::new()),
            (Some(values), ValueSel::All) => How::Lists(
                values
                    .iter()
                    .filter(|(&v, _)| Some(v) != empty)
                    .map(|(_, list)| list)
                    .collect(),
            ),
            (Some(values), ValueSel::Only(wanted)) => How::Lists(
                wanted
                    .iter()
                    .filter_map(|v| syms.lookup(v))
                    .filter_map(|v| values.get(&v))
                    .collect(),
            ),
            // Strings never interned cannot be stored values, so they need no symbol.
            (Some(_), ValueSel::AllBut(excluded)) => How::AllBut(
                excluded
                    .iter()
                    .filter_map(|v| syms.lookup(v))
                    .chain(empty)
                    .collect(),
            ),
            (Some(_), ValueSel::Scan) => How::Scan,
        };
        let num_values = values.map_or(0, |v| v.len() as u64);
        let cost = match &how {
            How::Lists(lists) => (0, lists.iter().map(|l| l.len()).sum()),
            How::AllBut(_) => (1, num_values),
            How::Scan => (2, num_values),
        };
        Step {
            matcher,
            positive,
            values,
            how,
            cost,
        }
    }

    /// True if the step selects no value at all.
    fn is_empty(&self) -> bool {
        match &self.how {
            How::Lists(lists) => lists.is_empty(),
            How::AllBut(_) | How::Scan => self.values.is_none_or(HashMap::is_empty),
        }
    }

    /// Calls `f` with the postings of every selected value.
    fn for_each_list(&self, syms: &SymbolsRead<'_>, mut f: impl FnMut(&RoaringTreemap)) {
        match &self.how {
            How::Lists(lists) => lists.iter().for_each(|l| f(l)),
            How::AllBut(excluded) => {
                for (value, list) in self.values.into_iter().flatten() {
                    if !excluded.contains(value) {
                        f(list);
                    }
                }
            }
            How::Scan => {
                for (&value, list) in self.values.into_iter().flatten() {
                    if self.matcher.matches(resolve_str(syms, value)) == self.positive {
                        f(list);
                    }
                }
            }
        }
    }

    /// The union of the selected postings.
    fn union(&self, syms: &SymbolsRead<'_>) -> RoaringTreemap {
        if let How::Lists(lists) = &self.how {
            if let [only] = lists.as_slice() {
                return (*only).clone();
            }
        }
        let mut acc = RoaringTreemap::new();
        self.for_each_list(syms, |l| acc |= l);
        acc
    }

    fn intersect_into(&self, acc: &mut RoaringTreemap, syms: &SymbolsRead<'_>) {
        if let How::Lists(lists) = &self.how {
            if let [only] = lists.as_slice() {
                *acc &= *only;
                return;
            }
        }
        *acc &= self.union(syms);
    }

    fn subtract_from(&self, acc: &mut RoaringTreemap, syms: &SymbolsRead<'_>) {
        self.for_each_list(syms, |l| *acc -= l);
    }
}
