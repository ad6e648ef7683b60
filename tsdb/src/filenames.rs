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
