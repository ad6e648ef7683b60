//! The `storage:` section of hearth's config file, and Prometheus duration syntax.
//!
//! Durations are written as Prometheus writes them (`1h30m`, `15s`, `250ms`, `2d`, `1w`,
//! `1y`), so a value copied from a prometheus.yml means the same thing here.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// When an append is acknowledged relative to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WalFsync {
    /// Every acknowledged append has been fdatasync'ed (group commit shares one fsync among
    /// concurrent appenders). Survives power loss.
    #[default]
    Always,
    /// Appends are acknowledged after the write() into the page cache; a background thread
    /// fsyncs every `wal_fsync_interval`. Survives a process crash; a power cut can lose up
    /// to one interval.
    Interval,
}

/// `storage:` section. Unknown keys are rejected (by `deny_unknown_fields`) with the key and
/// the line it is on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Data directory; the `--storage.path` flag overrides it.
    pub path: PathBuf,
    /// How far behind a series' newest sample an older sample is still accepted.
    pub out_of_order_window: PromDuration,
    pub wal_fsync: WalFsync,
    pub wal_fsync_interval: PromDuration,
    /// Maximum WAL segment size in bytes.
    pub wal_segment_size: u64,
    /// Prometheus's own `storage.tsdb` section, accepted so an existing prometheus.yml loads:
    /// `out_of_order_time_window` sets [`StorageConfig::out_of_order_window`]; the rest is
    /// reported by [`StorageConfig::warnings`].
    pub tsdb: Option<PromTsdbSection>,
    /// Prometheus's `storage.exemplars` section (exemplar storage is not supported yet).
    pub exemplars: Option<PromExemplarsSection>,
}

/// `storage.tsdb` of a prometheus.yml.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PromTsdbSection {
    pub out_of_order_time_window: Option<PromDuration>,
    pub stale_series_compaction_threshold: Option<f64>,
    pub retention: Option<PromRetention>,
}

/// `storage.tsdb.retention` of a prometheus.yml.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PromRetention {
    pub time: Option<PromDuration>,
    pub size: Option<String>,
    pub percentage: Option<f64>,
}

/// `storage.exemplars` of a prometheus.yml.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PromExemplarsSection {
    pub max_exemplars: Option<i64>,
}

impl StorageConfig {
    /// Applies Prometheus's `storage.tsdb.out_of_order_time_window` and returns one warning
    /// per Prometheus storage setting hearth does not support yet.
    pub fn apply_prometheus_compat(&mut self) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(t) = &self.tsdb {
            if let Some(ooo) = t.out_of_order_time_window {
                self.out_of_order_window = ooo;
            }
            if t.stale_series_compaction_threshold.is_some() {
                w.push("storage.tsdb.stale_series_compaction_threshold is not supported by hearth; ignored".to_string());
            }
            if t.retention.is_some() {
                w.push("storage.tsdb.retention is not supported by hearth yet (block retention comes with block persistence); ignored".to_string());
            }
        }
        if self.exemplars.is_some() {
            w.push(
                "storage.exemplars: exemplar storage is not supported by hearth yet; ignored"
                    .to_string(),
            );
        }
        w
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: PathBuf::from("data"),
            out_of_order_window: PromDuration(Duration::from_secs(3600)),
            wal_fsync: WalFsync::Always,
            wal_fsync_interval: PromDuration(Duration::from_secs(1)),
            wal_segment_size: 128 << 20,
            tsdb: None,
            exemplars: None,
        }
    }
}

/// A duration in Prometheus syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct PromDuration(pub Duration);

impl PromDuration {
    pub fn as_millis_i64(&self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid duration string: {input:?}")]
pub struct DurationError {
    pub input: String,
}

/// Parses Prometheus duration syntax: one or more `<int><unit>` with units in descending
/// order, each at most once, from `y w d h m s ms`; `0` alone is allowed.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let err = || DurationError {
        input: s.to_string(),
    };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err());
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3600 * 1000),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ];
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    let mut last_unit = None::<usize>;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(err());
        }
        let n: u64 = s[start..i].parse().map_err(|_| err())?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        let idx = UNITS.iter().position(|(u, _)| *u == unit).ok_or_else(err)?;
        if last_unit.is_some_and(|l| idx <= l) {
            return Err(err());
        }
        last_unit = Some(idx);
        total = n
            .checked_mul(UNITS[idx].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(err)?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats like Prometheus's `model.Duration.String()`.
impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis() as u64;
        if ms == 0 {
            return f.write_str("0s");
        }
        for (u, n) in [
            ("y", 365 * 24 * 3600 * 1000u64),
            ("w", 7 * 24 * 3600 * 1000),
            ("d", 24 * 3600 * 1000),
            ("h", 3600 * 1000),
            ("m", 60 * 1000),
            ("s", 1000),
            ("ms", 1),
        ] {
            if ms >= n {
                write!(f, "{}{}", ms / n, u)?;
                ms %= n;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PromDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Prometheus duration such as 15s, 1h30m or 2d")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PromDuration, E> {
                parse_duration(v).map(PromDuration).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("0", 0u64),
            ("15s", 15_000),
            ("1h30m", 5_400_000),
            ("250ms", 250),
            ("2d", 172_800_000),
            ("1w", 604_800_000),
            ("1y", 31_536_000_000),
            ("1m1s1ms", 61_001),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s).unwrap(), Duration::from_millis(ms), "{s}");
        }
        for s in ["", "1", "s", "1x", "1s1h", "1m1m", "-1s", "1.5h", "1h "] {
            assert!(parse_duration(s).is_err(), "{s:?} should fail");
        }
        assert_eq!(
            PromDuration(Duration::from_millis(5_400_250)).to_string(),
            "1h30m250ms"
        );
    }
}
