//! The head: every series in memory, their label index, and their chunks.
//!
//! The head knows nothing about the WAL: [`crate::Db`] logs before it publishes. Series are
//! found by a hash of their label set in a striped map (collisions kept in a side map, as
//! Prometheus's `stripeSeries` does) and by their stable id in a second striped map; each
//! series has its own lock, so appenders touching different series never contend.

pub(crate) mod chunk_file;
pub(crate) mod series;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::index::{MemPostings, SymbolTable};
use crate::labels::Labels;
use chunk_file::HeadChunkFiles;
use series::MemSeries;

const STRIPES: usize = 256;

fn bytes_of(l: &Labels) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + Clone + '_ {
    l.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))
}

type IdStripe = HashMap<u64, Arc<MemSeries>>;

/// Counters the head keeps for `/metrics`. Plain atomics: bumped on hot paths.
#[derive(Default)]
pub struct HeadStats {
    pub samples_appended: AtomicU64,
    pub ooo_samples_appended: AtomicU64,
    pub duplicate_samples: AtomicU64,
    pub rejected_too_old: AtomicU64,
    pub rejected_duplicate_conflict: AtomicU64,
    pub series_created: AtomicU64,
    pub chunks_created: AtomicU64,
}

#[derive(Default)]
struct HashStripe {
    unique: HashMap<u64, Arc<MemSeries>>,
    /// Series whose label hash collides with the one in `unique`.
    conflicts: HashMap<u64, Vec<Arc<MemSeries>>>,
}

pub(crate) struct Head {
    pub(crate) symbols: SymbolTable,
    pub(crate) postings: MemPostings,
    pub(crate) files: HeadChunkFiles,
    pub(crate) stats: HeadStats,
    by_hash: Box<[RwLock<HashStripe>]>,
    by_id: Box<[RwLock<IdStripe>]>,
    /// Next series id to hand out; ids are never reused.
    next_id: AtomicU64,
    num_series: AtomicU64,
    /// Data before this time (ms) lives in blocks; the head refuses and drops it. Raised by
    /// [`Head::truncate`], never lowered.
    pub(crate) min_valid_t: AtomicI64,
    /// Reads of the head start here: raised to a block's end only once that block is
    /// published, so data is never invisible while it moves from head to block (between the
    /// two, reads deduplicate the overlap).
    pub(crate) read_floor: AtomicI64,
    /// Newest sample time appended to the head (`i64::MIN` when empty).
    pub(crate) max_t: AtomicI64,
    /// Held (shared) by series creation from logging the series record to publishing the
    /// series, and (exclusive) by a WAL checkpoint while it cuts the log: a series whose record
    /// lands in a segment the checkpoint replaces is always visible to the checkpoint.
    pub(crate) creation: RwLock<()>,
    /// Deleted ranges by series id (see [`crate::tombstones`]).
    pub(crate) tombstones: RwLock<HashMap<u64, crate::tombstones::Intervals>>,
}

impl Head {
    pub(crate) fn new(files: HeadChunkFiles) -> Self {
        Head {
            symbols: SymbolTable::new(),
            postings: MemPostings::new(),
            files,
            stats: HeadStats::default(),
            by_hash: (0..STRIPES).map(|_| RwLock::default()).collect(),
            by_id: (0..STRIPES).map(|_| RwLock::default()).collect(),
            next_id: AtomicU64::new(1),
            num_series: AtomicU64::new(0),
            min_valid_t: AtomicI64::new(i64::MIN),
            read_floor: AtomicI64::new(i64::MIN),
            max_t: AtomicI64::new(i64::MIN),
            tombstones: RwLock::new(HashMap::new()),
            creation: RwLock::new(()),
        }
    }

    fn hash_stripe(&self, hash: u64) -> &RwLock<HashStripe> {
        &self.by_hash[(hash as usize) % STRIPES]
    }

    fn id_stripe(&self, id: u64) -> &RwLock<IdStripe> {
        &self.by_id[(id as usize) % STRIPES]
    }

    pub(crate) fn num_series(&self) -> u64 {
        self.num_series.load(Ordering::Relaxed)
    }

    pub(crate) fn by_id(&self, id: u64) -> Option<Arc<MemSeries>> {
        self.id_stripe(id).read().get(&id).cloned()
    }

    /// Whether `s` carries exactly the label pairs `labels` (sorted, as series store them).
    fn same_labels<'a>(
        &self,
        s: &MemSeries,
        labels: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> bool {
        if s.syms.len() != labels.len() * 2 {
            return false;
        }
        // One read lock for the whole comparison (lock order: hash stripe, then symbols).
        let syms = self.symbols.read();
        labels.enumerate().all(|(i, (n, v))| {
            syms.str(s.syms[2 * i]).map(str::as_bytes) == Some(n)
                && syms.str(s.syms[2 * i + 1]).map(str::as_bytes) == Some(v)
        })
    }

