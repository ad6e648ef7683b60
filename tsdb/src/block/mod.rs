//! Persistent, immutable blocks: the on-disk form of a time range of samples.
//!
//! A block is a directory `<id>/` holding
//! - `chunks/000001`, `000002`, ...: chunk segment files (module `chunks`), the encoded chunks of
//!   every series, each with its length and a CRC32C;
//! - `index`: the symbol table, the series (label set as symbol ids plus chunk metas), the
//!   postings of every label pair, the per-name value lists and a TOC (module `index`);
//! - `meta.json`: id, time range, stats, compaction level and sources ([`BlockMeta`]).
//!
//! The layout of every file is documented in `docs/format/block.md`.
//!
//! [`BlockWriter`] writes a block into `<id>.tmp/`, fsyncs every file and renames the directory
//! into place, so a crash leaves either no block or a complete one (a leftover `.tmp`
//! directory is never opened: [`Block::open`] refuses it, [`remove_tmp_blocks`] deletes them).
//! The writer streams: chunks go straight to the segment files and series to a spill file;
//! only the distinct label strings and the postings (one `u32` per series and label) are held
//! in memory.
//!
//! [`Block`] reads a finished block through memory maps. Opening reads `meta.json`, the
//! index header, TOC and label-name table only; everything else is read on demand and
//! checked against its CRC when read. The index file is mapped whole (its size is small next
//! to the chunks); chunk segment files are mapped lazily and kept in one [`MappingCache`]
//! for the whole process, an LRU bounded by total mapped bytes and number of mappings (least
//! recently used are unmapped), which bounds the address space all blocks together take on
//! 32-bit hosts (Prometheus #7450).

mod chunks;
mod index;
mod mapping;
mod meta;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub use chunks::{ChunkBytes, MAX_SEGMENT_SIZE};
pub use mapping::{
    MappingCache, MappingStats, DEFAULT_MAX_MAPPED_BYTES, DEFAULT_MAX_MAPPED_BYTES_32,
    DEFAULT_MAX_MAPPED_BYTES_64, DEFAULT_MAX_MAPPINGS,
};
pub use meta::{BlockMeta, BlockStats, META_VERSION};
pub use reader::{AllSeries, Block};
pub use writer::BlockWriter;

use crate::filenames::TMP_SUFFIX;
use crate::TsdbError;

/// A series of one block: its position in the block's index (0, 1, 2, ... in label order).
/// Only meaningful together with the [`Block`] it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockSeriesRef(pub u32);

/// Where a chunk is stored: `segment file number << 32 | byte offset of its record`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkRef(pub u64);

impl ChunkRef {
    /// Builds a reference from a segment file number (as in its name) and a record offset.
    pub fn new(segment: u32, offset: u32) -> ChunkRef {
        ChunkRef((u64::from(segment) << 32) | u64::from(offset))
    }

    /// The segment file number (`chunks/000001` is 1).
    pub fn segment(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// Byte offset of the chunk's record inside its segment file.
    pub fn offset(self) -> u32 {
        self.0 as u32
    }
}

/// One chunk of a series as the index describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Timestamp of the chunk's first sample (ms).
    pub min_t: i64,
    /// Timestamp of the chunk's last sample (ms, inclusive).
    pub max_t: i64,
    /// Where the chunk's bytes are; read them with [`Block::chunk`].
    pub chunk_ref: ChunkRef,
}

/// Crockford's base32 alphabet, as ULIDs use it.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The last id handed out by this process, so ids from one process strictly increase even
/// within one millisecond.
static LAST_ID: Mutex<u128> = Mutex::new(0);

/// A new block id: a ULID (48-bit Unix time in ms, 80 random bits, Crockford base32, 26
/// characters), so ids sort by creation time. Ids from one process strictly increase. The
/// random bits come from std's randomly keyed SipHash (not cryptographic; they only need to
/// make collisions between processes unlikely).
pub fn new_block_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let ms = (now.as_millis() as u64) & ((1 << 48) - 1);
    let rand = (u128::from(random_u64()) << 16 ^ u128::from(random_u64())) & ((1 << 80) - 1);
    let mut v = (u128::from(ms) << 80) | rand;
    {
        let mut last = LAST_ID.lock().unwrap_or_else(|e| e.into_inner());
        if v <= *last {
            v = *last + 1;
        }
        *last = v;
    }
    encode_ulid(v)
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish()
}

fn encode_ulid(v: u128) -> String {
    (0..26)
        .map(|i| CROCKFORD[((v >> (125 - 5 * i)) & 31) as usize] as char)
        .collect()
}

/// Whether `s` is a block id as [`new_block_id`] makes them (26 Crockford base32 characters,
/// upper case, first one at most `7`).
pub fn is_block_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 26 && b[0] <= b'7' && b.iter().all(|c| CROCKFORD.contains(c))
}

/// The creation time (Unix ms) encoded in a block id; `None` if `s` is not one.
pub fn block_id_time_ms(s: &str) -> Option<u64> {
    if !is_block_id(s) {
        return None;
    }
    let mut v: u128 = 0;
    for c in s.bytes() {
        let d = CROCKFORD.iter().position(|&x| x == c)? as u128;
        v = (v << 5) | d;
    }
    Some((v >> 80) as u64)
}

/// Deletes every `<name>.tmp` directory in `blocks_dir` (blocks whose writing was interrupted);
/// returns how many were removed. Call once at start-up, before writing new blocks.
pub fn remove_tmp_blocks(blocks_dir: &Path) -> Result<usize, TsdbError> {
    let entries = match std::fs::read_dir(blocks_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(TsdbError::io(blocks_dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| TsdbError::io(blocks_dir, e))?;
        let path = entry.path();
        let is_tmp = entry.file_name().to_string_lossy().ends_with(TMP_SUFFIX);
        if is_tmp && path.is_dir() {
            std::fs::remove_dir_all(&path).map_err(|e| TsdbError::io(&path, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// `TsdbError::Corruption` for `path` at `offset`.
fn corrupt(path: &Path, offset: u64, detail: impl Into<String>) -> TsdbError {
    TsdbError::Corruption {
        path: path.to_path_buf(),
        offset,
        detail: detail.into(),
    }
}

/// Fsyncs a directory so renames and creations inside it are durable.
fn sync_dir(dir: &Path) -> Result<(), TsdbError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| TsdbError::io(dir, e))
}

/// A bounds-checked reader over a byte slice that reports absolute positions, so a decoding
/// failure becomes a `Corruption` with the right offset. Never panics.
struct Rd<'a> {
    buf: &'a [u8],
    pos: usize,
    /// One past the last byte this reader may read.
    end: usize,
}

impl<'a> Rd<'a> {
    fn new(buf: &'a [u8], pos: usize, end: usize) -> Rd<'a> {
        Rd {
            buf,
            pos,
            end: end.min(buf.len()),
        }
    }

    fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.remaining() {
            return None;
        }
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Some(b)
    }

    fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }

    fn uvarint(&mut self) -> Option<u64> {
        let start = self.pos.min(self.end);
        let mut s = &self.buf[start..self.end];
        let before = s.len();
        let v = crate::varint::uvarint(&mut s)?;
        self.pos = start + (before - s.len());
        Some(v)
    }

    fn varint(&mut self) -> Option<i64> {
        let u = self.uvarint()?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}
