//! Crash safety of block maintenance with the real binary: `kill -9` while head ranges are
//! written as blocks, while blocks are compacted and while retention deletes them, many times
//! over one data directory, with a client appending newer data meanwhile. After a last restart
//! and settled maintenance: every acknowledged sample is there once, bit-exact, except whole
//! blocks past retention; no `*.tmp` / `*.deleted` leftovers; no overlapping blocks; nothing
//! quarantined.
//!
//! `HEARTH_BLOCK_CRASH_SEED=<n>` replays a run's kill points (as far as timing allows).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::blocks::{
    append, disk_blocks, export, leftover_dirs, metric_in, series_json, write_config, H, T0,
};
use common::{http, Hearth};
use rand::{Rng, SeedableRng};

const SERIES: u64 = 300;
const STEP: i64 = 60_000;
/// Each batch holds every series over this much time (disjoint per batch).
const BATCH_MS: i64 = 30 * 60_000;
const SAMPLES_PER_BATCH: i64 = BATCH_MS / STEP;
/// Batches the first round appends (20 h) before any kill.
const INITIAL_BATCHES: u64 = 40;
/// Batches appended per crash round at most (2 h).
const ROUND_BATCHES: u64 = 4;
const RETENTION: i64 = 6 * H;
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// The value stored for series `s` at `t`: exact, checkable, and a mix of what the block
/// encodings special-case (constants, decimal counters, stale markers, -0.0, ±Inf, subnormals).
fn value(s: u64, t: i64) -> f64 {
    let i = (t - T0) / STEP;
    match s % 6 {
        0 => 42.0,
        1 => i as f64 * 0.25 + s as f64,
        2 if i % 97 == 0 => f64::from_bits(STALE_NAN),
        2 => (i % 13) as f64,
        3 => ((i * 2_654_435_761) % 1_000_003) as f64 / 7.0,
        4 if i % 50 == 0 => -0.0,
        4 if i % 51 == 0 => f64::INFINITY,
        4 => 1e-310 * i as f64,
        _ => i as f64 + s as f64 * 1000.0,
    }
}

fn batch_series(b: u64) -> Vec<serde_json::Value> {
    let start = T0 + b as i64 * BATCH_MS;
    (0..SERIES)
        .map(|s| {
            let id = s.to_string();
            series_json(
                &[
                    ("__name__", "bc"),
                    ("s", &id),
                    ("kind", &(s % 6).to_string()),
                ],
                (0..SAMPLES_PER_BATCH).map(|k| {
                    let t = start + k * STEP;
                    (t, value(s, t))
                }),
            )
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    /// Append the initial data, no kill during maintenance.
    Setup,
    BlockWrite,
    Compaction,
    Retention,
}

/// What the monitor sees while maintenance runs.
#[derive(Debug, Default, Clone)]
struct Obs {
    /// Storage open (WAL replayed): `hearth_ready` on `/metrics`.
    ready: bool,
    cuts: u64,
    compactions: u64,
    retention_deletes: usize,
    tmp: bool,
    deleted: bool,
    /// A compacted block and one of its (fully covered) sources both on disk.
    merged_with_source: bool,
    checkpoint_tmp: bool,
}

/// The disk side: a few directory listings and meta.json files (cheap, polled often).
fn observe_disk(dir: &Path, o: &mut Obs, seen_deleted: &mut BTreeSet<String>) {
    o.tmp = false;
    o.deleted = false;
    for n in leftover_dirs(dir) {
        o.tmp |= n.ends_with(".tmp");
        if n.ends_with(".deleted") {
            o.deleted = true;
            seen_deleted.insert(n);
        }
    }
    let blocks = disk_blocks(dir);
    o.merged_with_source = blocks.iter().any(|m| {
        blocks.iter().any(|p| {
            p.id != m.id && p.level < m.level && p.sources.iter().all(|s| m.sources.contains(s))
        })
    });
    o.checkpoint_tmp = std::fs::read_dir(dir.join("wal")).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
    });
}

