//! The life of blocks inside a [`Db`]: loading them at start-up (quarantining corrupt ones),
//! cutting head data into 2 h blocks, level compaction, and retention.
//!
//! All of it runs from [`Db::maintain`], which the server calls periodically; one mutex
//! serialises maintenance so a block is never compacted and expired at once. Every change to
//! the set of blocks is made crash-safe on disk first, then published to readers by swapping
//! the set (readers hold an `Arc` snapshot, so a block being deleted stays readable until the
//! last query using it ends; its files are unlinked, the mappings stay valid).
//!
//! Crash safety:
//! - a new block is written to `<id>.tmp/` and renamed into place (see [`crate::block`]);
//!   leftovers are deleted at start-up;
//! - head data is truncated only after its block is durable; the WAL checkpoint follows;
//! - compaction writes the merged block before deleting its sources; if a crash leaves both,
//!   start-up deletes every block whose `sources` are covered by another block's;
//! - deletion renames `<id>` to `<id>.deleted` (atomic) before removing the files, and
//!   start-up finishes interrupted deletions.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::block::{self, Block, BlockMeta, BlockWriter};
use crate::filenames;
use crate::labels::Labels;
use crate::tombstones::{self, BlockTombstones};
use crate::{Db, TsdbError};

/// The range of a block cut from the head, and the alignment of head chunks (2 h).
pub const BLOCK_RANGE_MS: i64 = crate::head::series::CHUNK_RANGE_MS;
/// Samples per chunk when a block is written (head blocks hold ≤ 2 h per chunk anyway).
pub(crate) const MAX_SAMPLES_PER_BLOCK_CHUNK: usize = 8192;
const DELETED_SUFFIX: &str = ".deleted";

/// Called with a block just before retention deletes it: the seam for downsampling to
/// Parquet. An error is logged and the block is deleted anyway (retention limits are hard).
pub trait ExpiryHook: Send + Sync {
    fn before_delete(&self, block: &Block) -> Result<(), String>;
}

/// Counters of block maintenance, exported as metrics.
#[derive(Debug, Default)]
pub struct BlockStats {
    pub head_blocks_written: AtomicU64,
    pub compactions: AtomicU64,
    pub blocks_deleted: AtomicU64,
    pub blocks_quarantined: AtomicU64,
    pub maintenance_failures: AtomicU64,
}

/// Blocks that failed a read, waiting to be moved to `corrupt/` by the next maintenance (a
/// query must not wait for maintenance). Readers skip reported blocks at once.
#[derive(Clone, Default)]
pub(crate) struct QuarantineQueue(Arc<Mutex<Vec<(String, String)>>>);

impl QuarantineQueue {
    pub(crate) fn report(&self, id: &str, reason: &str) {
        let mut q = self.0.lock();
        if !q.iter().any(|(i, _)| i == id) {
            tracing::error!(
                block = id,
                reason,
                "block read failed; it will be quarantined"
            );
            q.push((id.to_string(), reason.to_string()));
        }
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.0.lock().iter().any(|(i, _)| i == id)
    }

    fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.0.lock())
    }
}

/// The on-disk blocks of a database.
pub(crate) struct Blocks {
    queue: QuarantineQueue,
    pub(crate) dir: PathBuf,
    corrupt_dir: PathBuf,
    /// Sorted by `min_time`, then id. Replaced whole on every change.
    set: RwLock<Arc<Vec<Arc<Block>>>>,
    pub(crate) stats: BlockStats,
    /// Serialises maintenance (cut, compaction, retention, quarantine moves), tombstone
    /// changes (`delete_series`) and snapshots ([`crate::snapshot`]).
    pub(crate) work: Mutex<()>,
    hook: RwLock<Option<Arc<dyn ExpiryHook>>>,
    /// Tombstones of each block, by block id (absent = none).
    tombstones: RwLock<std::collections::HashMap<String, Arc<BlockTombstones>>>,
}

