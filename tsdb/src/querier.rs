//! The read side the query engine uses: select series by matchers and time range, and label
//! names/values.
//!
//! [`Querier::select`] reads the blocks overlapping the range (their chunk references) and the
//! head: it copies what it needs out of each head series under that series' lock (chunk
//! references, a copy of the open chunk, out-of-order samples in range) and returns; decoding
//! happens afterwards, in [`Series::decode_into`] (all samples, the engine's path) or
//! [`SeriesIter`] (one at a time). The head is read only from its truncation point on, so data
//! is never counted twice while a head range is being persisted. A block that fails a read is
//! reported for quarantine and skipped by later queries; every query that leaves a block out
//! says so in [`Querier::warnings`] (the API's `warnings`), so partial data is never silent.

use std::sync::Arc;

use roaring::RoaringTreemap;

use crate::block::{Block, ChunkMeta as BlockChunk};
use crate::chunk::{ChunkError, XorIter};
use crate::head::chunk_file::MappedChunk;
use crate::index::Matcher;
use crate::labels::Labels;
use crate::{Db, TsdbError};

/// Reads samples in `[mint, maxt]` (milliseconds, both inclusive).
pub struct Querier<'a> {
    db: &'a Db,
    mint: i64,
    maxt: i64,
    /// Why data is missing from this querier's answers (blocks left out), deduplicated.
    warnings: parking_lot::Mutex<Vec<String>>,
}

/// One selected series and its chunks in the query range.
pub struct Series {
    pub labels: Labels,
    /// The head's series id (WAL records name series by it).
    pub(crate) id: u64,
    /// In-order full chunks, oldest first, then the open chunk.
    chunks: Vec<MappedChunk>,
    head: Vec<u8>,
    /// Out-of-order samples in range, sorted, unique timestamps.
    ooo: Vec<(i64, f64)>,
    /// Chunks of this series in blocks, blocks in time order.
    blocks: Vec<(Arc<Block>, Vec<BlockChunk>)>,
    /// Where a block that fails to decode is reported.
    quarantine: Option<crate::persist::QuarantineQueue>,
    mint: i64,
    maxt: i64,
    /// Head data is read from here on (the head's truncation point, or `mint`).
    head_mint: i64,
    /// Deleted ranges (tombstones) of this label set, from the head and its blocks.
    deleted: crate::tombstones::Intervals,
}

