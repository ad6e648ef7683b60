//! `Db::snapshot`: a snapshot opened as a database serves exactly what the source served when
//! it was taken (blocks, head, out-of-order samples, tombstones, stale markers; bit-exact),
//! shares the blocks' files through hard links, survives the source compacting and deleting
//! those blocks, and is consistent while maintenance runs.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{Data, H, STEP};
use hearth_tsdb::{Db, Labels, MatchOp, Matcher, StorageConfig, TsdbError};

fn cfg(dir: &Path) -> StorageConfig {
    common::cfg(dir, Duration::from_secs(30 * 86400))
}

fn read_all(db: &Db) -> Data {
    common::read_all(db, i64::MIN, i64::MAX)
}

fn series() -> Vec<Labels> {
    (0..4)
        .map(|i| Labels::new([("__name__", "m".to_string()), ("i", i.to_string())]).unwrap())
        .collect()
}

/// Appends `[from, to)` for every series (a stale marker now and then, a NaN that is not
/// one, -0.0, jitter), recording it in `want`; runs maintenance every hour when `maintain`.
fn fill(db: &Db, want: &mut Data, from: i64, to: i64, maintain: bool) {
    let series = series();
    let mut t = from;
    while t < to {
        let mut app = db.appender();
        for (i, l) in series.iter().enumerate() {
            let v = match (t / STEP) % 53 {
                0 => f64::from_bits(hearth_tsdb::STALE_NAN_BITS),
                1 => f64::from_bits(0x7ff8_0000_0000_0001),
                2 => -0.0,
                n => n as f64 * 0.1 * (i + 1) as f64,
            };
            let ts = t + i as i64 * 7;
            app.add(l, ts, v).unwrap();
            want.entry(l.to_string())
                .or_default()
                .push((ts, v.to_bits()));
        }
        app.commit().unwrap();
        if maintain && t % H == 0 {
            db.maintain().unwrap();
        }
        t += STEP;
    }
}

/// Deletes `[a, b]` of series `i` from `db` and from `want`.
fn delete(db: &Db, want: &mut Data, i: usize, a: i64, b: i64) {
    let m = Matcher::new(MatchOp::Equal, "i", i.to_string()).unwrap();
    assert!(db.delete_series(&[vec![m]], a, b).unwrap() >= 1);
    let l = series()[i].to_string();
    want.get_mut(&l).unwrap().retain(|p| p.0 < a || p.0 > b);
}

/// Adds one out-of-order sample to series 0 (must be accepted).
fn add_ooo(db: &Db, want: &mut Data, t: i64, v: f64) {
    let mut app = db.appender();
    app.add(&series()[0], t, v).unwrap();
    assert_eq!(app.commit().unwrap().appended, 1);
    let w = want.get_mut(&series()[0].to_string()).unwrap();
    w.push((t, v.to_bits()));
    w.sort();
}

fn open_snapshot(path: &Path) -> Db {
    let snap_dir = path
        .parent()
        .unwrap()
        .join("opened")
        .join(path.file_name().unwrap());
    // Open a copy: opening creates wal/, chunks_head/ and lock in the directory, and the
    // test looks at the snapshot as written too.
    copy_tree(path, &snap_dir);
    Db::open(&cfg(&snap_dir)).unwrap()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out.sort();
    out
}

fn inode(p: &Path) -> (u64, u64) {
    let m = std::fs::metadata(p).unwrap();
    (m.dev(), m.ino())
}

