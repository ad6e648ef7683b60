//! The real binary: health, readiness, /metrics, config errors, graceful shutdown.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{http, Hearth};
use serde_json::Value;

fn append_body(series: &[(&str, &str)], samples: &[(i64, &str)]) -> String {
    let labels: serde_json::Map<String, Value> = series
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    let samples: Vec<Value> = samples
        .iter()
        .map(|(t, v)| serde_json::json!([t, v]))
        .collect();
    serde_json::json!({"series": [{"labels": labels, "samples": samples}]}).to_string()
}

#[test]
fn health_ready_metrics_and_sigterm_persists() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut h = Hearth::start(&dir, &[]);
    assert_eq!(h.get("/-/healthy").0, 200);
    assert_eq!(h.get("/-/ready").0, 200);

    let body = append_body(
        &[("__name__", "test_metric"), ("job", "t")],
        &[
            (1000, "1.5"),
            (2000, "NaN"),
            (3000, "0x7ff0000000000002"),
            (4000, "-0"),
        ],
    );
    let (st, resp) = h.post("/api/v1/tsdb/test/append", &body);
    assert_eq!(st, 200, "{resp}");
    let v: Value = serde_json::from_str(&resp).unwrap();
    assert_eq!(v["data"]["appended"], 4);

    let (st, metrics) = h.get("/metrics");
    assert_eq!(st, 200);
    for name in [
        "hearth_tsdb_head_samples_appended_total 4",
        "hearth_tsdb_head_series 1",
        "hearth_ready 1",
        "hearth_tsdb_wal_fsyncs_total",
        "hearth_tsdb_wal_bytes_written_total",
        "hearth_tsdb_wal_segment_current",
        "hearth_tsdb_wal_replay_duration_seconds",
        "hearth_tsdb_head_chunks 1",
        "hearth_tsdb_head_memory_bytes",
        "process_resident_memory_bytes",
    ] {
        assert!(metrics.contains(name), "missing {name:?} in\n{metrics}");
    }
    assert!(h.metric("hearth_tsdb_wal_fsyncs_total").unwrap() >= 1.0);

    let st = h.terminate();
    assert!(st.success(), "exit status {st:?}; log:\n{}", h.log_text());

    // Everything acknowledged is back after restart, bit-exact.
    let h = Hearth::start(&dir, &[]);
    let (st, resp) = h.get("/api/v1/tsdb/test/export?match=__name__=test_metric");
    assert_eq!(st, 200, "{resp}");
    let v: Value = serde_json::from_str(&resp).unwrap();
    let samples = &v["data"][0]["samples"];
    assert_eq!(
        samples,
        &serde_json::json!([
            [1000, format!("0x{:016x}", 1.5f64.to_bits())],
            [2000, format!("0x{:016x}", f64::NAN.to_bits())],
            [3000, "0x7ff0000000000002"],
            [4000, format!("0x{:016x}", (-0.0f64).to_bits())],
        ])
    );
    assert_eq!(h.metric("hearth_tsdb_wal_replay_samples"), Some(4.0));
}

