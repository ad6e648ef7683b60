//! Metric metadata (type, help, unit) that arrives with samples: remote_write 1.0 metadata,
//! 2.0 per-series metadata, `# HELP`/`# TYPE`/`# UNIT` in pushed text, OTLP descriptions.
//! Served by `GET /api/v1/metadata` in Prometheus's format.

use std::collections::BTreeMap;

use parking_lot::RwLock;

/// Distinct metadata entries kept per metric family; beyond it new variants are ignored.
const MAX_PER_FAMILY: usize = 8;
/// Families kept at most, so metadata cannot grow without bound.
const MAX_FAMILIES: usize = 200_000;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Metadata {
    /// Prometheus API spelling: counter, gauge, histogram, gaugehistogram, summary, info,
    /// stateset, unknown.
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// Remote-write `MetricType` number → Prometheus API spelling.
pub fn kind_name(t: i32) -> &'static str {
    match t {
        1 => "counter",
        2 => "gauge",
        3 => "histogram",
        4 => "gaugehistogram",
        5 => "summary",
        6 => "info",
        7 => "stateset",
        _ => "unknown",
    }
}

#[derive(Default)]
pub struct MetadataStore {
    /// Family name → distinct metadata, most recent last.
    families: RwLock<BTreeMap<String, Vec<Metadata>>>,
}

impl MetadataStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, family: &str, m: Metadata) {
        if family.is_empty() {
            return;
        }
        if let Some(v) = self.families.read().get(family) {
            if v.last() == Some(&m) {
                return;
            }
        }
        let mut f = self.families.write();
        if f.len() >= MAX_FAMILIES && !f.contains_key(family) {
            return;
        }
        let v = f.entry(family.to_string()).or_default();
        if let Some(pos) = v.iter().position(|x| *x == m) {
            let m = v.remove(pos);
            v.push(m);
        } else if v.len() < MAX_PER_FAMILY {
            v.push(m);
        }
    }

    /// `/api/v1/metadata` data: family → entries (newest first), optionally one `metric`,
    /// at most `limit` families and `limit_per_metric` entries each (0 or negative: no limit).
    pub fn query(
        &self,
        metric: Option<&str>,
        limit: i64,
        limit_per_metric: i64,
    ) -> BTreeMap<String, Vec<Metadata>> {
        let f = self.families.read();
        let per = |v: &Vec<Metadata>| -> Vec<Metadata> {
            let it = v.iter().rev().cloned();
            if limit_per_metric > 0 {
                it.take(limit_per_metric as usize).collect()
            } else {
                it.collect()
            }
        };
        let mut out = BTreeMap::new();
        match metric {
            Some(m) => {
                if let Some(v) = f.get(m) {
                    out.insert(m.to_string(), per(v));
                }
            }
            None => {
                for (k, v) in f.iter() {
                    if limit > 0 && out.len() as i64 >= limit {
                        break;
                    }
                    out.insert(k.clone(), per(v));
                }
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.families.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kind: &str, help: &str) -> Metadata {
        Metadata {
            kind: kind.into(),
            help: help.into(),
            unit: String::new(),
        }
    }

    #[test]
    fn keeps_distinct_newest_first_with_limits() {
        let s = MetadataStore::new();
        s.record("up", m("gauge", "a"));
        s.record("up", m("gauge", "b"));
        s.record("up", m("gauge", "a"));
        s.record("x_total", m("counter", "c"));
        s.record("", m("counter", "ignored"));
        let q = s.query(None, 0, 0);
        assert_eq!(q.len(), 2);
        assert_eq!(q["up"], vec![m("gauge", "a"), m("gauge", "b")]);
        assert_eq!(s.query(None, 1, 0).len(), 1);
        assert_eq!(s.query(None, 0, 1)["up"], vec![m("gauge", "a")]);
        assert_eq!(s.query(Some("x_total"), 0, 0).len(), 1);
        assert!(s.query(Some("nope"), 0, 0).is_empty());
    }
}
