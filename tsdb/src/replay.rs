//! Rebuilding the head from the WAL at start-up.
//!
//! The calling thread reads segments in order (CRC checks, corruption handling — see
//! [`crate::wal`]) and decodes every record, routing each series definition and each sample
//! to worker `id % n`. Each worker receives its items in log order, so a series always sees
//! its own series record before its samples and its samples in log order, and workers never
//! contend for a series lock. Replay accepts every logged sample whatever its age (each was
//! accepted once; see `docs/format/wal.md`, "Ordering rules").

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use crate::db::ReplayStats;
use crate::head::series::{AppendCtx, MemSeries};
use crate::head::Head;
use crate::labels::Labels;
use crate::wal::{self, CorruptionKind};
use crate::{record, TsdbError};

/// Items handed to a worker in one message.
const BATCH: usize = 16 * 1024;
/// Ids below `n * DENSE_IDS` are cached in a worker-local vector instead of looked up in the
/// head's striped map (ids are handed out densely, so this covers every realistic head).
const DENSE_IDS: u64 = 1 << 24;

enum Item {
    Series(u64, Labels),
    Sample(u64, i64, f64),
}

pub(crate) fn replay_wal(head: &Head, dir: &Path) -> Result<ReplayStats, TsdbError> {
    let start = Instant::now();
    let mut stats = ReplayStats::default();
    if !dir.exists() {
        return Ok(stats);
    }
    // The newest checkpoint (if any) first, then the segments after the ones it replaced.
    let checkpoints = crate::checkpoint::list(dir)?;
    let covered = checkpoints.last().map(|(n, _)| *n);
    let mut segments: Vec<(wal::SegmentRef, bool)> = Vec::new();
    if let Some((_, cp)) = checkpoints.last() {
        segments.extend(wal::list_segments(cp)?.into_iter().map(|s| (s, false)));
    }
    let live: Vec<_> = wal::list_segments(dir)?
        .into_iter()
        .filter(|s| covered.is_none_or(|n| s.index > n))
        .collect();
    let n_live = live.len();
    segments.extend(
        live.into_iter()
            .enumerate()
            .map(|(i, s)| (s, i + 1 == n_live)),
    );
    stats.segments = segments.len();
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let results = std::thread::scope(|sc| -> Result<Vec<WorkerStats>, TsdbError> {
        let mut txs = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = mpsc::sync_channel::<Vec<Item>>(8);
            txs.push(tx);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("wal-replay-{}", handles.len()))
                    .spawn_scoped(sc, move || replay_worker(head, n as u64, rx))
                    .map_err(|e| TsdbError::io(dir, e))?,
            );
        }
        let mut pending: Vec<Vec<Item>> = (0..n).map(|_| Vec::with_capacity(BATCH)).collect();
        let push = |pending: &mut Vec<Vec<Item>>, k: usize, item: Item| {
            pending[k].push(item);
            if pending[k].len() >= BATCH {
                let full = std::mem::replace(&mut pending[k], Vec::with_capacity(BATCH));
                // A worker only hangs up by failing; its result reports why.
                let _ = txs[k].send(full);
            }
        };
        for (seg, is_last) in &segments {
            let report = wal::read_segment(&seg.path, *is_last, |rec| -> Result<(), TsdbError> {
                let res = match rec.rec_type {
                    record::REC_SERIES => record::decode_series(rec.payload, |r| {
                        let pairs = r.labels.iter().map(|(a, b)| (a.to_string(), b.to_string()));
                        match Labels::from_sorted(pairs.collect()) {
                            Ok(l) => push(
                                &mut pending,
                                (r.id % n as u64) as usize,
                                Item::Series(r.id, l),
                            ),
                            Err(_) => stats.bad_records += 1,
                        }
                    }),
                    record::REC_SAMPLES_V2 => record::decode_samples_v2(rec.payload, |id, t, v| {
                        push(
                            &mut pending,
                            (id % n as u64) as usize,
                            Item::Sample(id, t, v),
                        )
                    }),
                    // Written by hearth before type 4; old WALs and checkpoints still replay.
                    record::REC_SAMPLES => record::decode_samples(rec.payload, |id, t, v| {
                        push(
                            &mut pending,
                            (id % n as u64) as usize,
                            Item::Sample(id, t, v),
                        )
                    }),
                    record::REC_TOMBSTONES => record::decode_tombstones(rec.payload, |id, a, b| {
                        let mut t = head.tombstones.write();
                        crate::tombstones::add_interval(t.entry(id).or_default(), a, b);
                    }),
                    _ => {
                        stats.bad_records += 1;
                        Ok(())
                    }
                };
                if let Err(e) = res {
                    stats.bad_records += 1;
                    tracing::error!(segment = rec.segment, offset = rec.offset, error = %e, "undecodable WAL record skipped");
                }
                Ok(())
            })?;
            stats.records += report.records;
            stats.bytes += report.bytes;
            for c in &report.corruptions {
                match c.kind {
                    CorruptionKind::TornTail => {
                        stats.torn_tails += 1;
                        tracing::warn!(segment = c.segment, offset = c.offset, skipped_bytes = c.skipped_bytes,
                            path = %c.path.display(), "WAL torn tail (crash during write); records after it were never acknowledged");
                    }
                    _ => {
                        stats.corruptions += 1;
                        tracing::error!(segment = c.segment, offset = c.offset, skipped_bytes = c.skipped_bytes,
                            kind = ?c.kind, detail = c.detail, path = %c.path.display(), "WAL corruption skipped; replay continues after it");
                    }
                }
            }
        }
        for (k, p) in pending.into_iter().enumerate() {
            if !p.is_empty() {
                let _ = txs[k].send(p);
            }
        }
        drop(txs);
        handles
            .into_iter()
            .map(|h| {
                h.join().map_err(|_| TsdbError::Internal {
                    detail: "BUG: WAL replay worker panicked".into(),
                })?
            })
            .collect()
    })?;
    for w in results {
        stats.series += w.series;
        stats.samples += w.samples;
        stats.unknown_series_samples += w.unknown;
    }
    if stats.unknown_series_samples > 0 {
        tracing::warn!(
            samples = stats.unknown_series_samples,
            "WAL samples without a series record were dropped"
        );
    }
    stats.duration = start.elapsed();
    tracing::info!(
        duration = ?stats.duration, segments = stats.segments, series = stats.series,
        samples = stats.samples, "WAL replay done"
    );
    Ok(stats)
}

