//! The Prometheus HTTP read API on the real binary: data pushed through
//! `/api/v1/import/prometheus`, then every `/api/v1/*` read endpoint with checked values,
//! Prometheus's error types and status codes for bad parameters, and POST form bodies.
//!
//! `api_shape_and_errors` needs only the storage; `query_results` needs the PromQL evaluator.

mod common;

use common::{http_raw, Hearth};
use serde_json::{json, Value};

/// First sample time (ms); samples every 15 s.
const T0: i64 = 1_700_000_000_000;
const STEP_MS: i64 = 15_000;
/// Samples per series.
const N: i64 = 11;

const CONFIG: &str = "# query API test\nglobal:\n  scrape_interval: 15s\nquery:\n  lookback_delta: 5m\n  timeout: 1m\n";

/// Starts hearth without scrape jobs (so nothing writes "now" and old samples stay in the
/// out-of-order window) and loads the test data.
fn start(tmp: &tempfile::TempDir) -> Hearth {
    let cfg = tmp.path().join("hearth.yml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let h = Hearth::start(
        &tmp.path().join("data"),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--query.max-samples",
            "1000000",
        ],
    );
    for i in 0..N {
        let t = T0 + i * STEP_MS;
        let body = format!(
            "# TYPE http_requests_total counter\n\
             http_requests_total{{job=\"api\",instance=\"a\"}} {a} {t}\n\
             http_requests_total{{job=\"api\",instance=\"b\"}} {b} {t}\n\
             http_requests_total{{job=\"db\",instance=\"c\",path=\"/x?y=<z>\"}} 1 {t}\n\
             temp_celsius{{room=\"kitchen\",a_b=\"1\"}} 21.5 {t}\n",
            a = i * 10,
            b = i * 20,
        );
        h.import(&body);
    }
    h
}

/// GET; returns status and parsed body.
fn get(h: &Hearth, path: &str) -> (u16, Value) {
    let (st, body) = h.get(path);
    (st, parse(&body))
}