/// What one [`Db::maintain`] call did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MaintainReport {
    pub head_blocks: Vec<String>,
    pub compacted: Vec<String>,
    pub deleted: Vec<String>,
}

impl Blocks {
    /// Opens every block under `<path>/blocks`, finishing interrupted deletions, deleting
    /// interrupted writes and blocks made redundant by a completed compaction, and moving
    /// corrupt blocks to `<path>/corrupt/`.
    pub(crate) fn open(path: &Path) -> Result<Blocks, TsdbError> {
        let dir = path.join(filenames::BLOCKS_DIR);
        fs::create_dir_all(&dir).map_err(|e| TsdbError::io(&dir, e))?;
        block::remove_tmp_blocks(&dir)?;
        let blocks = Blocks {
            corrupt_dir: path.join(filenames::CORRUPT_DIR),
            dir,
            set: RwLock::new(Arc::new(Vec::new())),
            stats: BlockStats::default(),
            work: Mutex::new(()),
            hook: RwLock::new(None),
            queue: QuarantineQueue::default(),
            tombstones: RwLock::new(Default::default()),
        };
        let mut opened = Vec::new();
        let entries = fs::read_dir(&blocks.dir).map_err(|e| TsdbError::io(&blocks.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| TsdbError::io(&blocks.dir, e))?;
            let p = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(DELETED_SUFFIX) {
                fs::remove_dir_all(&p).map_err(|e| TsdbError::io(&p, e))?;
                continue;
            }
            if !block::is_block_id(&name) || !p.is_dir() {
                continue;
            }
            match Block::open(&p).and_then(|b| Ok((b, BlockTombstones::read(&p)?))) {
                Ok((b, t)) => {
                    if !t.by_series.is_empty() {
                        blocks.tombstones.write().insert(name.clone(), Arc::new(t));
                    }
                    opened.push(Arc::new(b));
                }
                Err(e) => blocks.quarantine_dir(&p, &name, &e.to_string()),
            }
        }
        // A crash between writing a compacted block and deleting its sources leaves both.
        let mut redundant = HashSet::new();
        for b in &opened {
            let srcs: HashSet<&String> = b.meta().sources.iter().collect();
            for other in &opened {
                if Arc::ptr_eq(b, other) || other.meta().level >= b.meta().level {
                    continue;
                }
                if other.meta().sources.iter().all(|s| srcs.contains(s)) {
                    redundant.insert(other.meta().id.clone());
                }
            }
        }
        opened.retain(|b| {
            if redundant.contains(&b.meta().id) {
                tracing::info!(block = %b.meta().id, "deleting a block already merged into a compacted one");
                if let Err(e) = blocks.delete_dir(b.dir()) {
                    tracing::error!(block = %b.meta().id, error = %e, "deleting redundant block");
                }
                false
            } else {
                true
            }
        });
        sort(&mut opened);
        *blocks.set.write() = Arc::new(opened);
        Ok(blocks)
    }

    /// The current blocks (a snapshot: later changes do not affect it).
    pub(crate) fn snapshot(&self) -> Arc<Vec<Arc<Block>>> {
        self.set.read().clone()
    }

    /// End (exclusive) of the newest block's range.
    pub(crate) fn max_time(&self) -> Option<i64> {
        self.snapshot().iter().map(|b| b.meta().max_time).max()
    }

    /// The deleted intervals of a block's series, if any.
    pub(crate) fn tombstones_of(&self, id: &str) -> Option<Arc<BlockTombstones>> {
        self.tombstones.read().get(id).cloned()
    }

    pub(crate) fn set_hook(&self, hook: Arc<dyn ExpiryHook>) {
        *self.hook.write() = Some(hook);
    }

    fn publish(&self, remove: &[String], add: Option<Arc<Block>>) {
        if !remove.is_empty() {
            let mut t = self.tombstones.write();
            for id in remove {
                t.remove(id);
            }
        }
        let mut set = self.set.write();
        let mut v: Vec<Arc<Block>> = set
            .iter()
            .filter(|b| !remove.contains(&b.meta().id))
            .cloned()
            .collect();
        v.extend(add);
        sort(&mut v);
        *set = Arc::new(v);
    }

