//! Chunk segment files `chunks/000001`, `000002`, ... of a block (`docs/format/block.md`,
//! "Chunk segment files").
//!
//! ```text
//! file:   magic "HBCK" | version u8 = 1 | 3 zero bytes | record | record | ...
//! record: len uvarint | chunk (encoding byte + data, len bytes) | crc32c u32 LE
//!         crc32c covers the len varint and the chunk
//! ```
//!
//! A chunk is referenced as `segment number << 32 | record offset`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::{Deref, Range};
use std::path::PathBuf;
use std::sync::Arc;

use memmap2::Mmap;

use super::mapping::{Mapping, MappingCache};
use super::{corrupt, sync_dir, ChunkRef, Rd};
use crate::chunk::Encoding;
use crate::filenames::block_chunk_segment_name;
use crate::varint::put_uvarint;
use crate::TsdbError;

/// Magic number at the start of every chunk segment file.
pub(super) const SEGMENT_MAGIC: [u8; 4] = *b"HBCK";
/// Current (and only) segment file version.
pub(super) const SEGMENT_VERSION: u8 = 1;
/// Bytes of the file header: magic, version, 3 reserved zero bytes.
pub(super) const SEGMENT_HEADER_LEN: usize = 8;

/// Size at which the writer starts a new segment file. A record is never split, so a file
/// exceeds this only when it holds a single chunk larger than the limit.
pub const MAX_SEGMENT_SIZE: u64 = 512 << 20;

/// Writes chunk records into numbered segment files, starting a new file at
/// [`MAX_SEGMENT_SIZE`].
pub(super) struct SegmentWriter {
    dir: PathBuf,
    /// Number of the file being written; 0 before the first chunk.
    seq: u32,
    file: Option<BufWriter<File>>,
    /// Bytes written to the current file.
    offset: u64,
    /// Bytes in all finished files.
    finished_bytes: u64,
    max_size: u64,
    scratch: Vec<u8>,
}

impl SegmentWriter {
    pub(super) fn new(dir: PathBuf, max_size: u64) -> SegmentWriter {
        SegmentWriter {
            dir,
            seq: 0,
            file: None,
            offset: 0,
            finished_bytes: 0,
            max_size,
            scratch: Vec::new(),
        }
    }

    /// Appends one chunk (encoding byte + data) and returns its reference.
    pub(super) fn write(&mut self, chunk: &[u8]) -> Result<ChunkRef, TsdbError> {
        self.scratch.clear();
        put_uvarint(&mut self.scratch, chunk.len() as u64);
        let len_bytes = self.scratch.len();
        let record_len = (len_bytes + chunk.len() + 4) as u64;
        let full = self.offset + record_len > self.max_size.min(u64::from(u32::MAX));
        if self.file.is_none() || (full && self.offset > SEGMENT_HEADER_LEN as u64) {
            self.cut()?;
        }
        let crc = crc32c::crc32c_append(crc32c::crc32c(&self.scratch), chunk);
        let r = ChunkRef::new(self.seq, self.offset as u32);
        let path = self.path();
        let f = self
            .file
            .as_mut()
            .expect("BUG: segment file open after cut");
        f.write_all(&self.scratch)
            .and_then(|()| f.write_all(chunk))
            .and_then(|()| f.write_all(&crc.to_le_bytes()))
            .map_err(|e| TsdbError::io(&path, e))?;
        self.offset += record_len;
        Ok(r)
    }

    fn path(&self) -> PathBuf {
        self.dir.join(block_chunk_segment_name(self.seq))
    }

    /// Finishes the current file (flush + fsync) and starts the next.
    fn cut(&mut self) -> Result<(), TsdbError> {
        self.close_current()?;
        self.seq += 1;
        let path = self.path();
        let f = File::create(&path).map_err(|e| TsdbError::io(&path, e))?;
        let mut f = BufWriter::with_capacity(1 << 20, f);
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        header[..4].copy_from_slice(&SEGMENT_MAGIC);
        header[4] = SEGMENT_VERSION;
        f.write_all(&header).map_err(|e| TsdbError::io(&path, e))?;
        self.file = Some(f);
        self.offset = SEGMENT_HEADER_LEN as u64;
        Ok(())
    }

    fn close_current(&mut self) -> Result<(), TsdbError> {
        if let Some(f) = self.file.take() {
            let path = self.path();
            let f = f
                .into_inner()
                .map_err(|e| TsdbError::io(&path, e.into_error()))?;
            f.sync_all().map_err(|e| TsdbError::io(&path, e))?;
            self.finished_bytes += self.offset;
        }
        Ok(())
    }

    /// Flushes and fsyncs the last file and the directory; returns the bytes of all files.
    pub(super) fn finish(mut self) -> Result<u64, TsdbError> {
        self.close_current()?;
        sync_dir(&self.dir)?;
        Ok(self.finished_bytes)
    }
}

/// The bytes of one chunk (encoding byte + data) inside a mapped segment file. Keeps the
/// mapping alive while held, even after the [`MappingCache`] evicted it or its block was
/// dropped.
#[derive(Clone)]
pub struct ChunkBytes {
    map: Arc<Mapping>,
    range: Range<usize>,
}

impl Deref for ChunkBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map[self.range.clone()]
    }
}

impl AsRef<[u8]> for ChunkBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for ChunkBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkBytes")
            .field("len", &self.range.len())
            .finish()
    }
}

/// Reads chunks from a block's segment files, mapping them on demand through a shared
/// [`MappingCache`]. Dropping it drops its cached mappings.
pub(super) struct SegmentReader {
    dir: PathBuf,
    /// Segment numbers present at open, ascending, with their sizes.
    segments: Vec<(u32, u64)>,
    /// Keeps this reader's mappings, bounded together with every other block's.
    cache: Arc<MappingCache>,
    /// This reader's identity in `cache`; unique in the process.
    owner: u64,
}

