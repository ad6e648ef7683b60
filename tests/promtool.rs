//! The real `promtool` (Debian's, Prometheus 2.42) as a client of hearth's read API:
//! `promtool query instant|range|series|labels` against the real binary holding known data,
//! checking what promtool prints (values, labels, timestamps), in its PromQL text format and
//! with `-o json`. promtool sends instant and range queries as POST forms and series and label
//! values as GETs, the way client_golang's API client does.
//!
//! Needs `promtool` on PATH; `./scripts/test.sh` installs it (package `prometheus`). A missing
//! binary fails the test (it never skips).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::{require, Hearth};
use serde_json::Value;

/// First sample (Unix seconds); samples every 15 s for 10 minutes.
const T: i64 = 1_700_000_000;

/// Pushes the known data: two counters growing linearly (`a` by 10, `b` by 5 per 15 s), a
/// gauge per room, with HELP/TYPE.
fn load(h: &Hearth) {
    for i in 0..=40i64 {
        let ms = (T + 15 * i) * 1000;
        let body = format!(
            "# HELP demo_requests_total Requests handled.\n\
             # TYPE demo_requests_total counter\n\
             demo_requests_total{{job=\"demo\",instance=\"a\",code=\"200\"}} {} {ms}\n\
             demo_requests_total{{job=\"demo\",instance=\"b\",code=\"500\"}} {} {ms}\n\
             # HELP demo_temperature_celsius Room temperature.\n\
             # TYPE demo_temperature_celsius gauge\n\
             demo_temperature_celsius{{job=\"demo\",instance=\"a\",room=\"lab\"}} 21.5 {ms}\n\
             demo_temperature_celsius{{job=\"demo\",instance=\"b\",room=\"hall\"}} -3.25 {ms}\n",
            10 * i,
            5.0 * i as f64 + 0.5,
        );
        h.import(&body);
    }
}

/// Runs promtool; returns stdout, or panics with stderr when it fails.
fn promtool(bin: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .output()
        .expect("running promtool");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "promtool {args:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    stdout
}

type Labels = BTreeMap<String, String>;

/// Parses promtool's `name{k="v", k2="v2"}` (or `{...}`) form.
fn parse_metric(s: &str) -> Labels {
    let s = s.trim();
    let (name, rest) = s.split_at(s.find('{').unwrap_or(s.len()));
    let mut out = Labels::new();
    if !name.is_empty() {
        out.insert("__name__".into(), name.into());
    }
    let inner = rest.trim_start_matches('{').trim_end_matches('}');
    for pair in inner.split(", ").filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .unwrap_or_else(|| panic!("bad pair {pair:?}"));
        out.insert(k.into(), v.trim_matches('"').into());
    }
    out
}

/// Parses `<value> @[<timestamp>]`.
fn parse_point(s: &str) -> (f64, f64) {
    let (v, t) = s
        .split_once(" @[")
        .unwrap_or_else(|| panic!("bad point {s:?}"));
    let v = match v.trim() {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        x => x.parse().unwrap(),
    };
    (v, t.trim_end_matches(']').parse().unwrap())
}

/// Parses an instant vector printed as `metric => value @[ts]` lines.
fn parse_vector(out: &str) -> BTreeMap<Labels, (f64, f64)> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (m, p) = l
                .split_once(" => ")
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            (parse_metric(m), parse_point(p))
        })
        .collect()
}

