//! Chunk codecs for immutable blocks: each chunk is re-encoded with whichever encoding stores it
//! in the fewest bytes, and every sample reads back bit for bit.
//!
//! - [`Encoding::Xor`]: the head's Gorilla chunk, unchanged (any values).
//! - [`Encoding::Decimal`]: values that are exact decimals (`12345.67`, integers) as integer
//!   mantissas with one shared exponent, packed as offsets, deltas or delta-of-deltas, the idea
//!   VictoriaMetrics uses; values that are not exact decimals (stale markers, -0.0, ...) are
//!   escaped one by one. Timestamps are a separate column (module `timestamps`), where an exactly
//!   regular series costs `t0` plus one interval.
//! - [`Encoding::Constant`]: one value for every sample, plus the same timestamp column.
//!
//! A block chunk is its encoding byte followed by the encoding's bytes; the layouts are in
//! `docs/format/chunks.md`. Encoders append to the caller's buffer; [`decode_into`] fills the
//! caller's vectors and returns an error, never panics, on any bytes.

mod constant;
mod decimal;
mod pack;
mod timestamps;

#[cfg(test)]
mod tests;

use super::{ChunkError, Encoding, XorChunk, XorIter};
use crate::varint::put_uvarint;
use pack::{Bad, Cursor};

/// Most samples a chunk holds, as for the head's chunks (16-bit count).
pub const MAX_SAMPLES: usize = u16::MAX as usize;

/// Reusable scratch memory for encoding, so a block writer encoding many chunks allocates once.
#[derive(Debug, Default)]
pub struct BlockEncoder {
    s: Scratch,
    /// The losing candidate of [`encode_best`](Self::encode_best).
    alt: Vec<u8>,
}

/// Scratch vectors of the column encoders; contents are meaningless between calls.
#[derive(Debug, Default)]
struct Scratch {
    /// The chunk's timestamps, split off the samples.
    t: Vec<i64>,
    /// The chunk's values, split off the samples.
    v: Vec<f64>,
    /// Decimal mantissas.
    m: Vec<i64>,
    /// The integer sequence being planned or packed.
    xs: Vec<i64>,
    /// Scratch of `pack::plan`.
    tmp: Vec<i64>,
    /// Indices of escaped values.
    esc: Vec<usize>,
}

impl BlockEncoder {
    /// An encoder with empty scratch buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`encode_best`].
    pub fn encode_best(&mut self, samples: &[(i64, f64)], dst: &mut Vec<u8>) -> Encoding {
        assert!(
            valid(samples),
            "BUG: block chunks need at most {MAX_SAMPLES} samples with strictly increasing timestamps"
        );
        let start = dst.len();
        let first = if is_constant(samples) {
            self.encode_constant(samples, dst);
            Encoding::Constant
        } else if self.encode_decimal(samples, dst).is_some() {
            Encoding::Decimal
        } else {
            encode_xor(samples, dst);
            return Encoding::Xor;
        };
        // XOR is sometimes smaller (e.g. irregular timestamps in a tiny chunk): check.
        self.alt.clear();
        encode_xor(samples, &mut self.alt);
        if self.alt.len() < dst.len() - start {
            dst.truncate(start);
            dst.extend_from_slice(&self.alt);
            return Encoding::Xor;
        }
        first
    }

    /// See [`encode_as`].
    pub fn encode_as(
        &mut self,
        enc: Encoding,
        samples: &[(i64, f64)],
        dst: &mut Vec<u8>,
    ) -> Option<()> {
        if !valid(samples) {
            return None;
        }
        match enc {
            Encoding::Xor => {
                encode_xor(samples, dst);
                Some(())
            }
            Encoding::Decimal => self.encode_decimal(samples, dst),
            Encoding::Constant => is_constant(samples).then(|| self.encode_constant(samples, dst)),
        }
    }

    fn encode_decimal(&mut self, samples: &[(i64, f64)], dst: &mut Vec<u8>) -> Option<()> {
        let start = dst.len();
        dst.push(Encoding::Decimal.as_u8());
        put_uvarint(dst, samples.len() as u64);
        if samples.is_empty() {
            return Some(());
        }
        self.s.t.clear();
        self.s.t.extend(samples.iter().map(|s| s.0));
        timestamps::encode(&self.s.t, &mut self.s.xs, &mut self.s.tmp, dst);
        let mut vals = std::mem::take(&mut self.s.v);
        vals.clear();
        vals.extend(samples.iter().map(|s| s.1));
        let ok = decimal::encode(&vals, &mut self.s, dst);
        self.s.v = vals;
        if ok.is_none() {
            dst.truncate(start);
        }
        ok
    }

