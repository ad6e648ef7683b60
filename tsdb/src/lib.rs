//! hearth's metrics storage engine.
//!
//! Owns everything about stored metric samples: the data model ([`Labels`], `(i64 ms, f64)`
//! samples), the in-memory head (Gorilla/XOR chunks, full chunks in memory-mapped
//! head-chunks files, out-of-order buffers), the label index (symbol table, roaring postings,
//! Prometheus matcher semantics), the write-ahead log and its replay, and the [`Querier`] the
//! query engine reads through. It also serves the storage-owned HTTP endpoints ([`http`]).
//!
//! It must not know about wire formats (remote_write, exposition text: `ingest/`), PromQL
//! (`query/`), scraping or rules. The [`wal`] module is record-agnostic so the log store can
//! reuse it. On-disk formats: `docs/format/wal.md`, `docs/format/chunks.md`,
//! `docs/format/head_chunks.md`, `docs/format/block.md` (persistent blocks: [`block`]).
//!
//! Entry point: [`Db::open`], then [`Db::appender`] to write and [`Db::querier`] to read.
//! [`Db::snapshot`] writes a backup that is itself a storage directory ([`snapshot`]).

pub mod appender;
pub mod block;
pub mod checkpoint;
pub mod chunk;
pub mod config;
mod db;
pub mod filenames;
mod head;
pub mod http;
pub mod index;
pub mod labels;
pub mod persist;
pub mod querier;
pub mod record;
mod replay;
pub mod snapshot;
pub mod tombstones;
mod varint;
pub mod wal;

use std::path::{Path, PathBuf};

pub use appender::{AppendReport, Appender, RejectReason, Rejection, SeriesRef};
pub use config::StorageConfig;
pub use db::{Db, HeadStatus, ReplayStats};
pub use head::HeadStats;
pub use index::{MatchOp, Matcher};
pub use labels::{LabelError, Labels};
pub use querier::{Querier, Series, SeriesIter};
pub use snapshot::SnapshotReport;

/// The Prometheus stale marker: a NaN with this exact bit pattern ends a series.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is the Prometheus stale marker (bit-exact; other NaNs are ordinary values).
pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Errors of the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum TsdbError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Wal(#[from] wal::WalError),
    #[error("corrupt data in {path} at offset {offset}: {detail}")]
    Corruption {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    #[error("invalid labels: {0}")]
    Labels(#[from] LabelError),
    #[error(transparent)]
    Index(#[from] index::IndexError),
    #[error("storage directory is in use by another process (lock {path} is held)")]
    Locked { path: PathBuf },
    #[error("storage is shutting down")]
    Closed,
    #[error("{what} are not supported yet")]
    NotSupported { what: &'static str },
    #[error("internal error: {detail}")]
    Internal { detail: String },
}

impl TsdbError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        TsdbError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