/// Parses a matrix printed as `metric =>` followed by `value @[ts]` lines.
fn parse_matrix(out: &str) -> BTreeMap<Labels, Vec<(f64, f64)>> {
    let mut res = BTreeMap::new();
    let mut cur: Option<Labels> = None;
    for l in out.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(m) = l.strip_suffix(" =>") {
            let m = parse_metric(m);
            res.insert(m.clone(), Vec::new());
            cur = Some(m);
        } else {
            let m = cur
                .as_ref()
                .unwrap_or_else(|| panic!("point before metric: {l:?}"));
            res.get_mut(m).unwrap().push(parse_point(l));
        }
    }
    res
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn promtool_queries_read_hearth() {
    let bin = require("promtool");
    let tmp = tempfile::tempdir().unwrap();
    let h = Hearth::start(&tmp.path().join("data"), &["--config", "/dev/null"]);
    load(&h);
    let url = format!("http://{}", h.addr);
    let at = |s: i64| (T + s).to_string();

    // Instant vector selector: both counters, values at i = 20, evaluation time as timestamp.
    let t300 = format!("--time={}", at(300));
    let out = promtool(
        &bin,
        &["query", "instant", &t300, &url, "demo_requests_total"],
    );
    let v = parse_vector(&out);
    let a = labels(&[
        ("__name__", "demo_requests_total"),
        ("code", "200"),
        ("instance", "a"),
        ("job", "demo"),
    ]);
    let b = labels(&[
        ("__name__", "demo_requests_total"),
        ("code", "500"),
        ("instance", "b"),
        ("job", "demo"),
    ]);
    assert_eq!(v.len(), 2, "{out}");
    assert_eq!(v[&a], (200.0, (T + 300) as f64), "{out}");
    assert_eq!(v[&b], (100.5, (T + 300) as f64), "{out}");

    // Label matchers and an aggregation over rate(): a grows 10/15 s, b 5/15 s.
    let out = promtool(
        &bin,
        &[
            "query",
            "instant",
            &t300,
            &url,
            r#"sum by (job) (rate(demo_requests_total{instance=~"a|b"}[1m]))"#,
        ],
    );
    let v = parse_vector(&out);
    let (val, ts) = v[&labels(&[("job", "demo")])];
    assert!(close(val, 1.0) && ts == (T + 300) as f64, "{out}");
    let out = promtool(
        &bin,
        &[
            "query",
            "instant",
            &t300,
            &url,
            r#"demo_temperature_celsius{room!="lab"} * 2"#,
        ],
    );
    let v = parse_vector(&out);
    let hall = labels(&[("instance", "b"), ("job", "demo"), ("room", "hall")]);
    assert_eq!(v.len(), 1, "{out}");
    assert_eq!(v[&hall].0, -6.5, "{out}");

    // A scalar, as Grafana's "Save & test" asks for it.
    let out = promtool(&bin, &["query", "instant", "--time=4", &url, "1+1"]);
    assert_eq!(out.trim(), "scalar: 2 @[4]");
    let out = promtool(&bin, &["query", "instant", &t300, &url, "vector(0) / 0"]);
    assert!(parse_vector(&out)[&Labels::new()].0.is_nan(), "{out}");

    // A range vector in an instant query: raw samples of the last 30 s.
    let out = promtool(
        &bin,
        &[
            "query",
            "instant",
            &t300,
            &url,
            r#"demo_requests_total{instance="a"}[30s]"#,
        ],
    );
    let m = parse_matrix(&out);
    let pts = &m[&a];
    assert!(
        pts.contains(&(200.0, (T + 300) as f64)) && pts.contains(&(190.0, (T + 285) as f64)),
        "{out}"
    );

    // Range query: start, end, step; every step has a point.
    let out = promtool(
        &bin,
        &[
            "query",
            "range",
            &format!("--start={}", at(60)),
            &format!("--end={}", at(120)),
            "--step=30s",
            &url,
            "demo_temperature_celsius",
        ],
    );
    let m = parse_matrix(&out);
    let lab = labels(&[
        ("__name__", "demo_temperature_celsius"),
        ("instance", "a"),
        ("job", "demo"),
        ("room", "lab"),
    ]);
    let want: Vec<(f64, f64)> = [60, 90, 120]
        .iter()
        .map(|s| (21.5, (T + s) as f64))
        .collect();
    assert_eq!(m.len(), 2, "{out}");
    assert_eq!(m[&lab], want, "{out}");
    let mut hall_named = hall.clone();
    hall_named.insert("__name__".into(), "demo_temperature_celsius".into());
    let hall_values: Vec<f64> = m[&hall_named].iter().map(|p| p.0).collect();
    assert_eq!(hall_values, [-3.25; 3], "{out}");

    // The same range query as JSON.
    let out = promtool(
        &bin,
        &[
            "query",
            "range",
            "-o",
            "json",
            &format!("--start={}", at(60)),
            &format!("--end={}", at(120)),
            "--step=30s",
            &url,
            "increase(demo_requests_total[1m])",
        ],
    );
    let j: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let series = j.as_array().unwrap_or_else(|| panic!("{out}"));
    assert_eq!(series.len(), 2, "{out}");
    for s in series {
        let inc = if s["metric"]["instance"] == "a" {
            40.0
        } else {
            20.0
        };
        assert!(s["metric"].get("__name__").is_none(), "{out}");
        let vals = s["values"].as_array().unwrap();
        assert_eq!(vals.len(), 3, "{out}");
        for p in vals {
            let v: f64 = p[1].as_str().unwrap().parse().unwrap();
            assert!(close(v, inc), "{out}");
        }
    }
    // Instant query as JSON keeps label values and the timestamp.
    let out = promtool(
        &bin,
        &[
            "query",
            "instant",
            "-o",
            "json",
            &t300,
            &url,
            "demo_temperature_celsius",
        ],
    );
    let j: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let rooms: BTreeSet<&str> = j
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["room"].as_str().unwrap())
        .collect();
    assert_eq!(rooms, BTreeSet::from(["hall", "lab"]), "{out}");
    assert_eq!(j[0]["value"][0].as_f64(), Some((T + 300) as f64), "{out}");

    // Series: two matchers, union of the label sets.
    let (start, end) = (format!("--start={}", at(0)), format!("--end={}", at(600)));
    let out = promtool(
        &bin,
        &[
            "query",
            "series",
            "--match=demo_requests_total{code=\"500\"}",
            "--match={__name__=\"demo_temperature_celsius\",room=\"lab\"}",
            &start,
            &end,
            &url,
        ],
    );
    let got: BTreeSet<Labels> = out
        .lines()
        .filter(|l| !l.is_empty())
        .map(parse_metric)
        .collect();
    assert_eq!(got, BTreeSet::from([b.clone(), lab.clone()]), "{out}");

    // Label values: for a label, and the metric names.
    let out = promtool(&bin, &["query", "labels", &start, &end, &url, "instance"]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["a", "b"], "{out}");
    let out = promtool(&bin, &["query", "labels", &start, &end, &url, "__name__"]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["demo_requests_total", "demo_temperature_celsius"],
        "{out}"
    );
    // Outside the data's time range there are no values.
    let out = promtool(
        &bin,
        &[
            "query",
            "labels",
            &format!("--start={}", T - 7200),
            &format!("--end={}", T - 3600),
            &url,
            "room",
        ],
    );
    assert_eq!(out.trim(), "", "{out}");

    // A bad query fails promtool with the API's error type and message.
    let out = Command::new(&bin)
        .args(["query", "instant", &url, "sum(demo_requests_total"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("bad_data"), "{stderr}");
}
