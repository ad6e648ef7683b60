//! Restart with a big head and blocks on disk: with ≥ 100 k series in the head and 3 blocks,
//! the real binary is ready within seconds (blocks are opened by their header and TOC only;
//! the WAL replay reads the checkpoint and the segments after it), after a clean stop and
//! after `kill -9`. Prints the measured times; asserts only a generous bound.

mod common;

use std::time::{Duration, Instant};

use common::blocks::{append_ok, disk_blocks, export, series_json, write_config, H, T0};
use common::{urlencode, Hearth};
use serde_json::Value;

const HEAD_SERIES: u64 = 100_000;
const OLD_SERIES: u64 = 200;
const STEP: i64 = 60_000;
/// Generous: a loaded CI machine with a debug build; the goal is "a few seconds".
const READY_BOUND: Duration = Duration::from_secs(30);

fn old_value(s: u64, t: i64) -> f64 {
    ((t - T0) / STEP) as f64 * 0.5 + s as f64
}

/// Restarts (`kill9` or SIGTERM first), returns the time from spawn to `/-/ready`.
fn restart(h: &mut Hearth, kill9: bool, dir: &std::path::Path, cfg: &str) -> Duration {
    if kill9 {
        h.kill9();
    } else {
        assert!(h.terminate().success(), "{}", h.log_text());
    }
    let t = Instant::now();
    *h = Hearth::spawn(dir, &["--config", cfg]);
    h.wait_ready(Duration::from_secs(120));
    t.elapsed()
}

/// Blocks, head series and data are all there after a restart.
fn check(h: &Hearth) {
    assert_eq!(
        h.metric("hearth_tsdb_blocks"),
        Some(3.0),
        "{}",
        h.log_text()
    );
    let head = h.metric("hearth_tsdb_head_series").unwrap();
    assert!(
        head >= (HEAD_SERIES + OLD_SERIES) as f64,
        "head has {head} series"
    );
    // A block's range, bit-exact.
    let got = export(
        &h.addr,
        "__name__=old",
        Some(T0 + 6 * H),
        Some(T0 + 8 * H - 1),
    )
    .unwrap();
    assert_eq!(got.len() as u64, OLD_SERIES);
    for s in &got {
        let sid: u64 = s.labels["s"].parse().unwrap();
        assert_eq!(s.samples.len() as i64, 2 * H / STEP);
        for &(t, bits) in &s.samples {
            assert_eq!(bits, old_value(sid, t).to_bits(), "old series {sid} at {t}");
        }
    }
    // The head through the query API.
    let q = format!(
        "/api/v1/query?query={}&time={}",
        urlencode("count(hs)"),
        (T0 + 11 * H) / 1000
    );
    let (st, body) = h.get(&q);
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["data"]["result"][0]["value"][1].as_str(),
        Some(HEAD_SERIES.to_string().as_str()),
        "{body}"
    );
}

#[test]
fn ready_within_seconds_with_100k_head_series_and_3_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let cfg = write_config(&tmp.path().join("hearth.yml"), "");
    let mut h = Hearth::start(&dir, &["--config", &cfg]);

    // 200 series from 4 h to 11.5 h: blocks [4,6), [6,8), [8,10) once the head reaches 11 h
    // (a range is cut an hour after its end). Nothing compacts: the 6 h window [6,12) is not
    // over, and [4,6) is alone in [0,6).
    let t = Instant::now();
    for hour in 4..12 {
        let series = (0..OLD_SERIES)
            .map(|s| {
                let from = T0 + hour * H;
                let to = (T0 + hour * H + H).min(T0 + 11 * H + H / 2 + 1);
                let id = s.to_string();
                series_json(
                    &[("__name__", "old"), ("s", &id)],
                    (from..to)
                        .step_by(STEP as usize)
                        .map(|t| (t, old_value(s, t))),
                )
            })
            .collect();
        append_ok(&h.addr, series);
    }
    // 100 k head series, two samples each (at 11 h and 11.5 h).
    for chunk in 0..HEAD_SERIES / 5000 {
        let series = (chunk * 5000..(chunk + 1) * 5000)
            .map(|s| {
                let id = s.to_string();
                series_json(
                    &[
                        ("__name__", "hs"),
                        ("instance", &format!("host-{}", s % 500)),
                        ("s", &id),
                    ],
                    [
                        (T0 + 11 * H, s as f64),
                        (T0 + 11 * H + H / 2, s as f64 + 1.0),
                    ]
                    .into_iter(),
                )
            })
            .collect();
        append_ok(&h.addr, series);
    }
    eprintln!("ingest took {:?}", t.elapsed());

    // The start-up maintenance run cuts the three blocks (and checkpoints the WAL).
    let first = restart(&mut h, true, &dir, &cfg);
    let deadline = Instant::now() + Duration::from_secs(120);
    while disk_blocks(&dir).len() < 3 || h.metric("hearth_tsdb_blocks") != Some(3.0) {
        assert!(
            Instant::now() < deadline,
            "blocks not cut:\n{}",
            h.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let blocks = disk_blocks(&dir);
    assert_eq!(
        blocks
            .iter()
            .map(|b| ((b.min_time - T0) / H, (b.max_time - T0) / H))
            .collect::<Vec<_>>(),
        vec![(4, 6), (6, 8), (8, 10)]
    );
    // Let the checkpoint land (it follows the last cut).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !h.log_text().contains("max_time=1700128800000") {
        assert!(Instant::now() < deadline, "{}", h.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    check(&h);

    let clean = restart(&mut h, false, &dir, &cfg);
    check(&h);
    let crashed = restart(&mut h, true, &dir, &cfg);
    check(&h);
    eprintln!(
        "ready after restart with {HEAD_SERIES} head series + {OLD_SERIES} and 3 blocks: \
         {clean:?} after SIGTERM, {crashed:?} after kill -9 (first restart, before the blocks \
         were cut: {first:?})"
    );
    for (what, d) in [("SIGTERM", clean), ("kill -9", crashed)] {
        assert!(
            d < READY_BOUND,
            "not ready within {READY_BOUND:?} after {what}: {d:?}"
        );
    }
}
