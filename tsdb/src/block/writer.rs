//! [`BlockWriter`]: writes one block, streaming.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::chunks::{SegmentWriter, MAX_SEGMENT_SIZE};
use super::index::{spill_series, write_index, IndexInput};
use super::{sync_dir, BlockMeta, ChunkMeta};
use crate::chunk::block_enc::{self, BlockEncoder, MAX_SAMPLES};
use crate::chunk::{num_samples, Encoding};
use crate::filenames::{
    BLOCK_CHUNKS_DIR, BLOCK_INDEX_FILE, BLOCK_META_FILE, BLOCK_SERIES_SPILL_FILE, TMP_SUFFIX,
};
use crate::{Labels, TsdbError};

/// Most bytes of timestamp columns a writer remembers for sharing (about 7,000 day-long
/// 15 s columns with jitter). Columns past it are written in full: series are added in label
/// order, so the first targets of every metric keep sharing.
const SHARED_COLUMNS_BUDGET: usize = 16 << 20;

/// Writes a block into `<blocks_dir>/<id>.tmp/` and renames it to `<blocks_dir>/<id>/` in
/// [`finish`](Self::finish). Dropping a writer without finishing removes the temporary
/// directory (best effort; a crash leaves it for [`remove_tmp_blocks`](super::remove_tmp_blocks)).
///
/// Memory: the distinct label strings, one `u32` per series per label for the postings, and
/// at most `SHARED_COLUMNS_BUDGET` (16 MiB) of timestamp columns remembered for sharing.
/// Chunks are written to the segment files as they come, series entries to a spill file.
///
/// Timestamp sharing: series scraped together carry identical timestamps (a scrape stamps
/// every sample of a target with one time). When a columnar chunk's timestamp column equals
/// the column of a chunk already written to this block, the chunk is written with a reference
/// to that chunk instead (`docs/format/chunks.md`, mode 4), which is a few bytes instead of
/// ~3 bits per sample.
pub struct BlockWriter {
    blocks_dir: PathBuf,
    id: String,
    tmp_dir: PathBuf,
    chunks: Option<SegmentWriter>,
    spill: Option<BufWriter<File>>,
    spill_path: PathBuf,
    /// Interned label strings; ids are interning order (remapped to sorted order at finish).
    symbol_ids: HashMap<Arc<str>, u32>,
    symbols: Vec<Arc<str>>,
    /// `(name id, value id)` → series ordinals, ascending.
    postings: HashMap<(u32, u32), Vec<u32>>,
    /// The last series added, to check the order.
    last_labels: Option<Labels>,
    num_series: u32,
    num_chunks: u64,
    num_samples: u64,
    encoder: BlockEncoder,
    /// Timestamp columns written so far (sample count varint + column bytes, see
    /// [`block_enc::timestamp_column`]) → the chunk holding them.
    shared_columns: HashMap<Box<[u8]>, u64>,
    /// Bytes of keys in `shared_columns`; no new column is remembered past the budget.
    shared_columns_bytes: usize,
    /// Scratch buffers.
    buf: Vec<u8>,
    share_buf: Vec<u8>,
    ts_scratch: Vec<i64>,
    label_ids: Vec<(u32, u32)>,
    metas: Vec<ChunkMeta>,
}

impl BlockWriter {
    /// Starts a block in `<blocks_dir>/<id>.tmp` (created; a leftover one is removed first).
    /// `blocks_dir` must exist.
    pub fn create(blocks_dir: &Path, id: &str) -> Result<BlockWriter, TsdbError> {
        Self::with_segment_size(blocks_dir, id, MAX_SEGMENT_SIZE)
    }

