//! Crash safety of the real binary: `kill -9` at random points while several clients append,
//! many times over one data directory; then every acknowledged sample must be there, and no
//! batch may be half-visible.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{http, Hearth};
use rand::{Rng, SeedableRng};
use serde_json::Value;

const WRITERS: u64 = 4;
const SERIES_PER_WRITER: u64 = 8;
const SAMPLES_PER_SERIES: u64 = 5;

/// The value stored for (writer, series, t): exact and checkable.
fn value(w: u64, s: u64, t: i64) -> f64 {
    (t as f64) * 0.25 + (w * 100 + s) as f64
}

/// Batch `b` of writer `w` in round `r`: a timestamp range owned by that batch alone.
fn batch_ts(round: u64, b: u64) -> i64 {
    ((round * 1_000_000 + b) * SAMPLES_PER_SERIES * 1000) as i64
}

fn batch_body(w: u64, round: u64, b: u64) -> String {
    let base = batch_ts(round, b);
    let series: Vec<Value> = (0..SERIES_PER_WRITER)
        .map(|s| {
            let samples: Vec<Value> = (0..SAMPLES_PER_SERIES as i64)
                .map(|i| {
                    let t = base + i * 1000;
                    serde_json::json!([t, format!("0x{:016x}", value(w, s, t).to_bits())])
                })
                .collect();
            serde_json::json!({"labels": {"__name__": "crash", "w": w.to_string(), "s": s.to_string()}, "samples": samples})
        })
        .collect();
    serde_json::json!({ "series": series }).to_string()
}

#[test]
fn kill9_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let seed: u64 = std::env::var("HEARTH_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("crash test seed {seed} (set HEARTH_CRASH_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // (writer, round, batch) acknowledged with 200.
    let acked: Arc<Mutex<BTreeSet<(u64, u64, u64)>>> = Arc::default();
    let rounds = 12;
    // Rounds are ~58 days apart in sample time: keep them all (the default 30d retention
    // would legitimately delete the older rounds' blocks). No scrape jobs: only the writers
    // add samples.
    let cfg = tmp.path().join("hearth.yml");
    std::fs::write(
        &cfg,
        "scrape_configs: []\nstorage:\n  retention:\n    time: 100y\n",
    )
    .unwrap();
    let args = ["--config", cfg.to_str().unwrap()];
    for round in 0..rounds {
        let mut h = Hearth::start(&dir, &args);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for w in 0..WRITERS {
            let (addr, stop, acked) = (h.addr.clone(), stop.clone(), acked.clone());
            threads.push(std::thread::spawn(move || {
                let mut b = 0;
                while !stop.load(Ordering::Relaxed) {
                    match http(
                        &addr,
                        "POST",
                        "/api/v1/tsdb/test/append",
                        &batch_body(w, round, b),
                    ) {
                        Ok((200, _)) => {
                            acked.lock().unwrap().insert((w, round, b));
                        }
                        Ok((st, body)) => panic!("append answered {st}: {body}"),
                        Err(_) => break, // killed mid-request: unacknowledged
                    }
                    b += 1;
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(30..400)));
        h.kill9();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
    }

    let h = Hearth::start(&dir, &args);
    let (st, resp) = h.get("/api/v1/tsdb/test/export?match=__name__=crash");
    assert_eq!(st, 200);
    let v: Value = serde_json::from_str(&resp).unwrap();
    // (writer, round, batch) -> number of samples present.
    let mut present: BTreeMap<(u64, u64, u64), u64> = BTreeMap::new();
    for s in v["data"].as_array().unwrap() {
        let w: u64 = s["labels"]["w"].as_str().unwrap().parse().unwrap();
        let sid: u64 = s["labels"]["s"].as_str().unwrap().parse().unwrap();
        for sample in s["samples"].as_array().unwrap() {
            let t = sample[0].as_i64().unwrap();
            let bits = u64::from_str_radix(&sample[1].as_str().unwrap()[2..], 16).unwrap();
            assert_eq!(
                bits,
                value(w, sid, t).to_bits(),
                "wrong value at w={w} s={sid} t={t}"
            );
            let per_batch = (SAMPLES_PER_SERIES * 1000) as i64;
            let b_all = (t / per_batch) as u64;
            let key = (w, b_all / 1_000_000, b_all % 1_000_000);
            *present.entry(key).or_default() += 1;
        }
    }
    let acked = acked.lock().unwrap();
    assert!(
        acked.len() > 50,
        "only {} batches acknowledged",
        acked.len()
    );
    let full = SERIES_PER_WRITER * SAMPLES_PER_SERIES;
    for k in acked.iter() {
        assert_eq!(
            present.get(k).copied(),
            Some(full),
            "acknowledged batch {k:?} incomplete (seed {seed})"
        );
    }
    for (k, n) in &present {
        assert_eq!(
            *n, full,
            "batch {k:?} half-visible: {n} of {full} samples (seed {seed})"
        );
    }
    let unacked_present = present.len() - acked.len();
    eprintln!(
        "{} batches acknowledged, {} present, {} in flight at a kill and durable anyway",
        acked.len(),
        present.len(),
        unacked_present
    );
}
