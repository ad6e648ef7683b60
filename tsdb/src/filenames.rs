//! Every on-disk name hearth's metric storage uses, in one place.

/// WAL segments directory under the storage path.
pub const WAL_DIR: &str = "wal";
/// Head-chunks files directory under the storage path.
pub const CHUNKS_HEAD_DIR: &str = "chunks_head";
/// Lock file held (flock) while a process owns the storage path.
pub const LOCK_FILE: &str = "lock";

/// Name of segment-like file number `index` (WAL segments, head-chunks files): 8 digits,
/// zero-padded, so lexical order is numeric order.
pub fn segment_name(index: u32) -> String {
    format!("{index:08}")
}

/// Suffix of a file being created (written, fsynced, then renamed into place).
pub const TMP_SUFFIX: &str = ".tmp";

/// `meta.json` of a block directory.
pub const BLOCK_META_FILE: &str = "meta.json";
/// The index file of a block directory.
pub const BLOCK_INDEX_FILE: &str = "index";
/// Directory of a block's chunk segment files.
pub const BLOCK_CHUNKS_DIR: &str = "chunks";
/// Spill file of series entries inside a block being written (`<id>.tmp/`); deleted before the
/// block is renamed into place.
pub const BLOCK_SERIES_SPILL_FILE: &str = "series.spill";

/// Name of block chunk segment file number `index` (1-based): 6 digits, zero-padded, as in
/// Prometheus blocks.
pub fn block_chunk_segment_name(index: u32) -> String {
    format!("{index:06}")
}

/// Blocks directory under the storage path (one subdirectory per block).
pub const BLOCKS_DIR: &str = "blocks";
/// Where corrupt blocks are moved, under the storage path.
pub const CORRUPT_DIR: &str = "corrupt";
/// Snapshots (`POST /api/v1/admin/tsdb/snapshot`), under the storage path: one storage
/// directory per snapshot, `<name>.tmp` while it is written.
pub const SNAPSHOTS_DIR: &str = "snapshots";
