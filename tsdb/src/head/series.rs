//! One in-memory series: its open Gorilla chunk, references to its full chunks in the
//! head-chunks files, and its out-of-order buffer.

use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use super::chunk_file::{ChunkRef, HeadChunkFiles, FLAG_OOO};
use super::HeadStats;
use crate::chunk::{Encoding, XorChunk, XorIter};
use crate::TsdbError;

/// A chunk is cut after this many samples...
pub(crate) const MAX_SAMPLES_PER_CHUNK: usize = 120;
/// ...or when a sample crosses a multiple of this range (2 h, in ms), so that chunks never
/// straddle the block boundaries the next storage layer cuts at.
pub(crate) const CHUNK_RANGE_MS: i64 = 2 * 3600 * 1000;
/// Out-of-order samples are buffered sorted in memory and written as a chunk at this size.
pub(crate) const OOO_CHUNK_SAMPLES: usize = 32;

/// What happened to one appended sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppendOutcome {
    Appended,
    AppendedOutOfOrder,
    /// Same timestamp, same value bits as a stored sample: accepted, nothing to store.
    Duplicate,
    TooOld,
    DuplicateConflict,
}

/// Time range and location of a full chunk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkMeta {
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
    pub(crate) at: ChunkRef,
}

pub(crate) struct MemSeries {
    /// Stable id, written to the WAL. Fixed after construction.
    pub(crate) id: u64,
    /// Label symbol refs, name/value alternating, sorted by name. Fixed after construction.
    pub(crate) syms: Box<[u32]>,
    pub(crate) state: Mutex<SeriesState>,
}

#[derive(Default)]
struct OooState {
    /// Sorted by timestamp, unique timestamps.
    buf: Vec<(i64, f64)>,
    /// Full out-of-order chunks; they may overlap each other and in-order chunks.
    chunks: Vec<ChunkMeta>,
}

pub(crate) struct SeriesState {
    /// Open chunk; empty right after a cut.
    head: XorChunk,
    /// The head chunk must be cut before a sample at or after this time.
    head_end: i64,
    /// Full in-order chunks, sorted, non-overlapping, all older than `head`.
    mmapped: Vec<ChunkMeta>,
    ooo: Option<Box<OooState>>,
    /// Newest in-order sample (`i64::MIN` when there is none) and its value bits.
    last_t: i64,
    last_bits: u64,
    /// Oldest sample time including out-of-order ones (`i64::MAX` when empty).
    min_t: i64,
    /// Set (under this lock) when head GC removed the series from the head's maps; a holder
    /// of a stale reference must look the labels up again before appending.
    pub(crate) removed: bool,
}

impl MemSeries {
    pub(crate) fn new(id: u64, syms: Box<[u32]>) -> Self {
        MemSeries {
            id,
            syms,
            state: Mutex::new(SeriesState {
                head: XorChunk::new(),
                head_end: i64::MIN,
                mmapped: Vec::new(),
                ooo: None,
                last_t: i64::MIN,
                last_bits: 0,
                min_t: i64::MAX,
                removed: false,
            }),
        }
    }
}

/// Everything a series needs to append, borrowed from the head.
pub(crate) struct AppendCtx<'a> {
    pub(crate) files: &'a HeadChunkFiles,
    pub(crate) stats: &'a HeadStats,
    /// `None` during WAL replay: every logged sample was accepted once and is accepted again.
    pub(crate) ooo_window_ms: Option<i64>,
    /// Samples older than this are already persisted in blocks (the head was truncated
    /// there): refused as too old, and skipped during replay.
    /// Loaded under the series lock on every append, so an append serialised after a
    /// truncation of this series sees the raised bound.
    pub(crate) min_valid_t: &'a std::sync::atomic::AtomicI64,
}

