//! Engine-level tests: limits, cancellation, and the central invariant of the one-pass range
//! evaluation — a range query equals the instant queries at each of its steps.

use std::time::Duration;

use hearth_tsdb::{Db, Labels, StorageConfig};
use proptest::prelude::*;

use crate::engine::{Engine, EngineOptions, QueryContext, QueryError};
use crate::value::{QueryValue, Series};

fn open() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StorageConfig {
        path: dir.path().to_path_buf(),
        ..Default::default()
    };
    let db = Db::open(&cfg).unwrap();
    (dir, db)
}

/// `series[i]` gets `(t, v)` samples; labels `__name__=m_total, i=<i>, g=<i%2>`.
fn load(db: &Db, series: &[Vec<(i64, f64)>]) {
    let mut app = db.appender();
    for (i, samples) in series.iter().enumerate() {
        let l = Labels::new([
            ("__name__", "m_total".to_string()),
            ("i", i.to_string()),
            ("g", (i % 2).to_string()),
        ])
        .unwrap();
        let r = app.series(&l).unwrap();
        for &(t, v) in samples {
            app.append(&r, t, v);
        }
    }
    app.commit().unwrap();
}

fn ctx() -> QueryContext {
    QueryContext::new(Duration::from_secs(60))
}

#[test]
fn too_many_samples_is_an_execution_error() {
    let (_d, db) = open();
    load(&db, &[(0..100).map(|i| (i * 1000, i as f64)).collect()]);
    let engine = Engine::new(EngineOptions {
        max_samples: 50,
        ..Default::default()
    });
    let err = engine
        .range(&db, "rate(m_total[1m])", 0, 100_000, 1000, &ctx())
        .unwrap_err();
    assert_eq!(
        err,
        QueryError::Execution(
            "query processing would load too many samples into memory in query execution".into()
        )
    );
    // Under the limit the same query runs.
    let engine = Engine::default();
    assert!(engine
        .range(&db, "rate(m_total[1m])", 0, 100_000, 1000, &ctx())
        .is_ok());
}

#[test]
fn canceled_and_timed_out_queries_stop() {
    let (_d, db) = open();
    load(&db, &[vec![(0, 1.0)]]);
    let engine = Engine::default();
    let c = ctx();
    c.cancel_flag()
        .store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(matches!(
        engine.instant(&db, "m_total", 0, &c),
        Err(QueryError::Canceled(_))
    ));
    let c = QueryContext::new(Duration::ZERO);
    assert!(matches!(
        engine.instant(&db, "m_total", 0, &c),
        Err(QueryError::Timeout(_))
    ));
}

#[test]
fn bad_queries_and_steps_are_bad_data() {
    let (_d, db) = open();
    let engine = Engine::default();
    for (q, step) in [
        ("sum(", 1000),
        ("m_total", 0),
        ("\"str\"", 1000),
        ("m_total[5m]", 1000),
    ] {
        let e = engine.range(&db, q, 0, 10_000, step, &ctx()).unwrap_err();
        assert_eq!(e.error_type(), "bad_data", "{q}: {e}");
    }
}

