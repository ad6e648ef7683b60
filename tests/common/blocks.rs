//! Helpers for the tests of on-disk blocks: a config without self-scraping (hearth's own
//! scrape would put wall-clock samples next to the tests' fixed timestamps, and retention is
//! measured from the newest sample), exact appends and exports through the test endpoints,
//! and the blocks directory as it is on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::http;

/// One hour in milliseconds.
pub const H: i64 = 3_600_000;
/// A base timestamp aligned to 72 h, so every compaction window starts on it.
pub const T0: i64 = 1_700_092_800_000;

/// Writes a hearth config with no scrape jobs and `storage_extra` (YAML lines indented by
/// four spaces, e.g. `"    retention:\n      time: 6h\n"` under `storage:`) to `path`;
/// returns the path as a string for `--config`.
pub fn write_config(path: &Path, storage_extra: &str) -> String {
    let yaml = format!("storage:\n  out_of_order_window: 1h\n{storage_extra}scrape_configs: []\n");
    std::fs::write(path, yaml).unwrap();
    path.to_str().unwrap().to_string()
}

/// A series for `/api/v1/tsdb/test/append` with values as exact bits.
pub fn series_json(labels: &[(&str, &str)], samples: impl Iterator<Item = (i64, f64)>) -> Value {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    let samples: Vec<Value> = samples
        .map(|(t, v)| serde_json::json!([t, format!("0x{:016x}", v.to_bits())]))
        .collect();
    serde_json::json!({"labels": labels, "samples": samples})
}

/// Posts `{"series": series}` to the test append endpoint. `Err` when the connection failed
/// (e.g. hearth was killed); otherwise the status and the JSON answer.
pub fn append(addr: &str, series: Vec<Value>) -> std::io::Result<(u16, Value)> {
    let body = serde_json::json!({ "series": series }).to_string();
    let (st, resp) = http(addr, "POST", "/api/v1/tsdb/test/append", &body)?;
    let v = serde_json::from_str(&resp).unwrap_or(Value::String(resp));
    Ok((st, v))
}

/// Appends and asserts every sample was stored (200, nothing refused).
pub fn append_ok(addr: &str, series: Vec<Value>) {
    let n: usize = series
        .iter()
        .map(|s| s["samples"].as_array().map_or(0, |a| a.len()))
        .sum();
    let (st, v) = append(addr, series).expect("append");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["appended"].as_u64(), Some(n as u64), "{v}");
}

/// One exported series: labels and samples as (ms, value bits).
#[derive(Debug, Clone)]
pub struct Exported {
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(i64, u64)>,
}

/// `GET /api/v1/tsdb/test/export` (values bit-exact). `Err` with status and body on failure.
pub fn export(
    addr: &str,
    matcher: &str,
    start: Option<i64>,
    end: Option<i64>,
) -> Result<Vec<Exported>, (u16, String)> {
    let mut path = format!(
        "/api/v1/tsdb/test/export?match={}",
        super::urlencode(matcher)
    );
    if let Some(s) = start {
        path.push_str(&format!("&start={s}"));
    }
    if let Some(e) = end {
        path.push_str(&format!("&end={e}"));
    }
    let (st, body) = http(addr, "GET", &path, "").map_err(|e| (0, e.to_string()))?;
    if st != 200 {
        return Err((st, body));
    }
    let v: Value = serde_json::from_str(&body).map_err(|e| (st, e.to_string()))?;
    let mut out = Vec::new();
    for s in v["data"].as_array().unwrap() {
        let labels = s["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let samples = s["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let bits = p[1].as_str().unwrap().trim_start_matches("0x");
                (
                    p[0].as_i64().unwrap(),
                    u64::from_str_radix(bits, 16).unwrap(),
                )
            })
            .collect();
        out.push(Exported { labels, samples });
    }
    Ok(out)
}

/// The value of metric line `name` (exact, with labels) in a `/metrics` body.
pub fn metric_in(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// A block's `meta.json` as far as the tests need it.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskBlock {
    pub id: String,
    pub dir: PathBuf,
    pub min_time: i64,
    /// Exclusive.
    pub max_time: i64,
    pub level: u64,
    pub num_samples: u64,
    pub sources: Vec<String>,
}

/// Finished blocks under `<data>/blocks` (directories named by a bare id), by min time.
/// Blocks that vanish while being read (deleted concurrently) are skipped.
pub fn disk_blocks(data: &Path) -> Vec<DiskBlock> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(data.join("blocks")) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains('.') {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path().join("meta.json")) else {
            continue;
        };
        let Ok(m) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        out.push(DiskBlock {
            id: name,
            dir: e.path(),
            min_time: m["minTime"].as_i64().unwrap(),
            max_time: m["maxTime"].as_i64().unwrap(),
            level: m["compaction"]["level"].as_u64().unwrap(),
            num_samples: m["stats"]["numSamples"].as_u64().unwrap(),
            sources: m["compaction"]["sources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect(),
        });
    }
    out.sort_by(|a, b| (a.min_time, &a.id).cmp(&(b.min_time, &b.id)));
    out
}

/// Names under `<data>/blocks` that are not finished blocks: `*.tmp` (interrupted writes)
/// and `*.deleted` (interrupted deletions).
pub fn leftover_dirs(data: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data.join("blocks")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n.ends_with(".deleted"))
        .collect();
    out.sort();
    out
}

/// Copies a directory tree (regular files and directories only).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}