impl SeriesState {
    /// Appends one sample. Errors are I/O errors writing a full chunk out.
    pub(crate) fn append(
        &mut self,
        id: u64,
        t: i64,
        v: f64,
        ctx: &AppendCtx<'_>,
    ) -> Result<AppendOutcome, TsdbError> {
        if t < ctx.min_valid_t.load(Ordering::SeqCst) {
            return Ok(AppendOutcome::TooOld);
        }
        if t > self.last_t {
            if self.head.num_samples() > 0
                && (self.head.num_samples() >= MAX_SAMPLES_PER_CHUNK || t >= self.head_end)
            {
                self.cut(id, ctx)?;
            }
            if self.head.num_samples() == 0 {
                self.head_end = t
                    .div_euclid(CHUNK_RANGE_MS)
                    .saturating_add(1)
                    .saturating_mul(CHUNK_RANGE_MS);
                ctx.stats.chunks_created.fetch_add(1, Ordering::Relaxed);
            }
            self.head.append(t, v).map_err(|e| TsdbError::Internal {
                detail: format!("BUG: in-order append refused: {e}"),
            })?;
            self.last_t = t;
            self.last_bits = v.to_bits();
            self.min_t = self.min_t.min(t);
            return Ok(AppendOutcome::Appended);
        }
        if t == self.last_t {
            return Ok(if v.to_bits() == self.last_bits {
                AppendOutcome::Duplicate
            } else {
                AppendOutcome::DuplicateConflict
            });
        }
        if let Some(w) = ctx.ooo_window_ms {
            if t < self.last_t.saturating_sub(w) {
                return Ok(AppendOutcome::TooOld);
            }
        }
        self.append_ooo(id, t, v, ctx)
    }

    fn cut(&mut self, id: u64, ctx: &AppendCtx<'_>) -> Result<(), TsdbError> {
        let (Some(min_t), Some(max_t)) = (self.head.first_time(), self.head.last_time()) else {
            return Ok(());
        };
        let at = ctx
            .files
            .write(id, min_t, max_t, Encoding::Xor as u8, 0, self.head.bytes())?;
        self.mmapped.push(ChunkMeta { min_t, max_t, at });
        self.head = XorChunk::new();
        Ok(())
    }

    fn append_ooo(
        &mut self,
        id: u64,
        t: i64,
        v: f64,
        ctx: &AppendCtx<'_>,
    ) -> Result<AppendOutcome, TsdbError> {
        if let Some(existing) = self.find_in_order(t, ctx)? {
            return Ok(dup_outcome(existing, v));
        }
        let ooo = self.ooo.get_or_insert_with(Default::default);
        let pos = match ooo.buf.binary_search_by(|s| s.0.cmp(&t)) {
            Ok(i) => return Ok(dup_outcome(ooo.buf[i].1, v)),
            Err(i) => i,
        };
        for m in ooo.chunks.iter().filter(|m| m.min_t <= t && t <= m.max_t) {
            if let Some(existing) = find_in_chunk(ctx.files.read(m.at)?.bytes(), t) {
                return Ok(dup_outcome(existing, v));
            }
        }
        ooo.buf.insert(pos, (t, v));
        self.min_t = self.min_t.min(t);
        if ooo.buf.len() >= OOO_CHUNK_SAMPLES {
            let mut c = XorChunk::with_capacity(OOO_CHUNK_SAMPLES * 4);
            for &(t, v) in &ooo.buf {
                c.append(t, v).map_err(|e| TsdbError::Internal {
                    detail: format!("BUG: sorted out-of-order buffer refused: {e}"),
                })?;
            }
            let (min_t, max_t) = (ooo.buf[0].0, ooo.buf[ooo.buf.len() - 1].0);
            let at = ctx
                .files
                .write(id, min_t, max_t, Encoding::Xor as u8, FLAG_OOO, c.bytes())?;
            ooo.chunks.push(ChunkMeta { min_t, max_t, at });
            ooo.buf.clear();
            ctx.stats.chunks_created.fetch_add(1, Ordering::Relaxed);
        }
        Ok(AppendOutcome::AppendedOutOfOrder)
    }

    /// The value stored in-order at exactly `t`, if any.
    fn find_in_order(&self, t: i64, ctx: &AppendCtx<'_>) -> Result<Option<f64>, TsdbError> {
        if self.head.first_time().is_some_and(|f| f <= t) {
            return Ok(find_in_chunk(self.head.bytes(), t));
        }
        let i = self.mmapped.partition_point(|m| m.max_t < t);
        match self.mmapped.get(i) {
            Some(m) if m.min_t <= t => Ok(find_in_chunk(ctx.files.read(m.at)?.bytes(), t)),
            _ => Ok(None),
        }
    }

