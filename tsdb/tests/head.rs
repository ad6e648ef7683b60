//! The storage engine through its public API: appends (in order, out of order, duplicates),
//! chunk cutting, queries merged across head chunks, mapped chunks and out-of-order data,
//! label names/values, and WAL replay giving back exactly what was acknowledged.

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_tsdb::config::PromDuration;
use hearth_tsdb::{Db, Labels, MatchOp, Matcher, StorageConfig, STALE_NAN_BITS};
use proptest::prelude::*;

fn cfg(dir: &std::path::Path) -> StorageConfig {
    StorageConfig {
        path: dir.to_path_buf(),
        ..StorageConfig::default()
    }
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied()).unwrap()
}

fn eq(name: &str, v: &str) -> Matcher {
    Matcher::new(MatchOp::Equal, name, v).unwrap()
}

fn bits(v: &[(i64, f64)]) -> Vec<(i64, u64)> {
    v.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

fn all_samples(db: &Db, m: &[Matcher]) -> Vec<(Labels, Vec<(i64, u64)>)> {
    db.querier(i64::MIN, i64::MAX)
        .select(m)
        .unwrap()
        .iter()
        .map(|s| {
            let it = bits(&s.samples().unwrap());
            // The batch decoder must agree with the iterator.
            let mut batch = Vec::new();
            s.decode_into(&mut batch).unwrap();
            assert_eq!(bits(&batch), it, "decode_into vs iter for {}", s.labels);
            (s.labels.clone(), it)
        })
        .collect()
}

#[test]
fn in_order_chunks_cut_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&cfg(dir.path())).unwrap();
    let lab = l(&[("__name__", "node_cpu_seconds_total"), ("cpu", "0")]);
    let mut want = Vec::new();
    // 1000 samples at 15 s: crosses several 2 h boundaries and many 120-sample cuts.
    let mut app = db.appender();
    let s = app.series(&lab).unwrap();
    for i in 0..1000i64 {
        let t = 1_700_000_000_000 + i * 15_000 + (i % 7);
        let v = match i {
            10 => f64::from_bits(STALE_NAN_BITS),
            11 => f64::from_bits(0x7ff8_dead_beef_0001),
            12 => -0.0,
            13 => f64::INFINITY,
            _ => i as f64 * 1.25,
        };
        app.append(&s, t, v);
        want.push((t, v));
    }
    let r = app.commit().unwrap();
    assert_eq!(r.appended, 1000);
    let got = all_samples(&db, &[eq("cpu", "0")]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, bits(&want));

    // A sub-range is exactly the samples inside it (both ends inclusive).
    let (a, b) = (want[200].0, want[777].0);
    let sel = db.querier(a, b).select(&[eq("cpu", "0")]).unwrap();
    assert_eq!(bits(&sel[0].samples().unwrap()), bits(&want[200..=777]));
    // A range with no samples selects no series.
    assert!(db
        .querier(0, 1000)
        .select(&[eq("cpu", "0")])
        .unwrap()
        .is_empty());

    // Iterators are reusable.
    let mut it = sel[0].iter();
    let first: Vec<_> = it.by_ref().take(3).collect();
    it.reset(&sel[0]);
    let again: Vec<_> = it.take(3).collect();
    assert_eq!(bits(&first), bits(&again));
    drop(sel);

    db.close().unwrap();
    drop(db);
    let db = Db::open(&cfg(dir.path())).unwrap();
    assert_eq!(db.replay_stats().samples, 1000);
    assert_eq!(all_samples(&db, &[eq("cpu", "0")])[0].1, bits(&want));
}

#[test]
fn out_of_order_window_duplicates_and_merge() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.out_of_order_window = PromDuration(std::time::Duration::from_secs(600));
    let db = Db::open(&c).unwrap();
    let lab = l(&[("__name__", "m")]);
    let base = 10_000_000;
    let mut app = db.appender();
    let s = app.series(&lab).unwrap();
    for i in 0..300 {
        app.append(&s, base + i * 2000, i as f64);
    }
    app.commit().unwrap();
    let newest = base + 299 * 2000;

    // Odd seconds in between, within the 10 min window, out of order, more than one
    // out-of-order chunk's worth.
    let mut app = db.appender();
    for i in (0..290).rev() {
        let t = base + i * 2000 + 1000;
        if t >= newest - 600_000 {
            app.append(&s, t, -(i as f64));
        }
    }
    let r = app.commit().unwrap();
    assert_eq!(r.appended, 290, "{r:?}");
    // Too old, exact duplicate (of an in-order and of an out-of-order sample), conflicts.
    let mut app = db.appender();
    app.append(&s, newest - 600_001, 1.0);
    app.append(&s, base + 298 * 2000, 298.0);
    app.append(&s, base + 288 * 2000 + 1000, -288.0);
    app.append(&s, base + 296 * 2000, 0.5);
    app.append(&s, base + 285 * 2000 + 1000, 0.5);
    app.append(&s, newest, 0.5);
    let r = app.commit().unwrap();
    assert_eq!(
        (r.appended, r.duplicates, r.too_old, r.duplicate_conflicts),
        (0, 2, 1, 3)
    );
    assert_eq!(r.rejections.len(), 4);
    assert_eq!(r.rejections[0].labels, lab);

    let got = all_samples(&db, &[eq("__name__", "m")]).remove(0).1;
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "not sorted/unique");
    let mut want = BTreeMap::new();
    for i in 0..300 {
        want.insert(base + i * 2000, (i as f64).to_bits());
    }
    for i in 0..290 {
        let t = base + i * 2000 + 1000;
        if t >= newest - 600_000 {
            want.insert(t, (-(i as f64)).to_bits());
        }
    }
    assert_eq!(got, want.clone().into_iter().collect::<Vec<_>>());
    db.close().unwrap();
    drop(db);
    let db = Db::open(&c).unwrap();
    let got = all_samples(&db, &[eq("__name__", "m")]).remove(0).1;
    assert_eq!(got, want.into_iter().collect::<Vec<_>>());
}

