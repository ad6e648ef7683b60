//! `POST|PUT /api/v1/admin/tsdb/snapshot` on the real binary: a second hearth started on the
//! snapshot directory answers exactly what the first answered when the snapshot was taken
//! (blocks, head, out-of-order samples, deleted series; bit-exact), `skip_head` leaves the
//! head out, bad `skip_head` is a 400 and the endpoint is refused without
//! `--web.enable-admin-api`, all as Prometheus does.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::blocks::{append_ok, disk_blocks, export, series_json, write_config, Exported, H, T0};
use common::{http, http_raw, urlencode, Hearth};
use serde_json::Value;

const STEP: i64 = 60_000;

fn value(s: usize, t: i64) -> f64 {
    match (t / STEP) % 41 {
        0 => f64::from_bits(0x7ff0_0000_0000_0002), // stale marker
        n => n as f64 * 0.25 + s as f64,
    }
}

/// Appends `[from, to)` of three series.
fn fill(addr: &str, from: i64, to: i64) {
    let series = (0..3)
        .map(|s| {
            series_json(
                &[("__name__", "m"), ("s", &s.to_string())],
                (from..to).step_by(STEP as usize).map(|t| (t, value(s, t))),
            )
        })
        .collect();
    append_ok(addr, series);
}

fn export_all(addr: &str) -> Vec<Exported> {
    let mut v = export(addr, "__name__=~.+", None, None).unwrap();
    v.sort_by(|a, b| a.labels.cmp(&b.labels));
    v
}

fn same(a: &[Exported], b: &[Exported]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.labels == y.labels && x.samples == y.samples)
}

fn query_range(addr: &str) -> String {
    let path = format!(
        "/api/v1/query_range?query={}&start={}&end={}&step=60",
        urlencode("sum by (s) (rate(m[5m])) or m"),
        T0 / 1000,
        (T0 + 6 * H) / 1000
    );
    let (st, body) = http(addr, "GET", &path, "").unwrap();
    assert_eq!(st, 200, "{body}");
    body
}