    /// [`create`](Self::create) with a different segment file size limit (tests use tiny
    /// ones to exercise file cuts).
    pub fn with_segment_size(
        blocks_dir: &Path,
        id: &str,
        max_segment_size: u64,
    ) -> Result<BlockWriter, TsdbError> {
        if id.is_empty()
            || id.contains(['/', '\\'])
            || id.ends_with(TMP_SUFFIX)
            || id.starts_with('.')
        {
            return Err(TsdbError::Internal {
                detail: format!("invalid block id {id:?}"),
            });
        }
        let tmp_dir = blocks_dir.join(format!("{id}{TMP_SUFFIX}"));
        if tmp_dir.exists() {
            std::fs::remove_dir_all(&tmp_dir).map_err(|e| TsdbError::io(&tmp_dir, e))?;
        }
        let chunks_dir = tmp_dir.join(BLOCK_CHUNKS_DIR);
        std::fs::create_dir_all(&chunks_dir).map_err(|e| TsdbError::io(&chunks_dir, e))?;
        let spill_path = tmp_dir.join(BLOCK_SERIES_SPILL_FILE);
        let spill = File::create(&spill_path).map_err(|e| TsdbError::io(&spill_path, e))?;
        Ok(BlockWriter {
            blocks_dir: blocks_dir.to_path_buf(),
            id: id.to_owned(),
            tmp_dir,
            chunks: Some(SegmentWriter::new(chunks_dir, max_segment_size)),
            spill: Some(BufWriter::with_capacity(1 << 20, spill)),
            spill_path,
            symbol_ids: HashMap::new(),
            symbols: Vec::new(),
            postings: HashMap::new(),
            last_labels: None,
            num_series: 0,
            num_chunks: 0,
            num_samples: 0,
            encoder: BlockEncoder::new(),
            shared_columns: HashMap::new(),
            shared_columns_bytes: 0,
            buf: Vec::new(),
            share_buf: Vec::new(),
            ts_scratch: Vec::new(),
            label_ids: Vec::new(),
            metas: Vec::new(),
        })
    }