    /// Renames `<dir>` to `<dir>.deleted` (atomic), then removes it.
    fn delete_dir(&self, dir: &Path) -> Result<(), TsdbError> {
        let mut gone = dir.as_os_str().to_owned();
        gone.push(DELETED_SUFFIX);
        let gone = PathBuf::from(gone);
        fs::rename(dir, &gone).map_err(|e| TsdbError::io(dir, e))?;
        sync_dir(&self.dir)?;
        fs::remove_dir_all(&gone).map_err(|e| TsdbError::io(&gone, e))?;
        self.stats.blocks_deleted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn quarantine_dir(&self, dir: &Path, name: &str, reason: &str) {
        self.stats
            .blocks_quarantined
            .fetch_add(1, Ordering::Relaxed);
        let dst = self.corrupt_dir.join(name);
        let moved = fs::create_dir_all(&self.corrupt_dir)
            .and_then(|_| {
                if dst.exists() {
                    fs::remove_dir_all(&dst)?;
                }
                fs::rename(dir, &dst)
            })
            .map_err(|e| e.to_string());
        match moved {
            Ok(()) => tracing::error!(block = name, reason, moved_to = %dst.display(),
                "corrupt block quarantined; serving the other blocks"),
            Err(e) => tracing::error!(
                block = name,
                reason,
                error = e,
                "corrupt block could not be moved aside; it is not served"
            ),
        }
    }

    pub(crate) fn quarantine_queue(&self) -> QuarantineQueue {
        self.queue.clone()
    }

    /// Takes a block that failed a read out of service and moves it to `corrupt/` (caller
    /// holds `work`).
    fn quarantine(&self, id: &str, reason: &str) {
        let Some(b) = self.snapshot().iter().find(|b| b.meta().id == id).cloned() else {
            return;
        };
        self.publish(&[id.to_string()], None);
        self.quarantine_dir(b.dir(), id, reason);
    }

    pub(crate) fn size_bytes(&self) -> u64 {
        self.snapshot().iter().map(|b| b.size_bytes()).sum()
    }
}

fn sort(v: &mut [Arc<Block>]) {
    v.sort_by(|a, b| (a.meta().min_time, &a.meta().id).cmp(&(b.meta().min_time, &b.meta().id)));
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), TsdbError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| TsdbError::io(dir, e))
}

/// Compaction ranges: 2 h blocks merge into 6 h, then 24 h, then 72 h, never past 10 % of
/// the retention time (and never below 6 h, so some merging always happens).
pub(crate) fn compaction_ranges(retention_ms: i64) -> Vec<i64> {
    let cap = (retention_ms / 10).max(3 * BLOCK_RANGE_MS);
    let mut out = vec![BLOCK_RANGE_MS];
    for r in [3 * BLOCK_RANGE_MS, 12 * BLOCK_RANGE_MS, 36 * BLOCK_RANGE_MS] {
        if r <= cap {
            out.push(r);
        }
    }
    out
}

/// The blocks to merge next (by index into `metas`, sorted by min time), if any: first any
/// group of blocks overlapping in time (out-of-order data or backfill), then, for each range
/// above the smallest, two or more blocks inside one aligned window that has ended (a newer
/// block exists past its end).
pub(crate) fn plan_compaction(metas: &[&BlockMeta], ranges: &[i64]) -> Option<Vec<usize>> {
    // Overlaps: sweep in min-time order.
    let mut group: Vec<usize> = Vec::new();
    let mut group_max = i64::MIN;
    for (i, m) in metas.iter().enumerate() {
        if !group.is_empty() && m.min_time < group_max {
            group.push(i);
            group_max = group_max.max(m.max_time);
            continue;
        }
        if group.len() > 1 {
            return Some(group);
        }
        group = vec![i];
        group_max = m.max_time;
    }
    if group.len() > 1 {
        return Some(group);
    }
    let newest = metas.iter().map(|m| m.max_time).max()?;
    for &r in ranges.iter().skip(1) {
        let mut i = 0;
        while i < metas.len() {
            let w = metas[i].min_time.div_euclid(r) * r;
            let mut j = i;
            while j < metas.len() && metas[j].min_time >= w && metas[j].max_time <= w + r {
                j += 1;
            }
            if j > i + 1 && w + r <= newest && j - i < metas.len() + 1 {
                // Skip windows already holding one block of that size.
                let already = j - i == 1;
                if !already {
                    return Some((i..j).collect());
                }
            }
            i = j.max(i + 1);
        }
    }
    None
}

