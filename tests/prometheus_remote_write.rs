//! The real thing: Debian's Prometheus 2.42 scrapes itself and the real node exporter and
//! remote-writes to the real hearth binary; every series Prometheus holds in a window must be
//! in hearth with identical samples.
//!
//! Needs `prometheus` and `prometheus-node-exporter` on PATH; `./scripts/test.sh` installs
//! them. A missing binary fails the test (it never skips).

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{free_port, http, require, Hearth, Proc};
use serde_json::Value;

fn wait_http_ok(addr: &str, path: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(http(addr, "GET", path, ""), Ok((200, _))) {
        assert!(
            Instant::now() < deadline,
            "{what} did not come up on {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

type SeriesMap = BTreeMap<BTreeMap<String, String>, Vec<(i64, u64)>>;

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

fn parse_prom_value(s: &str) -> f64 {
    match s {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s.parse().unwrap(),
    }
}

/// Canonical bits for comparison: every NaN the same (Prometheus' JSON says only "NaN").
fn canon(v: f64) -> u64 {
    if v.is_nan() {
        f64::NAN.to_bits()
    } else {
        v.to_bits()
    }
}

/// Raw samples Prometheus holds in `[t1 - window, t1]`, via its query API (a range selector
/// evaluated as an instant query returns raw samples; stale markers are not returned).
fn prometheus_samples(addr: &str, t1: i64, window_s: i64) -> SeriesMap {
    let q = format!(
        "/api/v1/query?query=%7B__name__%3D~%22.%2B%22%7D%5B{window_s}s%5D&time={}.{:03}",
        t1 / 1000,
        t1 % 1000
    );
    let (st, body) = http(addr, "GET", &q, "").unwrap();
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let mut out = SeriesMap::new();
    for s in v["data"]["result"].as_array().unwrap() {
        let samples = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                (t, canon(parse_prom_value(p[1].as_str().unwrap())))
            })
            .collect();
        out.insert(labels_of(&s["metric"]), samples);
    }
    out
}

fn hearth_samples(h: &Hearth, t0: i64, t1: i64) -> SeriesMap {
    let (st, body) = h.get(&format!(
        "/api/v1/tsdb/test/export?match=__name__%3D~.%2B&start={t0}&end={t1}"
    ));
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let mut out = SeriesMap::new();
    for s in v["data"].as_array().unwrap() {
        let samples: Vec<(i64, u64)> = s["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let bits = u64::from_str_radix(&p[1].as_str().unwrap()[2..], 16).unwrap();
                (p[0].as_i64().unwrap(), bits)
            })
            .filter(|&(_, bits)| bits != hearth_tsdb::STALE_NAN_BITS)
            .map(|(t, bits)| (t, canon(f64::from_bits(bits))))
            .collect();
        if !samples.is_empty() {
            out.insert(labels_of(&s["labels"]), samples);
        }
    }
    out
}

fn diff(prom: &SeriesMap, hearth: &SeriesMap) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in prom {
        match hearth.get(k) {
            None => d.push(format!("missing in hearth: {k:?}")),
            Some(h) if h != v => d.push(format!(
                "samples differ for {k:?}: prometheus {v:?} hearth {h:?}"
            )),
            _ => {}
        }
    }
    for k in hearth.keys().filter(|k| !prom.contains_key(*k)) {
        d.push(format!("only in hearth: {k:?}"));
    }
    d
}

#[test]
fn prometheus_remote_write_lands_identical_samples() {
    let prometheus = require("prometheus");
    let node_exporter = require("prometheus-node-exporter");
    let tmp = tempfile::tempdir().unwrap();
    // No self-scrape: the comparison covers every series hearth holds.
    let h = Hearth::start(&tmp.path().join("hearth"), &["--config", "/dev/null"]);

    let node_addr = format!("127.0.0.1:{}", free_port());
    let _node = Proc(
        Command::new(node_exporter)
            .arg(format!("--web.listen-address={node_addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_http_ok(&node_addr, "/metrics", "node exporter");

    let prom_addr = format!("127.0.0.1:{}", free_port());
    let cfg = tmp.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            r#"global:
  scrape_interval: 2s
  scrape_timeout: 2s
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ["{prom_addr}"]}}]
  - job_name: node
    static_configs: [{{targets: ["{node_addr}"]}}]
remote_write:
  - url: http://{}/api/v1/write
    queue_config: {{batch_send_deadline: 500ms, max_samples_per_send: 2000, min_backoff: 50ms, max_backoff: 1s}}
    metadata_config: {{send_interval: 1s}}
"#,
            h.addr
        ),
    )
    .unwrap();
    let prom_log = std::fs::File::create(tmp.path().join("prometheus.log")).unwrap();
    let _prom = Proc(
        Command::new(prometheus)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("prom").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdout(Stdio::null())
            .stderr(prom_log)
            .spawn()
            .unwrap(),
    );
    wait_http_ok(&prom_addr, "/-/ready", "prometheus");
    let started = now_ms();
    // Let a few scrapes happen and be shipped.
    std::thread::sleep(Duration::from_secs(14));
    let t1 = now_ms() - 2000;
    let window_s = 8;
    let t0 = t1 - window_s * 1000;
    assert!(
        t0 > started + 1000,
        "window must start after remote write began"
    );
    let prom = prometheus_samples(&prom_addr, t1, window_s);
    let jobs: std::collections::BTreeSet<&str> = prom
        .keys()
        .filter_map(|k| k.get("job").map(String::as_str))
        .collect();
    assert!(
        jobs.contains("node") && jobs.contains("prometheus"),
        "{jobs:?}"
    );
    assert!(prom.len() > 300, "only {} series in prometheus", prom.len());
    let total: usize = prom.values().map(Vec::len).sum();
    assert!(
        total >= 2 * prom.len(),
        "expected several scrapes per series in the window: {total} samples, {} series",
        prom.len()
    );

    // Remote write trails the scrapes a little; give it time, then compare exactly.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = diff(&prom, &hearth_samples(&h, t0, t1));
        if d.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let log =
                std::fs::read_to_string(tmp.path().join("prometheus.log")).unwrap_or_default();
            panic!(
                "{} differences of {} series, first: {:#?}\nprometheus log tail:\n{}",
                d.len(),
                prom.len(),
                &d[..d.len().min(5)],
                &log[log.len().saturating_sub(3000)..]
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "{} series, {total} samples identical in prometheus and hearth",
        prom.len()
    );
    // Metadata was shipped too and is served back.
    let (_, body) = h.get("/api/v1/metadata?metric=node_cpu_seconds_total");
    let v: Value = serde_json::from_str(&body).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut v = v;
    while v["data"]["node_cpu_seconds_total"].is_null() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        v = serde_json::from_str(&h.get("/api/v1/metadata?metric=node_cpu_seconds_total").1)
            .unwrap();
    }
    assert_eq!(
        v["data"]["node_cpu_seconds_total"][0]["type"], "counter",
        "{v}"
    );
}
