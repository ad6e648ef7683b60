//! A runner for Prometheus's PromQL test scripts (`promql/promqltest` in prometheus/prometheus)
//! against hearth's engine and a real on-disk `hearth_tsdb::Db`.
//!
//! Semantics follow Prometheus's Go runner (`test.go`): see [`script`] for the language,
//! [`compare`] for how results, annotations and errors are checked. Differences:
//!
//! * Native histograms cannot be stored by hearth yet. Histogram samples (`{{...}}`) are not
//!   loaded (float samples of the same series are), and an eval is **skipped** when its
//!   expected result contains a histogram, or when one of its selectors matches a series
//!   that had histogram samples in a load since the last `clear` (checked with the real
//!   matchers of the parsed query against the loaded label sets; for `load_with_nhcb`, the
//!   converted series `<base>{...}` without `le` count as histogram series) and the eval
//!   does not pass without those samples (one that passes anyway counts as passed). A query
//!   that does not parse is skipped only if it names such a metric; otherwise it is a
//!   failure. Every other eval runs, so an eval that needs no histogram data is never
//!   skipped.
//! * Start-timestamp lines (`metric@st ...`) are ignored (samples are loaded without them).
//! * Instant queries are not re-run with `@` modifiers added. The range-mode re-check of
//!   instant queries (query `t-1m..t+1m` step 1m, compare the middle step) runs only with
//!   `PROMQLTEST_RANGE_CHECK=1`.
//! * A result holding the same label set twice fails (Prometheus's runner would not notice).
//! * A query whose evaluation panics is a failure, not an abort.

pub(crate) mod compare;
pub(crate) mod script;
pub(crate) mod series;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use hearth_query::{
    Engine, EngineOptions, Metric, QueryContext, QueryError, QueryOutput, QueryValue,
};
use hearth_tsdb::config::{PromDuration, WalFsync};
use hearth_tsdb::{Db, Labels, StorageConfig};
use promql_parser::parser::{Expr, VectorSelector};
use promql_parser::util::{walk_expr, ExprVisitor};
use regex::Regex;

use compare::{check_annotations, check_invariants, compare_result, fmt_value};
use script::{parse_script, Command, Eval, EvalKind, Load};
use series::SeqValue;

/// Files whose every eval must pass (the shared conformance README's core list).
pub(crate) const CORE_FILES: &[&str] = &[
    "aggregators",
    "at_modifier",
    "collision",
    "functions",
    "histograms",
    "limit",
    "literals",
    "name_label_dropping",
    "operators",
    "range_queries",
    "selectors",
    "staleness",
    "subquery",
    "trig_functions",
];

pub(crate) fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance/promql"
    ))
}

/// `(name without .test, text)` of every script, sorted by name.
pub(crate) fn corpus_files() -> Vec<(String, String)> {
    let dir = corpus_dir();
    let rd = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("PromQL test scripts not found at {}: {e}", dir.display()));
    let mut files: Vec<(String, String)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".test")?.to_string();
            let text = std::fs::read_to_string(e.path())
                .unwrap_or_else(|err| panic!("reading {}: {err}", e.path().display()));
            Some((stem, text))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .test files in {}", dir.display());
    files
}

/// Runner settings (from the environment in the conformance test).
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    /// Re-check instant queries as range queries (`PROMQLTEST_RANGE_CHECK=1`).
    pub(crate) range_check: bool,
    /// Print every eval's outcome (`PROMQLTEST_VERBOSE=1`).
    pub(crate) verbose: bool,
}

#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) line: usize,
    pub(crate) query: String,
    pub(crate) detail: String,
}

#[derive(Debug)]
pub(crate) struct Skip {
    pub(crate) line: usize,
    pub(crate) reason: &'static str,
}

/// The outcome of one script.
#[derive(Debug, Default)]
pub(crate) struct FileReport {
    pub(crate) name: String,
    pub(crate) passed: usize,
    pub(crate) failures: Vec<Failure>,
    pub(crate) skipped: Vec<Skip>,
    /// Verbose per-eval lines, printed after the run so parallel files do not interleave.
    pub(crate) log: String,
    pub(crate) elapsed: Duration,
}

impl FileReport {
    pub(crate) fn is_core(&self) -> bool {
        CORE_FILES.contains(&self.name.as_str())
    }
}