impl<'a> Querier<'a> {
    pub(crate) fn new(db: &'a Db, mint: i64, maxt: i64) -> Self {
        Querier {
            db,
            mint,
            maxt,
            warnings: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// Why answers so far may be incomplete: one line per block left out because it failed a
    /// read (now or in an earlier query; it is moved to `corrupt/` by the next maintenance
    /// run). Empty when every block in range was read.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().clone()
    }

    /// Whether block `m` overlaps the range; one in the quarantine queue is left out, with a
    /// warning.
    fn wanted(&self, m: &crate::block::BlockMeta, queue: &crate::persist::QuarantineQueue) -> bool {
        if m.max_time <= self.mint || m.min_time > self.maxt {
            return false;
        }
        if queue.contains(&m.id) {
            self.left_out(m, "it failed an earlier read");
            return false;
        }
        true
    }

    fn left_out(&self, m: &crate::block::BlockMeta, why: &str) {
        let w = format!(
            "block {} (samples from {} to {} ms) left out, results may be incomplete: {why}; it is being moved to corrupt/",
            m.id, m.min_time, m.max_time
        );
        let mut ws = self.warnings.lock();
        if !ws.contains(&w) {
            ws.push(w);
        }
    }

    /// Series ids matching all matchers that have at least one sample in range.
    fn matching_ids(&self, matchers: &[Matcher]) -> RoaringTreemap {
        let head = &self.db.head;
        let mint = self
            .mint
            .max(head.read_floor.load(std::sync::atomic::Ordering::SeqCst));
        let mut ids = head.postings.select(&head.symbols, matchers);
        let mut out_of_range = RoaringTreemap::new();
        for id in ids.iter() {
            let in_range = head.by_id(id).is_some_and(|s| {
                s.state
                    .lock()
                    .time_range()
                    .is_some_and(|(a, b)| b >= mint && a <= self.maxt)
            });
            if !in_range {
                out_of_range.insert(id);
            }
        }
        ids -= out_of_range;
        ids
    }

    /// Series matching all `matchers` (Prometheus semantics; see [`crate::index`]) with
    /// samples in range, in blocks or the head, sorted by label set.
    pub fn select(&self, matchers: &[Matcher]) -> Result<Vec<Series>, TsdbError> {
        let mut out = self.select_head(matchers)?;
        let blocks = self.db.blocks.snapshot();
        let queue = self.db.blocks.quarantine_queue();
        let overlapping: Vec<&Arc<Block>> = blocks
            .iter()
            .filter(|b| self.wanted(b.meta(), &queue))
            .collect();
        if overlapping.is_empty() {
            // Head-only range (the common case for recent data): already sorted.
            return Ok(out);
        }
        let mut by_labels: std::collections::HashMap<Labels, usize> = out
            .iter()
            .enumerate()
            .map(|(i, s)| (s.labels.clone(), i))
            .collect();
        for b in overlapping {
            let m = b.meta();
            let tombs = self.db.blocks.tombstones_of(&m.id);
            type Found = (
                Labels,
                Vec<BlockChunk>,
                Option<crate::tombstones::Intervals>,
            );
            let got = (|| -> Result<Vec<Found>, TsdbError> {
                let mut v = Vec::new();
                for r in b.select(matchers)? {
                    let (labels, chunks) = b.series(r)?;
                    let chunks: Vec<BlockChunk> = chunks
                        .into_iter()
                        .filter(|c| c.max_t >= self.mint && c.min_t <= self.maxt)
                        .collect();
                    if !chunks.is_empty() {
                        let del = tombs.as_ref().and_then(|t| t.by_series.get(&r.0)).cloned();
                        v.push((labels, chunks, del));
                    }
                }
                Ok(v)
            })();
            let got = match got {
                Ok(v) => v,
                Err(e) => {
                    queue.report(&m.id, &e.to_string());
                    self.left_out(m, &e.to_string());
                    continue;
                }
            };
            for (labels, chunks, del) in got {
                let i = match by_labels.get(&labels) {
                    Some(&i) => {
                        out[i].blocks.push((b.clone(), chunks));
                        i
                    }
                    None => {
                        by_labels.insert(labels.clone(), out.len());
                        out.push(Series {
                            labels,
                            id: 0,
                            chunks: Vec::new(),
                            head: Vec::new(),
                            ooo: Vec::new(),
                            blocks: vec![(b.clone(), chunks)],
                            quarantine: Some(queue.clone()),
                            mint: self.mint,
                            maxt: self.maxt,
                            head_mint: self.maxt.saturating_add(1),
                            deleted: Vec::new(),
                        });
                        out.len() - 1
                    }
                };
                for (a, z) in del.into_iter().flatten() {
                    crate::tombstones::add_interval(&mut out[i].deleted, a, z);
                }
            }
        }
        for s in &mut out {
            if !s.blocks.is_empty() {
                s.quarantine = Some(queue.clone());
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Like [`Querier::select`], head only (from its truncation point on).
    pub(crate) fn select_head(&self, matchers: &[Matcher]) -> Result<Vec<Series>, TsdbError> {
        let floor = self
            .db
            .head
            .read_floor
            .load(std::sync::atomic::Ordering::SeqCst);
        self.select_head_from(matchers, floor)
    }

    /// Head series from `floor` on (block persistence reads a range the head already refuses
    /// new samples for, before truncating it).
    pub(crate) fn select_head_from(
        &self,
        matchers: &[Matcher],
        floor: i64,
    ) -> Result<Vec<Series>, TsdbError> {
        let head = &self.db.head;
        let mint = self.mint.max(floor);
        let ids = head.postings.select(&head.symbols, matchers);
        let mut out = Vec::with_capacity(ids.len() as usize);
        for id in ids.iter() {
            let Some(s) = head.by_id(id) else { continue };
            let snap = {
                let st = s.state.lock();
                match st.time_range() {
                    Some((a, b)) if b >= mint && a <= self.maxt => {}
                    _ => continue,
                }
                st.snapshot(mint, self.maxt)
            };
            let mut chunks = Vec::with_capacity(snap.mmapped.len());
            for m in &snap.mmapped {
                chunks.push(head.files.read(m.at)?);
            }
            let mut ooo = snap.ooo_buf;
            for m in &snap.ooo_chunks {
                let c = head.files.read(m.at)?;
                let mut it = XorIter::new(c.bytes());
                ooo.extend(it.by_ref().filter(|s| s.0 >= mint && s.0 <= self.maxt));
                if let Some(e) = it.err() {
                    return Err(chunk_corruption(id, e));
                }
            }
            if !snap.ooo_chunks.is_empty() {
                // Stable sort keeps the first of equal timestamps; there are none (duplicates
                // are refused at append), but dedup defensively.
                ooo.sort_by_key(|s| s.0);
                ooo.dedup_by_key(|s| s.0);
            }
            out.push(Series {
                id: s.id,
                labels: head.labels_of(&s),
                chunks,
                head: snap.head,
                ooo,
                blocks: Vec::new(),
                quarantine: None,
                mint: self.mint,
                maxt: self.maxt,
                head_mint: mint,
                deleted: head.tombstones.read().get(&id).cloned().unwrap_or_default(),
            });
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// Label names of the series matching `matchers` with samples in range, sorted.
    pub fn label_names(&self, matchers: &[Matcher]) -> Vec<String> {
        let head = &self.db.head;
        let ids = self.matching_ids(matchers);
        let mut out: Vec<String> = head
            .postings
            .label_names(&head.symbols, Some(&ids))
            .into_iter()
            .map(|s| s.to_string())
            .collect();
        self.union_blocks(&mut out, |b| b.label_names(matchers));
        out
    }

    /// Merges each overlapping block's answer into `out` (sorted, unique).
    fn union_blocks(
        &self,
        out: &mut Vec<String>,
        f: impl Fn(&Block) -> Result<Vec<String>, TsdbError>,
    ) {
        let queue = self.db.blocks.quarantine_queue();
        let mut added = false;
        for b in self.db.blocks.snapshot().iter() {
            let m = b.meta();
            if !self.wanted(m, &queue) {
                continue;
            }
            match f(b) {
                Ok(v) => {
                    added |= !v.is_empty();
                    out.extend(v);
                }
                Err(e) => {
                    queue.report(&m.id, &e.to_string());
                    self.left_out(m, &e.to_string());
                }
            }
        }
        if added {
            out.sort();
            out.dedup();
        }
    }

    /// Values of label `name` among the series matching `matchers` with samples in range,
    /// sorted.
    pub fn label_values(&self, name: &str, matchers: &[Matcher]) -> Vec<String> {
        let head = &self.db.head;
        let ids = self.matching_ids(matchers);
        let mut out: Vec<String> = head
            .postings
            .label_values(&head.symbols, name, Some(&ids))
            .into_iter()
            .map(|s| s.to_string())
            .collect();
        self.union_blocks(&mut out, |b| b.label_values(name, matchers));
        out
    }
}

fn chunk_corruption(series: u64, e: &ChunkError) -> TsdbError {
    TsdbError::Internal {
        detail: format!("corrupt chunk of series {series}: {e}"),
    }
}

impl Series {
    /// A pull iterator over the series' samples in the query range.
    pub fn iter(&self) -> SeriesIter<'_> {
        let mut it = SeriesIter {
            decoded: None,
            series: self,
            cur: XorIter::new(&[]),
            active: false,
            next_chunk: 0,
            head_started: false,
            peek: None,
            ooo_idx: 0,
            done: false,
            err: None,
        };
        it.reset(self);
        it
    }

    /// Appends the series' samples in range to `out` (ascending, unique timestamps): each
    /// chunk is decoded in a tight loop, and out-of-order data (rare) is merged afterwards.
    /// The fast path for readers that want every sample (the query engine).
    pub fn decode_into(&self, out: &mut Vec<(i64, f64)>) -> Result<(), TsdbError> {
        if self.deleted.is_empty() {
            return self.decode_sources_into(out);
        }
        let start = out.len();
        self.decode_sources_into(out)?;
        let mut tail = out.split_off(start);
        crate::tombstones::apply(&self.deleted, &mut tail);
        out.extend(tail);
        Ok(())
    }

    fn decode_sources_into(&self, out: &mut Vec<(i64, f64)>) -> Result<(), TsdbError> {
        if self.blocks.is_empty() {
            return self.decode_head_into(out);
        }
        let start = out.len();
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        for (b, chunks) in &self.blocks {
            for c in chunks {
                let decoded = b.decode_chunk(c.chunk_ref, &mut ts, &mut vs, &self.labels);
                if let Err(e) = decoded {
                    if let Some(q) = &self.quarantine {
                        q.report(&b.meta().id, &e.to_string());
                    }
                    out.truncate(start);
                    return Err(e);
                }
                out.extend(
                    ts.iter()
                        .zip(&vs)
                        .map(|(&t, &v)| (t, v))
                        .filter(|p| p.0 >= self.mint && p.0 <= self.maxt),
                );
            }
        }
        self.decode_head_into(out)?;
        // Blocks may overlap each other (out-of-order data, backfill) and, for a moment, the
        // head: keep time order and the first copy of a timestamp.
        if !out[start..].windows(2).all(|w| w[0].0 < w[1].0) {
            out[start..].sort_by_key(|p| p.0);
            let mut tail = out.split_off(start);
            tail.dedup_by_key(|p| p.0);
            out.extend(tail);
        }
        Ok(())
    }

    fn decode_head_into(&self, out: &mut Vec<(i64, f64)>) -> Result<(), TsdbError> {
        let start = out.len();
        let mut it = XorIter::new(&[]);
        let head = (!self.head.is_empty()).then_some(&self.head[..]);
        for bytes in self.chunks.iter().map(|c| c.bytes()).chain(head) {
            it.reset(bytes);
            for (t, v) in it.by_ref() {
                if t > self.maxt {
                    break;
                }
                if t >= self.head_mint {
                    out.push((t, v));
                }
            }
            if let Some(e) = it.err() {
                out.truncate(start);
                return Err(TsdbError::Internal {
                    detail: format!("corrupt chunk in {}: {e}", self.labels),
                });
            }
        }
        if !self.ooo.is_empty() {
            let in_order = out.split_off(start);
            let (mut a, mut b) = (0, 0);
            while a < in_order.len() || b < self.ooo.len() {
                match (in_order.get(a), self.ooo.get(b)) {
                    (Some(x), Some(y)) if y.0 < x.0 => {
                        out.push(*y);
                        b += 1;
                    }
                    (Some(x), Some(y)) => {
                        // Equal timestamps: the in-order sample wins, as in `SeriesIter`.
                        if y.0 == x.0 {
                            b += 1;
                        }
                        out.push(*x);
                        a += 1;
                    }
                    (Some(x), None) => {
                        out.push(*x);
                        a += 1;
                    }
                    (None, Some(y)) => {
                        out.push(*y);
                        b += 1;
                    }
                    (None, None) => break,
                }
            }
        }
        Ok(())
    }

    /// All samples in range (for tests and small results).
    pub fn samples(&self) -> Result<Vec<(i64, f64)>, TsdbError> {
        let mut it = self.iter();
        let v: Vec<_> = it.by_ref().collect();
        match it.err() {
            Some(e) => Err(TsdbError::Internal {
                detail: format!("corrupt chunk in {}: {e}", self.labels),
            }),
            None => Ok(v),
        }
    }
}

/// Merges a series' in-order chunks with its out-of-order samples. Reusable via
/// [`SeriesIter::reset`]; decoding does not allocate.
pub struct SeriesIter<'a> {
    /// All samples, for a series with block data.
    decoded: Option<std::vec::IntoIter<(i64, f64)>>,
    series: &'a Series,
    cur: XorIter<'a>,
    /// Whether `cur` is positioned on a chunk (an empty `XorIter` reports an error).
    active: bool,
    next_chunk: usize,
    head_started: bool,
    peek: Option<(i64, f64)>,
    ooo_idx: usize,
    done: bool,
    err: Option<ChunkError>,
}

impl<'a> SeriesIter<'a> {
    /// Restarts the iterator on `series`.
    pub fn reset(&mut self, series: &'a Series) {
        self.series = series;
        self.active = false;
        self.next_chunk = 0;
        self.head_started = false;
        self.peek = None;
        self.ooo_idx = 0;
        self.done = false;
        self.err = None;
        self.decoded = None;
        if !series.blocks.is_empty() || !series.deleted.is_empty() {
            // Series with block data (columnar encodings) or deletions are decoded whole.
            let mut v = Vec::new();
            match series.decode_into(&mut v) {
                Ok(()) => self.decoded = Some(v.into_iter()),
                Err(_) => {
                    self.decoded = Some(Vec::new().into_iter());
                    self.err = Some(ChunkError::Corrupt {
                        offset: 0,
                        detail: "block chunk failed its CRC or did not decode",
                    });
                }
            }
        }
    }

    /// Set when iteration stopped early because a chunk did not decode.
    pub fn err(&self) -> Option<&ChunkError> {
        self.err.as_ref()
    }

    fn next_in_order(&mut self) -> Option<(i64, f64)> {
        let s = self.series;
        while !self.done {
            if self.active {
                if let Some((t, v)) = self.cur.next() {
                    if t < s.head_mint {
                        continue;
                    }
                    if t > s.maxt {
                        self.done = true;
                        return None;
                    }
                    return Some((t, v));
                }
                if let Some(e) = self.cur.err() {
                    self.err = Some(e.clone());
                    self.done = true;
                    return None;
                }
                self.active = false;
            }
            if self.next_chunk < s.chunks.len() {
                self.cur.reset(s.chunks[self.next_chunk].bytes());
                self.next_chunk += 1;
                self.active = true;
            } else if !self.head_started && !s.head.is_empty() {
                self.head_started = true;
                self.cur.reset(&s.head);
                self.active = true;
            } else {
                self.done = true;
            }
        }
        None
    }
}

impl Iterator for SeriesIter<'_> {
    type Item = (i64, f64);

    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        if let Some(d) = &mut self.decoded {
            return d.next();
        }
        if self.peek.is_none() {
            self.peek = self.next_in_order();
        }
        let ooo = self.series.ooo.get(self.ooo_idx).copied();
        match (self.peek, ooo) {
            (Some(a), Some(b)) if b.0 < a.0 => {
                self.ooo_idx += 1;
                Some(b)
            }
            (Some(a), Some(b)) => {
                if b.0 == a.0 {
                    self.ooo_idx += 1;
                }
                self.peek = None;
                Some(a)
            }
            (Some(a), None) => {
                self.peek = None;
                Some(a)
            }
            (None, Some(b)) => {
                self.ooo_idx += 1;
                Some(b)
            }
            (None, None) => None,
        }
    }
}