#[test]
fn invalid_utf8_label_names_are_refused_with_their_source() {
    let (_d, db) = open();
    load(&db, &[vec![(0, 1.0)]]);
    let e = Engine::default()
        .instant(&db, r#"count_values("a\xc5z", m_total)"#, 0, &ctx())
        .unwrap_err();
    assert_eq!(
        e,
        QueryError::Execution(r#"invalid label name "a\xc5z""#.into())
    );
    // Valid escapes still work.
    let out = Engine::default()
        .instant(&db, r#"count_values("\x61", m_total)"#, 0, &ctx())
        .unwrap();
    let QueryValue::Vector(v) = out.value else {
        panic!()
    };
    assert_eq!(v[0].metric.get("a"), Some("1"));
}

const QUERIES: &[&str] = &[
    "m_total",
    "m_total offset 30s",
    "rate(m_total[1m])",
    "increase(m_total[90s])",
    "delta(m_total[2m])",
    "irate(m_total[1m])",
    "deriv(m_total[2m])",
    "avg_over_time(m_total[1m])",
    "max_over_time(m_total[45s])",
    "quantile_over_time(0.3, m_total[2m])",
    "changes(m_total[3m])",
    "resets(m_total[3m])",
    "last_over_time(m_total[1m])",
    "absent_over_time(m_total{i=\"0\"}[30s])",
    "sum by (g) (m_total)",
    "avg(m_total)",
    "count without (i) (m_total)",
    "stddev(m_total)",
    "topk(1, m_total)",
    "bottomk(2, rate(m_total[1m]))",
    "quantile(0.5, m_total)",
    "count_values(\"v\", round(m_total))",
    "m_total > 3",
    "m_total > bool 3",
    "m_total * on(i) group_left m_total",
    "m_total / ignoring(g) m_total",
    "m_total and on(g) (m_total > 5)",
    "m_total or vector(1)",
    "m_total unless m_total{g=\"1\"}",
    "max_over_time(rate(m_total[1m])[2m:15s])",
    "min_over_time(m_total[1m:20s] offset 10s)",
    "sum(m_total @ 120)",
    "rate(m_total[1m] @ 200)",
    "absent(nonexistent)",
    "time() - timestamp(m_total)",
    "scalar(sum(m_total)) * 2",
    "histogram_quantile(0.5, sum by (le) (label_replace(m_total, \"le\", \"$1\", \"i\", \"(.*)\")))",
    "label_replace(m_total, \"x\", \"$1\", \"i\", \"(.*)\")",
    "predict_linear(m_total[2m], 60)",
    "clamp(m_total, 2, 8)",
];

fn series_at(v: &[Series], t: i64) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = v
        .iter()
        .filter_map(|s| {
            s.points
                .iter()
                .find(|p| p.0 == t)
                .map(|p| (s.metric.to_string(), p.1.to_bits()))
        })
        .collect();
    out.sort();
    out
}

fn normalize_nan(bits: u64) -> u64 {
    if f64::from_bits(bits).is_nan() {
        f64::NAN.to_bits()
    } else {
        bits
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Every step of a range query equals an instant query at that time (bit-exact), for
    /// random data with gaps, resets and stale markers.
    #[test]
    fn range_query_equals_instant_queries(
        data in prop::collection::vec(
            prop::collection::vec((1i64..40_000, -5.0f64..20.0, 0u8..10), 0..40),
            1..5,
        ),
        qi in 0..QUERIES.len(),
        start in 0i64..200_000,
        step in 5_000i64..60_000,
        nsteps in 1i64..20,
    ) {
        let (_d, db) = open();
        let series: Vec<Vec<(i64, f64)>> = data
            .iter()
            .map(|pts| {
                let mut t = 0;
                pts.iter()
                    .map(|&(dt, v, kind)| {
                        t += dt;
                        let v = if kind == 0 {
                            f64::from_bits(hearth_tsdb::STALE_NAN_BITS)
                        } else {
                            v.round()
                        };
                        (t, v)
                    })
                    .collect()
            })
            .collect();
        load(&db, &series);
        let q = QUERIES[qi];
        let engine = Engine::default();
        let end = start + step * (nsteps - 1);
        let range = engine.range(&db, q, start, end, step, &ctx()).unwrap();
        let QueryValue::Matrix(m) = range.value else { panic!("matrix expected") };
        for k in 0..nsteps {
            let t = start + k * step;
            let inst = engine.instant(&db, q, t, &ctx()).unwrap();
            let want: Vec<(String, u64)> = match inst.value {
                QueryValue::Vector(v) => series_at(&v, t),
                QueryValue::Scalar { v, .. } => vec![("{}".into(), v.to_bits())],
                other => panic!("unexpected {other:?}"),
            };
            let got = series_at(&m, t);
            let norm = |v: Vec<(String, u64)>| -> Vec<(String, u64)> {
                v.into_iter().map(|(m, b)| (m, normalize_nan(b))).collect()
            };
            prop_assert_eq!(norm(got), norm(want), "query {} at t={}", q, t);
        }
    }
}