/// POST with a form body.
fn post_form(h: &Hearth, path: &str, form: &str) -> (u16, Value) {
    let (st, _, body) = http_raw(
        &h.addr,
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .unwrap();
    (st, parse(&body))
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

/// Asserts an error response: status code, `errorType`, and a fragment of `error`.
#[track_caller]
fn assert_error(r: (u16, Value), code: u16, kind: &str, msg: &str) {
    let (st, v) = r;
    assert_eq!(st, code, "{v}");
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["errorType"], kind, "{v}");
    let e = v["error"].as_str().unwrap_or_default();
    assert!(e.contains(msg), "error {e:?} lacks {msg:?}");
}

fn secs(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn api_shape_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let h = start(&tmp);

    // --- series -------------------------------------------------------------------------
    let (st, v) = get(
        &h,
        &format!(
            "/api/v1/series?match[]={}",
            enc("http_requests_total{job=\"api\"}")
        ),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v,
        json!({"status": "success", "data": [
            {"__name__": "http_requests_total", "instance": "a", "job": "api"},
            {"__name__": "http_requests_total", "instance": "b", "job": "api"},
        ]})
    );
    // Several selectors: union, sorted, each series once; POST form body plus URL query.
    let (st, v) = post_form(
        &h,
        &format!("/api/v1/series?match[]={}", enc("temp_celsius")),
        &format!(
            "match[]={}&match[]={}",
            enc("{instance=~\"a|c\"}"),
            enc("http_requests_total{instance=\"a\"}")
        ),
    );
    assert_eq!(st, 200, "{v}");
    let names: Vec<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{}/{}", s["__name__"], s["instance"]))
        .collect();
    assert_eq!(
        names,
        [
            "\"http_requests_total\"/\"a\"",
            "\"http_requests_total\"/\"c\"",
            "\"temp_celsius\"/null"
        ]
    );
    let c = &v["data"][1];
    assert_eq!(c["path"], "/x?y=<z>", "label values round-trip escaping");
    // Time range: before the data there is nothing.
    let (_, v) = get(
        &h,
        &format!(
            "/api/v1/series?match[]=temp_celsius&start={}&end={}",
            secs(T0 - 100_000),
            secs(T0 - 50_000)
        ),
    );
    assert_eq!(v["data"], json!([]));
    // RFC 3339 times.
    let (_, v) = get(
        &h,
        "/api/v1/series?match[]=temp_celsius&start=2023-11-14T22:13:20Z&end=2023-11-14T22:13:20.000Z",
    );
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    let (_, v) = get(&h, "/api/v1/series?match[]=http_requests_total&limit=2");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["warnings"], json!(["results truncated due to limit"]));
    assert_error(
        get(&h, "/api/v1/series"),
        400,
        "bad_data",
        "no match[] parameter provided",
    );
    assert_error(
        get(
            &h,
            &format!("/api/v1/series?match[]={}", enc("{job=~\".*\"}")),
        ),
        400,
        "bad_data",
        "must contain at least one non-empty matcher",
    );
    assert_error(
        get(&h, &format!("/api/v1/series?match[]={}", enc("up{"))),
        400,
        "bad_data",
        "",
    );
    assert_error(
        get(&h, "/api/v1/series?match[]=up&start=yesterday"),
        400,
        "bad_data",
        "invalid parameter \"start\"",
    );
    assert_error(
        get(&h, "/api/v1/series?match[]=up&limit=-1"),
        400,
        "bad_data",
        "invalid parameter \"limit\": limit must be non-negative",
    );

    // --- labels and label values --------------------------------------------------------
    let (_, v) = get(&h, "/api/v1/labels");
    assert_eq!(
        v["data"],
        json!(["__name__", "a_b", "instance", "job", "path", "room"])
    );
    let (_, v) = post_form(&h, "/api/v1/labels", "match[]=temp_celsius");
    assert_eq!(v["data"], json!(["__name__", "a_b", "room"]));
    let (_, v) = get(&h, "/api/v1/labels?limit=1");
    assert_eq!(v["data"], json!(["__name__"]));
    assert_eq!(v["warnings"], json!(["results truncated due to limit"]));
    let (_, v) = get(&h, "/api/v1/label/__name__/values");
    assert_eq!(v["data"], json!(["http_requests_total", "temp_celsius"]));
    let (_, v) = get(
        &h,
        &format!(
            "/api/v1/label/instance/values?match[]={}",
            enc("{job=\"api\"}")
        ),
    );
    assert_eq!(v["data"], json!(["a", "b"]));
    // Prometheus 3 / Grafana escape names in the path: U__a__b is a_b.
    let (_, v) = get(&h, "/api/v1/label/U__a__b/values");
    assert_eq!(v["data"], json!(["1"]));
    let (_, v) = get(&h, "/api/v1/label/nonexistent/values");
    assert_eq!(v, json!({"status": "success", "data": []}));
    let (_, v) = get(
        &h,
        &format!("/api/v1/label/job/values?end={}", secs(T0 - 1)),
    );
    assert_eq!(v["data"], json!([]));

    // --- exemplars, format_query, parse_query --------------------------------------------
    let (st, v) = get(&h, "/api/v1/query_exemplars?query=http_requests_total");
    assert_eq!((st, v), (200, json!({"status": "success", "data": []})));
    assert_error(
        get(&h, "/api/v1/query_exemplars?query=x&start=10&end=5"),
        400,
        "bad_data",
        "end timestamp must not be before start timestamp",
    );
    let (_, v) = post_form(
        &h,
        "/api/v1/format_query",
        &format!("query={}", enc("sum  by(job)(rate(x{a=\"b\"}[5m]))")),
    );
    assert_eq!(v["data"], "sum by (job) (rate(x{a=\"b\"}[5m]))");
    assert_error(
        get(&h, "/api/v1/format_query?query=sum("),
        400,
        "bad_data",
        "invalid parameter \"query\"",
    );
    let (_, v) = get(
        &h,
        &format!("/api/v1/parse_query?query={}", enc("up{job=\"a\"} > 1")),
    );
    assert_eq!(
        v["data"],
        json!({
            "type": "binaryExpr", "op": ">", "bool": false, "matching": null,
            "lhs": {
                "type": "vectorSelector", "name": "up", "offset": 0,
                "matchers": [
                    {"name": "job", "type": "=", "value": "a"},
                    {"name": "__name__", "type": "=", "value": "up"}
                ],
                "timestamp": null, "startOrEnd": null
            },
            "rhs": {"type": "numberLiteral", "val": "1"}
        })
    );

    // --- status -------------------------------------------------------------------------
    let (_, v) = get(&h, "/api/v1/status/buildinfo");
    let b = &v["data"];
    assert_eq!(b["version"], env!("CARGO_PKG_VERSION"));
    for k in ["revision", "branch", "buildUser", "buildDate", "goVersion"] {
        assert!(b[k].is_string(), "{k}: {b}");
    }
    assert_eq!(b["features"], json!({}));
    let (_, v) = get(&h, "/api/v1/status/runtimeinfo");
    let r = &v["data"];
    assert_eq!(r["reloadConfigSuccess"], true);
    assert!(r["startTime"].as_str().unwrap().ends_with('Z'), "{r}");
    assert!(
        r["CWD"].is_string() && r["GOMAXPROCS"].as_u64().unwrap() >= 1,
        "{r}"
    );
    // Prometheus's duration formatting (model.Duration): 30d is "4w2d".
    assert_eq!(r["storageRetention"], "4w2d");
    let (_, v) = get(&h, "/api/v1/status/flags");
    assert_eq!(
        v["data"]["query.max-samples"], "1000000",
        "flag beats config"
    );
    assert_eq!(v["data"]["query.timeout"], "1m", "from the config");
    assert_eq!(v["data"]["query.lookback-delta"], "5m");
    assert_eq!(v["data"]["web.listen-address"], h.addr);
    let (_, v) = get(&h, "/api/v1/status/config");
    assert_eq!(v["data"]["yaml"], CONFIG);
    // A reload shows the new text.
    let cfg2 = format!("{CONFIG}# reloaded\n");
    std::fs::write(tmp.path().join("hearth.yml"), &cfg2).unwrap();
    assert_eq!(h.post("/-/reload", "").0, 200);
    let (_, v) = get(&h, "/api/v1/status/config");
    assert_eq!(v["data"]["yaml"], cfg2);
    std::fs::write(tmp.path().join("hearth.yml"), "bogus: 1\n").unwrap();
    assert_eq!(h.post("/-/reload", "").0, 500);
    let (_, v) = get(&h, "/api/v1/status/runtimeinfo");
    assert_eq!(v["data"]["reloadConfigSuccess"], false);
    let (_, v) = get(&h, "/api/v1/status/config");
    assert_eq!(
        v["data"]["yaml"], cfg2,
        "a failed reload keeps the old config"
    );

    let (st, v) = get(&h, "/api/v1/status/tsdb");
    assert_eq!(st, 200, "{v}");
    let d = &v["data"];
    assert_eq!(
        d["headStats"],
        json!({
            "numSeries": 4, "numLabelPairs": 10, "chunkCount": d["headStats"]["chunkCount"],
            "minTime": T0, "maxTime": T0 + (N - 1) * STEP_MS
        })
    );
    assert!(d["headStats"]["chunkCount"].as_u64().unwrap() >= 4);
    assert_eq!(
        d["seriesCountByMetricName"],
        json!([{"name": "http_requests_total", "value": 3}, {"name": "temp_celsius", "value": 1}])
    );
    assert_eq!(
        d["labelValueCountByLabelName"][0],
        json!({"name": "instance", "value": 3})
    );
    assert_eq!(
        d["seriesCountByLabelValuePair"][0],
        json!({"name": "__name__=http_requests_total", "value": 3})
    );
    assert!(d["memoryInBytesByLabelName"].is_array());
    let (_, v) = get(&h, "/api/v1/status/tsdb?limit=1");
    assert_eq!(
        v["data"]["seriesCountByMetricName"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_error(
        get(&h, "/api/v1/status/tsdb?limit=0"),
        400,
        "bad_data",
        "limit must be a positive number",
    );

    // --- query parameter errors (checked before evaluation) ------------------------------
    assert_error(
        get(&h, "/api/v1/query?query=up&time=noon"),
        400,
        "bad_data",
        "invalid parameter \"time\"",
    );
    assert_error(
        get(&h, "/api/v1/query?query=up&timeout=soon"),
        400,
        "bad_data",
        "invalid parameter \"timeout\"",
    );
    assert_error(
        get(&h, "/api/v1/query?query=up&limit=x"),
        400,
        "bad_data",
        "invalid parameter \"limit\"",
    );
    let range = |params: &str| get(&h, &format!("/api/v1/query_range?query=up&{params}"));
    assert_error(
        range("end=10&step=1"),
        400,
        "bad_data",
        "invalid parameter \"start\"",
    );
    assert_error(
        range("start=0&step=1"),
        400,
        "bad_data",
        "invalid parameter \"end\"",
    );
    assert_error(
        range("start=10&end=0&step=1"),
        400,
        "bad_data",
        "invalid parameter \"end\": end timestamp must not be before start time",
    );
    assert_error(
        range("start=0&end=10"),
        400,
        "bad_data",
        "invalid parameter \"step\"",
    );
    assert_error(
        range("start=0&end=10&step=0"),
        400,
        "bad_data",
        "zero or negative query resolution step widths are not accepted. Try a positive integer",
    );
    assert_error(
        range("start=0&end=10&step=-5s"),
        400,
        "bad_data",
        "invalid parameter \"step\"",
    );
    assert_error(
        range("start=0&end=10&step=-1"),
        400,
        "bad_data",
        "zero or negative query resolution step widths",
    );
    assert_error(
        range("start=0&end=11001&step=1"),
        400,
        "bad_data",
        "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
    );
}

/// Needs the PromQL evaluator.
#[test]
fn query_results() {
    let tmp = tempfile::tempdir().unwrap();
    let h = start(&tmp);
    let last = T0 + (N - 1) * STEP_MS;

    // Instant vector at the last sample.
    let (st, v) = get(
        &h,
        &format!(
            "/api/v1/query?query={}&time={}",
            enc("http_requests_total{job=\"api\"}"),
            secs(last)
        ),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v,
        json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"__name__": "http_requests_total", "instance": "a", "job": "api"},
             "value": [last / 1000, "100"]},
            {"metric": {"__name__": "http_requests_total", "instance": "b", "job": "api"},
             "value": [last / 1000, "200"]},
        ]}})
    );
    // The same as a POST form with an RFC 3339 time; aggregation drops the name.
    let (st, v) = post_form(
        &h,
        "/api/v1/query",
        &format!(
            "query={}&time=2023-11-14T22:15:50Z",
            enc("sum by (job) (http_requests_total)")
        ),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["data"]["result"],
        json!([
            {"metric": {"job": "api"}, "value": [1_700_000_150, "300"]},
            {"metric": {"job": "db"}, "value": [1_700_000_150, "1"]},
        ])
    );
    // Scalars, strings and Go float formatting.
    for (q, want) in [
        ("1 + 1", json!([1_700_000_000.5, "2"])),
        ("1/0", json!([1_700_000_000.5, "+Inf"])),
        ("-1/0", json!([1_700_000_000.5, "-Inf"])),
        ("0/0", json!([1_700_000_000.5, "NaN"])),
        ("0.0000001", json!([1_700_000_000.5, "1e-07"])),
        ("\"hello\"", json!([1_700_000_000.5, "hello"])),
    ] {
        let (st, v) = get(
            &h,
            &format!("/api/v1/query?query={}&time=1700000000.5", enc(q)),
        );
        assert_eq!(st, 200, "{q}: {v}");
        assert_eq!(v["data"]["result"], want, "{q}");
    }
    // Range query: step as a duration and as float seconds give the same points.
    for step in ["15s", "15", "15.0"] {
        let (st, v) = get(
            &h,
            &format!(
                "/api/v1/query_range?query={}&start={}&end={}&step={step}",
                enc("http_requests_total{instance=\"a\"}"),
                secs(T0),
                secs(T0 + 60_000)
            ),
        );
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["data"]["resultType"], "matrix");
        assert_eq!(
            v["data"]["result"],
            json!([{"metric": {"__name__": "http_requests_total", "instance": "a", "job": "api"},
            "values": [
                [1_700_000_000, "0"], [1_700_000_015, "10"], [1_700_000_030, "20"],
                [1_700_000_045, "30"], [1_700_000_060, "40"]
            ]}]),
            "step={step}"
        );
    }
    let (st, v) = post_form(
        &h,
        "/api/v1/query_range",
        &format!(
            "query={}&start={}&end={}&step=30s&stats=1",
            enc("rate(http_requests_total{instance=\"b\"}[1m])"),
            secs(T0 + 60_000),
            secs(T0 + 120_000)
        ),
    );
    assert_eq!(st, 200, "{v}");
    let pts = v["data"]["result"][0]["values"].as_array().unwrap();
    assert_eq!(pts.len(), 3, "{v}");
    for p in pts {
        let r: f64 = p[1].as_str().unwrap().parse().unwrap();
        assert!((r - 20.0 / 15.0).abs() < 1e-9, "rate {r}");
    }
    assert!(v["data"]["result"][0]["metric"].get("__name__").is_none());
    assert!(
        v["data"]["stats"]["timings"]["execTotalTime"].is_number(),
        "{v}"
    );
    assert!(
        v["data"]["stats"]["samples"]["totalQueryableSamples"]
            .as_u64()
            .unwrap()
            > 0,
        "{v}"
    );
    // limit cuts the result and warns.
    let (_, v) = get(
        &h,
        &format!(
            "/api/v1/query?query=http_requests_total&time={}&limit=1",
            secs(last)
        ),
    );
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["warnings"], json!(["results truncated due to limit"]));
    // Per-query lookback_delta: 10 minutes after the last sample only a longer lookback
    // still sees it (the configured one is 5m).
    let late = format!(
        "/api/v1/query?query=temp_celsius&time={}",
        secs(last + 600_000)
    );
    let (_, v) = get(&h, &late);
    assert_eq!(v["data"]["result"], json!([]), "{v}");
    let (_, v) = get(&h, &format!("{late}&lookback_delta=15m"));
    assert_eq!(v["data"]["result"][0]["value"][1], "21.5", "{v}");
    // A timeout that has passed before evaluation starts.
    assert_error(
        get(
            &h,
            &format!(
                "/api/v1/query?query=http_requests_total&time={}&timeout=0.000000001",
                secs(last)
            ),
        ),
        503,
        "timeout",
        "query timed out",
    );
    // Errors from the engine.
    assert_error(
        get(&h, &format!("/api/v1/query?query={}", enc("sum("))),
        400,
        "bad_data",
        "invalid parameter \"query\"",
    );
    assert_error(
        get(
            &h,
            &format!(
                "/api/v1/query_range?query={}&start=0&end=10&step=1",
                enc("rate(")
            ),
        ),
        400,
        "bad_data",
        "",
    );
    assert_error(
        get(
            &h,
            &format!(
                "/api/v1/query?time={}&query={}",
                secs(last),
                enc("http_requests_total + on() group_left http_requests_total")
            ),
        ),
        422,
        "execution",
        "",
    );
}