    fn find_in<'a, I>(&self, stripe: &HashStripe, hash: u64, labels: I) -> Option<Arc<MemSeries>>
    where
        I: ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + Clone,
    {
        if let Some(s) = stripe.unique.get(&hash) {
            if self.same_labels(s, labels.clone()) {
                return Some(s.clone());
            }
            return stripe
                .conflicts
                .get(&hash)?
                .iter()
                .find(|s| self.same_labels(s, labels.clone()))
                .cloned();
        }
        None
    }

    /// The series with exactly these sorted label pairs, whose [`crate::labels::hash_pairs`]
    /// is `hash`.
    pub(crate) fn get_pairs(&self, hash: u64, pairs: &[(&[u8], &[u8])]) -> Option<Arc<MemSeries>> {
        self.find_in(&self.hash_stripe(hash).read(), hash, pairs.iter().copied())
    }

    pub(crate) fn get(&self, hash: u64, labels: &Labels) -> Option<Arc<MemSeries>> {
        self.find_in(&self.hash_stripe(hash).read(), hash, bytes_of(labels))
    }

    /// Returns the series with `labels`, creating it if needed. `id` fixes the id (WAL
    /// replay); otherwise a new one is allocated. `before_publish(id, labels)` runs after the
    /// id is chosen and before any other thread can see the series: the caller logs the
    /// series there, so a samples record naming it can never precede its series record.
    /// Returns the series and whether it was created.
    pub(crate) fn get_or_create(
        &self,
        hash: u64,
        labels: &Labels,
        id: Option<u64>,
        before_publish: impl FnOnce(u64, &Labels),
    ) -> (Arc<MemSeries>, bool) {
        if let Some(s) = self.get(hash, labels) {
            return (s, false);
        }
        let mut stripe = self.hash_stripe(hash).write();
        if let Some(s) = self.find_in(&stripe, hash, bytes_of(labels)) {
            return (s, false);
        }
        let id = match id {
            Some(id) => {
                self.next_id.fetch_max(id + 1, Ordering::Relaxed);
                id
            }
            None => self.next_id.fetch_add(1, Ordering::Relaxed),
        };
        let mut syms = Vec::with_capacity(labels.len() * 2);
        let mut pairs = Vec::with_capacity(labels.len());
        for (n, v) in labels.iter() {
            let (n, v) = (self.symbols.intern(n), self.symbols.intern(v));
            syms.extend([n, v]);
            pairs.push((n, v));
        }
        let s = Arc::new(MemSeries::new(id, syms.into_boxed_slice()));
        let _creating = self.creation.read();
        before_publish(id, labels);
        self.id_stripe(id).write().insert(id, s.clone());
        self.postings.add(id, &pairs);
        match stripe.unique.entry(hash) {
            std::collections::hash_map::Entry::Occupied(_) => {
                stripe.conflicts.entry(hash).or_default().push(s.clone())
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(s.clone());
            }
        }
        self.num_series.fetch_add(1, Ordering::Relaxed);
        self.stats.series_created.fetch_add(1, Ordering::Relaxed);
        (s, true)
    }

    /// Maps an extra id to an existing series (a WAL that defined the same labels twice).
    pub(crate) fn alias_id(&self, id: u64, s: Arc<MemSeries>) {
        self.next_id.fetch_max(id + 1, Ordering::Relaxed);
        self.id_stripe(id).write().insert(id, s);
    }

    /// Drops head data older than `t` (now persisted in a block) and removes series left
    /// without samples from every map, marking them `removed` so stale references re-resolve.
    /// Then deletes head-chunk files holding only older chunks. Returns the series removed.
    pub(crate) fn truncate(&self, t: i64) -> u64 {
        self.min_valid_t.fetch_max(t, Ordering::SeqCst);
        self.read_floor.fetch_max(t, Ordering::SeqCst);
        let mut removed = 0u64;
        for id in self.postings.all().iter() {
            let Some(s) = self.by_id(id) else { continue };
            if s.id != id {
                continue; // an alias; handled with its series
            }
            let mut st = s.state.lock();
            if st.truncate(t) {
                continue;
            }
            st.removed = true;
            // Lock order: series, then hash stripe, then id stripes (no path takes a series
            // lock while holding a stripe lock).
            let labels = self.labels_of(&s);
            let hash = labels.hash64();
            {
                let mut stripe = self.hash_stripe(hash).write();
                let is_unique = stripe.unique.get(&hash).is_some_and(|u| Arc::ptr_eq(u, &s));
                if is_unique {
                    stripe.unique.remove(&hash);
                    if let Some(mut rest) = stripe.conflicts.remove(&hash) {
                        let first = rest.remove(0);
                        stripe.unique.insert(hash, first);
                        if !rest.is_empty() {
                            stripe.conflicts.insert(hash, rest);
                        }
                    }
                } else if let Some(list) = stripe.conflicts.get_mut(&hash) {
                    list.retain(|c| !Arc::ptr_eq(c, &s));
                    if list.is_empty() {
                        stripe.conflicts.remove(&hash);
                    }
                }
            }
            // Alias ids (a WAL that defined the labels twice) keep pointing at the removed
            // series; they are not written to the next checkpoint, so they go at restart.
            self.id_stripe(s.id).write().remove(&s.id);
            let pairs: Vec<(u32, u32)> = s.syms.chunks_exact(2).map(|p| (p[0], p[1])).collect();
            self.postings.remove(s.id, &pairs);
            self.tombstones.write().remove(&s.id);
            self.num_series.fetch_sub(1, Ordering::Relaxed);
            removed += 1;
        }
        self.files.truncate_before(t);
        removed
    }