impl Db {
    /// Persists head data into blocks (2 h at a time, once a range is an hour or the
    /// out-of-order window old, whichever is longer), compacts blocks, and applies
    /// retention. Safe to call at any time from one thread; the server calls it every minute.
    pub fn maintain(&self) -> Result<MaintainReport, TsdbError> {
        let _g = self.blocks.work.lock();
        let mut report = MaintainReport::default();
        let r = (|| {
            for (id, reason) in self.blocks.queue.take() {
                self.blocks.quarantine(&id, &reason);
            }
            while let Some(id) = self.cut_head_block()? {
                report.head_blocks.push(id);
                self.check_open()?;
            }
            let ranges = compaction_ranges(self.retention.time.as_millis_i64());
            loop {
                self.check_open()?;
                let set = self.blocks.snapshot();
                let metas: Vec<&BlockMeta> = set.iter().map(|b| b.meta()).collect();
                let Some(plan) = plan_compaction(&metas, &ranges) else {
                    break;
                };
                let inputs: Vec<Arc<Block>> = plan.iter().map(|&i| set[i].clone()).collect();
                report.compacted.push(self.compact(&inputs)?);
            }
            report.deleted = self.apply_retention()?;
            Ok(())
        })();
        if let Err(e) = &r {
            if !matches!(e, TsdbError::Closed) {
                self.blocks
                    .stats
                    .maintenance_failures
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        r.map(|_| report)
    }

    /// Deletes the samples in `[mint, maxt]` (ms, inclusive) of every series matching one of
    /// `matcher_sets` (Prometheus's `delete_series`): recorded as tombstones (WAL for the
    /// head, a `tombstones` file per block), hidden from reads at once, and physically removed
    /// when the data is next rewritten (block cut, compaction). Returns the series affected.
    pub fn delete_series(
        &self,
        matcher_sets: &[Vec<crate::index::Matcher>],
        mint: i64,
        maxt: i64,
    ) -> Result<u64, TsdbError> {
        self.check_open()?;
        if mint > maxt {
            return Ok(0);
        }
        // Blocks must not be compacted or cut while their tombstones change.
        let _g = self.blocks.work.lock();
        let mut affected = 0u64;
        let head = &self.head;
        let mut ids = roaring::RoaringTreemap::new();
        for set in matcher_sets {
            ids |= head.postings.select(&head.symbols, set);
        }
        if !ids.is_empty() {
            let entries: Vec<(u64, i64, i64)> = ids.iter().map(|id| (id, mint, maxt)).collect();
            let mut payload = Vec::new();
            crate::record::encode_tombstones(&mut payload, &entries);
            let lsn = self.wal.append(crate::record::REC_TOMBSTONES, &payload)?;
            self.wal.commit(lsn)?;
            let mut t = head.tombstones.write();
            for id in ids.iter() {
                tombstones::add_interval(t.entry(id).or_default(), mint, maxt);
            }
            affected += ids.len();
        }
        for b in self.blocks.snapshot().iter() {
            let m = b.meta();
            if m.max_time <= mint || m.min_time > maxt {
                continue;
            }
            let mut refs = std::collections::BTreeSet::new();
            for set in matcher_sets {
                refs.extend(b.select(set)?);
            }
            if refs.is_empty() {
                continue;
            }
            let mut t = self
                .blocks
                .tombstones_of(&m.id)
                .map(|t| (*t).clone())
                .unwrap_or_default();
            for r in &refs {
                tombstones::add_interval(t.by_series.entry(r.0).or_default(), mint, maxt);
            }
            t.write(b.dir())?;
            self.blocks
                .tombstones
                .write()
                .insert(m.id.clone(), Arc::new(t));
            affected += refs.len() as u64;
        }
        Ok(affected)
    }

    /// Registers the hook retention calls before deleting a block.
    pub fn set_expiry_hook(&self, hook: Arc<dyn ExpiryHook>) {
        self.blocks.set_hook(hook);
    }

    /// Writes the oldest complete 2 h range of the head as a block, truncates the head there
    /// and checkpoints the WAL. Returns the new block's id, or `None` if no range is due.
    fn cut_head_block(&self) -> Result<Option<String>, TsdbError> {
        let head = &self.head;
        let max_t = head.max_t.load(Ordering::SeqCst);
        if max_t == i64::MIN {
            return Ok(None);
        }
        let min_valid = head.min_valid_t.load(Ordering::SeqCst);
        let Some(head_min) = head.min_time() else {
            return Ok(None);
        };
        let a = head_min.max(min_valid).div_euclid(BLOCK_RANGE_MS) * BLOCK_RANGE_MS;
        let b = a + BLOCK_RANGE_MS;
        let grace = self.ooo_window_ms.max(BLOCK_RANGE_MS / 2);
        if max_t < b.saturating_add(grace) {
            return Ok(None);
        }
        let start = Instant::now();
        // From here on the head refuses samples before `b`: what the block gets is final.
        head.min_valid_t.fetch_max(b, Ordering::SeqCst);
        let id = block::new_block_id();
        let written = match self.write_head_range(&self.blocks.dir, &id, a, b, a)? {
            Some(path) => {
                let blk = Arc::new(Block::open(&path)?);
                self.blocks.publish(&[], Some(blk));
                true
            }
            None => false,
        };
        // Readers now find [a, b) in the block; stop reading it from the head.
        head.read_floor.fetch_max(b, Ordering::SeqCst);
        let (removed, cp) = self.truncate_head(b)?;
        self.blocks
            .stats
            .head_blocks_written
            .fetch_add(u64::from(written), Ordering::Relaxed);
        tracing::info!(block = %id, min_time = a, max_time = b, written, series_removed = removed,
            checkpoint_samples = cp.samples, duration = ?start.elapsed(), "head range persisted");
        Ok(Some(id))
    }

    /// Writes the head's samples in `[mint, maxt)` (ms), read from `floor` on, as the level-1
    /// block `id` under `blocks_dir`: every series' in-order and out-of-order samples, with
    /// tombstones applied. Returns the block's path, or `None` (and writes nothing) when the
    /// range holds no sample. Used by the block cut and by snapshots ([`crate::snapshot`]).
    pub(crate) fn write_head_range(
        &self,
        blocks_dir: &Path,
        id: &str,
        mint: i64,
        maxt: i64,
        floor: i64,
    ) -> Result<Option<PathBuf>, TsdbError> {
        let series = self.querier(mint, maxt - 1).select_head_from(&[], floor)?;
        if series.is_empty() {
            return Ok(None);
        }
        let mut meta = BlockMeta::new(id, mint, maxt);
        meta.level = 1;
        meta.sources = vec![id.to_string()];
        let mut w = BlockWriter::create(blocks_dir, id)?;
        let mut samples = Vec::new();
        let mut any = false;
        for s in &series {
            samples.clear();
            s.decode_into(&mut samples)?;
            if !samples.is_empty() {
                any = true;
                w.add_series_samples(&s.labels, &samples, MAX_SAMPLES_PER_BLOCK_CHUNK)?;
            }
        }
        // A range whose series hold no sample inside it writes no block (dropping the writer
        // removes its temporary directory).
        if !any {
            return Ok(None);
        }
        w.finish(meta).map(Some)
    }

    /// Merges `inputs` into one block (streaming series in label order; overlapping samples
    /// deduplicated, the first source's value kept), publishes it and deletes the inputs.
    fn compact(&self, inputs: &[Arc<Block>]) -> Result<String, TsdbError> {
        let start = Instant::now();
        let id = block::new_block_id();
        let min_time = inputs.iter().map(|b| b.meta().min_time).min().unwrap_or(0);
        let max_time = inputs.iter().map(|b| b.meta().max_time).max().unwrap_or(0);
        let mut meta = BlockMeta::new(id.clone(), min_time, max_time);
        meta.level = inputs.iter().map(|b| b.meta().level).max().unwrap_or(1) + 1;
        let mut sources: Vec<String> = inputs
            .iter()
            .flat_map(|b| b.meta().sources.iter().cloned())
            .collect();
        sources.sort();
        sources.dedup();
        meta.sources = sources;

        let mut w = BlockWriter::create(&self.blocks.dir, &id)?;
        let mut iters: Vec<_> = inputs.iter().map(|b| b.all_series().peekable()).collect();
        let tombs: Vec<Option<Arc<BlockTombstones>>> = inputs
            .iter()
            .map(|b| self.blocks.tombstones_of(&b.meta().id))
            .collect();
        // Position of each input's next series (block series refs count in label order).
        let mut pos = vec![0u32; inputs.len()];
        let mut deleted: tombstones::Intervals = Vec::new();
        let mut samples: Vec<(i64, f64)> = Vec::new();
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        loop {
            self.check_open()?;
            // The smallest label set among the inputs' next series.
            let mut next: Option<Labels> = None;
            for it in iters.iter_mut() {
                match it.peek() {
                    Some(Ok((l, _))) if next.as_ref().is_none_or(|n| l < n) => {
                        next = Some(l.clone());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) => {
                        if let Some(Err(e)) = it.next() {
                            return Err(e);
                        }
                    }
                    None => {}
                }
            }
            let Some(labels) = next else { break };
            samples.clear();
            deleted.clear();
            let mut sorted = true;
            for (k, it) in iters.iter_mut().enumerate() {
                if !matches!(it.peek(), Some(Ok((l, _))) if *l == labels) {
                    continue;
                }
                let Some(Ok((_, chunks))) = it.next() else {
                    unreachable!("BUG: peeked series vanished")
                };
                if let Some(t) = tombs[k].as_ref().and_then(|t| t.by_series.get(&pos[k])) {
                    for &(a, b) in t {
                        tombstones::add_interval(&mut deleted, a, b);
                    }
                }
                pos[k] += 1;
                for c in &chunks {
                    inputs[k].decode_chunk(c.chunk_ref, &mut ts, &mut vs, &labels)?;
                    for (&t, &v) in ts.iter().zip(&vs) {
                        if samples.last().is_some_and(|l| l.0 >= t) {
                            sorted = false;
                        }
                        samples.push((t, v));
                    }
                }
            }
            if !sorted {
                samples.sort_by_key(|s| s.0);
                samples.dedup_by_key(|s| s.0);
            }
            tombstones::apply(&deleted, &mut samples);
            if !samples.is_empty() {
                w.add_series_samples(&labels, &samples, MAX_SAMPLES_PER_BLOCK_CHUNK)?;
            }
        }
        let path = w.finish(meta)?;
        let blk = Arc::new(Block::open(&path)?);
        let old: Vec<String> = inputs.iter().map(|b| b.meta().id.clone()).collect();
        self.blocks.publish(&old, Some(blk));
        for b in inputs {
            self.blocks.delete_dir(b.dir())?;
        }
        self.blocks
            .stats
            .compactions
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(block = %id, inputs = old.len(), min_time, max_time,
            duration = ?start.elapsed(), "blocks compacted");
        Ok(id)
    }

    /// Deletes whole blocks past `storage.retention.time` (measured from the newest data, not
    /// the wall clock) or, oldest first, while blocks exceed `storage.retention.size`.
    fn apply_retention(&self) -> Result<Vec<String>, TsdbError> {
        let set = self.blocks.snapshot();
        let newest = set
            .iter()
            .map(|b| b.meta().max_time)
            .chain(std::iter::once(self.head.max_t.load(Ordering::SeqCst)))
            .max()
            .unwrap_or(i64::MIN);
        let limit = newest.saturating_sub(self.retention.time.as_millis_i64());
        let mut expired: Vec<Arc<Block>> = set
            .iter()
            .filter(|b| b.meta().max_time <= limit)
            .cloned()
            .collect();
        if let Some(max) = self.retention.size {
            let mut total: u64 = set.iter().map(|b| b.size_bytes()).sum();
            total -= expired.iter().map(|b| b.size_bytes()).sum::<u64>();
            for b in set.iter() {
                if total <= max.0 {
                    break;
                }
                if expired.iter().any(|e| Arc::ptr_eq(e, b)) {
                    continue;
                }
                total -= b.size_bytes();
                expired.push(b.clone());
            }
        }
        let hook = self.blocks.hook.read().clone();
        let mut deleted = Vec::new();
        for b in expired {
            if let Some(h) = &hook {
                if let Err(e) = h.before_delete(&b) {
                    tracing::error!(block = %b.meta().id, error = e, "expiry hook failed; deleting the block anyway");
                }
            }
            let id = b.meta().id.clone();
            self.blocks.publish(std::slice::from_ref(&id), None);
            self.blocks.delete_dir(b.dir())?;
            tracing::info!(block = %id, min_time = b.meta().min_time, max_time = b.meta().max_time, "block deleted by retention");
            deleted.push(id);
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str, min: i64, max: i64) -> BlockMeta {
        BlockMeta::new(id, min, max)
    }

    const H: i64 = 3_600_000;

    #[test]
    fn ranges_follow_retention() {
        assert_eq!(
            compaction_ranges(30 * 24 * H),
            vec![2 * H, 6 * H, 24 * H, 72 * H]
        );
        assert_eq!(compaction_ranges(24 * H), vec![2 * H, 6 * H]);
    }

    #[test]
    fn plans_overlaps_then_complete_windows() {
        let r = compaction_ranges(30 * 24 * H);
        // Three 2h blocks of one 6h window, and a newer one: merge the three.
        let m = [
            meta("a", 0, 2 * H),
            meta("b", 2 * H, 4 * H),
            meta("c", 4 * H, 6 * H),
            meta("d", 6 * H, 8 * H),
        ];
        let refs: Vec<&BlockMeta> = m.iter().collect();
        assert_eq!(plan_compaction(&refs, &r), Some(vec![0, 1, 2]));
        // The window of the newest block is not complete yet.
        let refs: Vec<&BlockMeta> = m[3..].iter().collect();
        assert_eq!(plan_compaction(&refs, &r), None);
        // Overlapping blocks first.
        let m = [
            meta("a", 0, 2 * H),
            meta("x", H, 2 * H),
            meta("b", 2 * H, 4 * H),
        ];
        let refs: Vec<&BlockMeta> = m.iter().collect();
        assert_eq!(plan_compaction(&refs, &r), Some(vec![0, 1]));
        // A single 6h block and its successors: nothing at 6h, 24h needs the window done.
        let m = [meta("a", 0, 6 * H), meta("b", 6 * H, 8 * H)];
        let refs: Vec<&BlockMeta> = m.iter().collect();
        assert_eq!(plan_compaction(&refs, &r), None);
        let m = [
            meta("a", 0, 6 * H),
            meta("b", 6 * H, 12 * H),
            meta("c", 12 * H, 18 * H),
            meta("d", 18 * H, 24 * H),
            meta("e", 24 * H, 26 * H),
        ];
        let refs: Vec<&BlockMeta> = m.iter().collect();
        assert_eq!(plan_compaction(&refs, &r), Some(vec![0, 1, 2, 3]));
    }
}
