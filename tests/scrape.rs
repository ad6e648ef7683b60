//! Scraping end to end: the real `prometheus-node-exporter` registered in a Consul double
//! (Consul's catalog API with blocking queries), discovered and scraped by the real `hearth`
//! binary with relabeling; then staleness when the exporter dies, a tag change that drops the
//! target, reload via `POST /-/reload` (good and bad), SIGHUP, and `hearth check config`.

mod common;
#[allow(unreachable_pub)]
#[path = "../scrape/tests/consul_double/mod.rs"]
mod consul_double;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http, require, Hearth, Proc};
use consul_double::{ConsulDouble, Instance, Node};
use serde_json::Value;

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn targets(h: &Hearth) -> Value {
    let (st, body) = h.get("/api/v1/targets");
    assert_eq!(st, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn job_targets(h: &Hearth, job: &str) -> Vec<Value> {
    targets(h)["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["scrapePool"] == job)
        .cloned()
        .collect()
}

fn export(h: &Hearth, matchers: &[&str]) -> Vec<Value> {
    let q: Vec<String> = matchers
        .iter()
        .map(|m| format!("match={}", m.replace('+', "%2B")))
        .collect();
    let (st, body) = h.get(&format!("/api/v1/tsdb/test/export?{}", q.join("&")));
    assert_eq!(st, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["data"]
        .as_array()
        .unwrap()
        .clone()
}

fn last_bits(series: &Value) -> u64 {
    let s = series["samples"].as_array().unwrap();
    u64::from_str_radix(&s.last().unwrap()[1].as_str().unwrap()[2..], 16).unwrap()
}

const STALE: u64 = 0x7ff0000000000002;

fn node_config(consul: &str, extra: &str) -> String {
    format!(
        r#"global:
  scrape_interval: 2s
  scrape_timeout: 2s
scrape_configs:
  - job_name: node
    consul_sd_configs:
      - server: {consul}
        token: s3cret
        services: [node-exporter]
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__meta_consul_tags]
        regex: .*,prod,.*
        action: keep
      - source_labels: [__meta_consul_node]
        target_label: node
      - source_labels: [__meta_consul_metadata_rack]
        target_label: rack
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: go_.*
        action: drop
{extra}"#
    )
}

#[test]
fn consul_discovered_node_exporter_is_scraped_with_relabeling_staleness_and_reload() {
    let node_exporter = require("prometheus-node-exporter");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let consul = rt.block_on(ConsulDouble::start("dc1"));
    consul.set_token(Some("s3cret"));
    let node_port = free_port();
    let node_addr = format!("127.0.0.1:{node_port}");
    let mut node = Proc(
        Command::new(node_exporter)
            .arg(format!("--web.listen-address={node_addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    consul.upsert_node(Node::new("pi1", "127.0.0.1").meta("rack", "a"));
    consul.register(Instance::new("pi1", "node-exporter", "ne-1", node_port).tags(&["prod", "pi"]));

    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("prometheus.yml");
    std::fs::write(&cfg, node_config(&consul.server(), "")).unwrap();
    let cfg_s = cfg.to_str().unwrap().to_string();
    let h = Hearth::start(&tmp.path().join("data"), &["--config", &cfg_s]);

    wait_for("node target up", 30, || {
        job_targets(&h, "node")
            .first()
            .is_some_and(|t| t["health"] == "up")
    });
    let t = &job_targets(&h, "node")[0];
    assert_eq!(t["labels"]["node"], "pi1");
    assert_eq!(t["labels"]["rack"], "a");
    assert_eq!(t["labels"]["instance"], node_addr.as_str());
    assert_eq!(t["discoveredLabels"]["__meta_consul_tags"], ",prod,pi,");
    assert_eq!(t["scrapeUrl"], format!("http://{node_addr}/metrics"));

    let up = export(&h, &["__name__=up", "job=node"]);
    assert_eq!(up.len(), 1);
    assert_eq!(last_bits(&up[0]), 1f64.to_bits());
    let cpu = export(&h, &["__name__=node_cpu_seconds_total"]);
    assert!(!cpu.is_empty());
    assert_eq!(cpu[0]["labels"]["rack"], "a");
    assert_eq!(cpu[0]["labels"]["job"], "node");
    assert!(
        export(&h, &["__name__=~go_.+", "job=node"]).is_empty(),
        "metric_relabel drop failed"
    );
    for name in [
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    ] {
        assert_eq!(
            export(&h, &[&format!("__name__={name}"), "job=node"]).len(),
            1,
            "{name}"
        );
    }
    // Metadata from the scrape is served, per target and globally.
    let (_, md) = h.get("/api/v1/targets/metadata?match_target=%7Bjob%3D%22node%22%7D&metric=node_cpu_seconds_total");
    let md: Value = serde_json::from_str(&md).unwrap();
    assert_eq!(md["data"][0]["type"], "counter", "{md}");
    let (st, page) = h.get("/targets");
    assert_eq!(st, 200);
    assert!(
        page.contains("node (1/1 up)") && page.contains(&node_addr),
        "{page}"
    );

    // The exporter dies: the target goes down, up=0, and its series end with stale markers.
    drop(node.0.kill());
    let _ = node.0.wait();
    wait_for("node target down", 30, || {
        job_targets(&h, "node")
            .first()
            .is_some_and(|t| t["health"] == "down")
    });
    wait_for("up=0", 10, || {
        last_bits(&export(&h, &["__name__=up", "job=node"])[0]) == 0f64.to_bits()
    });
    let cpu = export(&h, &["__name__=node_cpu_seconds_total"]);
    assert!(
        cpu.iter().all(|s| last_bits(s) == STALE),
        "series not marked stale"
    );
    assert!(!job_targets(&h, "node")[0]["lastError"]
        .as_str()
        .unwrap()
        .is_empty());

    // A tag change in Consul drops the target through relabeling, within a few seconds.
    consul.set_tags("ne-1", &["dev"]);
    wait_for("target dropped", 15, || job_targets(&h, "node").is_empty());
    let dropped = targets(&h)["data"]["droppedTargets"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(dropped, 1);
    wait_for("up stale after removal", 10, || {
        last_bits(&export(&h, &["__name__=up", "job=node"])[0]) == STALE
    });

    // Reload with a new job; a broken config is refused and the running one stays.
    let self_job = format!(
        "  - job_name: self\n    static_configs:\n      - targets: [\"{}\"]\n",
        h.addr
    );
    std::fs::write(&cfg, node_config(&consul.server(), &self_job)).unwrap();
    let (st, body) = http(&h.addr, "POST", "/-/reload", "").unwrap();
    assert_eq!(st, 200, "{body}");
    wait_for("self target up", 30, || {
        job_targets(&h, "self")
            .first()
            .is_some_and(|t| t["health"] == "up")
    });
    std::fs::write(
        &cfg,
        "scrape_configs:\n  - job_name: x\n    scrape_intervall: 1s\n",
    )
    .unwrap();
    let (st, body) = http(&h.addr, "POST", "/-/reload", "").unwrap();
    assert_eq!(st, 500);
    assert!(body.contains("scrape_intervall"), "{body}");
    assert_eq!(
        job_targets(&h, "self").len(),
        1,
        "old config must keep running"
    );

    // SIGHUP reloads too: drop the self job again.
    std::fs::write(&cfg, node_config(&consul.server(), "")).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(h.child.id() as i32, libc::SIGHUP) };
    wait_for("self job removed by SIGHUP", 15, || {
        job_targets(&h, "self").is_empty()
    });
    assert_eq!(h.get("/-/ready").0, 200, "SIGHUP must not kill hearth");
}

#[test]
fn check_config_validates_like_promtool() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.yml");
    std::fs::write(
        &good,
        "global:\n  scrape_interval: 30s\nrule_files: [x.rules]\nscrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['h:1']}]\n    kubernetes_sd_configs: [{role: node}]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["check", "config"])
        .arg(&good)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("SUCCESS") && text.contains("1 scrape configs"),
        "{text}"
    );
    assert!(
        text.contains("kubernetes_sd_configs") && text.contains("rule_files"),
        "{text}"
    );

    let bad = tmp.path().join("bad.yml");
    std::fs::write(&bad, "scrape_configs:\n  - job_name: a\n  - job_name: a\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["check", "config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAILED"));

    // The full Prometheus config from the conformance data loads with warnings only.
    let conf = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/config/prometheus.conf.good.yml");
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["check", "config"])
        .arg(&conf)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("WARNING"), "{text}");
}
