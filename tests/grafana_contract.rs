//! Grafana's Prometheus data source, reproduced request by request against the real binary:
//! the requests are the ones Grafana's backend (`pkg/promlib`) and its query editor
//! (`packages/grafana-prometheus`) send, with the same methods, form bodies and headers, and
//! each response is checked for the shape Grafana's parsers require.
//!
//! - "Save & test" (`promlib/healthcheck.go`): an instant query `1+1` at time 4 (the health
//!   check's time range is 1 s..4 s), POSTed as a form like every query when the data source's
//!   HTTP method is POST (the default); then `GET /api/v1/status/buildinfo`, unmarshalled into
//!   a struct of strings with `features: map[string]string` — an empty or absent `features`
//!   makes Grafana treat the server as Prometheus (anything in it means Mimir with a ruler).
//! - The query editor's metric and label browser (`resource_clients.ts`,
//!   `language_provider.ts`): `GET /api/v1/label/__name__/values` and
//!   `/api/v1/label/<name>/values` with `start`, `end`, `limit=40000` (label values, metadata
//!   and buildinfo are always GETs, `promlib/client.go`); `/api/v1/labels` and `/api/v1/series`
//!   with `match[]`, `start`, `end`, `limit` as POST forms (Grafana falls back to GET only
//!   after a 400 or 405, which must not be needed); `GET /api/v1/metadata`.
//! - Panels (`promlib/client/client.go`): `query_range` POSTed with `start`/`end` aligned to
//!   the step, `step` as `strconv.FormatFloat(seconds, 'f', -1, 64)` (so `15`, `7.5`) and an
//!   optional `timeout`; instant queries with `time`; responses read by
//!   `promlib/converter/prom.go`: `status`, `data.resultType`, `data.result[].metric` (string
//!   map), `value`/`values` as `[number, "string"]`, optional `warnings`/`infos` string arrays,
//!   and on failure `errorType` + `error`.
//!
//! Grafana's Go HTTP client asks for gzip (`Accept-Encoding: gzip`) and decodes it; so do these
//! requests.

mod common;

use std::io::Read as _;

use common::{http_bytes, urlencode, Hearth};
use serde_json::Value;

/// First sample (Unix seconds, a multiple of 15 so Grafana-aligned ranges hit samples).
const T: i64 = 1_700_000_100;

const UA: &str = "Grafana/11.5.0";
const FORM: &str = "application/x-www-form-urlencoded";

/// Two counters (`a` +10, `b` +5 per 15 s), a gauge, with HELP/TYPE, for 10 minutes.
fn load(h: &Hearth) {
    for i in 0..=40i64 {
        let ms = (T + 15 * i) * 1000;
        let body = format!(
            "# HELP shop_orders_total Orders placed.\n\
             # TYPE shop_orders_total counter\n\
             shop_orders_total{{job=\"shop\",instance=\"a\",region=\"eu\"}} {} {ms}\n\
             shop_orders_total{{job=\"shop\",instance=\"b\",region=\"us\"}} {} {ms}\n\
             # HELP shop_queue_depth Orders waiting.\n\
             # TYPE shop_queue_depth gauge\n\
             shop_queue_depth{{job=\"shop\",instance=\"a\"}} {} {ms}\n",
            10 * i,
            5 * i,
            i % 7,
        );
        h.import(&body);
    }
}

/// Sends a request as Grafana's backend does and returns status and parsed JSON body.
fn grafana(h: &Hearth, method: &str, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let body: Vec<String> = form
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect();
    let body = body.join("&");
    let mut headers = vec![("User-Agent", UA), ("Accept-Encoding", "gzip")];
    let path = if method == "POST" {
        headers.push(("Content-Type", FORM));
        path.to_string()
    } else if body.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{body}")
    };
    let send = if method == "POST" {
        body.as_bytes()
    } else {
        b""
    };
    let (st, hdrs, raw) = http_bytes(&h.addr, method, &path, &headers, send).unwrap();
    let gz = hdrs
        .iter()
        .any(|(k, v)| k == "content-encoding" && v.contains("gzip"));
    let text = if gz {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut s)
            .expect("gzip body");
        s
    } else {
        String::from_utf8(raw).expect("UTF-8 body")
    };
    let ct = hdrs
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "{method} {path}: content-type {ct:?}, body {text}"
    );
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"));
    (st, v)
}

