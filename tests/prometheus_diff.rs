//! Differential PromQL test: the same deterministic data goes into Debian's Prometheus 2.42 and
//! into the real hearth binary (both through `POST /api/v1/write`), then a few hundred
//! generated instant and range queries run on both over HTTP and the results must agree:
//! same result type, same series label sets, same timestamps, values within a relative 1e-6
//! (or 1e-9 absolute, for sums that cancel to ~0 with different summation orders; NaN equals
//! NaN). Warnings and infos may differ; an error must be an error on both sides with the same
//! `errorType`.
//!
//! hearth implements Prometheus 3 semantics, the peer is Prometheus 2, so the data and the query
//! times are chosen so that the documented 2 → 3 changes cannot show:
//! - Range selectors and the lookback window are closed `[t-r, t]` in 2 and left-open
//!   `(t-r, t]` in 3. Every sample timestamp has a non-zero millisecond part, while every
//!   query time, range, offset, `@` time and subquery step is a whole number of seconds, so no
//!   sample ever sits on a window boundary.
//! - Subquery steps are aligned to absolute multiples of the step; with closed windows 2 gets
//!   one more inner step when `t - range` is itself a multiple of the step. All evaluation
//!   times are 17 s past a multiple of 30 s, and all subquery steps divide 30 s or are
//!   multiples of 60 s (and never divide 17 s), so `t - range` is never on an inner step.
//! - The "do not extrapolate a counter below zero" rule of rate/increase moved after the
//!   extrapolation-threshold check (Prometheus 2.x → 3): when the first sample of a window is
//!   more than 1.1 average intervals after the window start (jitter or a gap does that) and the
//!   counter would reach zero between 0.5 and 1.1 intervals before it, 2 extrapolates to that
//!   zero point and 3 by half an interval. Seen as e.g. `increase(x[5m])` 6.48 (2.42) vs 6.16
//!   (hearth) for a counter that had restarted at 0.38. COUNTER_RESTART: counters start far
//!   above zero and restart (reset) at 8 to 10 increments' worth, which puts the zero point
//!   more than 1.1 intervals back even at a 1-minute subquery resolution (4 samples per
//!   interval), where both versions agree. Gauges are not fed to rate(), except
//!   `memory_usage_bytes` whose values stay far above their changes.
//! - topk/bottomk between equal values (also NaN against NaN) keep an unspecified one of them
//!   (Prometheus: whichever its input order offers first): they are not generated over `ratio`,
//!   whose NaN, ±Inf and -0 values tie.
//! - `atan2` keeps the metric name in 2.42 and drops it in 3 like the other arithmetic
//!   operators: atan2 results are compared after `sum without ()`, which drops the name.
//! - Nested subqueries: the inner one is evaluated at the outer one's steps, which are
//!   multiples of its step, so an inner range that is a multiple of the inner step would start
//!   on an inner step; inner ranges are chosen off-step (`[150s:1m]` inside `[10m:2m]`).
//! - `holt_winters` became `double_exponential_smoothing` (behind a feature flag) in 3: not
//!   generated. Functions newer than 2.42 (`sort_by_label`, `limitk`, `mad_over_time`, `info`,
//!   ...) are not generated either.
//!
//! Needs `prometheus` on PATH; `./scripts/test.sh` installs it. A missing binary fails the
//! test (it never skips).

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http, http_raw, require, urlencode, Hearth, Proc};
use hearth_ingest::remote_write::proto;
use prost::Message;
use serde_json::Value;