#[derive(Default)]
struct WorkerStats {
    series: u64,
    samples: u64,
    unknown: u64,
}

fn replay_worker(
    head: &Head,
    n: u64,
    rx: mpsc::Receiver<Vec<Item>>,
) -> Result<WorkerStats, TsdbError> {
    let ctx = AppendCtx {
        files: &head.files,
        stats: &head.stats,
        ooo_window_ms: None,
        min_valid_t: &head.min_valid_t,
    };
    let mut st = WorkerStats::default();
    let mut newest = i64::MIN;
    // Series of this worker by `id / n`; ids outside the dense range use the head's map.
    let mut dense: Vec<Option<Arc<MemSeries>>> = Vec::new();
    for items in rx {
        for item in items {
            match item {
                Item::Series(id, labels) => {
                    let (s, created) =
                        head.get_or_create(labels.hash64(), &labels, Some(id), |_, _| {});
                    if created {
                        st.series += 1;
                    } else if s.id != id {
                        head.alias_id(id, s.clone());
                    }
                    if id / n < DENSE_IDS {
                        let slot = (id / n) as usize;
                        if dense.len() <= slot {
                            dense.resize(slot + 1, None);
                        }
                        dense[slot] = Some(s);
                    }
                }
                Item::Sample(id, t, v) => {
                    let sparse;
                    let found = if id / n < DENSE_IDS {
                        dense.get((id / n) as usize).and_then(|s| s.as_ref())
                    } else {
                        sparse = head.by_id(id);
                        sparse.as_ref()
                    };
                    let Some(s) = found else {
                        st.unknown += 1;
                        continue;
                    };
                    s.state.lock().append(s.id, t, v, &ctx)?;
                    st.samples += 1;
                    newest = newest.max(t);
                }
            }
        }
    }
    head.max_t
        .fetch_max(newest, std::sync::atomic::Ordering::Relaxed);
    Ok(st)
}

#[cfg(test)]
mod tests {
    use crate::labels::Labels;
    use crate::record;
    use crate::wal::{Wal, WalOptions};
    use crate::{Db, StorageConfig};

    fn write_records(dir: &std::path::Path, recs: &[(u8, Vec<u8>)]) {
        let wal = Wal::open(WalOptions::new(dir)).unwrap();
        for (ty, payload) in recs {
            wal.append(*ty, payload).unwrap();
        }
        wal.close().unwrap();
    }

    fn series(id: u64, name: &str) -> (u8, Vec<u8>) {
        let mut b = Vec::new();
        record::encode_series_entry(&mut b, id, [("__name__", name)].into_iter());
        (record::REC_SERIES, b)
    }

    fn samples(v2: bool, s: &[(u64, i64, f64)]) -> (u8, Vec<u8>) {
        let mut b = Vec::new();
        if v2 {
            record::encode_samples_v2(&mut b, s);
            (record::REC_SAMPLES_V2, b)
        } else {
            record::encode_samples(&mut b, s);
            (record::REC_SAMPLES, b)
        }
    }

    /// A WAL and checkpoint written before type 4 existed (type-2 samples) replay, and so do
    /// type-4 records after them in the same log, out-of-order and interleaved samples included.
    #[test]
    fn type2_and_type4_samples_replay_together() {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join(crate::filenames::WAL_DIR);
        write_records(
            &wal_dir.join(crate::checkpoint::dir_name(0)),
            &[
                series(1, "a"),
                samples(false, &[(1, 1000, 1.0), (1, 2000, 2.0)]),
            ],
        );
        let stale = f64::from_bits(crate::STALE_NAN_BITS);
        write_records(
            &wal_dir,
            &[
                series(2, "b"),
                samples(false, &[(2, 1000, -0.0)]),
                samples(true, &[(1, 4000, 4.0), (2, 2000, stale), (1, 3000, 3.0)]),
                samples(
                    true,
                    &[(2, 3000, f64::INFINITY), (2, 4000, f64::NEG_INFINITY)],
                ),
            ],
        );
        let db = Db::open(&StorageConfig {
            path: dir.path().to_path_buf(),
            ..Default::default()
        })
        .unwrap();
        let got = crate::checkpoint::tests::all(&db);
        let bits = |v: &[(i64, f64)]| v.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(
            got,
            vec![
                (
                    Labels::new([("__name__", "a")]).unwrap().to_string(),
                    bits(&[(1000, 1.0), (2000, 2.0), (3000, 3.0), (4000, 4.0)])
                ),
                (
                    Labels::new([("__name__", "b")]).unwrap().to_string(),
                    bits(&[
                        (1000, -0.0),
                        (2000, stale),
                        (3000, f64::INFINITY),
                        (4000, f64::NEG_INFINITY)
                    ])
                ),
            ]
        );
        db.close().unwrap();
    }
}
