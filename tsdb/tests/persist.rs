//! Head → blocks → compaction → retention, through the public API, with every sample checked
//! bit-exact before and after restarts.

mod common;

use std::time::Duration;

use common::{cfg, read_all, Data, H, STEP};
use hearth_tsdb::{Db, Labels};

fn expected(want: &Data, mint: i64, maxt: i64) -> Data {
    want.iter()
        .map(|(k, v)| {
            let v: Vec<_> = v
                .iter()
                .copied()
                .filter(|p| p.0 >= mint && p.0 <= maxt)
                .collect();
            (k.clone(), v)
        })
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

#[test]
fn head_ranges_become_blocks_that_compact_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let series: Vec<Labels> = (0..5)
        .map(|i| Labels::new([("__name__", "m_total".to_string()), ("i", i.to_string())]).unwrap())
        .collect();
    let mut want = Data::new();
    let end = 14 * H;
    {
        let db = Db::open(&cfg(dir.path(), Duration::from_secs(30 * 86400))).unwrap();
        let mut t = 0;
        while t < end {
            let mut app = db.appender();
            for (i, l) in series.iter().enumerate() {
                // Series 4 stops at 3h (its data must survive truncation in a block).
                if i == 4 && t >= 3 * H {
                    continue;
                }
                // Counters with float increments, a stale marker now and then, jitter.
                let v = if t % (97 * STEP) == 0 {
                    f64::from_bits(hearth_tsdb::STALE_NAN_BITS)
                } else {
                    (t / STEP) as f64 * 0.1 * (i + 1) as f64
                };
                let ts = t + i as i64 * 7;
                app.add(l, ts, v).unwrap();
                want.entry(l.to_string())
                    .or_default()
                    .push((ts, v.to_bits()));
            }
            app.commit().unwrap();
            if t % H == 0 {
                db.maintain().unwrap();
                assert_eq!(read_all(&db, i64::MIN, i64::MAX), want, "at t={t}");
            }
            t += STEP;
        }
        // An out-of-order sample inside the window lands in the head and is kept.
        let mut app = db.appender();
        app.add(&series[0], end - 30 * 60_000 + 1, 42.0).unwrap();
        assert_eq!(app.commit().unwrap().appended, 1);
        let v = want.get_mut(&series[0].to_string()).unwrap();
        v.push((end - 30 * 60_000 + 1, 42f64.to_bits()));
        v.sort();
        let report = db.maintain().unwrap();
        let _ = report;
        let blocks = db.blocks();
        assert!(!blocks.is_empty());
        // 14h of data, 1h grace: [0, 12h) is persisted, compacted beyond level 1.
        assert_eq!(blocks.last().unwrap().max_time, 12 * H, "{blocks:?}");
        assert!(blocks.iter().any(|b| b.level > 1), "{blocks:?}");
        for w in blocks.windows(2) {
            assert!(w[0].max_time <= w[1].min_time, "overlap: {blocks:?}");
        }
        assert_eq!(read_all(&db, i64::MIN, i64::MAX), want);
        // Ranges crossing block and head boundaries.
        for (a, b) in [
            (H + 1, 7 * H - 1),
            (5 * H, 13 * H),
            (12 * H - 5, 12 * H + 5),
        ] {
            assert_eq!(read_all(&db, a, b), expected(&want, a, b), "[{a}, {b}]");
        }
        let names = db.querier(0, H).label_values("i", &[]);
        assert_eq!(names, vec!["0", "1", "2", "3", "4"]);
        db.close().unwrap();
    }
    // Restart: blocks are loaded, the WAL replays only the head's part.
    {
        let db = Db::open(&cfg(dir.path(), Duration::from_secs(30 * 86400))).unwrap();
        assert_eq!(read_all(&db, i64::MIN, i64::MAX), want);
        assert!(
            db.replay_stats().samples < 4 * 60 * 5,
            "{:?}",
            db.replay_stats()
        );
        // Data before the newest block's end is refused.
        let mut app = db.appender();
        app.add(&series[0], 11 * H, 1.0).unwrap();
        assert_eq!(app.commit().unwrap().too_old, 1);
        db.close().unwrap();
    }
    // Retention of 5h (from the newest sample at ~14h): blocks ending at or before 9h go.
    {
        let db = Db::open(&cfg(dir.path(), Duration::from_secs(5 * 3600))).unwrap();
        let report = db.maintain().unwrap();
        assert!(!report.deleted.is_empty(), "{report:?}");
        let first = db.blocks()[0].min_time;
        assert!(first > 0);
        let got = read_all(&db, i64::MIN, i64::MAX);
        assert_eq!(got, expected(&want, first, i64::MAX));
        db.close().unwrap();
    }
}

#[test]
fn deleted_series_stay_deleted_through_cut_compaction_and_restart() {
    use hearth_tsdb::{MatchOp, Matcher};
    let dir = tempfile::tempdir().unwrap();
    let a = Labels::new([("__name__", "a")]).unwrap();
    let b = Labels::new([("__name__", "b")]).unwrap();
    let mut want = Data::new();
    let push = |db: &Db, want: &mut Data, from: i64, to: i64| {
        let mut t = from;
        while t < to {
            let mut app = db.appender();
            for l in [&a, &b] {
                app.add(l, t, t as f64).unwrap();
                want.entry(l.to_string())
                    .or_default()
                    .push((t, (t as f64).to_bits()));
            }
            app.commit().unwrap();
            t += STEP;
        }
    };
    let del_a = vec![vec![Matcher::new(MatchOp::Equal, "__name__", "a").unwrap()]];
    let a_key = a.to_string();
    let forget = |want: &mut Data, x: i64, y: i64| {
        let v = want.get_mut(&a_key).unwrap();
        v.retain(|p| p.0 < x || p.0 > y);
    };
    {
        let db = Db::open(&cfg(dir.path(), Duration::from_secs(30 * 86400))).unwrap();
        push(&db, &mut want, 0, 9 * H);
        db.maintain().unwrap();
        assert!(!db.blocks().is_empty());
        // Across a block (persisted) and the head.
        assert!(db.delete_series(&del_a, 3 * H, 7 * H).unwrap() >= 2);
        forget(&mut want, 3 * H, 7 * H);
        assert_eq!(read_all(&db, i64::MIN, i64::MAX), want);
        db.close().unwrap();
    }
    {
        // Replayed from the WAL (head) and the tombstones file (blocks).
        let db = Db::open(&cfg(dir.path(), Duration::from_secs(30 * 86400))).unwrap();
        assert_eq!(read_all(&db, i64::MIN, i64::MAX), want);
        // More data: the head range holding deleted samples is cut, blocks compact.
        push(&db, &mut want, 9 * H, 20 * H);
        db.maintain().unwrap();
        assert!(db.blocks().iter().any(|m| m.level > 1));
        assert_eq!(read_all(&db, i64::MIN, i64::MAX), want);
        db.close().unwrap();
    }
    let db = Db::open(&cfg(dir.path(), Duration::from_secs(30 * 86400))).unwrap();
    assert_eq!(read_all(&db, i64::MIN, i64::MAX), want);
}
