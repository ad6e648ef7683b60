//! The router served on a local port: answers before the storage is open, parameter errors,
//! and a small end-to-end check against a real `Db` (the full API is tested against the
//! binary in the workspace's `tests/query_api.rs`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};

use hearth_tsdb::http::DbSlot;
use hearth_tsdb::{Db, Labels, StorageConfig};
use serde_json::Value;

use super::*;

fn api(slot: DbSlot) -> Arc<QueryApi> {
    let status = StatusInfo::new(
        BuildInfo {
            version: "9.9.9".into(),
            ..BuildInfo::default()
        },
        BTreeMap::from([("query.timeout".to_string(), "2m".to_string())]),
        "unlimited".into(),
        "global: {}\n".into(),
    );
    QueryApi::new(slot, Engine::default(), status)
}

/// Serves `api` on a free port; returns the address.
fn serve(api: Arc<QueryApi>) -> (tokio::runtime::Runtime, String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    rt.spawn(async move { axum::serve(listener, router(api)).await });
    (rt, addr)
}

fn request(addr: &str, method: &str, path: &str, form: Option<&str>) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let body = form.unwrap_or("");
    let ct = if form.is_some() {
        "Content-Type: application/x-www-form-urlencoded\r\n"
    } else {
        ""
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn unavailable_until_storage_is_open() {
    let slot: DbSlot = Arc::new(OnceLock::new());
    let (_rt, addr) = serve(api(slot));
    for path in [
        "/api/v1/query?query=up",
        "/api/v1/query_range?query=up&start=0&end=60&step=15",
        "/api/v1/series?match[]=up",
        "/api/v1/labels",
        "/api/v1/label/job/values",
        "/api/v1/status/tsdb",
    ] {
        let (st, v) = request(&addr, "GET", path, None);
        assert_eq!(st, 503, "{path}: {v}");
        assert_eq!(v["status"], "error");
        assert_eq!(v["errorType"], "unavailable", "{path}");
    }
    // What does not read the storage answers anyway.
    let (st, v) = request(&addr, "GET", "/api/v1/status/buildinfo", None);
    assert_eq!(st, 200);
    assert_eq!(v["data"]["version"], "9.9.9");
    assert_eq!(v["data"]["features"], serde_json::json!({}));
    let (st, v) = request(&addr, "GET", "/api/v1/status/config", None);
    assert_eq!(st, 200);
    assert_eq!(v["data"]["yaml"], "global: {}\n");
    let (st, v) = request(&addr, "GET", "/api/v1/format_query?query=sum(up)", None);
    assert_eq!((st, v["data"].as_str()), (200, Some("sum(up)")));
    // Parameter errors are found before the storage is needed.
    let (st, v) = request(
        &addr,
        "GET",
        "/api/v1/query_range?query=up&start=10&end=0&step=1",
        None,
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["errorType"], "bad_data");
}

#[test]
fn series_labels_and_tsdb_status_over_a_real_db() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(&StorageConfig {
        path: tmp.path().to_path_buf(),
        ..StorageConfig::default()
    })
    .unwrap();
    {
        let mut app = db.appender();
        for (job, v) in [("a", 1.0), ("b", 2.0)] {
            let l =
                Labels::new([("__name__", "up"), ("job", job), ("http_status", "200")]).unwrap();
            let s = app.series(&l).unwrap();
            app.append(&s, 1_000, v);
            app.append(&s, 2_000, v);
        }
        app.commit().unwrap();
    }
    let slot: DbSlot = Arc::new(OnceLock::new());
    let _ = slot.set(Arc::new(db));
    let (_rt, addr) = serve(api(slot));

    let (st, v) = request(
        &addr,
        "POST",
        "/api/v1/series",
        Some("match[]=up{job=\"b\"}"),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["data"],
        serde_json::json!([{"__name__": "up", "http_status": "200", "job": "b"}])
    );
    let (_, v) = request(&addr, "GET", "/api/v1/labels?start=0&end=1.5", None);
    assert_eq!(
        v["data"],
        serde_json::json!(["__name__", "http_status", "job"])
    );
    let (_, v) = request(&addr, "GET", "/api/v1/labels?start=3&end=4", None);
    assert_eq!(v["data"], serde_json::json!([]));
    let (_, v) = request(&addr, "GET", "/api/v1/label/U__http__status/values", None);
    assert_eq!(v["data"], serde_json::json!(["200"]));
    let (_, v) = request(&addr, "GET", "/api/v1/label/job/values?limit=1", None);
    assert_eq!(v["data"], serde_json::json!(["a"]));
    assert_eq!(v["warnings"], serde_json::json!([TRUNCATED]));
    let (st, v) = request(&addr, "GET", "/api/v1/status/tsdb?limit=1", None);
    assert_eq!(st, 200, "{v}");
    let h = &v["data"]["headStats"];
    assert_eq!(
        (
            h["numSeries"].as_u64(),
            h["minTime"].as_i64(),
            h["maxTime"].as_i64()
        ),
        (Some(2), Some(1_000), Some(2_000))
    );
    assert_eq!(
        v["data"]["seriesCountByMetricName"],
        serde_json::json!([{"name": "up", "value": 2}])
    );
    let (st, v) = request(&addr, "GET", "/api/v1/status/tsdb?limit=0", None);
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("limit must be a positive number"))
    );
}

#[test]
fn annotations_are_capped_like_prometheus() {
    let mut a = Annotations::default();
    for i in 0..12 {
        a.warn(format!("w{i}"));
    }
    a.info("i".into());
    let r = success("1", &a);
    let body = futures_body(r);
    let v: Value = serde_json::from_str(&body).unwrap();
    let w = v["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 11);
    assert_eq!(w[10], "2 more warning annotations omitted");
    assert_eq!(v["infos"], serde_json::json!(["i"]));
    let v: Value =
        serde_json::from_str(&futures_body(success("[]", &Annotations::default()))).unwrap();
    assert_eq!(v, serde_json::json!({"status": "success", "data": []}));
}

fn futures_body(r: Response) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let b = rt
        .block_on(axum::body::to_bytes(r.into_body(), usize::MAX))
        .unwrap();
    String::from_utf8(b.to_vec()).unwrap()
}