enum Outcome {
    Pass,
    Fail(String),
    /// Why, and for an eval that was tried anyway, how it differed.
    Skip(&'static str, Option<String>),
}

/// Runs `files` on up to `threads` threads; reports are in the order of `files`.
pub(crate) fn run_files(
    files: &[(String, String)],
    opts: &Options,
    threads: usize,
) -> Vec<FileReport> {
    // Longest scripts first so the slowest one does not start last.
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(files[i].1.len()));
    let next = AtomicUsize::new(0);
    let mut reports: Vec<Option<FileReport>> = (0..files.len()).map(|_| None).collect();
    let done = std::sync::Mutex::new(&mut reports);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = order.get(k) else { break };
                let (name, text) = &files[i];
                let r = run_file(name, text, opts);
                done.lock().unwrap()[i] = Some(r);
            });
        }
    });
    reports
        .into_iter()
        .map(|r| r.expect("BUG: file not run"))
        .collect()
}

/// Runs one script.
pub(crate) fn run_file(name: &str, text: &str, opts: &Options) -> FileReport {
    let started = Instant::now();
    let mut report = FileReport {
        name: name.to_string(),
        ..Default::default()
    };
    let cmds = match parse_script(text) {
        Ok(c) => c,
        Err((line, e)) => {
            report.failures.push(Failure {
                line,
                query: String::new(),
                detail: format!("script does not parse: {e}"),
            });
            return report;
        }
    };
    let mut env = TestDb::new();
    for cmd in &cmds {
        match cmd {
            Command::Clear => env = TestDb::new(),
            Command::Load(load) => {
                for (line, detail) in env.load(load) {
                    report.failures.push(Failure {
                        line,
                        query: "load".into(),
                        detail,
                    });
                }
            }
            Command::Eval(ev) => {
                let outcome = env.eval(ev, opts);
                let what = match &outcome {
                    Outcome::Pass => "ok".to_string(),
                    Outcome::Skip(r, None) => format!("skipped ({r})"),
                    Outcome::Skip(r, Some(d)) => format!("skipped ({r}): {d}"),
                    Outcome::Fail(d) => format!("FAIL: {d}"),
                };
                if opts.verbose {
                    let _ = writeln!(report.log, "{name}.test:{} {} — {what}", ev.line, ev.expr);
                }
                match outcome {
                    Outcome::Pass => report.passed += 1,
                    Outcome::Skip(reason, _) => report.skipped.push(Skip {
                        line: ev.line,
                        reason,
                    }),
                    Outcome::Fail(detail) => report.failures.push(Failure {
                        line: ev.line,
                        query: ev.expr.clone(),
                        detail,
                    }),
                }
            }
        }
    }
    report.elapsed = started.elapsed();
    report
}

/// The storage of one script between `clear`s, and what was loaded into it.
struct TestDb {
    // Dropped before `_dir`, which deletes the files.
    db: Db,
    _dir: tempfile::TempDir,
    /// Label sets of series that had native-histogram samples (not loaded).
    histogram_series: Vec<Metric>,
    engine: Engine,
}

impl TestDb {
    fn new() -> TestDb {
        let dir = tempfile::Builder::new()
            .prefix("promqltest")
            .tempdir()
            .expect("creating a temp dir");
        let cfg = StorageConfig {
            path: dir.path().to_path_buf(),
            // Any load order is accepted (a later `load` may add older samples).
            out_of_order_window: PromDuration(Duration::from_secs(100 * 365 * 86_400)),
            // Durability is not under test here; no fsync per load.
            wal_fsync: WalFsync::Interval,
            wal_fsync_interval: PromDuration(Duration::from_secs(3600)),
            wal_segment_size: 8 << 20,
            ..Default::default()
        };
        let db = Db::open(&cfg).expect("opening the test database");
        TestDb {
            db,
            _dir: dir,
            histogram_series: Vec::new(),
            engine: Engine::new(EngineOptions::default()),
        }
    }

    /// Appends a load command; returns `(line, problem)` for each series not fully stored.
    fn load(&mut self, load: &Load) -> Vec<(usize, String)> {
        let mut problems = Vec::new();
        // As in Prometheus, a label set defined twice in one load keeps its last definition.
        let mut last: HashMap<Metric, usize> = HashMap::new();
        for (i, (_, d)) in load.series.iter().enumerate() {
            last.insert(Metric::new(d.labels.clone()), i);
        }
        let mut app = self.db.appender();
        for (i, (line, d)) in load.series.iter().enumerate() {
            let metric = Metric::new(d.labels.clone());
            if last[&metric] != i {
                continue;
            }
            if d.has_histogram() {
                self.histogram_series.push(metric.clone());
            }
            if load.with_nhcb {
                if let Some(base) = nhcb_series(&metric) {
                    self.histogram_series.push(base);
                }
            }
            let labels = match Labels::new(metric.iter()) {
                Ok(l) => l,
                Err(e) => {
                    problems.push((*line, format!("series {metric} cannot be stored: {e}")));
                    continue;
                }
            };
            let series = match app.series(&labels) {
                Ok(s) => s,
                Err(e) => {
                    problems.push((*line, format!("series {metric}: {e}")));
                    continue;
                }
            };
            for (k, v) in d.values.iter().enumerate() {
                if let SeqValue::Float(v) = v {
                    app.append(&series, k as i64 * load.interval_ms, *v);
                }
            }
        }
        match app.commit() {
            Ok(r) if r.rejected() > 0 => problems.push((
                load.line,
                format!("{} samples rejected: {:?}", r.rejected(), r.rejections),
            )),
            Ok(_) => {}
            Err(e) => problems.push((load.line, format!("commit failed: {e}"))),
        }
        problems
    }

