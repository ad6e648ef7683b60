//! [`Db`]: the head plus its WAL — open (lock, replay), append, query, close.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::appender::Appender;
use crate::config::{StorageConfig, WalFsync};
use crate::head::chunk_file::HeadChunkFiles;
use crate::head::series::{AppendCtx, MemSeries};
use crate::head::Head;
use crate::labels::Labels;
use crate::querier::Querier;
use crate::wal::{self, CorruptionKind, FsyncPolicy, Wal, WalOptions};
use crate::{filenames, record, TsdbError};

/// Size of each head-chunks file (and so of each mapping).
const HEAD_CHUNK_FILE_SIZE: u64 = 128 << 20;
/// Replay hands records to its workers in blocks of about this many bytes.
const REPLAY_BLOCK_BYTES: usize = 4 << 20;

/// What replaying the WAL found. Fixed after [`Db::open`].
#[derive(Debug, Clone, Default)]
pub struct ReplayStats {
    pub duration: Duration,
    pub segments: usize,
    pub records: u64,
    pub bytes: u64,
    pub series: u64,
    pub samples: u64,
    /// Damaged regions skipped (mid-segment corruption, bad headers).
    pub corruptions: u64,
    /// Torn tails found (and truncated, for the last segment).
    pub torn_tails: u64,
    /// Samples naming a series id with no series record.
    pub unknown_series_samples: u64,
    /// Records whose payload did not decode (CRC was fine: a bug or a newer format).
    pub bad_records: u64,
}

/// The metrics storage engine.
pub struct Db {
    pub(crate) head: Head,
    pub(crate) wal: Wal,
    pub(crate) ooo_window_ms: i64,
    closing: AtomicBool,
    replay: ReplayStats,
    path: PathBuf,
    /// Held (flock) for the life of the Db so two processes never share a data directory.
    _lock: File,
}

impl Db {
    /// Opens (creating if needed) the storage directory, replays the WAL into a fresh head and
    /// starts a new WAL segment for writes.
    pub fn open(cfg: &StorageConfig) -> Result<Db, TsdbError> {
        let path = cfg.path.clone();
        fs::create_dir_all(&path).map_err(|e| TsdbError::io(&path, e))?;
        let lock = lock_dir(&path)?;
        let head = Head::new(HeadChunkFiles::open(
            &path.join(filenames::CHUNKS_HEAD_DIR),
            HEAD_CHUNK_FILE_SIZE,
        )?);
        let wal_dir = path.join(filenames::WAL_DIR);
        let replay = replay_wal(&head, &wal_dir)?;
        let wal = Wal::open(WalOptions {
            dir: wal_dir,
            segment_size: cfg.wal_segment_size,
            fsync: match cfg.wal_fsync {
                WalFsync::Always => FsyncPolicy::Always,
                WalFsync::Interval => FsyncPolicy::Interval(cfg.wal_fsync_interval.0),
            },
        })?;
        Ok(Db {
            head,
            wal,
            ooo_window_ms: cfg.out_of_order_window.as_millis_i64(),
            closing: AtomicBool::new(false),
            replay,
            path,
            _lock: lock,
        })
    }

