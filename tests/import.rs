//! `POST /api/v1/import/prometheus` on the real binary: the text format pushed by a script,
//! with `timestamp` and `extra_label`, gzip, OpenMetrics by content type, and clear 400s.

mod common;

use std::io::Write as _;

use common::{http_raw, Hearth};
use serde_json::Value;

fn export(h: &Hearth, m: &str) -> Vec<Value> {
    let (st, body) = h.get(&format!("/api/v1/tsdb/test/export?match={m}"));
    assert_eq!(st, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["data"]
        .as_array()
        .unwrap()
        .clone()
}

fn post(h: &Hearth, query: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let (st, _, b) = http_raw(
        &h.addr,
        "POST",
        &format!("/api/v1/import/prometheus{query}"),
        headers,
        body,
    )
    .unwrap();
    (st, b)
}

#[test]
fn push_text_with_params_gzip_and_openmetrics() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Hearth::start(&tmp.path().join("data"), &[]);
    let body = "# HELP backup_last_success_timestamp_seconds Last good backup.\n# TYPE backup_last_success_timestamp_seconds gauge\nbackup_last_success_timestamp_seconds{target=\"nas\"} 1.7e9\nbackup_bytes{target=\"nas\",job=\"ignored\"} 123456 1700000001000\n";
    let (st, resp) = post(
        &h,
        "?timestamp=1700000000&extra_label=job=backup&extra_label=site=home",
        &[],
        body.as_bytes(),
    );
    assert_eq!(st, 204, "{resp}");
    let s = export(&h, "__name__=backup_last_success_timestamp_seconds");
    assert_eq!(s[0]["labels"]["job"], "backup");
    assert_eq!(s[0]["labels"]["site"], "home");
    assert_eq!(s[0]["samples"][0][0], 1_700_000_000_000i64);
    let b = export(&h, "__name__=backup_bytes");
    assert_eq!(
        b[0]["labels"]["job"], "backup",
        "extra_label replaces the pushed label"
    );
    assert_eq!(b[0]["samples"][0][0], 1_700_000_001_000i64);
    let (_, meta) = h.get("/api/v1/metadata?metric=backup_last_success_timestamp_seconds");
    let v: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(
        v["data"]["backup_last_success_timestamp_seconds"][0]["type"],
        "gauge"
    );

    // gzip-compressed, without a timestamp: stamped "now".
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"cron_runs_total 3\n").unwrap();
    let (st, resp) = post(
        &h,
        "",
        &[("Content-Encoding", "gzip")],
        &gz.finish().unwrap(),
    );
    assert_eq!(st, 204, "{resp}");
    let c = export(&h, "__name__=cron_runs_total");
    let t = c[0]["samples"][0][0].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!((now - t).abs() < 60_000, "{t} vs {now}");

    // OpenMetrics by content type (float-second timestamps, # EOF).
    let om = "# TYPE job_info info\njob_info_info{version=\"1\"} 1 1700000002.5\n# EOF\n";
    let (st, resp) = post(
        &h,
        "",
        &[(
            "Content-Type",
            "application/openmetrics-text; version=1.0.0",
        )],
        om.as_bytes(),
    );
    assert_eq!(st, 204, "{resp}");
    assert_eq!(
        export(&h, "__name__=job_info_info")[0]["samples"][0][0],
        1_700_000_002_500i64
    );

    // A malformed body is refused whole, naming the line; nothing from it is stored.
    let (st, resp) = post(&h, "", &[], b"good_one 1\nbad{label 2\n");
    assert_eq!(st, 400);
    assert!(resp.contains("line 2"), "{resp}");
    assert!(export(&h, "__name__=good_one").is_empty());
    let (st, resp) = post(&h, "?extra_label=oops", &[], b"x 1\n");
    assert_eq!(st, 400, "{resp}");
    let (st, resp) = post(&h, "?timestamp=tomorrow", &[], b"x 1\n");
    assert_eq!(st, 400, "{resp}");
}