    /// Drops everything older than `t` (persisted in a block): in-order chunks end before a
    /// multiple of the 2 h chunk range, so with `t` on such a multiple whole chunks go;
    /// out-of-order chunks straddling `t` stay (readers clamp to `t`). Returns whether the
    /// series still holds samples at or after `t`.
    pub(crate) fn truncate(&mut self, t: i64) -> bool {
        self.mmapped.retain(|m| m.max_t >= t);
        if self.head.last_time().is_some_and(|l| l < t) {
            self.head = XorChunk::new();
        }
        if let Some(o) = &mut self.ooo {
            o.buf.retain(|s| s.0 >= t);
            o.chunks.retain(|m| m.max_t >= t);
            if o.buf.is_empty() && o.chunks.is_empty() {
                self.ooo = None;
            }
        }
        // The oldest sample left: chunk starts (out-of-order chunks may straddle `t`).
        let mut min = self.mmapped.first().map_or(i64::MAX, |m| m.min_t);
        if let Some(f) = self.head.first_time() {
            min = min.min(f);
        }
        if let Some(o) = &self.ooo {
            if let Some(f) = o.buf.first() {
                min = min.min(f.0);
            }
            for c in &o.chunks {
                min = min.min(c.min_t);
            }
        }
        self.min_t = if min == i64::MAX {
            i64::MAX
        } else {
            min.max(t)
        };
        min != i64::MAX
    }

    /// Oldest and newest sample time, if the series has any sample.
    pub(crate) fn time_range(&self) -> Option<(i64, i64)> {
        let ooo_max = self
            .ooo
            .as_ref()
            .map(|o| {
                let b = o.buf.last().map_or(i64::MIN, |s| s.0);
                o.chunks.iter().map(|m| m.max_t).fold(b, i64::max)
            })
            .unwrap_or(i64::MIN);
        let in_order_max = if self.mmapped.is_empty() && self.head.num_samples() == 0 {
            i64::MIN
        } else {
            self.last_t
        };
        let max = in_order_max.max(ooo_max);
        (self.min_t <= max).then_some((self.min_t, max))
    }

    /// Copies out what a reader needs for samples in `[mint, maxt]`, so decoding happens
    /// without the series lock.
    pub(crate) fn snapshot(&self, mint: i64, maxt: i64) -> SeriesSnapshot {
        let overlaps = |m: &&ChunkMeta| m.max_t >= mint && m.min_t <= maxt;
        let mut snap = SeriesSnapshot {
            mmapped: self.mmapped.iter().filter(overlaps).copied().collect(),
            ..SeriesSnapshot::default()
        };
        let head_overlaps = match (self.head.first_time(), self.head.last_time()) {
            (Some(a), Some(b)) => b >= mint && a <= maxt,
            _ => false,
        };
        if head_overlaps {
            snap.head = self.head.bytes().to_vec();
        }
        if let Some(o) = &self.ooo {
            snap.ooo_chunks = o.chunks.iter().filter(overlaps).copied().collect();
            snap.ooo_buf = o
                .buf
                .iter()
                .filter(|s| s.0 >= mint && s.0 <= maxt)
                .copied()
                .collect();
        }
        snap
    }

    /// Bytes of memory owned by this series' state (not counting the mapped files).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.head.heap_bytes()
            + self.mmapped.capacity() * std::mem::size_of::<ChunkMeta>()
            + self.ooo.as_ref().map_or(0, |o| {
                std::mem::size_of::<OooState>()
                    + o.buf.capacity() * 16
                    + o.chunks.capacity() * std::mem::size_of::<ChunkMeta>()
            })
    }
}

fn dup_outcome(existing: f64, v: f64) -> AppendOutcome {
    if existing.to_bits() == v.to_bits() {
        AppendOutcome::Duplicate
    } else {
        AppendOutcome::DuplicateConflict
    }
}

fn find_in_chunk(bytes: &[u8], t: i64) -> Option<f64> {
    match XorIter::new(bytes).seek(t) {
        Some((st, v)) if st == t => Some(v),
        _ => None,
    }
}

/// Chunk references and copies taken under the series lock.
#[derive(Default)]
pub(crate) struct SeriesSnapshot {
    pub(crate) mmapped: Vec<ChunkMeta>,
    pub(crate) head: Vec<u8>,
    pub(crate) ooo_chunks: Vec<ChunkMeta>,
    pub(crate) ooo_buf: Vec<(i64, f64)>,
}