/// The counters: `/metrics` and the log.
fn observe_counters(h: &Hearth, o: &mut Obs) {
    if let Ok((200, body)) = http(&h.addr, "GET", "/metrics", "") {
        o.cuts = metric_in(&body, "hearth_tsdb_head_blocks_written_total").unwrap_or(0.0) as u64;
        o.compactions = metric_in(&body, "hearth_tsdb_compactions_total").unwrap_or(0.0) as u64;
        o.ready = metric_in(&body, "hearth_ready") == Some(1.0);
    }
    o.retention_deletes = h.log_text().matches("block deleted by retention").count();
}

fn observe(h: &Hearth) -> Obs {
    let mut o = Obs::default();
    observe_disk(&h.dir, &mut o, &mut BTreeSet::new());
    observe_counters(h, &mut o);
    o
}

/// Lines of a hearth log worth keeping for a bug report.
fn key_lines(log: &str) -> String {
    log.lines()
        .filter(|l| {
            l.contains("persist")
                || l.contains("quarantin")
                || l.contains("ERROR")
                || l.contains("WARN")
                || l.contains("panicked")
                || l.contains("storage ready")
        })
        .map(|l| format!("    {}\n", l.get(..400).unwrap_or(l)))
        .collect()
}

struct Writer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// Waits for `/-/ready`, then appends batches `next..` (at most `max`, `pause` apart) until
/// stopped, refused or the connection fails.
fn spawn_writer(
    addr: String,
    next: Arc<AtomicU64>,
    max: u64,
    pause: Duration,
    acked: Arc<Mutex<BTreeSet<u64>>>,
    problems: Arc<Mutex<Vec<String>>>,
) -> Writer {
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let thread = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(http(&addr, "GET", "/-/ready", ""), Ok((200, _))) {
            if st.load(Ordering::Relaxed) || Instant::now() > deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for _ in 0..max {
            if st.load(Ordering::Relaxed) {
                return;
            }
            // Sent batches are never re-sent: an unacknowledged one may or may not be durable.
            let b = next.fetch_add(1, Ordering::SeqCst);
            match append(&addr, batch_series(b)) {
                Ok((200, v)) => {
                    let want = SERIES * SAMPLES_PER_BATCH as u64;
                    if v["data"]["appended"].as_u64() != Some(want) {
                        problems
                            .lock()
                            .unwrap()
                            .push(format!("batch {b} acknowledged but not all stored: {v}"));
                    }
                    acked.lock().unwrap().insert(b);
                }
                Ok((503, _)) => return, // shutting down: unacknowledged
                Ok((st, v)) => {
                    problems
                        .lock()
                        .unwrap()
                        .push(format!("batch {b} answered {st}: {v}"));
                    return;
                }
                Err(_) => return, // killed mid-request: unacknowledged
            }
            std::thread::sleep(pause);
        }
    });
    Writer { stop, thread }
}