/// Start of the data: an hour boundary (so minute/hour functions see round numbers).
const T0: i64 = 1_699_999_200_000;
const SEC: i64 = 1000;
const MIN: i64 = 60 * SEC;
/// Samples are written for `[T0, T0 + SPAN)`.
const SPAN: i64 = 60 * MIN;
const STEP: i64 = 15 * SEC;
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Deterministic generator (SplitMix64), so every run loads the same data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn f(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

struct Series {
    labels: Vec<(String, String)>,
    samples: Vec<(i64, f64)>,
}

fn labels(name: &str, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut l: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.push(("__name__".into(), name.into()));
    l.sort();
    l
}

/// A timestamp `STEP * i` after `base` plus 1..5 s of jitter with a non-zero millisecond part.
fn jittered(rng: &mut Rng, base: i64) -> i64 {
    let mut j = 1 + rng.below(4999) as i64;
    if j % 1000 == 0 {
        j += 7;
    }
    base + j
}

/// The data set: 6 targets (job api/web × instance i0..i2) with counters, gauges, a classic
/// histogram, an info metric; one target has a 10-minute gap, one disappears at 40 min with
/// stale markers, one job starts half-way; a gauge has NaN and ±Inf values.
fn dataset() -> Vec<Series> {
    let mut rng = Rng(0x6865_6172_7468);
    let mut out = Vec::new();
    let methods = ["GET", "POST"];
    let codes = ["200", "500"];
    let les = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];
    let bounds = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, f64::INFINITY];
    for (ji, job) in ["api", "web"].into_iter().enumerate() {
        for (ii, inst) in ["i0", "i1", "i2"].into_iter().enumerate() {
            let gap = job == "api" && inst == "i2";
            let stops = job == "web" && inst == "i2";
            let in_gap = |t: i64| gap && (T0 + 20 * MIN..T0 + 30 * MIN).contains(&t);
            let mut ts: Vec<i64> = Vec::new();
            let mut i = 0;
            while i * STEP < SPAN {
                let t = jittered(&mut rng, T0 + i * STEP);
                i += 1;
                if in_gap(t) || (stops && t >= T0 + 40 * MIN) {
                    continue;
                }
                ts.push(t);
            }
            // Resets are allowed only where the sample before and after is dense (not next to
            // the gap or the end), see the module doc.
            let may_reset = |k: usize| {
                k > 2
                    && k + 2 < ts.len()
                    && !in_gap(ts[k] - 3 * STEP)
                    && ts[k] - ts[k - 1] < 2 * STEP
            };
            let tl = [("job", job), ("instance", inst)];
            let mut add = |name: &str, extra: &[(&str, &str)], vals: Vec<f64>| {
                let mut pairs = tl.to_vec();
                pairs.extend_from_slice(extra);
                let mut samples: Vec<(i64, f64)> = ts.iter().copied().zip(vals).collect();
                if stops {
                    let last = *ts.last().unwrap();
                    samples.push((last + 9 * SEC + 1, f64::from_bits(STALE_NAN)));
                }
                out.push(Series {
                    labels: labels(name, &pairs),
                    samples,
                });
            };
            for m in methods {
                for c in codes {
                    let speed = if c == "200" {
                        5.0 + 15.0 * rng.f()
                    } else {
                        2.0 * rng.f()
                    };
                    let mut v = 1000.0 + 5000.0 * rng.f();
                    let vals = (0..ts.len())
                        .map(|k| {
                            if may_reset(k) && rng.below(60) == 0 {
                                // Restart at 8..10 increments' worth: see COUNTER_RESTART.
                                v = speed * (8.0 + 2.0 * rng.f());
                            } else {
                                v += speed * (0.5 + rng.f());
                            }
                            v
                        })
                        .collect();
                    add("http_requests_total", &[("method", m), ("code", c)], vals);
                }
            }
            let mut cpu = 100.0 + 100.0 * rng.f();
            let vals = ts
                .iter()
                .map(|_| {
                    cpu += 0.1 + 1.4 * rng.f();
                    cpu
                })
                .collect();
            add("process_cpu_seconds_total", &[], vals);
            let mut mem = 1e8 * (1.0 + rng.f());
            let vals = ts
                .iter()
                .map(|_| {
                    mem += 2e6 * (rng.f() - 0.5);
                    mem.round()
                })
                .collect();
            add("memory_usage_bytes", &[], vals);
            for zone in ["a", "b"] {
                let mut temp = -5.0 + 40.0 * rng.f();
                let vals = ts
                    .iter()
                    .map(|_| {
                        temp += 4.0 * (rng.f() - 0.5);
                        temp
                    })
                    .collect();
                add("temperature_celsius", &[("zone", zone)], vals);
            }
            // A gauge with the odd values: NaN, +Inf, -Inf, -0.0 now and then.
            let vals = (0..ts.len())
                .map(|_| match rng.below(40) {
                    0 => f64::NAN,
                    1 if ji == 0 => f64::INFINITY,
                    2 if ii == 1 => f64::NEG_INFINITY,
                    3 => -0.0,
                    _ => rng.f(),
                })
                .collect();
            add("ratio", &[], vals);
            // Classic histogram: cumulative buckets, _sum and _count share the timestamps.
            let mut counts = [0.0f64; 7];
            let mut sum = 0.0;
            let observe = |rng: &mut Rng, counts: &mut [f64; 7], sum: &mut f64| {
                let d = -(1.0 - rng.f()).ln() * 0.3;
                *sum += d;
                for (c, b) in counts.iter_mut().zip(bounds) {
                    if d <= b {
                        *c += 1.0;
                    }
                }
            };
            for _ in 0..2000 {
                observe(&mut rng, &mut counts, &mut sum);
            }
            let mut hist: Vec<[f64; 8]> = Vec::new();
            for k in 0..ts.len() {
                if job == "api" && inst == "i1" && k == 100 {
                    // One reset of the whole histogram (process restart), mid-series; it
                    // restarts well above one interval's increase (see COUNTER_RESTART).
                    counts = [0.0; 7];
                    sum = 0.0;
                    for _ in 0..1000 {
                        observe(&mut rng, &mut counts, &mut sum);
                    }
                }
                for _ in 0..rng.below(30) {
                    observe(&mut rng, &mut counts, &mut sum);
                }
                let mut row = [0.0; 8];
                row[..7].copy_from_slice(&counts);
                row[7] = sum;
                hist.push(row);
            }
            for (b, le) in les.iter().enumerate() {
                add(
                    "request_duration_seconds_bucket",
                    &[("le", le)],
                    hist.iter().map(|r| r[b]).collect(),
                );
            }
            add(
                "request_duration_seconds_sum",
                &[],
                hist.iter().map(|r| r[7]).collect(),
            );
            add(
                "request_duration_seconds_count",
                &[],
                hist.iter().map(|r| r[6]).collect(),
            );
            let down = job == "web" && inst == "i1";
            let vals = (0..ts.len())
                .map(|k| {
                    if down && (50..60).contains(&k) {
                        0.0
                    } else {
                        1.0
                    }
                })
                .collect();
            add("up", &[], vals);
            let version = ["1.0.3", "1.1.0"][(ji + ii) % 2];
            let region = ["eu", "us"][ii % 2];
            add(
                "build_info",
                &[("version", version), ("region", region)],
                vec![1.0; ts.len()],
            );
        }
    }
    // A job that starts half-way, one sample a minute.
    let mut samples = Vec::new();
    let mut t = T0 + 30 * MIN;
    while t < T0 + SPAN {
        let s = jittered(&mut rng, t);
        samples.push((s, (s / 1000) as f64));
        t += MIN;
    }
    out.push(Series {
        labels: labels(
            "batch_last_success_timestamp_seconds",
            &[("job", "batch"), ("instance", "cron")],
        ),
        samples,
    });
    out
}

