//! [`Block`]: a finished block opened read-only.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use roaring::RoaringBitmap;

use super::chunks::{ChunkBytes, SegmentReader};
use super::index::{IndexReader, RawSeries, SymbolCache};
use super::mapping::MappingCache;
use super::{corrupt, BlockMeta, BlockSeriesRef, ChunkMeta, ChunkRef};
use crate::chunk::block_enc;
use crate::filenames::{BLOCK_CHUNKS_DIR, BLOCK_INDEX_FILE, BLOCK_META_FILE, TMP_SUFFIX};
use crate::index::{MatchOp, Matcher};
use crate::{Labels, TsdbError};

/// A finished block, opened read-only. `Send + Sync`: every method takes `&self`.
///
/// Opening reads `meta.json` and the index's header, TOC and label-name table; the rest of the
/// index is read through its memory map when asked for, each part CRC checked as it is read.
/// Chunk segment files are mapped on first use and kept in a [`MappingCache`] shared with
/// other blocks (the process-wide one unless opened with [`open_with`](Self::open_with));
/// dropping the block drops its cached mappings.
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    index: IndexReader,
    chunks: SegmentReader,
    /// Bytes of meta.json, the index and the chunk segments, measured at open.
    size_bytes: u64,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("dir", &self.dir)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl Block {
    /// Opens the block directory `dir`; its chunk segment mappings are kept in the
    /// process-wide [`MappingCache::global`].
    ///
    /// # Errors
    /// `Corruption` for a `.tmp` directory (an unfinished write), an unreadable or invalid
    /// `meta.json`, a bad index magic/version/TOC/label-name table, or a missing `chunks/`
    /// directory; `Io` if a file cannot be opened.
    pub fn open(dir: &Path) -> Result<Block, TsdbError> {
        Block::open_with(dir, Arc::clone(MappingCache::global()))
    }

    /// [`open`](Self::open) with chunk segment mappings kept in `cache` (tests use a private
    /// cache with a tiny budget).
    pub fn open_with(dir: &Path, cache: Arc<MappingCache>) -> Result<Block, TsdbError> {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.as_deref().is_none_or(|n| n.ends_with(TMP_SUFFIX)) {
            return Err(corrupt(
                dir,
                0,
                "not a finished block directory (temporary or unnamed)",
            ));
        }
        let meta_path = dir.join(BLOCK_META_FILE);
        let meta_bytes = match std::fs::read(&meta_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(corrupt(&meta_path, 0, "block has no meta.json"))
            }
            Err(e) => return Err(TsdbError::io(&meta_path, e)),
        };
        let meta = BlockMeta::decode(&meta_bytes, &meta_path)?;
        let index_path = dir.join(BLOCK_INDEX_FILE);
        if !index_path.exists() {
            return Err(corrupt(&index_path, 0, "block has no index file"));
        }
        let index = IndexReader::open(&index_path)?;
        let chunks = SegmentReader::open(dir.join(BLOCK_CHUNKS_DIR), cache)?;
        let index_len = std::fs::metadata(&index_path)
            .map_err(|e| TsdbError::io(&index_path, e))?
            .len();
        let size_bytes = meta_bytes.len() as u64 + index_len + chunks.size_bytes();
        Ok(Block {
            dir: dir.to_path_buf(),
            meta,
            index,
            chunks,
            size_bytes,
        })
    }

    /// This block's identity in its mapping cache (tests).
    #[cfg(test)]
    pub(super) fn cache_owner(&self) -> u64 {
        self.chunks.cache_owner()
    }

    /// The block's `meta.json`.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// The block directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes on disk (meta.json, index, chunk segments), measured at open.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Number of series in the block.
    pub fn num_series(&self) -> u32 {
        self.index.num_series()
    }

    /// The series passing every matcher, ascending (label order), with Prometheus semantics:
    /// a series lacking a label is tested as if its value were `""`. An empty `matchers`
    /// slice selects every series.
    pub fn select(&self, matchers: &[Matcher]) -> Result<Vec<BlockSeriesRef>, TsdbError> {
        Ok(self
            .select_bitmap(matchers)?
            .iter()
            .map(BlockSeriesRef)
            .collect())
    }

    fn select_bitmap(&self, matchers: &[Matcher]) -> Result<RoaringBitmap, TsdbError> {
        let mut all = RoaringBitmap::new();
        all.insert_range(0..self.index.num_series());
        let mut positive = Vec::new();
        let mut negative = Vec::new();
        for m in matchers {
            let sel = self.selected_values(m)?;
            if !m.matches_empty() {
                if sel.is_empty() {
                    return Ok(RoaringBitmap::new());
                }
                positive.push(self.union(&sel)?);
            } else if !sel.is_empty() {
                negative.push(self.union(&sel)?);
            }
        }
        positive.sort_by_key(RoaringBitmap::len);
        let mut acc = match positive.first() {
            None => all,
            Some(_) => positive.remove(0),
        };
        for p in &positive {
            acc &= p;
        }
        for n in &negative {
            acc -= n;
        }
        Ok(acc)
    }

    /// Postings offsets of the stored values of `m`'s label that the matcher selects: for a
    /// matcher that does not match `""`, the values it accepts (series pass iff they carry one);
    /// otherwise the values it rejects (series pass iff they carry none). Mirrors
    /// `MemPostings::select`.
    fn selected_values(&self, m: &Matcher) -> Result<Vec<u64>, TsdbError> {
        let Some(idx) = self.index.name_index(m.name()) else {
            return Ok(Vec::new());
        };
        let list = self.index.values(idx)?;
        let positive = !m.matches_empty();
        let lookup = |values: &mut dyn Iterator<Item = &str>| -> Result<Vec<u64>, TsdbError> {
            let mut out = Vec::new();
            for v in values {
                if let Some(sym) = self.index.lookup_symbol(v)? {
                    out.extend(list.find(sym));
                }
            }
            Ok(out)
        };
        let every = |keep: &mut dyn FnMut(&str) -> bool| -> Result<Vec<u64>, TsdbError> {
            let mut out = Vec::new();
            let mut cache = SymbolCache::default();
            for i in 0..list.len() {
                let (sym, off) = list.get(i);
                let v = self.index.symbol_cached(sym, &mut cache)?;
                if !v.is_empty() && keep(v) {
                    out.push(off);
                }
            }
            Ok(out)
        };
        match (m.op(), m.set_values()) {
            // `l=""` / `l!=""`: every value.
            (MatchOp::Equal | MatchOp::NotEqual, _) if m.value().is_empty() => every(&mut |_| true),
            (MatchOp::Equal | MatchOp::NotEqual, _) => lookup(&mut std::iter::once(m.value())),
            (op, Some(set)) if (op == MatchOp::Regex) == positive => {
                lookup(&mut set.iter().map(String::as_str).filter(|v| !v.is_empty()))
            }
            (_, Some(set)) => every(&mut |v| !set.iter().any(|s| s == v)),
            // The common `.*` needs no scan: it selects nothing either way round.
            _ if m.value() == ".*" => Ok(Vec::new()),
            _ => every(&mut |v| m.matches(v) == positive),
        }
    }

    fn union(&self, offsets: &[u64]) -> Result<RoaringBitmap, TsdbError> {
        let mut acc = RoaringBitmap::new();
        let mut one = RoaringBitmap::new();
        for &off in offsets {
            self.index.postings(off, &mut one)?;
            acc |= &one;
        }
        Ok(acc)
    }

    /// The labels and chunk metas of series `r` (from [`select`](Self::select)).
    pub fn series(&self, r: BlockSeriesRef) -> Result<(Labels, Vec<ChunkMeta>), TsdbError> {
        let raw = self.index.series(r.0)?;
        let labels = self
            .index
            .labels(&raw.labels, &mut SymbolCache::default())?;
        Ok((labels, raw.chunks))
    }

    /// The bytes of one chunk (encoding byte + data), CRC checked. Decode them with
    /// [`decode_chunk`](Self::decode_chunk), which resolves what a chunk may borrow from
    /// other chunks of the block.
    pub fn chunk(&self, r: ChunkRef) -> Result<ChunkBytes, TsdbError> {
        self.chunks.chunk(r)
    }

    /// Reads and decodes chunk `r` into `ts` and `vals` (cleared first). `what` names the
    /// series in the error (a `Corruption` at the chunk's reference).
    pub fn decode_chunk(
        &self,
        r: ChunkRef,
        ts: &mut Vec<i64>,
        vals: &mut Vec<f64>,
        what: &dyn std::fmt::Display,
    ) -> Result<(), TsdbError> {
        let bytes = self.chunks.chunk(r)?;
        // A read error of the chunk holding a shared timestamp column is the error to report.
        let mut shared_err = None;
        let res = block_enc::decode_into_resolving(&bytes, ts, vals, &mut |target| match self
            .chunks
            .chunk(ChunkRef(target))
        {
            Ok(b) => Some(b),
            Err(e) => {
                shared_err = Some(e);
                None
            }
        });
        match (res, shared_err) {
            (Ok(()), _) => Ok(()),
            (Err(_), Some(e)) => Err(e),
            (Err(e), None) => Err(TsdbError::Corruption {
                path: self.dir.clone(),
                offset: r.0,
                detail: format!("chunk of {what}: {e}"),
            }),
        }
    }

    /// Label names carried by at least one series passing `matchers` (every series if
    /// empty), sorted.
    pub fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, TsdbError> {
        if matchers.is_empty() {
            return Ok(self.index.names().iter().map(|n| n.name.clone()).collect());
        }
        let mut syms = BTreeSet::new();
        for id in self.select_bitmap(matchers)? {
            let raw = self.index.series(id)?;
            syms.extend(raw.labels.iter().map(|l| l.0));
        }
        // Symbol ids are in string order.
        let mut cache = SymbolCache::default();
        syms.into_iter()
            .map(|s| self.index.symbol_cached(s, &mut cache).map(str::to_owned))
            .collect()
    }

    /// Values of label `name` carried by at least one series passing `matchers` (every series
    /// if empty), sorted. Empty for an unknown name.
    pub fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, TsdbError> {
        let Some(idx) = self.index.name_index(name) else {
            return Ok(Vec::new());
        };
        if matchers.is_empty() {
            let list = self.index.values(idx)?;
            let mut cache = SymbolCache::default();
            return (0..list.len())
                .map(|i| {
                    self.index
                        .symbol_cached(list.get(i).0, &mut cache)
                        .map(str::to_owned)
                })
                .collect();
        }
        let Some(name_sym) = self.index.lookup_symbol(name)? else {
            return Ok(Vec::new());
        };
        let mut syms = BTreeSet::new();
        for id in self.select_bitmap(matchers)? {
            let raw = self.index.series(id)?;
            syms.extend(raw.labels.iter().filter(|l| l.0 == name_sym).map(|l| l.1));
        }
        let mut cache = SymbolCache::default();
        syms.into_iter()
            .map(|s| self.index.symbol_cached(s, &mut cache).map(str::to_owned))
            .collect()
    }

    /// Every series in label order with its chunk metas, read sequentially from the index
    /// (for compaction; memory does not grow with the number of series).
    pub fn all_series(&self) -> AllSeries<'_> {
        let (pos, end) = self.index.series_section();
        AllSeries {
            block: self,
            cache: SymbolCache::default(),
            pos,
            end,
            left: self.index.num_series(),
        }
    }

    /// Checks every CRC and the structure of the index and of every chunk segment file, and
    /// that every chunk of every series decodes (its reference, and the reference of a
    /// shared timestamp column, point at valid chunks). Reads the whole block: for tests,
    /// `hearth check`, and after a read reported corruption.
    pub fn verify(&self) -> Result<(), TsdbError> {
        let mut chunks = 0u64;
        let (mut ts, mut vals) = (Vec::new(), Vec::new());
        self.index.verify(|s: &RawSeries| {
            for c in &s.chunks {
                self.decode_chunk(c.chunk_ref, &mut ts, &mut vals, &"a series")?;
                chunks += 1;
            }
            Ok(())
        })?;
        let stored = self.chunks.verify()?;
        if stored != chunks {
            return Err(corrupt(
                &self.dir.join(BLOCK_CHUNKS_DIR),
                0,
                format!("segment files hold {stored} chunks, the index refers to {chunks}"),
            ));
        }
        Ok(())
    }
}

/// Iterator of [`Block::all_series`].
pub struct AllSeries<'a> {
    block: &'a Block,
    cache: SymbolCache<'a>,
    pos: u64,
    end: u64,
    left: u32,
}

impl Iterator for AllSeries<'_> {
    type Item = Result<(Labels, Vec<ChunkMeta>), TsdbError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        if self.pos >= self.end {
            self.left = 0;
            return Some(Err(corrupt(
                &self.block.dir.join(BLOCK_INDEX_FILE),
                self.pos,
                "series section ends before the last series",
            )));
        }
        self.left -= 1;
        let res = self
            .block
            .index
            .series_at(self.pos)
            .and_then(|(raw, next)| {
                self.pos = next;
                let labels = self.block.index.labels(&raw.labels, &mut self.cache)?;
                Ok((labels, raw.chunks))
            });
        if res.is_err() {
            // Stop after the first error: the following offsets cannot be trusted.
            self.left = 0;
        }
        Some(res)
    }
}