/// Kills `h` (just spawned) at the point `target` asks for; returns a description of where
/// the kill landed. Maintenance runs as soon as storage is open, so the monitor starts at
/// spawn: counters start at zero, the log is fresh.
fn kill_at(
    h: &mut Hearth,
    target: Target,
    rng: &mut impl Rng,
    writer: &std::thread::JoinHandle<()>,
) -> String {
    let start = Instant::now();
    let mode = rng.random_range(0..3u32);
    let k = rng.random_range(0..3u64);
    let delay = Duration::from_millis(rng.random_range(0..800));
    let mut o = Obs::default();
    let mut seen_deleted = BTreeSet::new();
    let mut armed: Option<Instant> = None;
    let mut idle_since = Instant::now();
    let mut last_counters = Instant::now() - Duration::from_secs(1);
    let mut last = o.clone();
    let reason = loop {
        observe_disk(&h.dir, &mut o, &mut seen_deleted);
        if last_counters.elapsed() >= Duration::from_millis(10) {
            observe_counters(h, &mut o);
            last_counters = Instant::now();
        }
        let fire = match (target, mode) {
            (Target::Setup, _) => false,
            // At a block being written (the k-th cut of this run) ...
            (Target::BlockWrite, 0) => o.tmp && o.cuts >= k && o.compactions == 0,
            // ... right after a cut was published (head truncation, then the WAL checkpoint)
            // ...
            (Target::BlockWrite, 1) => o.cuts > k.min(1),
            // ... or while a WAL checkpoint is written.
            // (A leftover from an earlier kill is there until replay removes it.)
            (Target::BlockWrite, _) => o.checkpoint_tmp && o.ready,
            // While a merged block is written, while its sources are deleted, or at a random
            // point after the first compaction.
            (Target::Compaction, 0) => o.tmp && o.compactions > 0,
            (Target::Compaction, 1) => o.merged_with_source || o.deleted,
            (Target::Compaction, _) => {
                if armed.is_none() && o.compactions > 0 {
                    armed = Some(Instant::now() + delay);
                }
                armed.is_some_and(|t| Instant::now() >= t)
            }
            // While a block is being deleted (the k-th, compaction sources included), while
            // one is deleted after retention deleted another, or just after a retention
            // deletion.
            (Target::Retention, 0) => o.deleted && seen_deleted.len() as u64 > k,
            (Target::Retention, 1) => o.deleted && o.retention_deletes > 0,
            (Target::Retention, _) => {
                if armed.is_none() && o.retention_deletes > 0 {
                    armed = Some(Instant::now() + delay / 20);
                }
                armed.is_some_and(|t| Instant::now() >= t)
            }
        };
        if fire {
            break format!("{target:?} mode {mode} k {k}: fired ({o:?})");
        }
        let busy = o.tmp
            || o.checkpoint_tmp
            || o.deleted
            || o.cuts != last.cuts
            || o.compactions != last.compactions
            || o.retention_deletes != last.retention_deletes
            || !writer.is_finished();
        if busy {
            idle_since = Instant::now();
        }
        last = o.clone();
        if idle_since.elapsed() > Duration::from_millis(2500)
            || start.elapsed() > Duration::from_secs(14)
        {
            break format!("{target:?} mode {mode} k {k}: missed, killed when idle ({o:?})");
        }
        std::thread::sleep(Duration::from_micros(300));
    };
    h.kill9();
    let left = leftover_dirs(&h.dir);
    format!("{reason}; on disk after kill: {left:?}")
}

/// Waits until maintenance has nothing left to do: past the second maintenance tick (15 s
/// after start), no block or checkpoint being written, counters unchanged for 3 s.
fn settle(h: &Hearth, ready_at: Instant) {
    let mut last = observe(h);
    let mut stable_since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let o = observe(h);
        let changed = o.tmp
            || o.deleted
            || o.checkpoint_tmp
            || o.cuts != last.cuts
            || o.compactions != last.compactions
            || o.retention_deletes != last.retention_deletes;
        if changed {
            stable_since = Instant::now();
        }
        last = o;
        if ready_at.elapsed() > Duration::from_secs(17)
            && stable_since.elapsed() > Duration::from_secs(3)
        {
            return;
        }
        assert!(
            ready_at.elapsed() < Duration::from_secs(120),
            "maintenance did not settle; log:\n{}",
            key_lines(&h.log_text())
        );
    }
}

