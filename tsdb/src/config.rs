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
    /// How long and how much block data to keep (`storage.retention.time`/`.size`).
    pub retention: RetentionConfig,
    /// Prometheus's own `storage.tsdb` section, accepted so an existing prometheus.yml loads:
    /// `out_of_order_time_window` sets [`StorageConfig::out_of_order_window`]; the rest is
    /// reported by [`StorageConfig::apply_prometheus_compat`].
    pub tsdb: Option<PromTsdbSection>,
    /// Prometheus's `storage.exemplars` section (exemplar storage is not supported yet).
    pub exemplars: Option<PromExemplarsSection>,
}

/// `storage.tsdb` of a prometheus.yml.
/// `storage.retention`: whole blocks past either limit are deleted, oldest first.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Blocks whose newest data is older than this are deleted (default 30d).
    pub time: PromDuration,
    /// Oldest blocks are deleted while blocks take more than this many bytes
    /// (`512MB`, `100GB`, ...; binary units as Prometheus's `--storage.tsdb.retention.size`).
    pub size: Option<ByteSize>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            time: PromDuration(Duration::from_secs(30 * 24 * 3600)),
            size: None,
        }
    }
}

/// A size in Prometheus's units: `B`, `KB`, `MB`, `GB`, `TB`, `PB`, `EB` (powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("size {s:?} needs a unit (B, KB, MB, GB, TB, PB, EB)"))?;
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid size {s:?}: expected an integer and a unit"))?;
        let mult: u64 = match unit.to_ascii_uppercase().as_str() {
            "B" => 1,
            "KB" => 1 << 10,
            "MB" => 1 << 20,
            "GB" => 1 << 30,
            "TB" => 1 << 40,
            "PB" => 1 << 50,
            "EB" => 1 << 60,
            _ => {
                return Err(format!(
                    "invalid size unit in {s:?} (B, KB, MB, GB, TB, PB, EB)"
                ))
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size {s:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ByteSize::parse(&s).map_err(de::Error::custom)
    }
}

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
            if let Some(r) = &t.retention {
                if let Some(time) = r.time {
                    self.retention.time = time;
                }
                if let Some(size) = &r.size {
                    match ByteSize::parse(size) {
                        Ok(b) => self.retention.size = Some(b),
                        Err(e) => w.push(format!("storage.tsdb.retention.size: {e}; ignored")),
                    }
                }
                if r.percentage.is_some() {
                    w.push("storage.tsdb.retention.percentage is not supported by hearth; ignored (use storage.tsdb.retention.size)".to_string());
                }
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
            retention: RetentionConfig::default(),
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
    fn retention_sizes_and_prometheus_section() {
        assert_eq!(ByteSize::parse("512MB"), Ok(ByteSize(512 << 20)));
        assert_eq!(ByteSize::parse("1gb"), Ok(ByteSize(1 << 30)));
        assert_eq!(ByteSize::parse("10B"), Ok(ByteSize(10)));
        for bad in ["", "10", "MB", "1.5GB", "10XB", "99999999999EB"] {
            assert!(ByteSize::parse(bad).is_err(), "{bad:?}");
        }
        let mut c: StorageConfig = serde_yaml_ng::from_str(
            "retention: {time: 15d, size: 2GB}\ntsdb: {retention: {percentage: 5}}",
        )
        .unwrap();
        assert_eq!(c.retention.time.0, Duration::from_secs(15 * 86400));
        assert_eq!(c.retention.size, Some(ByteSize(2 << 30)));
        let w = c.apply_prometheus_compat();
        assert!(w.iter().any(|w| w.contains("percentage")), "{w:?}");
        let mut p: StorageConfig =
            serde_yaml_ng::from_str("tsdb: {retention: {time: 1d, size: 1GB}}").unwrap();
        assert_eq!(p.retention, RetentionConfig::default());
        assert!(p.apply_prometheus_compat().is_empty());
        assert_eq!(p.retention.time.0, Duration::from_secs(86400));
        assert_eq!(p.retention.size, Some(ByteSize(1 << 30)));
    }

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