    /// A batch of appends; see [`Appender`].
    pub fn appender(&self) -> Appender<'_> {
        Appender::new(self)
    }

    /// Reads samples with timestamps in `[mint, maxt]` (ms, inclusive).
    pub fn querier(&self, mint: i64, maxt: i64) -> Querier<'_> {
        Querier::new(self, mint, maxt)
    }

    /// Number of series in the head.
    pub fn num_series(&self) -> u64 {
        self.head.num_series()
    }

    pub fn replay_stats(&self) -> &ReplayStats {
        &self.replay
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn check_open(&self) -> Result<(), TsdbError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(TsdbError::Closed);
        }
        Ok(())
    }

    /// Refuses further appends and makes everything appended so far durable.
    pub fn close(&self) -> Result<(), TsdbError> {
        self.closing.store(true, Ordering::Release);
        self.wal.sync()?;
        Ok(())
    }

    /// Appends the storage engine's own metrics in the Prometheus text format.
    pub fn write_metrics(&self, out: &mut String) {
        let h = &self.head.stats;
        let w = self.wal.stats();
        let r = &self.replay;
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let mut m = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        m(
            "hearth_tsdb_head_samples_appended_total",
            "counter",
            "Samples stored in the head (in order and out of order).",
            &[("", ld(&h.samples_appended) as f64)],
        );
        m(
            "hearth_tsdb_head_out_of_order_samples_appended_total",
            "counter",
            "Out-of-order samples accepted within the out-of-order window.",
            &[("", ld(&h.ooo_samples_appended) as f64)],
        );
        m(
            "hearth_tsdb_head_duplicate_samples_total",
            "counter",
            "Exact duplicates of stored samples, accepted without storing.",
            &[("", ld(&h.duplicate_samples) as f64)],
        );
        m(
            "hearth_tsdb_head_samples_rejected_total",
            "counter",
            "Samples refused, by reason.",
            &[
                ("{reason=\"too_old\"}", ld(&h.rejected_too_old) as f64),
                (
                    "{reason=\"duplicate_conflict\"}",
                    ld(&h.rejected_duplicate_conflict) as f64,
                ),
            ],
        );
        m(
            "hearth_tsdb_head_series",
            "gauge",
            "Series in the head.",
            &[("", self.head.num_series() as f64)],
        );
        m(
            "hearth_tsdb_head_series_created_total",
            "counter",
            "Series created in the head.",
            &[("", ld(&h.series_created) as f64)],
        );
        m(
            "hearth_tsdb_head_chunks",
            "gauge",
            "Chunks in the head (open and written to the head-chunks files).",
            &[("", ld(&h.chunks_created) as f64)],
        );
        m(
            "hearth_tsdb_head_chunks_file_bytes",
            "gauge",
            "Bytes written to the memory-mapped head-chunks files.",
            &[("", self.head.files.bytes_written() as f64)],
        );
        m(
            "hearth_tsdb_head_chunks_files",
            "gauge",
            "Memory-mapped head-chunks files in use.",
            &[("", self.head.files.files() as f64)],
        );
        m(
            "hearth_tsdb_head_memory_bytes",
            "gauge",
            "Estimated heap memory of the head (series, symbols, postings, open chunks).",
            &[("", self.head.heap_bytes() as f64)],
        );
        m(
            "hearth_tsdb_wal_bytes_written_total",
            "counter",
            "Bytes written to WAL segments since start.",
            &[("", w.bytes_written as f64)],
        );
        m(
            "hearth_tsdb_wal_records_written_total",
            "counter",
            "Records written to the WAL since start.",
            &[("", w.records_written as f64)],
        );
        m(
            "hearth_tsdb_wal_commits_total",
            "counter",
            "WAL commits (acknowledged append batches) since start.",
            &[("", w.commits as f64)],
        );
        m(
            "hearth_tsdb_wal_fsyncs_total",
            "counter",
            "fdatasync calls on WAL segments since start (group commit shares them).",
            &[("", w.fsyncs as f64)],
        );
        m(
            "hearth_tsdb_wal_segments_created_total",
            "counter",
            "WAL segments created since start.",
            &[("", w.segments_created as f64)],
        );
        m(
            "hearth_tsdb_wal_segment_current",
            "gauge",
            "Index of the WAL segment being written.",
            &[("", f64::from(w.current_segment))],
        );
        m(
            "hearth_tsdb_wal_replay_duration_seconds",
            "gauge",
            "Time the last WAL replay took.",
            &[("", r.duration.as_secs_f64())],
        );
        m(
            "hearth_tsdb_wal_replay_samples",
            "gauge",
            "Samples restored by the last WAL replay.",
            &[("", r.samples as f64)],
        );
        m(
            "hearth_tsdb_wal_corruptions_total",
            "counter",
            "Damaged WAL regions found at replay, by kind.",
            &[
                ("{kind=\"torn_tail\"}", r.torn_tails as f64),
                ("{kind=\"corrupt\"}", r.corruptions as f64),
                ("{kind=\"bad_record\"}", r.bad_records as f64),
            ],
        );
    }
}

fn lock_dir(path: &Path) -> Result<File, TsdbError> {
    let p = path.join(filenames::LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| TsdbError::io(&p, e))?;
    // SAFETY: flock on a valid, owned file descriptor.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(TsdbError::Locked { path: p });
    }
    Ok(f)
}