    fn encode_constant(&mut self, samples: &[(i64, f64)], dst: &mut Vec<u8>) {
        dst.push(Encoding::Constant.as_u8());
        put_uvarint(dst, samples.len() as u64);
        let Some(&(_, v)) = samples.first() else {
            return;
        };
        self.s.t.clear();
        self.s.t.extend(samples.iter().map(|s| s.0));
        timestamps::encode(&self.s.t, &mut self.s.xs, &mut self.s.tmp, dst);
        constant::encode_value(v, dst);
    }
}

/// Encodes `samples` (strictly increasing timestamps, at most 65 535 samples) with the smallest
/// encoding, appending to `dst`; returns the encoding used. The output starts with the encoding
/// byte.
///
/// # Panics
///
/// With a `BUG:` message if `samples` breaks the precondition: chunks come from the head,
/// which only holds such sequences.
pub fn encode_best(samples: &[(i64, f64)], dst: &mut Vec<u8>) -> Encoding {
    BlockEncoder::new().encode_best(samples, dst)
}

/// Encodes `samples` with `enc`, appending to `dst`; `None` (and `dst` unchanged) if `enc`
/// cannot represent these samples exactly, or the samples break [`encode_best`]'s
/// precondition. Decimal also declines chunks where more than a quarter of the values would be
/// escapes (XOR is smaller there).
pub fn encode_as(enc: Encoding, samples: &[(i64, f64)], dst: &mut Vec<u8>) -> Option<()> {
    BlockEncoder::new().encode_as(enc, samples, dst)
}

/// Decodes a chunk produced by [`encode_best`] or [`encode_as`] into `ts` and `vals` (cleared
/// first; both empty again on error). Errors on corrupt or truncated input, never panics.
///
/// Error offsets count from the encoding byte. For the columnar encodings (decimal, constant),
/// `Truncated::sample` is 0: no sample is complete before the last column is read. A chunk
/// whose timestamps are shared with another chunk of its block ([`share_timestamps`]) is an
/// error here; decode it with [`decode_into_resolving`].
pub fn decode_into(data: &[u8], ts: &mut Vec<i64>, vals: &mut Vec<f64>) -> Result<(), ChunkError> {
    decode_into_resolving::<&[u8]>(data, ts, vals, &mut |_| None)
}

/// [`decode_into`] for chunks stored in a block: a shared timestamp column (mode 4, see
/// [`share_timestamps`]) is read from the chunk `resolve(ref)` returns (`None`: no such
/// chunk, reported as corruption). The referenced chunk must be columnar, hold as many
/// samples and have a column of its own.
pub fn decode_into_resolving<R: AsRef<[u8]>>(
    data: &[u8],
    ts: &mut Vec<i64>,
    vals: &mut Vec<f64>,
    resolve: &mut dyn FnMut(u64) -> Option<R>,
) -> Result<(), ChunkError> {
    ts.clear();
    vals.clear();
    let res = decode_inner(data, ts, vals, resolve);
    if res.is_err() {
        ts.clear();
        vals.clear();
    }
    res
}

/// Where the timestamp column of a columnar chunk (decimal or constant, at least one sample)
/// is, when the chunk has a column of its own: `data[1..end]` is the sample count followed by
/// the column, `start..end` the column. `None` for XOR chunks, empty chunks, chunks whose
/// column is shared and bytes that do not parse. `scratch` is reused memory.
///
/// Two chunks whose `data[1..end]` are equal have the same timestamps (the encoder is
/// deterministic), which is how the block writer finds columns to share.
pub fn timestamp_column(data: &[u8], scratch: &mut Vec<i64>) -> Option<std::ops::Range<usize>> {
    let enc = Encoding::from_u8(*data.first()?)?;
    if enc == Encoding::Xor {
        return None;
    }
    let mut c = Cursor::new(data, 1);
    let n = c.uvarint().ok()?;
    if n == 0 || n > MAX_SAMPLES as u64 {
        return None;
    }
    let start = c.pos;
    if *data.get(start)? == timestamps::SHARED {
        return None;
    }
    scratch.clear();
    scratch.resize(n as usize, 0);
    timestamps::decode(&mut c, scratch).ok()?;
    Some(start..c.pos)
}

/// Whether `data` is a columnar chunk whose timestamp column refers to another chunk.
pub fn has_shared_timestamps(data: &[u8]) -> bool {
    let Some(enc) = data.first().and_then(|&b| Encoding::from_u8(b)) else {
        return false;
    };
    if enc == Encoding::Xor {
        return false;
    }
    let mut c = Cursor::new(data, 1);
    matches!(c.uvarint(), Ok(n) if n > 0) && data.get(c.pos) == Some(&timestamps::SHARED)
}

