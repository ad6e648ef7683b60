//! Segmented, checksummed write-ahead log with group commit.
//!
//! The WAL carries opaque typed records (`u8` type + payload bytes). It knows nothing about
//! metrics or logs: the tsdb record module and the future log store define the payloads and
//! reuse this log unchanged. The on-disk format, the corruption rules and what each fsync policy
//! guarantees are specified in `docs/format/wal.md`; keep that document and this code in step.
//!
//! # Writing
//!
//! [`Wal::open`] always starts a fresh segment after the highest existing one, so a tail that a
//! crash may have torn is never extended. Appending is two-phase so that many threads share one
//! `fdatasync` (group commit):
//!
//! 1. [`Wal::append`] / [`Wal::append_with`] frame the record into an in-memory pending buffer
//!    under a short mutex and return its [`Lsn`]. No I/O happens here.
//! 2. [`Wal::commit`] returns once that record and every earlier one has reached the segment
//!    file (and, with [`FsyncPolicy::Always`], the disk). Whichever committer takes the I/O lock
//!    becomes the leader: it swaps out the whole pending buffer, writes it with one `write`,
//!    syncs once and publishes the new durable LSN; committers it covered return without I/O.
//!
//! After a failed write or sync the WAL refuses all further appends and commits with
//! [`WalError::Failed`]: a partially written batch may sit in the segment, and writing after it
//! would leave a hole that replay reports as mid-segment corruption. Reopen to continue.
//!
//! # Reading
//!
//! [`replay`] reads every segment in index order; [`read_segment`] reads one and is
//! self-contained so callers may read segments in parallel. Corruption never aborts a read: it
//! is classified as a torn tail, mid-segment damage or a bad header and listed in the report
//! (see [`CorruptionInfo`]). Run `replay(dir, true, ..)` **before** [`Wal::open`]: repair only
//! truncates the torn tail of the last segment, and after `open` the last segment is the new,
//! empty one.
//!
//! # Checkpoints
//!
//! Records appended before [`Wal::cut_segment`] is called all live in segments with a lower
//! index than the one it returns. Once everything up to that point is persisted elsewhere,
//! [`Wal::remove_segments_before`] drops those segments without rereading them.

mod frame;
mod reader;
mod segment;
mod writer;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use reader::{
    read_segment, replay, CorruptionInfo, CorruptionKind, RecordRef, ReplayReport, SegmentReport,
};
pub use segment::{list_segments, SegmentRef};
pub use writer::Wal;

/// Default maximum segment size: 128 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 128 << 20;

/// Smallest accepted [`WalOptions::segment_size`]; tiny segments are only useful in tests.
pub const MIN_SEGMENT_SIZE: u64 = 64;

/// Largest payload one record may carry (64 MiB). Readers treat a longer length field as
/// corruption, which also bounds how much a corrupt length can make them look at.
pub const MAX_PAYLOAD_LEN: usize = frame::MAX_PAYLOAD_LEN;

/// Log sequence number: the position of a record in this process's append order.
///
/// LSNs start at 1 for each [`Wal::open`] and increase by one per record; they are not stored
/// on disk. `Lsn(0)` means "nothing" and is always committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

/// When [`Wal::commit`] considers a record durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `commit` returns after `write` + `fdatasync`: committed records survive a power cut.
    Always,
    /// `commit` returns after `write`: committed records survive a process crash. A background
    /// thread writes pending records and `fdatasync`s every interval, so a power cut (or kernel
    /// crash) can lose up to the last interval of committed records.
    Interval(Duration),
}

/// Options for [`Wal::open`].
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// Directory holding the segment files; created if missing.
    pub dir: PathBuf,
    /// A segment is rotated before a write batch that would take it past this many bytes. A
    /// batch larger than this on its own still goes into one (fresh) segment, because records
    /// never span segments. At least [`MIN_SEGMENT_SIZE`].
    pub segment_size: u64,
    /// Durability of [`Wal::commit`].
    pub fsync: FsyncPolicy,
}

impl WalOptions {
    /// Options with [`DEFAULT_SEGMENT_SIZE`] and [`FsyncPolicy::Always`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        WalOptions {
            dir: dir.into(),
            segment_size: DEFAULT_SEGMENT_SIZE,
            fsync: FsyncPolicy::Always,
        }
    }
}

/// Counters since [`Wal::open`]. Read from atomics, so calling [`Wal::stats`] is cheap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Bytes handed to `write` on segment files (framing included, segment headers excluded).
    pub bytes_written: u64,
    /// Records handed to `write`.
    pub records_written: u64,
    /// Calls to [`Wal::commit`].
    pub commits: u64,
    /// `write` batches issued by commit leaders, the syncer and [`Wal::sync`].
    pub write_batches: u64,
    /// `fdatasync` calls on segment files (directory fsyncs are not counted).
    pub fsyncs: u64,
    /// Segments created, including the one created by [`Wal::open`].
    pub segments_created: u64,
    /// Index of the segment currently written.
    pub current_segment: u32,
    /// Bytes appended but not yet handed to `write`.
    pub pending_bytes: u64,
}

/// Errors of the WAL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// An operating-system call on `path` failed.
    #[error("WAL I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Stored bytes are not a valid WAL. Readers put corruption into their reports instead of
    /// failing; this variant is for callers that want to stop on it
    /// ([`CorruptionInfo::to_error`]).
    #[error("corrupt WAL data in {path} at offset {offset}: {detail}")]
    Corruption {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    /// A segment header with a valid checksum names a format version this build cannot read:
    /// the WAL was written by a newer hearth. Skipping it would silently drop data, so this
    /// stops the read.
    #[error(
        "WAL segment {path} has format version {version}; this build reads version {supported}"
    )]
    UnsupportedVersion {
        path: PathBuf,
        version: u8,
        supported: u8,
    },
    /// An earlier write or sync failed (its error is the source); the WAL accepts nothing more.
    #[error("WAL stopped after an I/O failure on {path}; reopen it to continue")]
    Failed {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// Record type 0 is reserved so that zero-filled bytes never parse as a record.
    #[error("WAL record type 0 is reserved")]
    InvalidRecordType,
    /// The payload is longer than [`MAX_PAYLOAD_LEN`].
    #[error("WAL record payload of {len} bytes exceeds the maximum of {max}")]
    RecordTooLarge { len: usize, max: usize },
    /// [`Wal::commit`] was given an LSN that [`Wal::append`] never returned.
    #[error("commit of LSN {lsn} but the last assigned LSN is {last}")]
    UnknownLsn { lsn: u64, last: u64 },
    /// [`WalOptions`] are out of range.
    #[error("invalid WAL options: {detail}")]
    InvalidOptions { detail: &'static str },
    /// The 8-digit segment names are used up (99,999,999 segments).
    #[error("WAL segment index space exhausted after segment {last}")]
    SegmentIndexExhausted { last: u32 },
}

impl WalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        WalError::Io {
            path: path.into(),
            source,
        }
    }
}