/// Grafana's `readTimeValuePair`: a two-element array, a JSON number, then a string that Go's
/// `strconv.ParseFloat` accepts.
fn time_value(p: &Value) -> (f64, f64) {
    let a = p.as_array().unwrap_or_else(|| panic!("pair {p}"));
    assert_eq!(a.len(), 2, "{p}");
    let t = a[0]
        .as_f64()
        .unwrap_or_else(|| panic!("time not a number: {p}"));
    let s = a[1]
        .as_str()
        .unwrap_or_else(|| panic!("value not a string: {p}"));
    let v = match s {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().unwrap_or_else(|_| panic!("bad value {s:?}")),
    };
    (t, v)
}

/// `data.result[].metric` must be an object of strings (Grafana's `data.Labels`).
fn metric_labels(m: &Value) -> Vec<(String, String)> {
    m.as_object()
        .unwrap_or_else(|| panic!("metric not an object: {m}"))
        .iter()
        .map(|(k, v)| {
            let v = v
                .as_str()
                .unwrap_or_else(|| panic!("label {k} not a string"));
            (k.clone(), v.to_string())
        })
        .collect()
}

/// Top-level shape every successful API answer shares.
fn success(what: &str, st: u16, v: &Value) {
    assert_eq!(st, 200, "{what}: {v}");
    assert_eq!(v["status"], "success", "{what}: {v}");
    for k in ["warnings", "infos"] {
        if let Some(w) = v.get(k) {
            assert!(
                w.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
                "{what}: {k} must be an array of strings: {v}"
            );
        }
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("not a string: {s}")))
        .collect()
}

#[test]
fn save_and_test() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Hearth::start(&tmp.path().join("data"), &["--config", "/dev/null"]);

    let (st, v) = grafana(
        &h,
        "POST",
        "/api/v1/query",
        &[("query", "1+1"), ("time", "4")],
    );
    success("health check", st, &v);
    assert_eq!(v["data"]["resultType"], "scalar", "{v}");
    assert_eq!(time_value(&v["data"]["result"]), (4.0, 2.0), "{v}");

    let (st, v) = grafana(&h, "GET", "/api/v1/status/buildinfo", &[]);
    success("buildinfo", st, &v);
    let d = &v["data"];
    for k in [
        "version",
        "revision",
        "branch",
        "buildUser",
        "buildDate",
        "goVersion",
    ] {
        if let Some(x) = d.get(k) {
            assert!(x.is_string(), "buildinfo {k} must be a string: {v}");
        }
    }
    let version = d["version"].as_str().expect("version");
    let semver: Vec<&str> = version.split(['.', '-', '+']).take(3).collect();
    assert!(
        semver.len() == 3 && semver.iter().all(|p| p.parse::<u64>().is_ok()),
        "version {version:?} is not semver"
    );
    match d.get("features") {
        None | Some(Value::Null) => {}
        Some(f) => assert!(
            f.as_object().is_some_and(|o| o.is_empty()),
            "features must be absent or {{}} (else Grafana assumes Mimir): {v}"
        ),
    }

    // A failing health check reports Prometheus's error fields.
    let (st, v) = grafana(
        &h,
        "POST",
        "/api/v1/query",
        &[("query", "1+"), ("time", "4")],
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["errorType"], "bad_data", "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
}

