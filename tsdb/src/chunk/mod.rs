//! Compressed chunks of float samples: the unit the head appends into and the block files store.
//!
//! A chunk is a self-contained byte string holding up to 65 535 `(i64 ms, f64)` samples of one
//! series in strictly increasing time order. The only encoding so far is Gorilla-style XOR
//! ([`xor`]), byte-compatible with Prometheus's `EncXOR`; its layout is documented in
//! `docs/format/chunks.md`.
//!
//! This module is pure encode/decode: no I/O, no locking, no allocation on the decode path. It
//! knows nothing about series, labels or files; callers store the [`Encoding`] byte next to the
//! chunk bytes and wrap [`ChunkError`] with the file path when they read from disk.

pub mod block_enc;
pub mod xor;

pub use xor::{num_samples, XorChunk, XorIter};

/// The encoding byte stored next to every chunk on disk and in the WAL.
///
/// Values are part of the on-disk format: they only ever grow. A new or changed encoding gets a
/// new byte (Prometheus added `EncXOR2` rather than altering `EncXOR`); an existing value is never
/// reused or renumbered, so old files keep decoding. The numbers match Prometheus's `chunkenc`
/// where the formats are the same.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Gorilla delta-of-delta timestamps and XOR float values; see [`XorChunk`].
    Xor = 1,
    /// Decimal mantissas with a shared exponent and a separate timestamp column; block files
    /// only. See [`block_enc`].
    Decimal = 2,
    /// One value for every sample, plus a timestamp column; block files only. See
    /// [`block_enc`].
    Constant = 3,
}

impl Encoding {
    /// Maps a stored encoding byte back to an [`Encoding`]; `None` for bytes this version does not
    /// know (a newer writer, or corruption), which the caller reports rather than guesses.
    pub fn from_u8(b: u8) -> Option<Encoding> {
        match b {
            1 => Some(Encoding::Xor),
            2 => Some(Encoding::Decimal),
            3 => Some(Encoding::Constant),
            _ => None,
        }
    }

    /// The byte written to disk for this encoding.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// Errors from appending to or decoding a chunk.
///
/// Offsets are byte offsets inside the chunk (header included); the caller that knows the file
/// adds the path and the chunk's position in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The chunk is shorter than its 2-byte sample-count header.
    #[error("chunk of {len} bytes is shorter than its 2-byte header")]
    MissingHeader {
        /// Length of the byte string that was passed in.
        len: usize,
    },
    /// The bytes ended before the header's sample count was reached: a torn write or a chunk
    /// reference with a wrong length.
    #[error(
        "chunk of {len} bytes ends inside sample {sample} of {declared} declared in its header"
    )]
    Truncated {
        /// Length of the chunk in bytes.
        len: usize,
        /// Zero-based index of the sample that could not be read completely.
        sample: usize,
        /// Sample count from the header.
        declared: usize,
    },
    /// The bytes decode to something no encoder writes (overlong varint, impossible XOR window,
    /// timestamps that do not increase).
    #[error("corrupt chunk at byte {offset}: {detail}")]
    Corrupt {
        /// Byte offset (header included) at which the decoder noticed the problem.
        offset: usize,
        /// What was wrong with it.
        detail: &'static str,
    },
    /// `append` was called with a timestamp not after the chunk's last one. Chunks hold one
    /// series in strictly increasing time order; out-of-order data goes elsewhere.
    #[error("out-of-order sample: timestamp {t} is not after the chunk's last timestamp {last}")]
    OutOfOrder {
        /// Timestamp that was passed to `append`.
        t: i64,
        /// Timestamp of the chunk's last sample.
        last: i64,
    },
    /// The chunk already holds as many samples as its 16-bit header can count.
    #[error("chunk is full: it already holds {max} samples")]
    Full {
        /// Maximum number of samples per chunk.
        max: usize,
    },
}