    fn eval(&self, ev: &Eval, opts: &Options) -> Outcome {
        if ev.expects_histogram() {
            return Outcome::Skip("expected result has native histograms", None);
        }
        match Engine::parse(&ev.expr) {
            Ok(expr) => {
                if self.selects_histogram_series(&expr) {
                    // The result may not depend on the missing histogram samples: a match
                    // is a real pass; a mismatch is a skip (it cannot be judged).
                    return match self.check(ev, opts) {
                        Ok(()) => Outcome::Pass,
                        Err(Mismatch::Invariant(e)) => Outcome::Fail(e),
                        Err(Mismatch::Expectation(e)) => {
                            Outcome::Skip("selects series with native-histogram samples", Some(e))
                        }
                    };
                }
            }
            Err(e) => {
                if self.names_histogram_metric(&ev.expr) {
                    return Outcome::Skip(
                        "unparsed query naming a native-histogram metric",
                        Some(e.to_string()),
                    );
                }
                return Outcome::Fail(format!("parse error (Prometheus parses this query): {e}"));
            }
        }
        match self.check(ev, opts) {
            Ok(()) => Outcome::Pass,
            Err(Mismatch::Invariant(e) | Mismatch::Expectation(e)) => Outcome::Fail(e),
        }
    }

    fn run(&self, query: &str, kind: EvalKind) -> Result<QueryOutput, QueryError> {
        let ctx = QueryContext::new(Duration::from_secs(100));
        let r = catch_unwind(AssertUnwindSafe(|| match kind {
            EvalKind::Instant { at } => self.engine.instant(&self.db, query, at, &ctx),
            EvalKind::Range { start, end, step } => {
                self.engine.range(&self.db, query, start, end, step, &ctx)
            }
        }));
        r.unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(QueryError::Internal(format!("{PANIC_PREFIX}{msg}")))
        })
    }

    /// Prometheus's `execRangeEval` / `runInstantQuery` for one eval.
    fn check(&self, ev: &Eval, opts: &Options) -> Result<(), Mismatch> {
        use Mismatch::{Expectation, Invariant};
        let kind = match (ev.kind(), ev.range_vector) {
            // The instant query of an `expect range vector` runs at the vector's end.
            (EvalKind::Instant { .. }, Some((_, end, _))) => EvalKind::Instant { at: end },
            (k, _) => k,
        };
        let out = match (self.run(&ev.expr, kind), &ev.fail) {
            (Err(e), _) if is_panic(&e) => return Err(Invariant(e.to_string())),
            (Err(e), Some(m)) => {
                let msg = e.to_string();
                return if m.matches(&msg) {
                    Ok(())
                } else {
                    Err(Expectation(format!(
                        "expected error matching {m}, got error {msg:?}"
                    )))
                };
            }
            (Err(e), None) => {
                return Err(Expectation(format!(
                    "unexpected error ({}): {e}",
                    e.error_type()
                )))
            }
            (Ok(out), Some(_)) => {
                return Err(Expectation(format!(
                    "expected an error, got {}",
                    fmt_value(&out.value)
                )))
            }
            (Ok(out), None) => out,
        };
        check_invariants(kind, &out.value).map_err(Invariant)?;
        check_annotations(ev, &out.annotations).map_err(Expectation)?;
        compare_result(ev, &out.value).map_err(Expectation)?;
        if let EvalKind::Instant { at } = kind {
            if opts.range_check {
                self.range_check(ev, at, &out.value)?;
            }
        }
        Ok(())
    }

    /// Re-runs an instant query as a range query around its time and compares the middle
    /// step with the expectation (Prometheus's runner does this for every instant eval).
    fn range_check(&self, ev: &Eval, at: i64, instant: &QueryValue) -> Result<(), Mismatch> {
        use Mismatch::{Expectation, Invariant};
        static CONTEXT_FUNCS: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"(start|end|range|step)\(\)").unwrap());
        if ev.exclude_from_range_check() || CONTEXT_FUNCS.is_match(&ev.expr) {
            return Ok(());
        }
        let kind = EvalKind::Range {
            start: at - 60_000,
            end: at + 60_000,
            step: 60_000,
        };
        let out = match self.run(&ev.expr, kind) {
            Ok(out) => out,
            Err(e) if is_panic(&e) => return Err(Invariant(format!("range mode: {e}"))),
            Err(e) => return Err(Expectation(format!("range mode: unexpected error: {e}"))),
        };
        check_invariants(kind, &out.value).map_err(|e| Invariant(format!("range mode: {e}")))?;
        if ev.ordered {
            return Ok(());
        }
        let QueryValue::Matrix(m) = out.value else {
            unreachable!("check_invariants accepts only a matrix for a range query");
        };
        let mut vec = Vec::new();
        for s in &m {
            if let Some(p) = s.points.iter().find(|p| p.0 == at) {
                vec.push(hearth_query::Series::new(s.metric.clone(), vec![*p]));
            }
        }
        let as_instant = if matches!(instant, QueryValue::Scalar { .. }) {
            let v = vec.first().map_or(f64::NAN, |s| s.points[0].1);
            QueryValue::Scalar { t: at, v }
        } else {
            QueryValue::Vector(vec)
        };
        // Compared like the instant result (a range-mode matrix never checks `ordered`).
        compare_result(ev, &as_instant).map_err(|e| Expectation(format!("range mode: {e}")))
    }

    fn selects_histogram_series(&self, expr: &Expr) -> bool {
        struct V<'a>(&'a [Metric], bool);
        impl ExprVisitor for V<'_> {
            type Error = ();
            fn pre_visit(&mut self, e: &Expr) -> Result<bool, ()> {
                let vs = match e {
                    Expr::VectorSelector(vs) => vs,
                    Expr::MatrixSelector(ms) => &ms.vs,
                    _ => return Ok(true),
                };
                if self.0.iter().any(|m| selector_matches(vs, m)) {
                    self.1 = true;
                    return Ok(false);
                }
                Ok(true)
            }
        }
        if self.histogram_series.is_empty() {
            return false;
        }
        let mut v = V(&self.histogram_series, false);
        let _ = walk_expr(&mut v, expr);
        v.1
    }

    fn names_histogram_metric(&self, query: &str) -> bool {
        self.histogram_series
            .iter()
            .filter_map(|m| m.name())
            .any(|n| {
                query.match_indices(n).any(|(i, _)| {
                    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
                    !query[..i].ends_with(word) && !query[i + n.len()..].starts_with(word)
                })
            })
    }
}

