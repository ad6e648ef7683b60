//! `POST /api/v1/admin/tsdb/delete_series`: off unless `--web.enable-admin-api`, Prometheus's
//! errors, and deleted samples gone from queries at once and after a restart.

mod common;

use common::{http, Hearth};

const CONFIG: &str = "scrape_configs: []\n";

fn query(h: &Hearth, q: &str) -> serde_json::Value {
    let path = format!("/api/v1/query?query={}&time=600", common::urlencode(q));
    let (st, body) = http(&h.addr, "GET", &path, "").unwrap();
    assert_eq!(st, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn count(h: &Hearth, q: &str) -> String {
    let v = query(h, q);
    v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap_or("none")
        .to_string()
}

#[test]
fn delete_series_hides_data_and_survives_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("hearth.yml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let data = tmp.path().join("data");
    let args = ["--config", cfg.to_str().unwrap(), "--web.enable-admin-api"];
    let mut h = Hearth::start(&data, &args);
    let mut body = String::new();
    for i in 0..=60 {
        let ms = i * 10_000;
        body.push_str(&format!(
            "keep{{job=\"a\"}} {i} {ms}\ngone{{job=\"b\"}} {i} {ms}\n"
        ));
    }
    h.import(&body);
    assert_eq!(count(&h, "count_over_time(gone[10m])"), "60");

    // Bad input as Prometheus reports it.
    let (st, b) = http(&h.addr, "POST", "/api/v1/admin/tsdb/delete_series", "").unwrap();
    assert_eq!(st, 400, "{b}");
    assert!(b.contains("no match[] parameter provided"), "{b}");

    // Delete `gone` between 100 s and 300 s (inclusive).
    let path = format!(
        "/api/v1/admin/tsdb/delete_series?match[]={}&start=100&end=300",
        common::urlencode("{job=\"b\"}")
    );
    let (st, b) = http(&h.addr, "POST", &path, "").unwrap();
    assert_eq!(st, 204, "{b}");
    assert_eq!(count(&h, "count_over_time(gone[10m])"), "39");
    assert_eq!(count(&h, "count_over_time(keep[10m])"), "60");
    h.terminate();

    let h = Hearth::start(&data, &args);
    assert_eq!(count(&h, "count_over_time(gone[10m])"), "39");
    assert_eq!(count(&h, "count_over_time(keep[10m])"), "60");
}

#[test]
fn admin_api_is_off_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("hearth.yml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let h = Hearth::start(
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let (st, b) = http(
        &h.addr,
        "POST",
        "/api/v1/admin/tsdb/delete_series?match[]=up",
        "",
    )
    .unwrap();
    assert_eq!(st, 503, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["errorType"], "unavailable");
    assert_eq!(v["error"], "admin APIs disabled");
}