/// Appends to `dst` the chunk `data` with its timestamp column `col` (from
/// [`timestamp_column`]) replaced by a reference to the chunk `target` of the same block,
/// whose own column is byte for byte the same: mode 4, then `target` as a uvarint.
pub fn share_timestamps(data: &[u8], col: std::ops::Range<usize>, target: u64, dst: &mut Vec<u8>) {
    dst.extend_from_slice(&data[..col.start]);
    dst.push(timestamps::SHARED);
    put_uvarint(dst, target);
    dst.extend_from_slice(&data[col.end..]);
}

fn decode_inner<R: AsRef<[u8]>>(
    data: &[u8],
    ts: &mut Vec<i64>,
    vals: &mut Vec<f64>,
    resolve: &mut dyn FnMut(u64) -> Option<R>,
) -> Result<(), ChunkError> {
    let Some(&b) = data.first() else {
        return Err(ChunkError::MissingHeader { len: 0 });
    };
    let enc = Encoding::from_u8(b).ok_or(ChunkError::Corrupt {
        offset: 0,
        detail: "unknown encoding byte",
    })?;
    if enc == Encoding::Xor {
        return decode_xor(&data[1..], ts, vals);
    }
    let mut c = Cursor::new(data, 1);
    let mut declared = 0usize;
    let res = (|| {
        let n = c.uvarint()?;
        if n > MAX_SAMPLES as u64 {
            return Err(Bad::Corrupt("sample count over 65535"));
        }
        declared = n as usize;
        if n == 0 {
            return Ok(());
        }
        ts.resize(declared, 0);
        vals.resize(declared, 0.0);
        if data.get(c.pos) == Some(&timestamps::SHARED) {
            c.u8()?;
            let target = c.uvarint()?;
            let other = resolve(target).ok_or(Bad::Corrupt(
                "shared timestamp column refers to no chunk of the block",
            ))?;
            shared_column(other.as_ref(), ts)?;
        } else {
            timestamps::decode(&mut c, ts)?;
        }
        match enc {
            Encoding::Constant => {
                let v = constant::decode_value(&mut c)?;
                vals.fill(v);
            }
            _ => decimal::decode(&mut c, vals)?,
        }
        if c.pos != data.len() {
            return Err(Bad::Corrupt("trailing bytes after the chunk"));
        }
        Ok(())
    })();
    res.map_err(|bad| match bad {
        Bad::Truncated => ChunkError::Truncated {
            len: data.len(),
            sample: 0,
            declared,
        },
        Bad::Corrupt(detail) => ChunkError::Corrupt {
            offset: c.pos,
            detail,
        },
    })
}

/// Fills `ts` (its length is the sharing chunk's count) from the column of `other`.
fn shared_column(other: &[u8], ts: &mut [i64]) -> Result<(), Bad> {
    let not_columnar = Bad::Corrupt("shared timestamp column refers to a chunk without one");
    match other.first().and_then(|&b| Encoding::from_u8(b)) {
        Some(Encoding::Decimal | Encoding::Constant) => {}
        _ => return Err(not_columnar),
    }
    let mut c = Cursor::new(other, 1);
    let n = c.uvarint().map_err(|_| not_columnar)?;
    if n != ts.len() as u64 {
        return Err(Bad::Corrupt(
            "shared timestamp column has a different sample count",
        ));
    }
    if other.get(c.pos) == Some(&timestamps::SHARED) {
        return Err(Bad::Corrupt(
            "shared timestamp column refers to a shared column",
        ));
    }
    timestamps::decode(&mut c, ts)
        .map_err(|_| Bad::Corrupt("shared timestamp column refers to a corrupt column"))
}

fn decode_xor(data: &[u8], ts: &mut Vec<i64>, vals: &mut Vec<f64>) -> Result<(), ChunkError> {
    let mut it = XorIter::new(data);
    for (t, v) in it.by_ref() {
        ts.push(t);
        vals.push(v);
    }
    match it.err() {
        None => Ok(()),
        Some(ChunkError::Corrupt { offset, detail }) => Err(ChunkError::Corrupt {
            offset: offset + 1,
            detail,
        }),
        Some(e) => Err(e.clone()),
    }
}

fn encode_xor(samples: &[(i64, f64)], dst: &mut Vec<u8>) {
    dst.push(Encoding::Xor.as_u8());
    // Gorilla needs at most ~19 bytes per sample; a good guess avoids regrowing.
    let mut c = XorChunk::with_capacity(samples.len() * 8 + 64);
    for &(t, v) in samples {
        c.append(t, v)
            .expect("BUG: samples were checked to be in order and at most 65535");
    }
    dst.extend_from_slice(c.bytes());
}

fn valid(samples: &[(i64, f64)]) -> bool {
    samples.len() <= MAX_SAMPLES && samples.windows(2).all(|w| w[0].0 < w[1].0)
}

fn is_constant(samples: &[(i64, f64)]) -> bool {
    samples
        .first()
        .is_some_and(|f| samples.iter().all(|s| s.1.to_bits() == f.1.to_bits()))
}