/// Why an eval did not pass.
enum Mismatch {
    /// The output differs from the expectation.
    Expectation(String),
    /// The engine broke a property of every result (see [`compare::check_invariants`]) or
    /// panicked: a failure whatever data was (not) loaded.
    Invariant(String),
}

fn is_panic(e: &QueryError) -> bool {
    matches!(e, QueryError::Internal(m) if m.starts_with(PANIC_PREFIX))
}

const PANIC_PREFIX: &str = "PANIC: ";

/// Whether a stored series with labels `m` would be selected by `vs`.
fn selector_matches(vs: &VectorSelector, m: &Metric) -> bool {
    if let Some(n) = &vs.name {
        if m.name() != Some(n.as_str()) {
            return false;
        }
    }
    let all = |ms: &[promql_parser::label::Matcher]| {
        ms.iter().all(|x| x.is_match(m.get(&x.name).unwrap_or("")))
    };
    all(&vs.matchers.matchers)
        && (vs.matchers.or_matchers.is_empty() || vs.matchers.or_matchers.iter().any(|g| all(g)))
}

/// For `load_with_nhcb`: the native histogram series a classic `_bucket`/`_count`/`_sum`
/// series is converted into (base name, no `le`).
fn nhcb_series(m: &Metric) -> Option<Metric> {
    let name = m.name()?;
    let base = ["_bucket", "_count", "_sum"]
        .iter()
        .find_map(|s| name.strip_suffix(s))?;
    let mut b = m.clone();
    b.remove("le");
    b.set("__name__", base);
    Some(b)
}

