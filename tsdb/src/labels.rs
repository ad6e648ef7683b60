//! Label sets: the identity of a series.
//!
//! A [`Labels`] value is always valid: sorted by name, names unique and matching
//! `[a-zA-Z_][a-zA-Z0-9_]*`, values non-empty UTF-8 (Rust `String`s are UTF-8 by construction;
//! byte input is checked by the ingest paths before it gets here). A label with an empty value is
//! the same as an absent label in Prometheus, so constructors drop such pairs instead of
//! rejecting them.

use std::fmt;
use std::hash::{Hash, Hasher};

/// The label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// Why a label set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("invalid label name {name:?}: must match [a-zA-Z_][a-zA-Z0-9_]*")]
    InvalidName { name: String },
    #[error("duplicate label name {name:?}")]
    Duplicate { name: String },
    #[error("label set is empty")]
    Empty,
}

/// A validated, sorted label set.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Labels {
    // Invariant: sorted by name, names unique and valid, values non-empty.
    pairs: Vec<(String, String)>,
}

/// Hash of a sorted label sequence given as byte-string pairs, so a caller holding borrowed
/// bytes (a decoded request) can look a series up without building a [`Labels`] or even
/// checking UTF-8 (stored labels are valid UTF-8, so only valid input can match). Uses
/// foldhash (fast on short strings; the hash is in-memory only). `0xff` cannot occur in UTF-8,
/// so it separates strings unambiguously.
pub fn hash_pairs<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> u64 {
    use std::hash::BuildHasher;
    const SEED: u64 = 0x6865_6172_7468_7473;
    let mut h = foldhash::fast::FixedState::with_seed(SEED).build_hasher();
    for (n, v) in pairs {
        h.write(n);
        h.write_u8(0xff);
        h.write(v);
        h.write_u8(0xff);
    }
    h.finish()
}

/// Whether `name` is a valid Prometheus label name.
pub fn is_valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return false,
    }
    b[1..]
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

impl Labels {
    /// Builds a label set from pairs in any order. Empty values are dropped (absent label);
    /// invalid or duplicate names are an error. An empty result is an error too: a series
    /// needs at least one label.
    pub fn new<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Result<Labels, LabelError>
    where
        N: Into<String>,
        V: Into<String>,
    {
        let mut v: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(n, v)| (n.into(), v.into()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Self::check(&v)?;
        Ok(Labels { pairs: v })
    }

    /// Like [`Labels::new`] but for pairs the caller promises are already sorted by name; the
    /// order is verified, not fixed.
    pub fn from_sorted(pairs: Vec<(String, String)>) -> Result<Labels, LabelError> {
        let pairs: Vec<_> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        Self::check(&pairs)?;
        Ok(Labels { pairs })
    }

    fn check(v: &[(String, String)]) -> Result<(), LabelError> {
        if v.is_empty() {
            return Err(LabelError::Empty);
        }
        for (i, (n, _)) in v.iter().enumerate() {
            if !is_valid_label_name(n) {
                return Err(LabelError::InvalidName { name: n.clone() });
            }
            if i > 0 {
                match v[i - 1].0.as_str().cmp(n.as_str()) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => {
                        return Err(LabelError::Duplicate { name: n.clone() })
                    }
                    std::cmp::Ordering::Greater => {
                        return Err(LabelError::InvalidName {
                            name: format!("{n} (labels not sorted)"),
                        })
                    }
                }
            }
        }
        Ok(())
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.pairs[i].1.as_str())
    }

    /// The metric name, if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
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

    /// A 64-bit hash of the label set, used to find series. Collisions are possible and
    /// handled by the caller; the value is not stable across hearth versions and is never
    /// stored on disk. Equal to [`hash_pairs`] over the same pairs.
    pub fn hash64(&self) -> u64 {
        hash_pairs(self.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.pairs
    }
}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash64())
    }
}

impl fmt::Display for Labels {
    /// Prometheus style: `name{a="b", c="d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name().unwrap_or("");
        f.write_str(name)?;
        f.write_str("{")?;
        let mut first = true;
        for (n, v) in self.iter().filter(|(n, _)| *n != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{n}={v:?}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_and_drops_empty_values() {
        let l = Labels::new([("b", "2"), ("__name__", "up"), ("a", ""), ("c", "3")]).unwrap();
        let got: Vec<_> = l.iter().collect();
        assert_eq!(got, vec![("__name__", "up"), ("b", "2"), ("c", "3")]);
        assert_eq!(l.get("a"), None);
        assert_eq!(l.metric_name(), Some("up"));
        assert_eq!(l.to_string(), "up{b=\"2\", c=\"3\"}");
    }

    #[test]
    fn rejects_bad_names_and_duplicates() {
        assert!(matches!(
            Labels::new([("1a", "x")]),
            Err(LabelError::InvalidName { .. })
        ));
        assert!(matches!(
            Labels::new([("a-b", "x")]),
            Err(LabelError::InvalidName { .. })
        ));
        assert!(matches!(
            Labels::new([("", "x")]),
            Err(LabelError::InvalidName { .. })
        ));
        assert!(matches!(
            Labels::new([("a", "x"), ("a", "y")]),
            Err(LabelError::Duplicate { .. })
        ));
        assert_eq!(Labels::new([("a", "")]), Err(LabelError::Empty));
        assert!(
            Labels::from_sorted(vec![("b".into(), "1".into()), ("a".into(), "2".into())]).is_err()
        );
    }

    #[test]
    fn hash_distinguishes_boundaries() {
        let a = Labels::new([("a", "bc")]).unwrap();
        let b = Labels::new([("ab", "c")]).unwrap();
        assert_ne!(a.hash64(), b.hash64());
    }
}
