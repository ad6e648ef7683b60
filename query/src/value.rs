//! The values a PromQL expression evaluates to.
//!
//! Every expression is evaluated over all steps of a query at once (an instant query is a
//! range query with one step): an instant vector becomes a list of [`Series`] whose points sit
//! on step timestamps, a scalar becomes one value per step. Labels of a result are a
//! [`Metric`]: like a stored label set but allowed to be empty (`{}`), and with Prometheus 3's
//! UTF-8 label names.

use std::fmt;

/// `(timestamp in milliseconds, value)`.
pub type Point = (i64, f64);

/// The metric-name label.
pub const NAME: &str = "__name__";

/// A label set, sorted by name, names unique, values non-empty.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Metric {
    pairs: Vec<(String, String)>,
}

impl Metric {
    /// From pairs in any order; empty values are dropped. A repeated name keeps the last value.
    pub fn new<N: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        let mut m = Metric::default();
        for (n, v) in pairs {
            m.set(&n.into(), &v.into());
        }
        m
    }

    /// From pairs the caller guarantees are sorted by name, unique and non-empty (a stored
    /// series' labels).
    pub fn from_sorted(pairs: Vec<(String, String)>) -> Self {
        debug_assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0));
        Metric { pairs }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.pairs[i].1.as_str())
    }

    /// Sets `name` to `value`; an empty value removes the label (Prometheus semantics).
    pub fn set(&mut self, name: &str, value: &str) {
        match self.pairs.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.pairs.remove(i);
            }
            Ok(i) => self.pairs[i].1 = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.pairs.insert(i, (name.to_string(), value.to_string())),
        }
    }

    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.pairs.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            self.pairs.remove(i);
        }
    }

    pub fn name(&self) -> Option<&str> {
        self.get(NAME)
    }

    pub fn without_name(&self) -> Metric {
        let mut m = self.clone();
        m.remove(NAME);
        m
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone + '_ {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Keeps only the labels for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.pairs.retain(|(n, _)| keep(n));
    }

    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.pairs
    }
}

impl From<&hearth_tsdb::labels::Labels> for Metric {
    fn from(l: &hearth_tsdb::labels::Labels) -> Self {
        Metric {
            pairs: l
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// Prometheus's rendering: `name{a="b", c="d"}` (name outside the braces when it is a valid
/// metric name), `{}` for the empty set.
impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name().filter(|n| is_plain_metric_name(n));
        if let Some(n) = name {
            f.write_str(n)?;
        }
        let mut first = true;
        let rest: Vec<_> = self
            .iter()
            .filter(|(n, _)| !(name.is_some() && *n == NAME))
            .collect();
        if name.is_some() && rest.is_empty() {
            return Ok(());
        }
        f.write_str("{")?;
        for (n, v) in rest {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            if is_plain_label_name(n) {
                write!(f, "{n}={v:?}")?;
            } else {
                write!(f, "{n:?}={v:?}")?;
            }
        }
        f.write_str("}")
    }
}

fn is_plain_label_name(n: &str) -> bool {
    let mut b = n.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn is_plain_metric_name(n: &str) -> bool {
    let mut b = n.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// One series of an instant-vector expression over all steps (points at step timestamps,
/// ascending, at most one per step), or of a range vector (raw sample timestamps).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub metric: Metric,
    pub points: Vec<Point>,
    /// Prometheus 3's delayed name removal: the name is still visible to `label_replace` and
    /// friends but is dropped from the final result (and before matching/grouping).
    pub drop_name: bool,
}

impl Series {
    pub fn new(metric: Metric, points: Vec<Point>) -> Self {
        Series {
            metric,
            points,
            drop_name: false,
        }
    }
}

/// Warnings and infos collected during evaluation, rendered as Prometheus renders them
/// (`PromQL warning: ... (line:col)`). Deduplicated, in order of first occurrence.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Annotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

impl Annotations {
    pub fn warn(&mut self, msg: String) {
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    pub fn info(&mut self, msg: String) {
        if !self.infos.contains(&msg) {
            self.infos.push(msg);
        }
    }

    pub fn extend(&mut self, other: Annotations) {
        for w in other.warnings {
            self.warn(w);
        }
        for i in other.infos {
            self.info(i);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.warnings.is_empty() && self.infos.is_empty()
    }
}

/// The result of a query as the HTTP API returns it.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryValue {
    /// Instant query of a scalar expression.
    Scalar { t: i64, v: f64 },
    /// Instant query of a string literal.
    String { t: i64, v: String },
    /// Instant query of an instant-vector expression: one point per series, at the query time.
    /// Order is the evaluation order (`sort()` etc. are honoured).
    Vector(Vec<Series>),
    /// Range query (series sorted by labels), or an instant query of a range-vector expression.
    Matrix(Vec<Series>),
}

impl QueryValue {
    /// `"scalar" | "string" | "vector" | "matrix"` as the API's `resultType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            QueryValue::Scalar { .. } => "scalar",
            QueryValue::String { .. } => "string",
            QueryValue::Vector(_) => "vector",
            QueryValue::Matrix(_) => "matrix",
        }
    }
}

/// A finished query.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryOutput {
    pub value: QueryValue,
    pub annotations: Annotations,
    /// Samples loaded from storage (for `stats` and limits).
    pub samples_loaded: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_set_remove_display() {
        let mut m = Metric::new([("job", "api"), (NAME, "up")]);
        assert_eq!(m.to_string(), r#"up{job="api"}"#);
        m.set("job", "");
        assert_eq!(m.to_string(), "up");
        m.remove(NAME);
        assert_eq!(m.to_string(), "{}");
        m.set("a.b", "x");
        assert_eq!(m.to_string(), r#"{"a.b"="x"}"#);
    }
}