#[test]
fn kill9_during_block_maintenance_loses_and_duplicates_nothing() {
    let run_start = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let cfg_keep = write_config(&tmp.path().join("keep.yml"), "");
    let cfg_short = write_config(
        &tmp.path().join("short.yml"),
        "  retention:\n    time: 6h\n",
    );
    let seed: u64 = std::env::var("HEARTH_BLOCK_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("block crash test seed {seed} (set HEARTH_BLOCK_CRASH_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let acked: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let problems: Arc<Mutex<Vec<String>>> = Arc::default();
    let next = Arc::new(AtomicU64::new(0));
    let rounds = [
        Target::Setup,
        Target::BlockWrite,
        Target::BlockWrite,
        Target::Compaction,
        Target::BlockWrite,
        Target::Compaction,
        Target::Compaction,
        Target::Retention,
        Target::Retention,
        Target::Retention,
    ];
    let mut history = String::new();
    for (round, &target) in rounds.iter().enumerate() {
        let cfg = if target == Target::Retention {
            &cfg_short
        } else {
            &cfg_keep
        };
        let mut h = Hearth::spawn(&dir, &["--config", cfg]);
        let (max, pause) = match target {
            Target::Setup => (INITIAL_BATCHES, Duration::ZERO),
            Target::Retention => (3 * ROUND_BATCHES, Duration::from_millis(20)),
            _ => (
                ROUND_BATCHES,
                Duration::from_millis(rng.random_range(50..400)),
            ),
        };
        let w = spawn_writer(
            h.addr.clone(),
            next.clone(),
            max,
            pause,
            acked.clone(),
            problems.clone(),
        );
        let where_ = if target == Target::Setup {
            // Let the writer finish, then kill: the next start has 20 h of WAL to persist.
            while !w.thread.is_finished() {
                std::thread::sleep(Duration::from_millis(20));
            }
            h.kill9();
            "setup: killed after the initial appends".to_string()
        } else {
            kill_at(&mut h, target, &mut rng, &w.thread)
        };
        w.stop.store(true, Ordering::Relaxed);
        w.thread.join().unwrap();
        let log = h.log_text();
        assert!(
            !log.contains("panicked"),
            "hearth panicked in round {round} (seed {seed}):\n{log}"
        );
        let line = format!(
            "round {round}: {} batches sent, {where_}\n",
            next.load(Ordering::SeqCst)
        );
        eprint!("{line}");
        history.push_str(&line);
        history.push_str(&key_lines(&log));
    }

    // Last start: retention 6 h, let maintenance finish.
    let t = Instant::now();
    let h = Hearth::start(&dir, &["--config", &cfg_short]);
    let ready_at = Instant::now();
    eprintln!("final start: ready in {:?}", t.elapsed());
    settle(&h, ready_at);
    let log = h.log_text();
    history.push_str("final start:\n");
    history.push_str(&key_lines(&log));
    let ctx = format!("(seed {seed}); history:\n{history}");
    assert!(!log.contains("panicked"), "hearth panicked {ctx}");
    let problems = problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "append problems: {problems:?} {ctx}");

    if let Ok(p) = std::env::var("HEARTH_BLOCK_CRASH_HISTORY") {
        std::fs::write(p, &ctx).unwrap();
    }
    check_final(&h, &dir, &acked.lock().unwrap(), &next, &ctx);
    eprintln!("block crash test took {:?}", run_start.elapsed());
}

fn check_final(h: &Hearth, dir: &Path, acked: &BTreeSet<u64>, next: &AtomicU64, ctx: &str) {
    let sent_end = T0 + next.load(Ordering::SeqCst) as i64 * BATCH_MS;
    let left = leftover_dirs(dir);
    assert!(left.is_empty(), "leftover directories {left:?} {ctx}");
    let wal_tmp: Vec<String> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        wal_tmp.is_empty(),
        "leftover checkpoint directories {wal_tmp:?} {ctx}"
    );
    assert!(
        !dir.join("corrupt").exists(),
        "a crash left a block that was quarantined {ctx}"
    );
    let series = export(&h.addr, "__name__=bc", None, None).expect("export");
    assert_eq!(series.len() as u64, SERIES, "series count {ctx}");

    // Every present sample: on the grid, sent, exact, no timestamp twice.
    let mut min_t = i64::MAX;
    let mut newest = i64::MIN;
    let mut total = 0u64;
    for s in &series {
        let sid: u64 = s.labels["s"].parse().unwrap();
        for w in s.samples.windows(2) {
            assert!(
                w[0].0 < w[1].0,
                "series {sid}: timestamps out of order or duplicated at {} {ctx}",
                w[1].0
            );
        }
        for &(t, bits) in &s.samples {
            assert!(
                (t - T0) % STEP == 0 && t >= T0 && t < sent_end,
                "series {sid}: sample at {t} never sent {ctx}"
            );
            assert_eq!(
                bits,
                value(sid, t).to_bits(),
                "series {sid}: wrong value at {t} {ctx}"
            );
            min_t = min_t.min(t);
            newest = newest.max(t);
        }
        total += s.samples.len() as u64;
    }
    // Retention deletes whole blocks older than the limit. What is kept starts at a block
    // boundary: the oldest block's start, or the head's if no block is left. Before it
    // nothing is left, after it every acknowledged sample is there. (The oldest sample may
    // lie past the boundary: a batch in flight at a kill is legitimately lost.)
    let limit = newest - RETENTION;
    let blocks = disk_blocks(dir);
    let (_, body) = h.get("/metrics");
    let m = |n: &str| metric_in(&body, n).unwrap_or(-1.0);
    let head_start = (m("hearth_tsdb_head_min_valid_time_seconds") * 1000.0) as i64;
    let boundary = blocks.first().map_or(head_start.max(T0), |b| b.min_time);
    assert_eq!(
        (boundary - T0) % (2 * H),
        0,
        "kept data starts at {boundary}, not at a block boundary {ctx}"
    );
    assert!(
        min_t >= boundary,
        "sample at {min_t} before the oldest block or head start {boundary} {ctx}"
    );
    let mut missing = Vec::new();
    for s in &series {
        let sid: u64 = s.labels["s"].parse().unwrap();
        let have: BTreeSet<i64> = s.samples.iter().map(|p| p.0).collect();
        for &b in acked {
            let start = T0 + b as i64 * BATCH_MS;
            for t in (start..start + BATCH_MS).step_by(STEP as usize) {
                let expired = t < boundary && t < limit;
                if !expired && !have.contains(&t) {
                    missing.push((sid, b, t));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged samples lost (series, batch, t), first: {:?}; kept data starts at \
         {boundary}, retention limit {limit} {ctx}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    for s in &series {
        let first = s.samples.first().map(|p| p.0);
        assert_eq!(
            first,
            Some(min_t),
            "series {:?} starts elsewhere {ctx}",
            s.labels
        );
    }

    // Blocks: no overlaps after compaction, retention applied, metrics agree with the disk and
    // with what the queries return (the querier deduplicates, so duplicated data in blocks
    // shows only in these counts).
    for w in blocks.windows(2) {
        assert!(
            w[0].max_time <= w[1].min_time,
            "overlapping blocks {:?} and {:?} {ctx}",
            w[0],
            w[1]
        );
    }
    for b in &blocks {
        assert!(
            b.max_time > limit,
            "block {b:?} past retention {limit} still there {ctx}"
        );
    }
    assert_eq!(m("hearth_tsdb_blocks"), blocks.len() as f64, "{ctx}");
    assert_eq!(m("hearth_tsdb_blocks_quarantined_total"), 0.0, "{ctx}");
    let on_disk: u64 = blocks.iter().map(|b| b.num_samples).sum();
    assert_eq!(m("hearth_tsdb_blocks_samples"), on_disk as f64, "{ctx}");
    let blocks_end = blocks.last().map_or(i64::MIN, |b| b.max_time);
    let in_blocks_range: u64 = series
        .iter()
        .map(|s| s.samples.iter().filter(|p| p.0 < blocks_end).count() as u64)
        .sum();
    assert_eq!(
        on_disk, in_blocks_range,
        "blocks hold {on_disk} samples, queries return {in_blocks_range} before {blocks_end} {ctx}"
    );
    if let Some(last) = blocks.last() {
        assert_eq!(
            m("hearth_tsdb_head_min_valid_time_seconds") * 1000.0,
            last.max_time as f64,
            "{ctx}"
        );
    }
    assert!(
        ctx.contains("blocks compacted"),
        "no compaction ran: the test did not exercise it {ctx}"
    );
    assert!(
        boundary > T0,
        "retention deleted nothing: the test did not exercise it {ctx}"
    );
    eprintln!(
        "final: {} blocks {:?}, {total} samples, {} acknowledged batches of {}, kept from {} h, newest {} h",
        blocks.len(),
        blocks
            .iter()
            .map(|b| ((b.min_time - T0) / H, (b.max_time - T0) / H, b.level))
            .collect::<Vec<_>>(),
        acked.len(),
        next.load(Ordering::SeqCst),
        (boundary - T0) / H,
        (newest - T0) / H,
    );
}