/// Writes the data set in time order: one remote-write 1.0 request per 5-minute slice.
fn load(addr: &str, data: &[Series]) {
    let slice = 5 * MIN;
    let mut from = T0;
    while from < T0 + SPAN + MIN {
        let to = from + slice;
        let timeseries: Vec<proto::TimeSeries> = data
            .iter()
            .filter_map(|s| {
                let samples: Vec<proto::Sample> = s
                    .samples
                    .iter()
                    .filter(|(t, _)| (from..to).contains(t))
                    .map(|&(timestamp, value)| proto::Sample { value, timestamp })
                    .collect();
                (!samples.is_empty()).then(|| proto::TimeSeries {
                    labels: s
                        .labels
                        .iter()
                        .map(|(n, v)| proto::Label {
                            name: n.as_bytes().to_vec().into(),
                            value: v.as_bytes().to_vec().into(),
                        })
                        .collect(),
                    samples,
                    ..Default::default()
                })
            })
            .collect();
        let req = proto::WriteRequest {
            timeseries,
            ..Default::default()
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap();
        let (st, _, resp) = http_raw(
            addr,
            "POST",
            "/api/v1/write",
            &[
                ("Content-Type", "application/x-protobuf"),
                ("Content-Encoding", "snappy"),
                ("X-Prometheus-Remote-Write-Version", "0.1.0"),
            ],
            &body,
        )
        .unwrap();
        assert!(
            st == 204 || st == 200,
            "remote write to {addr} answered {st}: {resp}"
        );
        from = to;
    }
}

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

/// Prometheus 2.42 on 127.0.0.1 with a temp data dir, no scrape configs, and the remote-write
/// receiver on. Killed when the returned [`Proc`] drops.
fn start_prometheus(dir: &std::path::Path) -> (Proc, String) {
    let bin = require("prometheus");
    let addr = format!("127.0.0.1:{}", free_port());
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, "global:\n  evaluation_interval: 1m\n").unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prom-data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting prometheus");
    let p = Proc(child);
    wait_http_ok(&addr, "/-/ready", "prometheus");
    (p, addr)
}

type Labels = BTreeMap<String, String>;

/// A query answer reduced to what must agree.
#[derive(Debug)]
enum Answer {
    Error(String, String),
    Scalar(i64, f64),
    Str(String),
    Vector(Vec<(Labels, i64, f64)>),
    Matrix(Vec<(Labels, Vec<(i64, f64)>)>),
}

fn parse_value(s: &Value) -> f64 {
    match s.as_str().expect("sample value is a string") {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad sample value {v:?}")),
    }
}

fn parse_ts(v: &Value) -> i64 {
    (v.as_f64().expect("timestamp is a number") * 1000.0).round() as i64
}

fn parse_labels(v: &Value) -> Labels {
    v.as_object()
        .expect("metric is an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

fn parse_answer(status: u16, body: &str) -> Answer {
    let v: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return Answer::Error("unparsable".into(), format!("{status}: {e}: {body}")),
    };
    if v["status"] != "success" {
        return Answer::Error(
            v["errorType"].as_str().unwrap_or("?").to_string(),
            v["error"].as_str().unwrap_or(body).to_string(),
        );
    }
    let r = &v["data"]["result"];
    match v["data"]["resultType"].as_str() {
        Some("scalar") => Answer::Scalar(parse_ts(&r[0]), parse_value(&r[1])),
        Some("string") => Answer::Str(r[1].as_str().unwrap_or_default().to_string()),
        Some("vector") => Answer::Vector(
            r.as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        parse_labels(&s["metric"]),
                        parse_ts(&s["value"][0]),
                        parse_value(&s["value"][1]),
                    )
                })
                .collect(),
        ),
        Some("matrix") => Answer::Matrix(
            r.as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let pts = s["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| (parse_ts(&p[0]), parse_value(&p[1])))
                        .collect();
                    (parse_labels(&s["metric"]), pts)
                })
                .collect(),
        ),
        other => Answer::Error("unknown".into(), format!("resultType {other:?}: {body}")),
    }
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    let d = (a - b).abs();
    d <= 1e-9 || d <= 1e-6 * a.abs().max(b.abs())
}