/// Prints the per-file lines, failures and skips; returns the number of core failures.
pub(crate) fn print_summary(reports: &[FileReport]) -> usize {
    let mut out = String::new();
    for r in reports {
        out.push_str(&r.log);
    }
    let (mut p, mut f, mut s, mut core_failed) = (0, 0, 0, 0);
    for r in reports {
        for fl in &r.failures {
            let _ = writeln!(
                out,
                "FAIL {}.test:{} {}\n     {}",
                r.name,
                fl.line,
                fl.query,
                truncate(&fl.detail, 600)
            );
        }
    }
    for r in reports {
        let _ = writeln!(
            out,
            "{}{}.test: {} passed, {} failed, {} skipped ({:.1}s)",
            if r.is_core() { "" } else { "(not core) " },
            r.name,
            r.passed,
            r.failures.len(),
            r.skipped.len(),
            r.elapsed.as_secs_f64()
        );
        p += r.passed;
        f += r.failures.len();
        s += r.skipped.len();
        if r.is_core() {
            core_failed += r.failures.len();
        }
    }
    let _ = writeln!(
        out,
        "TOTAL: {p} passed, {f} failed, {s} skipped; {core_failed} failed in core files"
    );
    let skips: Vec<String> = reports
        .iter()
        .flat_map(|r| r.skipped.iter().map(move |k| (r, k)))
        .map(|(r, k)| format!("{}.test:{} ({})", r.name, k.line, k.reason))
        .collect();
    if !skips.is_empty() {
        let _ = writeln!(out, "skipped evals:\n  {}", skips.join("\n  "));
    }
    println!("{out}");
    core_failed
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_matching_uses_real_matchers() {
        let m = Metric::new([("__name__", "http_requests"), ("job", "api")]);
        let sel = |q: &str| match Engine::parse(q).unwrap() {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => ms.vs,
            e => panic!("{e:?}"),
        };
        assert!(selector_matches(&sel("http_requests"), &m));
        assert!(selector_matches(&sel(r#"{job=~"a.*"}"#), &m));
        assert!(selector_matches(&sel(r#"{__name__=~"http_.*"}[5m]"#), &m));
        assert!(!selector_matches(&sel(r#"http_requests{job!="api"}"#), &m));
        assert!(!selector_matches(&sel("http_requests_total"), &m));
        assert!(!selector_matches(&sel(r#"{job="api", instance="0"}"#), &m));
        assert!(selector_matches(&sel(r#"{job="api", instance=""}"#), &m));
    }

    #[test]
    fn nhcb_base_series() {
        let m = Metric::new([("__name__", "h_bucket"), ("le", "1"), ("a", "b")]);
        assert_eq!(
            nhcb_series(&m),
            Some(Metric::new([("__name__", "h"), ("a", "b")]))
        );
        assert_eq!(nhcb_series(&Metric::new([("__name__", "h")])), None);
    }

    /// Wrong expectations are caught (needs an evaluator that gets these trivial queries
    /// right).
    #[test]
    fn catches_wrong_expectations() {
        let script = r#"
load 1m
    m{a="1"} 1 2 3
    m{a="2"} 10 20 stale

eval instant at 2m m
    m{a="1"} 3

eval instant at 2m m
    m{a="1"} 3.0000000001

eval instant at 1m m
    m{a="1"} 2
    m{a="2"} 21

eval instant at 1m m
    m{a="1"} 2

eval instant at 1m m{a="1"}
    m{a="1"} 2
    m{a="3"} 2

eval range from 0 to 2m step 1m m
    m{a="1"} 1 2 3
    m{a="2"} 10 20

eval range from 0 to 2m step 1m m
    m{a="1"} 1 _ 3
    m{a="2"} 10 20

eval instant at 0 m
    expect fail

eval instant at 1m m
    expect warn
    m{a="1"} 2
    m{a="2"} 20

eval instant at 0 1
    2
"#;
        let r = run_file("t", script, &Options::default());
        let mut failed: Vec<usize> = r.failures.iter().map(|f| f.line).collect();
        failed.sort();
        assert_eq!(failed, [12, 16, 19, 27, 31, 34, 39], "{r:?}");
        assert_eq!(r.passed, 3, "{r:?}");
    }

    /// The runner itself on a small script: loading, clearing, skipping, failures.
    #[test]
    fn runs_a_script() {
        let script = r#"
load 1m
    m{a="1"} 1 2 3
    h {{schema:0 sum:1 count:1}}x2

eval instant at 0 h
    h 1

eval instant at 0 ("x"
    1

clear

eval instant at 0 h
"#;
        let r = run_file("t", script, &Options::default());
        assert_eq!(r.skipped.len(), 1, "{r:?}");
        assert_eq!(r.skipped[0].line, 6);
        // The bad parse is a failure; the evals after `clear` run (whether they pass depends
        // on the evaluator).
        assert!(r.failures.iter().any(|f| f.line == 9), "{r:?}");
        assert_eq!(r.passed + r.failures.len(), 2, "{r:?}");
    }
}