    /// Oldest sample time in the head (a scan over every series; for maintenance, not for
    /// hot paths), at or after the truncation point.
    pub(crate) fn min_time(&self) -> Option<i64> {
        let mut min: Option<i64> = None;
        for stripe in self.by_id.iter() {
            // Never hold a stripe lock while taking a series lock (truncation takes them in
            // the other order).
            let series: Vec<Arc<MemSeries>> = stripe
                .read()
                .iter()
                .filter(|(id, s)| s.id == **id)
                .map(|(_, s)| s.clone())
                .collect();
            for s in series {
                let tr = s.state.lock().time_range();
                if let Some((a, _)) = tr {
                    min = Some(min.map_or(a, |m| m.min(a)));
                }
            }
        }
        min.map(|m| m.max(self.min_valid_t.load(Ordering::SeqCst)))
    }

    /// The label set of a series.
    pub(crate) fn labels_of(&self, s: &MemSeries) -> Labels {
        let mut strs = Vec::with_capacity(s.syms.len());
        self.symbols.resolve_into(&s.syms, &mut strs);
        let pairs = strs
            .chunks_exact(2)
            .map(|p| (p[0].to_string(), p[1].to_string()))
            .collect();
        Labels::from_sorted(pairs).expect("BUG: stored label set is invalid")
    }

    /// Approximate heap memory of the head's in-memory structures.
    pub(crate) fn heap_bytes(&self) -> usize {
        let mut series_bytes = 0usize;
        for stripe in self.by_id.iter() {
            // Series locks are taken after the stripe lock is released (lock order).
            let series: Vec<Arc<MemSeries>> = {
                let m = stripe.read();
                series_bytes += m.capacity() * 24;
                m.values().cloned().collect()
            };
            for s in series {
                series_bytes += std::mem::size_of::<MemSeries>()
                    + 16
                    + s.syms.len() * 4
                    + s.state.lock().heap_bytes();
            }
        }
        for stripe in self.by_hash.iter() {
            series_bytes += stripe.read().unique.capacity() * 24;
        }
        series_bytes + self.symbols.heap_bytes() + self.postings.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> (tempfile::TempDir, Head) {
        let dir = tempfile::tempdir().unwrap();
        let files = HeadChunkFiles::open(&dir.path().join("chunks_head"), 1 << 20).unwrap();
        (dir, Head::new(files))
    }

    #[test]
    fn hash_collisions_keep_series_apart() {
        let (_d, h) = head();
        let a = Labels::new([("__name__", "a")]).unwrap();
        let b = Labels::new([("__name__", "b")]).unwrap();
        let c = Labels::new([("__name__", "c")]).unwrap();
        // Force all three onto one hash.
        let (sa, created_a) = h.get_or_create(42, &a, None, |_, _| {});
        let (sb, created_b) = h.get_or_create(42, &b, None, |_, _| {});
        let (sc, _) = h.get_or_create(42, &c, None, |_, _| {});
        assert!(created_a && created_b);
        assert_ne!(sa.id, sb.id);
        assert_ne!(sb.id, sc.id);
        assert_eq!(h.get(42, &a).unwrap().id, sa.id);
        assert_eq!(h.get(42, &b).unwrap().id, sb.id);
        assert_eq!(h.get(42, &c).unwrap().id, sc.id);
        assert!(h
            .get(42, &Labels::new([("__name__", "d")]).unwrap())
            .is_none());
        let (again, created) = h.get_or_create(42, &b, None, |_, _| panic!("must not log"));
        assert!(!created);
        assert_eq!(again.id, sb.id);
        assert_eq!(h.labels_of(&sb), b);
        assert_eq!(h.num_series(), 3);
    }

    #[test]
    fn replayed_ids_are_kept_and_new_ids_follow_them() {
        let (_d, h) = head();
        let a = Labels::new([("__name__", "a")]).unwrap();
        let b = Labels::new([("__name__", "b")]).unwrap();
        let (sa, _) = h.get_or_create(a.hash64(), &a, Some(1000), |_, _| {});
        assert_eq!(sa.id, 1000);
        let mut logged = None;
        let (sb, _) = h.get_or_create(b.hash64(), &b, None, |id, _| logged = Some(id));
        assert_eq!(sb.id, 1001);
        assert_eq!(logged, Some(1001));
        // A WAL that defined `a` again under another id maps both ids to one series.
        h.alias_id(7, sa.clone());
        assert_eq!(h.by_id(7).unwrap().id, 1000);
    }
}