impl Drop for SegmentReader {
    fn drop(&mut self) {
        self.cache.remove_owner(self.owner);
    }
}

impl SegmentReader {
    /// Lists the segment files in `dir` (no file is opened).
    pub(super) fn open(dir: PathBuf, cache: Arc<MappingCache>) -> Result<SegmentReader, TsdbError> {
        let mut segments = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(corrupt(&dir, 0, "block has no chunks directory"))
            }
            Err(e) => return Err(TsdbError::io(&dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| TsdbError::io(&dir, e))?;
            let name = entry.file_name();
            let Some(seq) = name.to_str().and_then(parse_segment_name) else {
                continue;
            };
            let len = entry
                .metadata()
                .map_err(|e| TsdbError::io(&entry.path(), e))?
                .len();
            segments.push((seq, len));
        }
        segments.sort_unstable();
        Ok(SegmentReader {
            dir,
            segments,
            cache,
            owner: MappingCache::new_owner(),
        })
    }

    /// Total bytes of the segment files.
    pub(super) fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.1).sum()
    }

    /// This reader's identity in its cache (tests).
    #[cfg(test)]
    pub(super) fn cache_owner(&self) -> u64 {
        self.owner
    }

    fn seg_path(&self, seq: u32) -> PathBuf {
        self.dir.join(block_chunk_segment_name(seq))
    }

    /// The mapping of segment `seq`, mapping it (and checking its header) if the cache does
    /// not hold it. The file is opened, mapped and checked without the cache's lock; two
    /// threads missing at once both map it and the cache keeps the first.
    fn map(&self, seq: u32) -> Result<Arc<Mapping>, TsdbError> {
        if let Some(map) = self.cache.get(self.owner, seq) {
            return Ok(map);
        }
        let path = self.seg_path(seq);
        if self.segments.binary_search_by_key(&seq, |s| s.0).is_err() {
            return Err(corrupt(
                &path,
                0,
                format!("chunk reference into missing segment file {seq}"),
            ));
        }
        let file = File::open(&path).map_err(|e| TsdbError::io(&path, e))?;
        let len = file.metadata().map_err(|e| TsdbError::io(&path, e))?.len();
        if len < SEGMENT_HEADER_LEN as u64 {
            return Err(corrupt(&path, 0, "segment file shorter than its header"));
        }
        // SAFETY: block files are immutable once the block is renamed into place; nothing in
        // hearth writes or truncates them while a Block is open (deletion only unlinks).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| TsdbError::io(&path, e))?;
        if map[..4] != SEGMENT_MAGIC {
            return Err(corrupt(&path, 0, "bad magic number in chunk segment file"));
        }
        if map[4] != SEGMENT_VERSION {
            return Err(corrupt(
                &path,
                4,
                format!("unknown chunk segment version {}", map[4]),
            ));
        }
        if map[5..SEGMENT_HEADER_LEN] != [0, 0, 0] {
            return Err(corrupt(
                &path,
                5,
                "reserved segment header bytes are not zero",
            ));
        }
        Ok(self
            .cache
            .insert(self.owner, seq, Mapping::new(map, &self.cache)))
    }

    /// The chunk at `r`, CRC checked.
    pub(super) fn chunk(&self, r: ChunkRef) -> Result<ChunkBytes, TsdbError> {
        let map = self.map(r.segment())?;
        let (range, _) = record_at(&map, r.offset() as usize)
            .map_err(|d| corrupt(&self.seg_path(r.segment()), u64::from(r.offset()), d))?;
        Ok(ChunkBytes { map, range })
    }

    /// Walks every record of every segment file, checking framing, CRCs and encoding bytes.
    pub(super) fn verify(&self) -> Result<u64, TsdbError> {
        let mut chunks = 0;
        for (seq, _) in &self.segments {
            let map = self.map(*seq)?;
            let mut pos = SEGMENT_HEADER_LEN;
            while pos < map.len() {
                let (_, end) = record_at(&map, pos)
                    .map_err(|d| corrupt(&self.seg_path(*seq), pos as u64, d))?;
                pos = end;
                chunks += 1;
            }
        }
        Ok(chunks)
    }
}

/// Decodes the record at `pos`: the chunk's byte range and where the next record starts.
fn record_at(map: &[u8], pos: usize) -> Result<(Range<usize>, usize), &'static str> {
    if pos < SEGMENT_HEADER_LEN || pos >= map.len() {
        return Err("chunk reference outside the segment file");
    }
    let mut rd = Rd::new(map, pos, map.len());
    let len = rd.uvarint().ok_or("bad or truncated chunk length")?;
    let start = rd.pos;
    let len = usize::try_from(len).map_err(|_| "chunk length too large")?;
    if len == 0 {
        return Err("empty chunk record");
    }
    let data = rd
        .bytes(len)
        .ok_or("chunk extends past the end of the file")?;
    let crc = rd.u32().ok_or("chunk checksum past the end of the file")?;
    if crc32c::crc32c_append(crc32c::crc32c(&map[pos..start]), data) != crc {
        return Err("chunk checksum mismatch");
    }
    if Encoding::from_u8(data[0]).is_none() {
        return Err("unknown chunk encoding byte");
    }
    Ok((start..start + len, rd.pos))
}

/// The number in a segment file name (`000001` is 1); `None` for other names.
fn parse_segment_name(name: &str) -> Option<u32> {
    if name.len() < 6 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}