#[test]
fn query_editor_and_panels() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Hearth::start(&tmp.path().join("data"), &["--config", "/dev/null"]);
    load(&h);
    let (start, end) = ((T - 300).to_string(), (T + 900).to_string());
    let range = [
        ("start", start.as_str()),
        ("end", end.as_str()),
        ("limit", "40000"),
    ];

    // Metric names for the metric select.
    let (st, v) = grafana(&h, "GET", "/api/v1/label/__name__/values", &range);
    success("metric names", st, &v);
    assert_eq!(
        strings(&v["data"]),
        ["shop_orders_total", "shop_queue_depth"],
        "{v}"
    );
    // Values of one label, narrowed by a selector.
    let mut form = range.to_vec();
    form.push(("match[]", "shop_orders_total"));
    let (st, v) = grafana(&h, "GET", "/api/v1/label/region/values", &form);
    success("label values", st, &v);
    assert_eq!(strings(&v["data"]), ["eu", "us"], "{v}");

    // Label names for a metric (POST form).
    let (st, v) = grafana(&h, "POST", "/api/v1/labels", &form);
    success("labels", st, &v);
    assert_eq!(
        strings(&v["data"]),
        ["__name__", "instance", "job", "region"],
        "{v}"
    );
    // Series for the label browser (POST form), all metrics.
    let mut all = range.to_vec();
    all.push(("match[]", "{__name__!=\"\"}"));
    let (st, v) = grafana(&h, "POST", "/api/v1/series", &all);
    success("series", st, &v);
    let series = v["data"].as_array().expect("series array");
    assert_eq!(series.len(), 3, "{v}");
    let mut names: Vec<String> = series
        .iter()
        .map(|s| {
            let l = metric_labels(s);
            l.iter().find(|(k, _)| k == "__name__").unwrap().1.clone()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["shop_orders_total", "shop_orders_total", "shop_queue_depth"]
    );
    // A time range before the data has no series and no names.
    let (early_s, early_e) = ((T - 7200).to_string(), (T - 3600).to_string());
    let early = [
        ("start", early_s.as_str()),
        ("end", early_e.as_str()),
        ("limit", "40000"),
        ("match[]", "{__name__!=\"\"}"),
    ];
    let (st, v) = grafana(&h, "POST", "/api/v1/series", &early);
    success("series before data", st, &v);
    assert_eq!(v["data"], serde_json::json!([]), "{v}");

    // Metadata for the metric select's help texts.
    let (st, v) = grafana(&h, "GET", "/api/v1/metadata", &[]);
    success("metadata", st, &v);
    let m = &v["data"]["shop_orders_total"][0];
    assert_eq!(m["type"], "counter", "{v}");
    assert_eq!(m["help"], "Orders placed.", "{v}");
    assert!(m["unit"].is_string(), "{v}");
    assert_eq!(v["data"]["shop_queue_depth"][0]["type"], "gauge", "{v}");

    // A time-series panel: range query, step 15 s, start/end on step multiples.
    let (s, e) = ((T + 300).to_string(), (T + 600).to_string());
    let (st, v) = grafana(
        &h,
        "POST",
        "/api/v1/query_range",
        &[
            ("query", "sum by (region) (rate(shop_orders_total[1m]))"),
            ("start", &s),
            ("end", &e),
            ("step", "15"),
            ("timeout", "60s"),
        ],
    );
    success("query_range", st, &v);
    assert_eq!(v["data"]["resultType"], "matrix", "{v}");
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2, "{v}");
    for r in result {
        let labels = metric_labels(&r["metric"]);
        assert_eq!(labels.len(), 1, "{r}");
        let want = if labels[0].1 == "eu" {
            10.0 / 15.0
        } else {
            5.0 / 15.0
        };
        let values = r["values"].as_array().unwrap();
        assert_eq!(values.len(), 21, "{r}");
        for (i, p) in values.iter().enumerate() {
            let (t, x) = time_value(p);
            assert_eq!(t, (T + 300 + 15 * i as i64) as f64, "{r}");
            assert!((x - want).abs() < 1e-9, "{r}");
        }
    }
    // A fractional step, as FormatFloat writes it, and fractional start/end.
    let (s, e) = (format!("{}.5", T + 300), format!("{}.5", T + 330));
    let (st, v) = grafana(
        &h,
        "POST",
        "/api/v1/query_range",
        &[
            ("query", "shop_queue_depth"),
            ("start", &s),
            ("end", &e),
            ("step", "7.5"),
        ],
    );
    success("query_range fractional step", st, &v);
    let values = v["data"]["result"][0]["values"].as_array().unwrap();
    let times: Vec<f64> = values.iter().map(|p| time_value(p).0).collect();
    let t0 = (T + 300) as f64 + 0.5;
    assert_eq!(
        times,
        [t0, t0 + 7.5, t0 + 15.0, t0 + 22.5, t0 + 30.0],
        "{v}"
    );

    // A stat or table panel: instant query.
    let t = (T + 600).to_string();
    let (st, v) = grafana(
        &h,
        "POST",
        "/api/v1/query",
        &[("query", "shop_orders_total"), ("time", &t)],
    );
    success("instant query", st, &v);
    assert_eq!(v["data"]["resultType"], "vector", "{v}");
    type Sample = (Vec<(String, String)>, (f64, f64));
    let mut got: Vec<Sample> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (metric_labels(&r["metric"]), time_value(&r["value"])))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let tt = (T + 600) as f64;
    assert_eq!(got[0].1, (tt, 400.0), "{v}");
    assert_eq!(got[1].1, (tt, 200.0), "{v}");
    // Grafana's GET mode sends the same parameters in the URL.
    let (st, v) = grafana(
        &h,
        "GET",
        "/api/v1/query",
        &[("query", "shop_queue_depth / 0"), ("time", &t)],
    );
    success("instant query via GET", st, &v);
    let (_, x) = time_value(&v["data"]["result"][0]["value"]);
    assert!(x.is_infinite() || x.is_nan(), "{v}");

    // An execution error is reported with Prometheus's error fields and status.
    let (st, v) = grafana(
        &h,
        "POST",
        "/api/v1/query",
        &[
            ("query", "shop_orders_total + on(job) shop_orders_total"),
            ("time", &t),
        ],
    );
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["errorType"], "execution", "{v}");
}
