//! Batched, durable appends.
//!
//! An [`Appender`] collects samples, then [`Appender::commit`] validates and applies them
//! series by series (each under its own lock), logs the accepted ones as one WAL samples
//! record and returns once that record is durable (group commit: concurrent committers share
//! one fsync). Because a whole batch is one record, a crash leaves either all of a commit's
//! accepted samples or none of them.
//!
//! Series are logged when they are created (before any other thread can reference them), so
//! replay always meets a series record before a samples record naming it. Two commits that
//! touch the same series may reach the WAL in the opposite order to the one they were applied
//! in; replay therefore accepts every logged sample, out of order or not, and ends up with
//! exactly the samples that were acknowledged.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::head::series::{AppendCtx, AppendOutcome, MemSeries};
use crate::labels::Labels;
use crate::record;
use crate::wal::Lsn;
use crate::{Db, TsdbError};

/// Why a sample was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Older than the series' newest sample by more than the out-of-order window.
    TooOld,
    /// A sample with the same timestamp and a different value is already stored.
    DuplicateConflict,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooOld => "too_old",
            RejectReason::DuplicateConflict => "duplicate_conflict",
        }
    }
}

/// One refused sample, with its series' labels (kept for the first few only).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
    pub reason: RejectReason,
}

/// What a commit did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppendReport {
    /// Samples newly stored (in order or out of order).
    pub appended: usize,
    /// Exact duplicates of stored samples, accepted without storing anything.
    pub duplicates: usize,
    pub too_old: usize,
    pub duplicate_conflicts: usize,
    /// Details of the first [`MAX_REJECTION_DETAILS`] rejected samples.
    pub rejections: Vec<Rejection>,
}

impl AppendReport {
    pub fn rejected(&self) -> usize {
        self.too_old + self.duplicate_conflicts
    }
}

pub const MAX_REJECTION_DETAILS: usize = 10;

/// Samples per WAL record: at most [`record::SAMPLES_V2_MAX_BYTES_PER_SAMPLE`] (49) bytes each,
/// so a record stays under the WAL's 64 MiB payload limit.
const MAX_SAMPLES_PER_RECORD: usize = 1 << 20;

/// A handle on a series, valid for the life of the database.
#[derive(Clone)]
pub struct SeriesRef(pub(crate) Arc<MemSeries>);

impl SeriesRef {
    /// The series' stable id.
    pub fn id(&self) -> u64 {
        self.0.id
    }
}

pub struct Appender<'a> {
    db: &'a Db,
    samples: Vec<(Arc<MemSeries>, i64, f64)>,
    /// Highest LSN of a series record this appender caused; committed with the samples.
    series_lsn: Option<Lsn>,
}

impl<'a> Appender<'a> {
    pub(crate) fn new(db: &'a Db) -> Self {
        Appender {
            db,
            samples: Vec::new(),
            series_lsn: None,
        }
    }

    /// The existing series with `labels`, without creating it (for callers that limit
    /// series creation).
    pub fn existing(&self, labels: &Labels) -> Option<SeriesRef> {
        self.db.head.get(labels.hash64(), labels).map(SeriesRef)
    }

    /// The existing series with exactly these label pairs (raw bytes, sorted by name, as a
    /// valid label set is), looked up without allocating or checking UTF-8: the fast path for
    /// decoded requests whose series mostly exist already. A pair sequence that is not a
    /// valid sorted label set simply finds nothing.
    pub fn existing_pairs(&self, pairs: &[(&[u8], &[u8])]) -> Option<SeriesRef> {
        let hash = crate::labels::hash_pairs(pairs.iter().copied());
        self.db.head.get_pairs(hash, pairs).map(SeriesRef)
    }

    /// Finds or creates the series with `labels`.
    pub fn series(&mut self, labels: &Labels) -> Result<SeriesRef, TsdbError> {
        self.db.check_open()?;
        let hash = labels.hash64();
        if let Some(s) = self.db.head.get(hash, labels) {
            return Ok(SeriesRef(s));
        }
        let mut logged: Result<Option<Lsn>, TsdbError> = Ok(None);
        let wal = &self.db.wal;
        let (s, _) = self
            .db
            .head
            .get_or_create(hash, labels, None, |id, labels| {
                logged = wal
                    .append_with(record::REC_SERIES, |buf| {
                        record::encode_series_entry(buf, id, labels.iter())
                    })
                    .map(Some)
                    .map_err(TsdbError::from);
            });
        if let Some(lsn) = logged? {
            self.series_lsn = Some(self.series_lsn.map_or(lsn, |l| l.max(lsn)));
        }
        Ok(SeriesRef(s))
    }