/// A snapshot request; returns status and the JSON answer.
fn snapshot(addr: &str, method: &str, query: &str, form: &str) -> (u16, Value) {
    let path = format!("/api/v1/admin/tsdb/snapshot{query}");
    let (st, _, body) = http_raw(
        addr,
        method,
        &path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .unwrap();
    (
        st,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// Starts hearth on a snapshot directory (no admin API needed).
fn start_on(dir: &Path, cfg: &str) -> Hearth {
    Hearth::start(dir, &["--config", cfg])
}

#[test]
fn snapshot_restores_exactly_what_was_served() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = write_config(&tmp.path().join("hearth.yml"), "");
    let args = ["--config", cfg.as_str(), "--web.enable-admin-api"];
    let mut h = Hearth::start(&data, &args);

    // 5.5 h of data; the start-up maintenance run cuts [0, 2h) and [2h, 4h) (a range is cut
    // an hour after its end), the head keeps [4h, 5.5h).
    fill(&h.addr, T0, T0 + 5 * H + H / 2);
    assert!(h.terminate().success());
    h = Hearth::start(&data, &args);
    let deadline = Instant::now() + Duration::from_secs(60);
    while disk_blocks(&data).len() < 2 || h.metric("hearth_tsdb_blocks") != Some(2.0) {
        assert!(
            Instant::now() < deadline,
            "blocks not cut:\n{}",
            h.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // An out-of-order sample in the head; deletions in a block and in the head.
    append_ok(
        &h.addr,
        vec![series_json(
            &[("__name__", "m"), ("s", "0")],
            [(T0 + 5 * H + 30, 7.5)].into_iter(),
        )],
    );
    for (a, b) in [
        (T0 + H, T0 + H + 600_000),
        (T0 + 5 * H, T0 + 5 * H + 300_000),
    ] {
        let path = format!(
            "/api/v1/admin/tsdb/delete_series?match[]={}&start={}&end={}",
            urlencode("m{s=\"1\"}"),
            a as f64 / 1000.0,
            b as f64 / 1000.0
        );
        let (st, body) = http(&h.addr, "POST", &path, "").unwrap();
        assert_eq!(st, 204, "{body}");
    }
    let before = export_all(&h.addr);
    let before_query = query_range(&h.addr);
    let s1 = &before
        .iter()
        .find(|s| s.labels["s"] == "1")
        .unwrap()
        .samples;
    assert!(!s1.iter().any(|p| p.0 > T0 + H && p.0 < T0 + H + 600_000));
    assert!(before[0]
        .samples
        .contains(&(T0 + 5 * H + 30, 7.5f64.to_bits())));

    // Bad skip_head, as Prometheus words it.
    let (st, v) = snapshot(&h.addr, "POST", "?skip_head=yes", "");
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["errorType"], "bad_data");
    assert_eq!(
        v["error"],
        "invalid parameter \"skip_head\": unable to parse boolean: strconv.ParseBool: parsing \"yes\": invalid syntax"
    );

    let (st, v) = snapshot(&h.addr, "POST", "", "");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "success");
    let name = v["data"]["name"].as_str().unwrap().to_string();
    let (time, rand) = name.split_once('-').unwrap();
    assert_eq!(time.len(), 16, "{name}");
    assert!(time.starts_with("20") && time.ends_with('Z') && time.as_bytes()[8] == b'T');
    assert!(rand.len() == 16 && rand.bytes().all(|c| c.is_ascii_hexdigit()));
    let snap = data.join("snapshots").join(&name);
    assert!(snap.join("blocks").is_dir());
    // Form body, PUT, Go's boolean spelling.
    let (st, v) = snapshot(&h.addr, "PUT", "", "skip_head=T");
    assert_eq!(st, 200, "{v}");
    let no_head = data
        .join("snapshots")
        .join(v["data"]["name"].as_str().unwrap());
    let snapshots: Vec<String> = std::fs::read_dir(data.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(snapshots.len(), 2, "no leftovers: {snapshots:?}");

    // The source moves on; the snapshot does not.
    fill(&h.addr, T0 + 5 * H + H / 2, T0 + 6 * H);
    assert!(!same(&export_all(&h.addr), &before));
    assert_eq!(
        h.metric("hearth_tsdb_blocks"),
        Some(2.0),
        "snapshots are not blocks"
    );

    let restored = start_on(&snap, &cfg);
    assert!(
        same(&export_all(&restored.addr), &before),
        "snapshot differs"
    );
    assert_eq!(query_range(&restored.addr), before_query);
    drop(restored);

    let restored = start_on(&no_head, &cfg);
    let persisted: Vec<Exported> = before
        .iter()
        .map(|s| Exported {
            labels: s.labels.clone(),
            samples: s
                .samples
                .iter()
                .copied()
                .filter(|p| p.0 < T0 + 4 * H)
                .collect(),
        })
        .collect();
    assert!(
        same(&export_all(&restored.addr), &persisted),
        "skip_head snapshot differs"
    );
}

#[test]
fn snapshot_is_refused_without_the_admin_api() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = write_config(&tmp.path().join("hearth.yml"), "");
    let h = Hearth::start(&data, &["--config", &cfg]);
    for method in ["POST", "PUT"] {
        let (st, v) = snapshot(&h.addr, method, "?skip_head=nonsense", "");
        assert_eq!(st, 503, "{v}");
        assert_eq!(v["status"], "error");
        assert_eq!(v["errorType"], "unavailable");
        assert_eq!(v["error"], "admin APIs disabled");
    }
    let (st, _) = h.get("/api/v1/admin/tsdb/snapshot");
    assert_eq!(st, 405, "GET is not a snapshot method");
    assert!(!data.join("snapshots").exists());
}
