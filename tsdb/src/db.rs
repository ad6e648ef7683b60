//! [`Db`]: the head plus its WAL — open (lock, replay), append, query, close.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::appender::Appender;
use crate::config::{StorageConfig, WalFsync};
use crate::head::chunk_file::HeadChunkFiles;
use crate::head::Head;
use crate::index::CardinalityStats;
use crate::querier::Querier;
use crate::wal::{FsyncPolicy, Wal, WalOptions};
use crate::{filenames, TsdbError};

/// Size of each head-chunks file (and so of each mapping). A file is deleted once all its chunks
/// are older than the head, and the newest file never is, so this bounds the disk the head keeps
/// for chunks it no longer needs (128 MiB files kept ~150 MiB for a 3h head of 10 k series).
const HEAD_CHUNK_FILE_SIZE: u64 = 16 << 20;

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

/// What [`Db::head_status`] reports.
#[derive(Debug, Clone, Default)]
pub struct HeadStatus {
    pub cardinality: CardinalityStats,
    /// Chunks in the head (open and memory-mapped).
    pub chunk_count: u64,
    /// Oldest and newest sample timestamps (ms) in the head.
    pub time_range: Option<(i64, i64)>,
}

/// The metrics storage engine.
pub struct Db {
    pub(crate) head: Head,
    /// On-disk blocks (data before the head's truncation point).
    pub(crate) blocks: crate::persist::Blocks,
    pub(crate) retention: crate::config::RetentionConfig,
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
        // Interrupted snapshots are garbage; failing to remove them must not stop the server.
        if let Err(e) = crate::snapshot::remove_tmp_snapshots(&path) {
            tracing::error!(error = %e, "removing interrupted snapshots");
        }
        let head = Head::new(HeadChunkFiles::open(
            &path.join(filenames::CHUNKS_HEAD_DIR),
            HEAD_CHUNK_FILE_SIZE,
        )?);
        // Blocks first: replay drops WAL samples already persisted in them.
        let blocks = crate::persist::Blocks::open(&path)?;
        if let Some(t) = blocks.max_time() {
            head.min_valid_t.store(t, Ordering::SeqCst);
            head.read_floor.store(t, Ordering::SeqCst);
        }
        let wal_dir = path.join(filenames::WAL_DIR);
        let replay = crate::replay::replay_wal(&head, &wal_dir)?;
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
            blocks,
            retention: cfg.retention.clone(),
            wal,
            ooo_window_ms: cfg.out_of_order_window.as_millis_i64(),
            closing: AtomicBool::new(false),
            replay,
            path,
            _lock: lock,
        })
    }

    /// Metadata of the blocks currently served, oldest first.
    pub fn blocks(&self) -> Vec<crate::block::BlockMeta> {
        self.blocks
            .snapshot()
            .iter()
            .map(|b| b.meta().clone())
            .collect()
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

    /// Figures for Prometheus's `/api/v1/status/tsdb`: cardinality lists cut to `top` rows,
    /// head chunks, and the head's time range (`None` without samples). Reads every series'
    /// time range, one lock at a time: for a status page, not for hot paths.
    pub fn head_status(&self, top: usize) -> HeadStatus {
        let head = &self.head;
        let mut range: Option<(i64, i64)> = None;
        for id in head.postings.all().iter() {
            let Some(s) = head.by_id(id) else { continue };
            let tr = s.state.lock().time_range();
            if let Some((a, b)) = tr {
                range = Some(range.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
            }
        }
        HeadStatus {
            cardinality: head.postings.cardinality_stats(&head.symbols, top),
            chunk_count: head.stats.chunks_created.load(Ordering::Relaxed),
            time_range: range,
        }
    }

    pub fn replay_stats(&self) -> &ReplayStats {
        &self.replay
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Drops head data before `t` (which must already be persisted in a block), removes
    /// series left empty, and checkpoints the WAL so restart replays only what is left.
    /// Returns the series removed and the checkpoint's figures.
    pub(crate) fn truncate_head(
        &self,
        t: i64,
    ) -> Result<(u64, crate::checkpoint::CheckpointStats), TsdbError> {
        let removed = self.head.truncate(t);
        let cp = crate::checkpoint::write(self, t)?;
        Ok((removed, cp))
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
        // Maintenance stops at its next check; wait for it so no block is half-published.
        drop(self.blocks.work.lock());
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
        let b = &self.blocks.stats;
        let set = self.blocks.snapshot();
        m(
            "hearth_tsdb_blocks",
            "gauge",
            "On-disk blocks currently served.",
            &[("", set.len() as f64)],
        );
        m(
            "hearth_tsdb_blocks_bytes",
            "gauge",
            "Bytes of the on-disk blocks.",
            &[("", self.blocks.size_bytes() as f64)],
        );
        m(
            "hearth_tsdb_blocks_samples",
            "gauge",
            "Samples in the on-disk blocks.",
            &[(
                "",
                set.iter().map(|b| b.meta().stats.num_samples).sum::<u64>() as f64,
            )],
        );
        let maps = crate::block::MappingCache::global().stats();
        m(
            "hearth_tsdb_mmap_bytes",
            "gauge",
            "Bytes of block chunk files mapped into memory (cached or still held by a reader); bounded process-wide.",
            &[("", maps.live_bytes as f64)],
        );
        m(
            "hearth_tsdb_mmaps",
            "gauge",
            "Block chunk file mappings alive (cached or still held by a reader).",
            &[("", maps.live_mappings as f64)],
        );
        m(
            "hearth_tsdb_head_blocks_written_total",
            "counter",
            "Blocks cut from the head.",
            &[("", ld(&b.head_blocks_written) as f64)],
        );
        m(
            "hearth_tsdb_compactions_total",
            "counter",
            "Block compactions (merges) completed.",
            &[("", ld(&b.compactions) as f64)],
        );
        m(
            "hearth_tsdb_blocks_deleted_total",
            "counter",
            "Blocks deleted (retention and merged compaction inputs).",
            &[("", ld(&b.blocks_deleted) as f64)],
        );
        m(
            "hearth_tsdb_blocks_quarantined_total",
            "counter",
            "Corrupt blocks moved to the corrupt/ directory.",
            &[("", ld(&b.blocks_quarantined) as f64)],
        );
        m(
            "hearth_tsdb_maintenance_failures_total",
            "counter",
            "Failed block maintenance runs (persistence, compaction, retention).",
            &[("", ld(&b.maintenance_failures) as f64)],
        );
        m(
            "hearth_tsdb_head_min_valid_time_seconds",
            "gauge",
            "Start of the head's range; older data lives in blocks.",
            &[(
                "",
                match self.head.min_valid_t.load(Ordering::Relaxed) {
                    i64::MIN => 0.0,
                    t => t as f64 / 1000.0,
                },
            )],
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