#[test]
fn label_names_and_values_respect_matchers_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&cfg(dir.path())).unwrap();
    let mut app = db.appender();
    app.add(
        &l(&[("__name__", "up"), ("job", "node"), ("instance", "a")]),
        1000,
        1.0,
    )
    .unwrap();
    app.add(
        &l(&[("__name__", "up"), ("job", "prom"), ("instance", "b")]),
        5000,
        1.0,
    )
    .unwrap();
    app.add(&l(&[("__name__", "temp"), ("sensor", "x")]), 9000, 20.0)
        .unwrap();
    app.commit().unwrap();
    let q = db.querier(i64::MIN, i64::MAX);
    assert_eq!(
        q.label_names(&[]),
        vec!["__name__", "instance", "job", "sensor"]
    );
    assert_eq!(q.label_values("__name__", &[]), vec!["temp", "up"]);
    assert_eq!(
        q.label_values("job", &[eq("__name__", "up")]),
        vec!["node", "prom"]
    );
    assert_eq!(
        q.label_names(&[eq("__name__", "temp")]),
        vec!["__name__", "sensor"]
    );
    let q = db.querier(4000, 6000);
    assert_eq!(q.label_values("job", &[]), vec!["prom"]);
    assert_eq!(q.label_names(&[]), vec!["__name__", "instance", "job"]);
    let re = Matcher::new(MatchOp::Regex, "job", "no.*").unwrap();
    assert_eq!(db.querier(0, 10_000).select(&[re]).unwrap().len(), 1);
    assert_eq!(db.num_series(), 3);
}

#[test]
fn concurrent_appenders_then_replay() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(&cfg(dir.path())).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                for b in 0..50i64 {
                    let mut app = db.appender();
                    // Every writer touches shared series and its own.
                    for s in 0..10 {
                        let shared = l(&[("__name__", "shared"), ("s", &s.to_string())]);
                        app.add(&shared, b * 1000 + w, (w * 1000 + b) as f64)
                            .unwrap();
                        let own = l(&[
                            ("__name__", "own"),
                            ("w", &w.to_string()),
                            ("s", &s.to_string()),
                        ]);
                        app.add(&own, b * 1000, b as f64).unwrap();
                    }
                    let r = app.commit().unwrap();
                    assert_eq!(r.rejected(), 0, "{r:?}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let before = all_samples(&db, &[]);
    assert_eq!(before.len(), 10 + 80);
    let total: usize = before.iter().map(|s| s.1.len()).sum();
    assert_eq!(total, 8 * 50 * 20);
    db.close().unwrap();
    drop(db);
    let db = Db::open(&cfg(dir.path())).unwrap();
    assert_eq!(all_samples(&db, &[]), before);
}

#[derive(Debug, Clone)]
struct Op {
    series: u8,
    dt: i64,
    value: u64,
}

/// The acceptance rules, restated independently of the engine.
#[derive(Default)]
struct Model {
    last: BTreeMap<u8, i64>,
    data: BTreeMap<u8, BTreeMap<i64, u64>>,
}

impl Model {
    fn apply(&mut self, s: u8, t: i64, v: u64, window: i64) {
        let last = self.last.get(&s).copied().unwrap_or(i64::MIN);
        let d = self.data.entry(s).or_default();
        if t > last {
            d.insert(t, v);
            self.last.insert(s, t);
        } else if d.contains_key(&t) || t < last.saturating_sub(window) {
        } else {
            d.insert(t, v);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn matches_model_before_and_after_replay(
        ops in proptest::collection::vec((0u8..4, -120_000i64..30_000, prop_oneof![any::<u64>(), Just(STALE_NAN_BITS), Just(0u64)]), 1..600),
        batch in 1usize..50,
    ) {
        let ops: Vec<Op> = ops.into_iter().map(|(series, dt, value)| Op { series, dt, value }).collect();
        let dir = tempfile::tempdir().unwrap();
        let window = 60_000;
        let mut c = cfg(dir.path());
        c.out_of_order_window = PromDuration(std::time::Duration::from_millis(window as u64));
        let db = Db::open(&c).unwrap();
        let mut model = Model::default();
        let mut clock = 1_000_000i64;
        for chunk in ops.chunks(batch) {
            let mut app = db.appender();
            for op in chunk {
                clock += op.dt.max(0) / 4;
                let t = clock + op.dt.min(0);
                let lab = l(&[("__name__", "p"), ("s", &op.series.to_string())]);
                app.add(&lab, t, f64::from_bits(op.value)).unwrap();
                model.apply(op.series, t, op.value, window);
            }
            app.commit().unwrap();
        }
        let want: Vec<(Labels, Vec<(i64, u64)>)> = model
            .data
            .iter()
            .filter(|(_, d)| !d.is_empty())
            .map(|(s, d)| (l(&[("__name__", "p"), ("s", &s.to_string())]), d.iter().map(|(&t, &v)| (t, v)).collect()))
            .collect();
        prop_assert_eq!(&all_samples(&db, &[]), &want);
        db.close().unwrap();
        drop(db);
        let db = Db::open(&c).unwrap();
        prop_assert_eq!(&all_samples(&db, &[]), &want);
    }
}
