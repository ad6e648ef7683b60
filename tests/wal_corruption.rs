//! Damaged WAL segments: the real binary still starts, reports each damaged region (log line
//! with segment and offset, and a metric), truncates a torn tail, and replays everything else.

mod common;

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use common::Hearth;
use serde_json::Value;

const BATCHES: u64 = 60;

fn batch(b: u64) -> String {
    let series: Vec<Value> = (0..20)
        .map(|s| {
            let samples: Vec<Value> = (0..10)
                .map(|i| serde_json::json!([b * 100_000 + i * 1000, format!("{}", b * 1000 + s)]))
                .collect();
            serde_json::json!({"labels": {"__name__": "c", "b": b.to_string(), "s": s.to_string()}, "samples": samples})
        })
        .collect();
    serde_json::json!({ "series": series }).to_string()
}

fn present_batches(h: &Hearth) -> BTreeSet<u64> {
    let (st, resp) = h.get("/api/v1/tsdb/test/export?match=__name__=c");
    assert_eq!(st, 200, "{resp}");
    let v: Value = serde_json::from_str(&resp).unwrap();
    let mut out = BTreeSet::new();
    for s in v["data"].as_array().unwrap() {
        if s["samples"].as_array().unwrap().len() == 10 {
            out.insert(s["labels"]["b"].as_str().unwrap().parse().unwrap());
        }
    }
    out
}

#[test]
fn damaged_segments_are_reported_and_the_rest_replays() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let cfg = tmp.path().join("hearth.yml");
    std::fs::write(&cfg, "storage:\n  wal_segment_size: 8192\n").unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    let mut h = Hearth::start(&dir, &["--config", &cfg]);
    for b in 0..BATCHES {
        let (st, resp) = h.post("/api/v1/tsdb/test/append", &batch(b));
        assert_eq!(st, 200, "{resp}");
    }
    assert!(h.terminate().success());
    drop(h);

    let wal = dir.join("wal");
    let mut segs: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).unwrap().len() > 64)
        .collect();
    segs.sort();
    assert!(segs.len() >= 6, "want several segments, got {segs:?}");

    // 1. Flip bytes in the middle of an early segment.
    let mid = &segs[2];
    let len = std::fs::metadata(mid).unwrap().len();
    let f = OpenOptions::new().read(true).write(true).open(mid).unwrap();
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, len / 2).unwrap();
    f.write_all_at(&[!b[0], !b[1], !b[2], !b[3]], len / 2)
        .unwrap();
    // 2. Destroy the header (magic) of another segment.
    let bad_header = &segs[4];
    OpenOptions::new()
        .write(true)
        .open(bad_header)
        .unwrap()
        .write_all_at(b"XXXX", 0)
        .unwrap();
    // 3. Tear the tail of the last segment mid-record.
    let last = segs.last().unwrap();
    let last_len = std::fs::metadata(last).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(last_len - 7)
        .unwrap();

    let h = Hearth::start(&dir, &["--config", &cfg]);
    assert_eq!(h.get("/-/ready").0, 200);
    let corrupt = h
        .metric("hearth_tsdb_wal_corruptions_total{kind=\"corrupt\"}")
        .unwrap();
    let torn = h
        .metric("hearth_tsdb_wal_corruptions_total{kind=\"torn_tail\"}")
        .unwrap();
    assert!(corrupt >= 2.0, "corrupt regions reported: {corrupt}");
    assert_eq!(torn, 1.0);
    let log = h.log_text();
    assert!(log.contains("WAL corruption"), "{log}");
    let mid_name = mid.file_name().unwrap().to_str().unwrap();
    assert!(
        log.contains(mid_name),
        "log does not name segment {mid_name}:\n{log}"
    );
    assert!(log.contains("torn tail"), "{log}");
    // The torn tail was truncated to the last whole record.
    assert!(std::fs::metadata(last).unwrap().len() < last_len - 7);

    let present = present_batches(&h);
    let missing: Vec<u64> = (0..BATCHES).filter(|b| !present.contains(b)).collect();
    // Lost: the torn last batch, what the flipped bytes hit, and the segment with no header.
    assert!(present.contains(&0), "first batch lost");
    assert!(
        present.contains(&(BATCHES - 2)),
        "batch before the torn one lost"
    );
    assert!(
        missing.contains(&(BATCHES - 1)),
        "torn batch should be gone"
    );
    assert!(missing.len() <= 12, "too much lost: {missing:?}");

    // And it keeps working: new appends land and survive another restart.
    let (st, _) = h.post("/api/v1/tsdb/test/append", &batch(1000));
    assert_eq!(st, 200);
    drop(h);
    let h = Hearth::start(&dir, &["--config", &cfg]);
    assert!(present_batches(&h).contains(&1000));
}