fn fmt_labels(l: &Labels) -> String {
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// An answer in at most ~300 characters.
fn short(a: &Answer) -> String {
    let s = format!("{a:?}");
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

/// `None` when equal, else a short description of the first difference.
fn compare(prom: &Answer, hearth: &Answer, ordered: bool) -> Option<String> {
    match (prom, hearth) {
        (Answer::Error(a, _), Answer::Error(b, _)) if a == b => None,
        (Answer::Scalar(t1, v1), Answer::Scalar(t2, v2)) if t1 == t2 && close(*v1, *v2) => None,
        (Answer::Str(a), Answer::Str(b)) if a == b => None,
        (Answer::Vector(a), Answer::Vector(b)) => {
            let key = |v: &[(Labels, i64, f64)]| -> BTreeMap<Labels, (i64, f64)> {
                v.iter().map(|(l, t, x)| (l.clone(), (*t, *x))).collect()
            };
            let (ma, mb) = (key(a), key(b));
            for (l, (t, x)) in &ma {
                match mb.get(l) {
                    None => return Some(format!("series {} missing in hearth", fmt_labels(l))),
                    Some((t2, x2)) if t2 != t || !close(*x, *x2) => {
                        return Some(format!(
                            "{}: prometheus {x} @{t}, hearth {x2} @{t2}",
                            fmt_labels(l)
                        ))
                    }
                    _ => {}
                }
            }
            if let Some(l) = mb.keys().find(|l| !ma.contains_key(*l)) {
                return Some(format!("extra series in hearth: {}", fmt_labels(l)));
            }
            if ma.len() != a.len() || mb.len() != b.len() {
                return Some("duplicate label sets in a vector".into());
            }
            if ordered {
                let la: Vec<&Labels> = a.iter().map(|s| &s.0).collect();
                let lb: Vec<&Labels> = b.iter().map(|s| &s.0).collect();
                if la != lb {
                    return Some(format!(
                        "order differs: prometheus {:?}, hearth {:?}",
                        la.iter().map(|l| fmt_labels(l)).collect::<Vec<_>>(),
                        lb.iter().map(|l| fmt_labels(l)).collect::<Vec<_>>()
                    ));
                }
            }
            None
        }
        (Answer::Matrix(a), Answer::Matrix(b)) => {
            let ma: BTreeMap<&Labels, &Vec<(i64, f64)>> = a.iter().map(|(l, p)| (l, p)).collect();
            let mb: BTreeMap<&Labels, &Vec<(i64, f64)>> = b.iter().map(|(l, p)| (l, p)).collect();
            for (l, pa) in &ma {
                let Some(pb) = mb.get(l) else {
                    return Some(format!("series {} missing in hearth", fmt_labels(l)));
                };
                let n = pa.len().max(pb.len());
                for i in 0..n {
                    match (pa.get(i), pb.get(i)) {
                        (Some((t1, v1)), Some((t2, v2))) if t1 == t2 && close(*v1, *v2) => {}
                        (x, y) => {
                            return Some(format!(
                                "{} point {i}: prometheus {x:?}, hearth {y:?} ({} vs {} points)",
                                fmt_labels(l),
                                pa.len(),
                                pb.len()
                            ))
                        }
                    }
                }
            }
            if let Some(l) = mb.keys().find(|l| !ma.contains_key(*l)) {
                return Some(format!("extra series in hearth: {}", fmt_labels(l)));
            }
            None
        }
        _ => Some(format!(
            "prometheus {}\n      hearth {}",
            short(prom),
            short(hearth)
        )),
    }
}

/// A generated query: its family (for the summary) and text.
struct Q {
    family: &'static str,
    expr: String,
}

fn queries() -> Vec<Q> {
    let mut q = Vec::new();
    let mut add = |family: &'static str, expr: String| q.push(Q { family, expr });
    let selectors = [
        "http_requests_total",
        r#"http_requests_total{job="api"}"#,
        r#"http_requests_total{job!="api",code="500"}"#,
        r#"http_requests_total{code=~"5.."}"#,
        r#"http_requests_total{method!~"G.*",instance=~"i[01]"}"#,
        r#"{__name__=~"http_requests_total|process_cpu_seconds_total",instance="i1"}"#,
        r#"http_requests_total{code=""}"#,
        r#"http_requests_total{nonexistent=""}"#,
        r#"http_requests_total{job=~"api|web",code!~"2.*"}"#,
        r#"{__name__="temperature_celsius"}"#,
        r#"temperature_celsius{zone!="a"}"#,
        r#"{__name__=~"request_duration_seconds_.*",le=~"0.5|\\+Inf|"}"#,
        "memory_usage_bytes",
        "up",
        "ratio",
        "build_info",
        "batch_last_success_timestamp_seconds",
        "no_such_metric",
    ];
    for s in selectors {
        add("selector", s.to_string());
    }
    add("range selector", "temperature_celsius[2m]".into());
    add("range selector", "ratio[1m]".into());
    add(
        "range selector",
        r#"http_requests_total{job="web"}[90s] offset 1m"#.into(),
    );
    let counters = [
        "http_requests_total",
        r#"http_requests_total{code="500"}"#,
        "process_cpu_seconds_total",
        "request_duration_seconds_count",
    ];
    for c in counters {
        for f in ["rate", "increase", "irate", "resets"] {
            for r in ["1m", "5m", "10m"] {
                add("counter range fn", format!("{f}({c}[{r}])"));
            }
        }
    }
    let gauges = ["temperature_celsius", "memory_usage_bytes", "ratio"];
    for g in gauges {
        for f in [
            "delta",
            "idelta",
            "deriv",
            "changes",
            "avg_over_time",
            "min_over_time",
            "max_over_time",
            "sum_over_time",
            "count_over_time",
            "stddev_over_time",
            "stdvar_over_time",
            "last_over_time",
            "present_over_time",
        ] {
            let r = if f.starts_with('s') { "10m" } else { "5m" };
            add("gauge range fn", format!("{f}({g}[{r}])"));
        }
        add(
            "gauge range fn",
            format!("quantile_over_time(0.9, {g}[10m])"),
        );
        add("gauge range fn", format!("quantile_over_time(0, {g}[3m])"));
        add("gauge range fn", format!("predict_linear({g}[10m], 600)"));
    }
    add(
        "gauge range fn",
        "absent_over_time(no_such_metric[5m])".into(),
    );
    add(
        "gauge range fn",
        r#"absent_over_time(up{job="api",instance="i2"}[5m])"#.into(),
    );
    add("gauge range fn", "rate(memory_usage_bytes[5m])".into());
    let inner = [
        "rate(http_requests_total[5m])",
        "temperature_celsius",
        "memory_usage_bytes",
        "ratio",
    ];
    for e in inner {
        for agg in [
            "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar",
        ] {
            add("aggregation", format!("{agg}({e})"));
            add("aggregation", format!("{agg} by (job) ({e})"));
            add("aggregation", format!("{agg} without (instance) ({e})"));
        }
        if e != "ratio" {
            add("aggregation", format!("topk(2, {e})"));
            add("aggregation", format!("topk by (job) (1, {e})"));
            add("aggregation", format!("bottomk(3, {e})"));
            add("aggregation", format!("bottomk without (job) (1, {e})"));
        }
        for phi in ["0.5", "0.95", "0", "1", "-1", "2"] {
            add("aggregation", format!("quantile({phi}, {e})"));
        }
        add("aggregation", format!("quantile by (job) (0.25, {e})"));
    }
    add(
        "aggregation",
        "count_values(\"value\", round(temperature_celsius))".into(),
    );
    add("aggregation", "count_values by (job) (\"v\", up)".into());
    add(
        "aggregation",
        "sum by (job, code) (rate(http_requests_total[5m]))".into(),
    );
    add(
        "aggregation",
        "topk(scalar(count(up)) - 4, temperature_celsius)".into(),
    );
    add("aggregation", "sum(no_such_metric)".into());
    let binops = [
        r#"rate(http_requests_total{code="500"}[5m]) / ignoring(code) rate(http_requests_total{code="200"}[5m])"#,
        r#"sum by (job, instance) (rate(http_requests_total[5m])) / on(job, instance) group_left(version, region) build_info"#,
        "rate(http_requests_total[5m]) * on(job, instance) group_left(version) build_info",
        "build_info * on(job, instance) group_right(version) rate(http_requests_total[5m])",
        r#"temperature_celsius{zone="a"} - ignoring(zone) temperature_celsius{zone="b"}"#,
        r#"temperature_celsius{zone="a"} - on(job, instance) temperature_celsius{zone="b"}"#,
        "temperature_celsius > 20",
        "temperature_celsius > bool 20",
        "temperature_celsius <= 10",
        "temperature_celsius != bool 0",
        "up == 1",
        "up == bool 0",
        "memory_usage_bytes > on(job, instance) group_left memory_usage_bytes offset 5m",
        "memory_usage_bytes >= bool memory_usage_bytes offset 5m",
        "rate(http_requests_total[5m]) and on(job, instance) (temperature_celsius > 20)",
        "temperature_celsius or on(job) up",
        r#"temperature_celsius{zone="a"} or temperature_celsius{zone="b"}"#,
        "up unless on(job, instance) (temperature_celsius > 25)",
        "http_requests_total unless http_requests_total{code=\"500\"}",
        "temperature_celsius * 2 + 1",
        "2 ^ (temperature_celsius / 10)",
        "temperature_celsius % 7",
        "-temperature_celsius",
        "memory_usage_bytes / 1024 / 1024",
        "1 / (temperature_celsius - 10)",
        "sum without () (temperature_celsius atan2 10)",
        r#"sum without () (temperature_celsius{zone="a"} atan2 ignoring(zone) temperature_celsius{zone="b"})"#,
        "ratio * 0",
        "ratio / ratio",
        "1 + 1",
        "2 * 3 - 4 ^ 0.5 % 3",
        "1 > bool 2",
        "time() - 60",
        "vector(1) + on() group_left sum(up)",
        "sum(up) by (job) > bool 2",
        "count(up) == 6",
        // Errors on both: many-to-many matching, duplicate series after label_replace.
        "http_requests_total + on(job) up",
        r#"label_replace(up, "instance", "x", "", "")"#,
    ];
    for b in binops {
        add("binary op", b.to_string());
    }
    for phi in ["0.5", "0.9", "0.99", "0", "1", "1.5", "-0.5"] {
        add(
            "histogram_quantile",
            format!("histogram_quantile({phi}, sum by (le, job) (rate(request_duration_seconds_bucket[5m])))"),
        );
    }
    add(
        "histogram_quantile",
        "histogram_quantile(0.9, rate(request_duration_seconds_bucket[10m]))".into(),
    );
    add(
        "histogram_quantile",
        "histogram_quantile(0.75, sum by (le) (increase(request_duration_seconds_bucket{instance!=\"i0\"}[2m])))".into(),
    );
    add(
        "histogram_quantile",
        "histogram_quantile(0.5, request_duration_seconds_bucket)".into(),
    );
    add(
        "histogram_quantile",
        "rate(request_duration_seconds_sum[5m]) / rate(request_duration_seconds_count[5m])".into(),
    );
    for s in [
        "max_over_time(rate(http_requests_total[1m])[10m:1m])",
        "avg_over_time(temperature_celsius[10m:30s])",
        "rate(http_requests_total[5m:])",
        "min_over_time(sum by (job) (memory_usage_bytes)[15m:2m] offset 3m)",
        "deriv(memory_usage_bytes[10m:10s])",
        "max_over_time(deriv(temperature_celsius[5m])[20m:5m])",
        "sum_over_time(up[7m:1m])",
        "count_over_time((temperature_celsius > 20)[10m:30s])",
        "last_over_time(ratio[5m:15s])",
        "quantile_over_time(0.5, rate(process_cpu_seconds_total[2m])[10m:2m])",
    ] {
        add("subquery", s.to_string());
    }
    let at = (T0 + 30 * MIN) / 1000;
    for s in [
        "http_requests_total offset 5m".to_string(),
        "rate(http_requests_total[5m] offset 10m)".into(),
        "temperature_celsius offset -5m".into(),
        "sum(memory_usage_bytes offset 1h)".into(),
        format!("temperature_celsius @ {at}"),
        "rate(http_requests_total[5m] @ end())".into(),
        "sum(temperature_celsius @ start())".into(),
        format!("temperature_celsius @ {at} offset 5m"),
        format!("max_over_time(temperature_celsius[10m] @ {})", at + 600),
        "temperature_celsius - temperature_celsius @ start()".into(),
        format!("timestamp(up @ {at})"),
    ] {
        add("offset and @", s);
    }
    for f in [
        "abs", "ceil", "floor", "round", "sqrt", "exp", "ln", "log2", "log10", "sgn", "sin", "cos",
        "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "deg",
        "rad",
    ] {
        add("math fn", format!("{f}(temperature_celsius / 20)"));
    }
    for s in [
        "ln(memory_usage_bytes)",
        "round(temperature_celsius, 5)",
        "round(temperature_celsius, 0.3)",
        "clamp(temperature_celsius, 0, 20)",
        "clamp(temperature_celsius, 20, 0)",
        "clamp_min(temperature_celsius, 10)",
        "clamp_max(temperature_celsius, 10)",
        "abs(ratio)",
        "pi()",
        "timestamp(temperature_celsius)",
        "timestamp(rate(http_requests_total[5m]))",
        "time()",
        "vector(time())",
        "scalar(sum(up))",
        "scalar(up)",
        "minute()",
        "hour()",
        "day_of_week()",
        "day_of_month()",
        "day_of_year()",
        "days_in_month()",
        "month()",
        "year()",
        "minute(timestamp(up))",
        "hour(batch_last_success_timestamp_seconds)",
        "sort(temperature_celsius)",
        "sort_desc(memory_usage_bytes)",
        r#"label_replace(up, "host", "$1", "instance", "i(.*)")"#,
        r#"label_replace(up, "host", "$1-$2", "job", "(a)(p.*)")"#,
        r#"label_replace(up, "host", "x", "instance", "nomatch")"#,
        r#"label_join(up, "ji", "-", "job", "instance")"#,
        r#"label_join(up, "job", "", "instance")"#,
        "absent(no_such_metric)",
        r#"absent(up{job="x",instance=~"y"})"#,
        "absent(up)",
        r#"absent(nonexistent{job="a"} offset 1m)"#,
        r#""a string""#,
        "-1.5e3",
        "Inf",
        "-Inf",
        "NaN",
    ] {
        add("function", s.to_string());
    }
    let at = (T0 + 30 * MIN) / 1000;
    for s in [
        "count_values(\"v\", memory_usage_bytes)".to_string(),
        "count_values(\"v\", ratio)".into(),
        "count_values(\"v\", ratio / 1e9)".into(),
        "count_values(\"v\", temperature_celsius * 1e25)".into(),
        "count_values(\"job\", up)".into(),
        r#"label_replace(temperature_celsius, "__name__", "temp_$1", "zone", "(.*)")"#.into(),
        r#"label_replace(up, "job", "", "job", "api")"#.into(),
        r#"label_replace(up, "x", "$0$0", "instance", "i.")"#.into(),
        r#"label_replace(up, "x", "${1}b", "instance", "(i)(.)")"#.into(),
        r#"label_join(up, "x", ",")"#.into(),
        r#"absent(up{job=~"a.*",instance="zzz"})"#.into(),
        r#"absent(up{job="zzz",job="yyy"})"#.into(),
        r#"histogram_quantile(0.5, request_duration_seconds_bucket{le!="+Inf"})"#.into(),
        r#"histogram_quantile(0.5, rate(request_duration_seconds_bucket{le=~"0.1|1|\\+Inf"}[5m]))"#.into(),
        "histogram_quantile(0.5, vector(1))".into(),
        "histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[5m])) - 0.001)".into(),
        "quantile_over_time(0.5, ratio[10m])".into(),
        "stddev_over_time(ratio[10m])".into(),
        "avg_over_time(ratio[10m])".into(),
        "sum_over_time(ratio[10m])".into(),
        "irate(http_requests_total[11m])".into(),
        "changes(up[10m])".into(),
        "resets(up[10m])".into(),
        "timestamp(up offset 1m)".into(),
        "-rate(process_cpu_seconds_total[5m])".into(),
        "2 ^ 3 ^ 2".into(),
        "-2 ^ 2".into(),
        "vector(-7) % 3".into(),
        "vector(5) % -3".into(),
        "vector(-8) ^ (1/3)".into(),
        "vector(-1) / 0".into(),
        "round(vector(-2.5))".into(),
        "round(vector(2.5))".into(),
        "round(vector(-0.5))".into(),
        "round(temperature_celsius, -10)".into(),
        "sqrt(vector(-1))".into(),
        "exp(vector(1000))".into(),
        "ln(vector(0))".into(),
        "acosh(vector(0.5))".into(),
        "ratio == ratio".into(),
        "ratio != bool ratio".into(),
        "ratio > 0.5".into(),
        "1 == bool 1".into(),
        "clamp(ratio, 0, 0.5)".into(),
        "quantile(0.5, vector(NaN))".into(),
        "stddev(vector(1))".into(),
        r#"sum by (__name__) ({__name__=~"temperature_celsius|memory_usage_bytes"})"#.into(),
        r#"rate({__name__=~".+_total", job="web"}[5m])"#.into(),
        "build_info * on(job, instance) group_left(job) up".into(),
        r#"up * on(instance) group_left(zone) temperature_celsius{zone="a",job="api"}"#.into(),
        "rate(http_requests_total[5m]) > on(job, instance) group_left() (sum by (job, instance) (rate(http_requests_total[5m])) / 4)".into(),
        "(temperature_celsius > 10) or (memory_usage_bytes / 1e6)".into(),
        "sum(rate(http_requests_total[5m])) by (job) > 1 unless on(job) sum(up) by (job) < 3".into(),
        r#"last_over_time(up{instance="i2",job="web"}[10m])"#.into(),
        r#"count_over_time(up{instance="i2"}[10m])"#.into(),
        r#"absent_over_time(up{job="web",instance="i2"}[1m])"#.into(),
        "max_over_time(up[10m:1m] offset 2m)".into(),
        // An @ time on a subquery must not sit on its step either.
        format!("sum_over_time(up[10m:1m] @ {})", at + 17),
        // Nested: the inner subquery runs at the outer steps (whole minutes), so its range is
        // 150 s, which keeps its start off its own 1 m steps.
        "max_over_time(avg_over_time(temperature_celsius[150s:1m])[10m:2m])".into(),
        "rate(http_requests_total[5m:1m] offset 5m)".into(),
        "max_over_time(up[1h:])".into(),
        "rate(http_requests_total[30s])".into(),
        "increase(http_requests_total[20s])".into(),
        "day_of_week(vector(-1))".into(),
        "year(vector(1e10))".into(),
        "minute(vector(NaN))".into(),
        "hour(vector(NaN))".into(),
        "year(vector(NaN))".into(),
        "day_of_month(vector(Inf))".into(),
        "day_of_week(timestamp(up))".into(),
        "time() - timestamp(up) > 60".into(),
        format!("temperature_celsius @ {at}.5"),
        "scalar(vector(1)) + scalar(sum(no_such_metric))".into(),
        "vector(1) unless on() absent(no_such_metric)".into(),
        "predict_linear(http_requests_total[10m], 300)".into(),
        "deriv(http_requests_total[10m])".into(),
        "delta(http_requests_total[5m])".into(),
        "idelta(http_requests_total[5m])".into(),
        "sort_desc(sum by (job, instance) (up))".into(),
    ] {
        add("edge case", s);
    }
    q
}

#[test]
fn promql_agrees_with_prometheus_2() {
    let tmp = tempfile::tempdir().unwrap();
    let (_prom, prom_addr) = start_prometheus(tmp.path());
    let h = Hearth::start(&tmp.path().join("hearth"), &["--config", "/dev/null"]);
    let data = dataset();
    let total: usize = data.iter().map(|s| s.samples.len()).sum();
    load(&prom_addr, &data);
    load(&h.addr, &data);
    eprintln!("{} series, {total} samples loaded into both", data.len());

    // Evaluation times: 17 s past a 30 s boundary (see the module doc); before, in and after the
    // gap, around the disappearing target, after the last sample and past the lookback.
    let times: Vec<i64> = [10, 22, 26, 33, 41, 44, 55, 60, 63, 68]
        .iter()
        .map(|m| T0 + m * MIN + 17 * SEC)
        .collect();
    let steps = [30 * SEC, 60 * SEC, 2 * MIN];
    let (start, end) = (T0 + 5 * MIN + 17 * SEC, T0 + 70 * MIN + 17 * SEC);

    let secs = |t: i64| format!("{}.{:03}", t / 1000, t % 1000);
    let ask = |addr: &str, path: &str| -> Answer {
        let (st, body) = http(addr, "GET", path, "").expect("query");
        parse_answer(st, &body)
    };
    let qs = queries();
    let mut n = 0;
    let mut diffs: Vec<(&'static str, String, String)> = Vec::new();
    let mut per_family: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut prom_errors = Vec::new();
    let mut prom_empty = Vec::new();
    for (i, q) in qs.iter().enumerate() {
        let e = urlencode(&q.expr);
        let ordered = q.expr.starts_with("sort");
        let mut cases = Vec::new();
        for k in 0..3 {
            let t = times[(i * 3 + k) % times.len()];
            cases.push((
                format!("instant @{}", (t - T0) / 1000),
                format!("/api/v1/query?query={e}&time={}", secs(t)),
                ordered,
            ));
        }
        let step = steps[i % steps.len()];
        cases.push((
            format!("range step {}s", step / 1000),
            format!(
                "/api/v1/query_range?query={e}&start={}&end={}&step={}",
                secs(start),
                secs(end),
                step / 1000
            ),
            false,
        ));
        let mut nonempty = false;
        for (what, path, ordered) in cases {
            n += 1;
            let p = ask(&prom_addr, &path);
            match &p {
                Answer::Error(ty, msg) => {
                    prom_errors.push(format!("{} [{what}]: {ty}: {msg}", q.expr))
                }
                Answer::Vector(v) if v.is_empty() => {}
                Answer::Matrix(v) if v.is_empty() => {}
                _ => nonempty = true,
            }
            let hr = ask(&h.addr, &path);
            if let Answer::Error(ty, msg) = &hr {
                assert!(
                    !(ty == "unparsable" && msg.starts_with("404")),
                    "hearth does not serve {path} (404)"
                );
            }
            let fam = per_family.entry(q.family).or_default();
            fam.0 += 1;
            if let Some(d) = compare(&p, &hr, ordered) {
                fam.1 += 1;
                diffs.push((q.family, format!("{}  [{what}]", q.expr), d));
            }
        }
        if !nonempty {
            prom_empty.push(q.expr.as_str());
        }
    }
    let mut report = String::new();
    writeln!(
        report,
        "{} queries, {n} comparisons, {} equal, {} differ",
        qs.len(),
        n - diffs.len(),
        diffs.len()
    )
    .unwrap();
    for (f, (c, d)) in &per_family {
        writeln!(report, "  {f:<20} {c:>4} compared, {d:>4} differ").unwrap();
    }
    for (f, q, d) in &diffs {
        writeln!(report, "- [{f}] {q}\n      {d}").unwrap();
    }
    writeln!(
        report,
        "errors from prometheus (all intended): {prom_errors:#?}\nqueries with only empty results: {prom_empty:?}"
    )
    .unwrap();
    eprintln!("{report}");
    assert!(diffs.is_empty(), "{} differences (see above)", diffs.len());
}