/// A run of WAL records copied out of a segment, shared by all replay workers.
#[derive(Default)]
struct Block {
    data: Vec<u8>,
    /// (type, start, end) into `data`.
    records: Vec<(u8, usize, usize)>,
}

/// Rebuilds the head from the WAL.
///
/// One thread reads segments (CRC checks, corruption handling) and copies records into
/// blocks; every block goes to all `n` workers, and worker `k` applies the series and samples
/// whose id is `k` modulo `n`. A series therefore always sees its own records in log order,
/// and workers never contend on a series lock.
fn replay_wal(head: &Head, dir: &Path) -> Result<ReplayStats, TsdbError> {
    let start = Instant::now();
    let mut stats = ReplayStats::default();
    if !dir.exists() {
        return Ok(stats);
    }
    let segments = wal::list_segments(dir)?;
    stats.segments = segments.len();
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let results = std::thread::scope(|sc| -> Result<Vec<WorkerStats>, TsdbError> {
        let mut txs = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for k in 0..n {
            let (tx, rx) = mpsc::sync_channel::<Arc<Block>>(4);
            txs.push(tx);
            handles.push(sc.spawn(move || replay_worker(head, k as u64, n as u64, rx)));
        }
        let mut block = Block::default();
        let send = |b: Block| {
            let b = Arc::new(b);
            for tx in &txs {
                // A worker only hangs up by panicking; the join below reports that.
                let _ = tx.send(b.clone());
            }
        };
        let last = segments.len().saturating_sub(1);
        for (i, seg) in segments.iter().enumerate() {
            let report = wal::read_segment(&seg.path, i == last, |rec| -> Result<(), TsdbError> {
                let s = block.data.len();
                block.data.extend_from_slice(rec.payload);
                block.records.push((rec.rec_type, s, block.data.len()));
                if block.data.len() >= REPLAY_BLOCK_BYTES {
                    send(std::mem::take(&mut block));
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
                            kind = ?c.kind, path = %c.path.display(), "WAL corruption skipped; replay continues after it");
                    }
                }
            }
        }
        if !block.records.is_empty() {
            send(block);
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
        stats.bad_records += w.bad_records;
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
    bad_records: u64,
}

fn replay_worker(
    head: &Head,
    k: u64,
    n: u64,
    rx: mpsc::Receiver<Arc<Block>>,
) -> Result<WorkerStats, TsdbError> {
    let ctx = AppendCtx {
        files: &head.files,
        stats: &head.stats,
        ooo_window_ms: None,
    };
    let mut st = WorkerStats::default();
    let mut cached: Option<Arc<MemSeries>> = None;
    let mut io_err = None;
    for block in rx {
        for &(ty, s, e) in &block.records {
            let payload = &block.data[s..e];
            let res = match ty {
                record::REC_SERIES => record::decode_series(payload, |r| {
                    if r.id % n != k {
                        return;
                    }
                    let Ok(labels) = Labels::from_sorted(
                        r.labels
                            .iter()
                            .map(|(a, b)| (a.to_string(), b.to_string()))
                            .collect(),
                    ) else {
                        st.bad_records += 1;
                        return;
                    };
                    let (s, created) =
                        head.get_or_create(labels.hash64(), &labels, Some(r.id), |_, _| {});
                    if created {
                        st.series += 1;
                    } else if s.id != r.id {
                        head.alias_id(r.id, s);
                    }
                }),
                record::REC_SAMPLES => record::decode_samples(payload, |id, t, v| {
                    if id % n != k || io_err.is_some() {
                        return;
                    }
                    let s = match &cached {
                        Some(s) if s.id == id => s.clone(),
                        _ => match head.by_id(id) {
                            Some(s) => {
                                cached = Some(s.clone());
                                s
                            }
                            None => {
                                st.unknown += 1;
                                return;
                            }
                        },
                    };
                    let res = s.state.lock().append(s.id, t, v, &ctx);
                    match res {
                        Ok(_) => st.samples += 1,
                        Err(e) => io_err = Some(e),
                    }
                }),
                _ => {
                    st.bad_records += 1;
                    Ok(())
                }
            };
            if let Err(e) = res {
                st.bad_records += 1;
                tracing::error!(error = %e, "undecodable WAL record skipped");
            }
        }
        if let Some(e) = io_err.take() {
            return Err(e);
        }
    }
    Ok(st)
}