#[test]
fn snapshot_serves_blocks_head_ooo_and_tombstones_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = Db::open(&cfg(&data)).unwrap();
    let mut want = Data::new();
    // 10 h: [0, 8h) persisted (2 h blocks, the first 6 h compacted), [8h, 10h) in the head.
    fill(&db, &mut want, 0, 10 * H, true);
    db.maintain().unwrap();
    let blocks = db.blocks();
    assert!(blocks.iter().any(|b| b.level > 1), "{blocks:?}");
    assert_eq!(blocks.last().unwrap().max_time, 8 * H, "{blocks:?}");
    // Out-of-order samples in the head, one of them a stale marker; tombstones in a block
    // and in the head.
    add_ooo(&db, &mut want, 9 * H + 30, 42.0);
    add_ooo(
        &db,
        &mut want,
        9 * H + 90,
        f64::from_bits(hearth_tsdb::STALE_NAN_BITS),
    );
    delete(&db, &mut want, 1, H, H + 30 * STEP);
    delete(&db, &mut want, 2, 9 * H, 9 * H + 10 * STEP);
    assert_eq!(read_all(&db), want);

    let full = db.snapshot("full", true).unwrap();
    assert_eq!(full.path, data.join("snapshots").join("full"));
    assert_eq!(full.blocks_linked, blocks.len());
    assert_eq!(full.files_copied, 0);
    // The head [8h, 10h) touches one 2 h range.
    assert_eq!(full.head_blocks, 1);
    let no_head = db.snapshot("no-head", false).unwrap();
    assert_eq!(
        (no_head.blocks_linked, no_head.head_blocks),
        (blocks.len(), 0)
    );
    assert_eq!(read_all(&db), want, "the source is unchanged");

    // Every file of every live block is hard-linked into the snapshot, nothing else there.
    for b in &blocks {
        let live = data.join("blocks").join(&b.id);
        let snap = full.path.join("blocks").join(&b.id);
        let live_files = files_under(&live);
        assert!(live_files.iter().any(|f| f.ends_with("tombstones")) || b.min_time > H);
        for f in &live_files {
            let rel = f.strip_prefix(&live).unwrap();
            assert_eq!(inode(f), inode(&snap.join(rel)), "{}", rel.display());
        }
        assert_eq!(files_under(&snap).len(), live_files.len());
    }
    let names: Vec<String> = std::fs::read_dir(full.path.join("blocks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), blocks.len() + 1, "{names:?}");
    assert!(!full.path.join("wal").exists() && !full.path.join("lock").exists());

    // Names: taken, invalid.
    assert!(matches!(
        db.snapshot("full", true),
        Err(TsdbError::Io { .. })
    ));
    for bad in ["", ".x", "a/b", "x.tmp"] {
        assert!(db.snapshot(bad, true).is_err(), "{bad:?}");
    }

    // The source moves on: more data, block cuts, compaction deleting the linked blocks.
    let mut later = want.clone();
    fill(&db, &mut later, 10 * H, 26 * H, true);
    db.maintain().unwrap();
    for b in &blocks {
        assert!(
            !data.join("blocks").join(&b.id).exists(),
            "block {} was merged away",
            b.id
        );
    }
    assert_eq!(read_all(&db), later);

    let snap = open_snapshot(&full.path);
    assert_eq!(read_all(&snap), want, "snapshot with head");
    let snap_blocks = snap.blocks();
    for w in snap_blocks.windows(2) {
        assert!(w[0].max_time <= w[1].min_time, "overlap: {snap_blocks:?}");
    }
    // The last block ends just after the newest sample, so the restored server accepts
    // samples right after it.
    assert_eq!(
        snap_blocks.last().unwrap().max_time,
        10 * H - STEP + 3 * 7 + 1
    );
    assert_eq!(snap.num_series(), 0, "all data is in blocks");

    let snap = open_snapshot(&no_head.path);
    let persisted: Data = want
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.iter().copied().filter(|p| p.0 < 8 * H).collect(),
            )
        })
        .collect();
    assert_eq!(read_all(&snap), persisted, "snapshot without head");
}

#[test]
fn snapshot_of_a_head_spanning_ranges_and_an_empty_db() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = Db::open(&cfg(&data)).unwrap();
    let empty = db.snapshot("empty", true).unwrap();
    assert_eq!((empty.blocks_linked, empty.head_blocks), (0, 0));
    assert!(read_all(&open_snapshot(&empty.path)).is_empty());

    // No maintenance: the head holds [1h, 6h30m), three 2 h ranges (partly).
    let mut want = Data::new();
    fill(&db, &mut want, H, 6 * H + 30 * STEP, false);
    let s = db.snapshot("head", true).unwrap();
    assert_eq!((s.blocks_linked, s.head_blocks), (0, 4));
    let snap = open_snapshot(&s.path);
    assert_eq!(read_all(&snap), want);
    let ranges: Vec<(i64, i64)> = snap
        .blocks()
        .iter()
        .map(|b| (b.min_time, b.max_time))
        .collect();
    assert_eq!(
        ranges,
        vec![
            (H, 2 * H),
            (2 * H, 4 * H),
            (4 * H, 6 * H),
            (6 * H, 6 * H + 29 * STEP + 3 * 7 + 1)
        ]
    );
}

#[test]
fn interrupted_snapshot_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let half = data
        .join("snapshots")
        .join("20240101T000000Z-0123456789abcdef.tmp");
    std::fs::create_dir_all(half.join("blocks")).unwrap();
    let done = data
        .join("snapshots")
        .join("20240101T000000Z-0123456789abcdee");
    std::fs::create_dir_all(done.join("blocks")).unwrap();
    let db = Db::open(&cfg(&data)).unwrap();
    assert!(!half.exists());
    assert!(done.exists(), "finished snapshots are the user's");
    assert!(
        db.blocks().is_empty(),
        "snapshots are never opened as blocks"
    );
}

#[test]
fn snapshot_is_consistent_while_maintenance_runs() {
    for round in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let db = Arc::new(Db::open(&cfg(&data)).unwrap());
        let mut want = Data::new();
        // 14 h without maintenance: the next run cuts five blocks and compacts them.
        fill(&db, &mut want, 0, 14 * H, false);
        delete(&db, &mut want, 3, 3 * H, 5 * H);
        let m = {
            let db = db.clone();
            std::thread::spawn(move || db.maintain().unwrap())
        };
        if round % 2 == 1 {
            std::thread::sleep(Duration::from_millis(5 * round));
        }
        let s = db.snapshot(&format!("s{round}"), true).unwrap();
        let report = m.join().unwrap();
        assert!(!report.head_blocks.is_empty());
        assert_eq!(read_all(&db), want);
        let snap = open_snapshot(&s.path);
        assert_eq!(read_all(&snap), want, "round {round}: {s:?}");
    }
}