#[test]
fn append_rejections_and_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Hearth::start(&tmp.path().join("data"), &[]);
    let l = [("__name__", "m")];
    let hour = 3_600_000;
    let (st, _) = h.post(
        "/api/v1/tsdb/test/append",
        &append_body(&l, &[(10 * hour, "1")]),
    );
    assert_eq!(st, 200);
    // exact duplicate: accepted silently; conflict and too old: rejected with reasons;
    // within the 1h window: accepted out of order.
    let (st, resp) = h.post(
        "/api/v1/tsdb/test/append",
        &append_body(
            &l,
            &[
                (10 * hour, "1"),
                (10 * hour, "2"),
                (8 * hour, "3"),
                (10 * hour - 60_000, "4"),
            ],
        ),
    );
    assert_eq!(st, 200, "{resp}");
    let v: Value = serde_json::from_str(&resp).unwrap();
    assert_eq!(v["data"]["appended"], 1, "{resp}");
    assert_eq!(v["data"]["duplicates"], 1, "{resp}");
    assert_eq!(v["data"]["too_old"], 1, "{resp}");
    assert_eq!(v["data"]["duplicate_conflicts"], 1, "{resp}");
    assert_eq!(
        h.metric("hearth_tsdb_head_samples_rejected_total{reason=\"too_old\"}"),
        Some(1.0)
    );
    assert_eq!(
        h.metric("hearth_tsdb_head_out_of_order_samples_appended_total"),
        Some(1.0)
    );

    for (body, want) in [
        (
            append_body(&[("1bad", "x")], &[(1, "1")]),
            "invalid label name",
        ),
        (append_body(&l, &[(1, "one")]), "invalid sample value"),
        ("{\"series\": 5}".to_string(), "invalid type"),
        (
            r#"{"series":[{"labels":{"__name__":"h"},"histograms":[{}]}]}"#.to_string(),
            "native histograms are not supported",
        ),
    ] {
        let (st, resp) = h.post("/api/v1/tsdb/test/append", &body);
        assert_eq!(st, 400, "{body} -> {resp}");
        let v: Value = serde_json::from_str(&resp).unwrap();
        assert_eq!(v["status"], "error");
        assert_eq!(v["errorType"], "bad_data");
        assert!(v["error"].as_str().unwrap().contains(want), "{resp}");
    }
}

#[test]
fn config_errors_name_the_key_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("hearth.yml");
    std::fs::write(
        &cfg,
        "global:\n  scrape_interval: 15s\nstorage:\n  out_of_order_window: 1h\n  retension: 30d\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--config")
        .arg(&cfg)
        .arg("--storage.path")
        .arg(tmp.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("retension"), "{err}");
    assert!(err.contains("line 5"), "{err}");
    // It never got as far as creating the data directory.
    assert!(!tmp.path().join("data").exists());
}

#[test]
fn config_file_settings_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("hearth.yml");
    let dir = tmp.path().join("from-config");
    let port = common::free_port();
    std::fs::write(
        &cfg,
        format!(
            "storage:\n  path: {}\n  wal_fsync: interval\n  wal_fsync_interval: 100ms\nserver:\n  listen_address: 127.0.0.1:{port}\n",
            dir.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--config")
        .arg(&cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http(&addr, "GET", "/-/ready", ""), Ok((200, _))) {
        assert!(Instant::now() < deadline, "not ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(dir.join("wal").is_dir());
    assert!(dir.join("lock").exists());
    // A second process on the same directory is refused (flock), not silently sharing it.
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("--storage.path")
        .arg(&dir)
        .arg("--web.listen-address")
        .arg(format!("127.0.0.1:{}", common::free_port()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use by another process"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert!(child.wait().unwrap().success());
}

#[test]
fn ready_is_503_during_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut h = Hearth::start(&dir, &["--config", "/dev/null"]);
    // Enough WAL that replay takes a measurable time.
    for b in 0..40 {
        let mut series = Vec::new();
        for s in 0..50 {
            let samples: Vec<Value> = (0..500)
                .map(|i| serde_json::json!([(b * 500 + i) * 15_000, format!("{}", i * s)]))
                .collect();
            series.push(serde_json::json!({"labels": {"__name__": "load", "s": s.to_string()}, "samples": samples}));
        }
        let body = serde_json::json!({ "series": series }).to_string();
        assert_eq!(h.post("/api/v1/tsdb/test/append", &body).0, 200);
    }
    assert!(h.terminate().success());
    let h = Hearth::spawn(&dir, &[]);
    let mut saw_503 = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match http(&h.addr, "GET", "/-/ready", "") {
            Ok((503, _)) => saw_503 = true,
            Ok((200, _)) => break,
            _ => {}
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(2));
    }
    let replay = h.metric("hearth_tsdb_wal_replay_duration_seconds").unwrap();
    assert_eq!(
        h.metric("hearth_tsdb_wal_replay_samples"),
        Some(1_000_000.0)
    );
    if replay > 0.3 {
        assert!(
            saw_503,
            "replay took {replay}s but /-/ready never answered 503"
        );
    }
}