    /// Queues a sample for `series`.
    pub fn append(&mut self, series: &SeriesRef, t: i64, v: f64) {
        self.samples.push((series.0.clone(), t, v));
    }

    /// Convenience: [`Appender::series`] then [`Appender::append`].
    pub fn add(&mut self, labels: &Labels, t: i64, v: f64) -> Result<SeriesRef, TsdbError> {
        let s = self.series(labels)?;
        self.append(&s, t, v);
        Ok(s)
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Applies, logs and durably commits the queued samples. Per-sample rejections are in
    /// the report; an `Err` means nothing of this batch is guaranteed durable (I/O failure,
    /// or the database is shutting down) and the caller should tell its client to retry.
    pub fn commit(self) -> Result<AppendReport, TsdbError> {
        let db = self.db;
        db.check_open()?;
        let ctx = AppendCtx {
            files: &db.head.files,
            stats: &db.head.stats,
            ooo_window_ms: Some(db.ooo_window_ms),
            min_valid_t: &db.head.min_valid_t,
        };
        let mut this = self;
        let mut newest = i64::MIN;
        let mut report = AppendReport::default();
        let mut accepted: Vec<(u64, i64, f64)> = Vec::with_capacity(this.samples.len());
        let mut i = 0;
        while i < this.samples.len() {
            let s = this.samples[i].0.clone();
            let mut st = s.state.lock();
            if st.removed {
                // Head GC removed the series after this batch (or a cache) looked it up: log
                // it again under a new id and append there.
                drop(st);
                let fresh = this.series(&db.head.labels_of(&s))?.0;
                let mut j = i;
                while j < this.samples.len() && Arc::ptr_eq(&this.samples[j].0, &s) {
                    this.samples[j].0 = fresh.clone();
                    j += 1;
                }
                continue;
            }
            // Consecutive samples of one series share one lock acquisition.
            while i < this.samples.len() && Arc::ptr_eq(&this.samples[i].0, &s) {
                let (_, t, v) = this.samples[i];
                newest = newest.max(t);
                let reason = match st.append(s.id, t, v, &ctx)? {
                    AppendOutcome::Appended => {
                        accepted.push((s.id, t, v));
                        None
                    }
                    AppendOutcome::AppendedOutOfOrder => {
                        db.head
                            .stats
                            .ooo_samples_appended
                            .fetch_add(1, Ordering::Relaxed);
                        accepted.push((s.id, t, v));
                        None
                    }
                    AppendOutcome::Duplicate => {
                        report.duplicates += 1;
                        None
                    }
                    AppendOutcome::TooOld => {
                        report.too_old += 1;
                        Some(RejectReason::TooOld)
                    }
                    AppendOutcome::DuplicateConflict => {
                        report.duplicate_conflicts += 1;
                        Some(RejectReason::DuplicateConflict)
                    }
                };
                if let Some(reason) = reason {
                    if report.rejections.len() < MAX_REJECTION_DETAILS {
                        report.rejections.push(Rejection {
                            labels: db.head.labels_of(&s),
                            t,
                            v,
                            reason,
                        });
                    }
                }
                i += 1;
            }
        }
        report.appended = accepted.len();
        let stats = &db.head.stats;
        stats
            .samples_appended
            .fetch_add(accepted.len() as u64, Ordering::Relaxed);
        stats
            .duplicate_samples
            .fetch_add(report.duplicates as u64, Ordering::Relaxed);
        stats
            .rejected_too_old
            .fetch_add(report.too_old as u64, Ordering::Relaxed);
        stats
            .rejected_duplicate_conflict
            .fetch_add(report.duplicate_conflicts as u64, Ordering::Relaxed);
        db.head.max_t.fetch_max(newest, Ordering::Relaxed);
        let mut lsn = this.series_lsn;
        // One record per batch keeps a batch atomic across a crash. Only batches beyond
        // MAX_SAMPLES_PER_RECORD (whose record would pass the WAL's payload limit) are split.
        for part in accepted.chunks(MAX_SAMPLES_PER_RECORD) {
            lsn = Some(db.wal.append_with(record::REC_SAMPLES_V2, |buf| {
                record::encode_samples_v2(buf, part)
            })?);
        }
        if let Some(lsn) = lsn {
            db.wal.commit(lsn)?;
        }
        Ok(report)
    }
}