    /// The temporary directory being written.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp_dir
    }

    /// Adds one series. Calls must come in strictly ascending label order (`Labels`' `Ord`).
    /// `chunks` are block chunks already encoded (encoding byte + bytes, as
    /// [`BlockEncoder`] writes them) with their `(min_t, max_t)`, ascending and
    /// non-overlapping. A series without chunks is skipped (a block has no empty series).
    ///
    /// # Errors
    /// `Internal` if the order or a chunk is invalid (nothing is written then); `Io`.
    pub fn add_series(
        &mut self,
        labels: &Labels,
        chunks: &[(i64, i64, &[u8])],
    ) -> Result<(), TsdbError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let misuse = |detail: String| Err(TsdbError::Internal { detail });
        if self.last_labels.as_ref().is_some_and(|l| l >= labels) {
            return misuse(format!(
                "block series not in ascending label order at {labels}"
            ));
        }
        if self.num_series == u32::MAX {
            return misuse("more than u32::MAX series in one block".into());
        }
        let mut samples = 0u64;
        let mut prev_max: Option<i64> = None;
        for &(min_t, max_t, data) in chunks {
            if min_t > max_t || prev_max.is_some_and(|p| min_t <= p) {
                return misuse(format!("chunk times of {labels} overlap or go backwards"));
            }
            prev_max = Some(max_t);
            match chunk_samples(data) {
                Some(n) => samples += n,
                None => return misuse(format!("chunk of {labels} has an unknown encoding")),
            }
            if block_enc::has_shared_timestamps(data) {
                // Its reference points into another block.
                return misuse(format!(
                    "chunk of {labels} shares timestamps of another block"
                ));
            }
        }

        let segs = self.chunks.as_mut().expect("BUG: writer used after finish");
        self.metas.clear();
        for &(min_t, max_t, data) in chunks {
            let chunk_ref = match block_enc::timestamp_column(data, &mut self.ts_scratch) {
                None => segs.write(data)?,
                Some(col) => {
                    let key = &data[1..col.end];
                    if let Some(&target) = self.shared_columns.get(key) {
                        self.share_buf.clear();
                        block_enc::share_timestamps(data, col, target, &mut self.share_buf);
                        if self.share_buf.len() < data.len() {
                            segs.write(&self.share_buf)?
                        } else {
                            segs.write(data)?
                        }
                    } else {
                        let r = segs.write(data)?;
                        if self.shared_columns_bytes + key.len() <= SHARED_COLUMNS_BUDGET {
                            self.shared_columns_bytes += key.len();
                            self.shared_columns.insert(key.into(), r.0);
                        }
                        r
                    }
                }
            };
            self.metas.push(ChunkMeta {
                min_t,
                max_t,
                chunk_ref,
            });
        }
        let ordinal = self.num_series;
        self.label_ids.clear();
        for (n, v) in labels.iter() {
            let n = intern(&mut self.symbol_ids, &mut self.symbols, n);
            let v = intern(&mut self.symbol_ids, &mut self.symbols, v);
            self.label_ids.push((n, v));
            self.postings.entry((n, v)).or_default().push(ordinal);
        }
        self.buf.clear();
        spill_series(&mut self.buf, &self.label_ids, &self.metas);
        let spill = self.spill.as_mut().expect("BUG: writer used after finish");
        spill
            .write_all(&self.buf)
            .map_err(|e| TsdbError::io(&self.spill_path, e))?;
        self.num_series += 1;
        self.num_chunks += chunks.len() as u64;
        self.num_samples += samples;
        self.last_labels = Some(labels.clone());
        Ok(())
    }

    /// Encodes `samples` (ascending, unique timestamps) into chunks of at most
    /// `max_per_chunk` samples (clamped to `1..=65535`) with [`BlockEncoder::encode_best`] and
    /// adds the series. No samples: the series is skipped.
    pub fn add_series_samples(
        &mut self,
        labels: &Labels,
        samples: &[(i64, f64)],
        max_per_chunk: usize,
    ) -> Result<(), TsdbError> {
        if samples.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(TsdbError::Internal {
                detail: format!("samples of {labels} not in strictly ascending time order"),
            });
        }
        let per = max_per_chunk.clamp(1, MAX_SAMPLES);
        let mut data = Vec::new();
        let mut ranges = Vec::new();
        for part in samples.chunks(per) {
            let start = data.len();
            self.encoder.encode_best(part, &mut data);
            ranges.push((part[0].0, part[part.len() - 1].0, start..data.len()));
        }
        let chunks: Vec<(i64, i64, &[u8])> = ranges
            .into_iter()
            .map(|(a, b, r)| (a, b, &data[r]))
            .collect();
        self.add_series(labels, &chunks)
    }

    /// Writes the index and `meta.json`, fsyncs every file and the directories, and renames
    /// `<id>.tmp` to `<id>` (atomic), then fsyncs `blocks_dir`. Returns the block's path.
    ///
    /// `meta.stats` is replaced by what was written; `meta.id` must be the writer's id.
    pub fn finish(mut self, mut meta: BlockMeta) -> Result<PathBuf, TsdbError> {
        if meta.id != self.id {
            return Err(TsdbError::Internal {
                detail: format!("meta id {} does not match block id {}", meta.id, self.id),
            });
        }
        let chunk_bytes = self.chunks.take().expect("BUG: finish twice").finish()?;
        let spill = self.spill.take().expect("BUG: finish twice");
        spill
            .into_inner()
            .map_err(|e| TsdbError::io(&self.spill_path, e.into_error()))?;
        let index_path = self.tmp_dir.join(BLOCK_INDEX_FILE);
        let index_bytes = write_index(
            &index_path,
            IndexInput {
                symbols: &self.symbols,
                spill: &self.spill_path,
                postings: std::mem::take(&mut self.postings),
                num_series: self.num_series,
            },
        )?;
        std::fs::remove_file(&self.spill_path).map_err(|e| TsdbError::io(&self.spill_path, e))?;

        meta.stats.num_series = u64::from(self.num_series);
        meta.stats.num_chunks = self.num_chunks;
        meta.stats.num_samples = self.num_samples;
        meta.stats.num_bytes = chunk_bytes + index_bytes;
        let meta_path = self.tmp_dir.join(BLOCK_META_FILE);
        self.buf.clear();
        meta.encode_into(&mut self.buf);
        let mut f = File::create(&meta_path).map_err(|e| TsdbError::io(&meta_path, e))?;
        f.write_all(&self.buf)
            .and_then(|()| f.sync_all())
            .map_err(|e| TsdbError::io(&meta_path, e))?;
        sync_dir(&self.tmp_dir)?;

        let final_dir = self.blocks_dir.join(&self.id);
        std::fs::rename(&self.tmp_dir, &final_dir).map_err(|e| TsdbError::io(&final_dir, e))?;
        sync_dir(&self.blocks_dir)?;
        self.tmp_dir = PathBuf::new();
        Ok(final_dir)
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        // Not finished (or finish failed): the temporary directory is garbage.
        if !self.tmp_dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.tmp_dir);
        }
    }
}

fn intern(ids: &mut HashMap<Arc<str>, u32>, strs: &mut Vec<Arc<str>>, s: &str) -> u32 {
    if let Some(&id) = ids.get(s) {
        return id;
    }
    let id = strs.len() as u32;
    let a: Arc<str> = Arc::from(s);
    strs.push(Arc::clone(&a));
    ids.insert(a, id);
    id
}

/// Samples in a block chunk according to its header; `None` for an unknown encoding or a
/// chunk too short for its header.
fn chunk_samples(data: &[u8]) -> Option<u64> {
    let (&enc, rest) = data.split_first()?;
    match Encoding::from_u8(enc)? {
        Encoding::Xor => num_samples(rest).ok().map(|n| n as u64),
        Encoding::Decimal | Encoding::Constant => {
            let mut r = rest;
            crate::varint::uvarint(&mut r)
        }
    }
}
