//! Payloads of the metric records the head writes into the WAL.
//!
//! The WAL itself ([`crate::wal`]) only frames and checksums opaque typed records; this module
//! owns what is inside them. Layouts are documented in `docs/format/wal.md` ("Record
//! payloads"). Record type bytes only ever grow.

use crate::varint;

/// WAL record type: series definitions (labels written once per series).
pub const REC_SERIES: u8 = 1;
/// WAL record type: float samples, delta-packed (about 12 bytes a sample). No longer written,
/// decoded forever so old WALs and checkpoints replay.
pub const REC_SAMPLES: u8 = 2;
/// Deleted time ranges of series (`POST /api/v1/admin/tsdb/delete_series`): repeated
/// `uvarint series id, varint mint, varint maxt` (both inclusive, ms).
pub const REC_TOMBSTONES: u8 = 3;
/// WAL record type: float samples in per-series runs, timestamps as delta-of-delta and values
/// XORed against their predecessor, byte-aligned ([`encode_samples_v2`]). What the head writes.
pub const REC_SAMPLES_V2: u8 = 4;

/// Errors decoding a record payload. The WAL has already verified the CRC, so these mean a
/// bug or a record type from a newer hearth.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {kind} record at payload offset {offset}: {detail}")]
pub struct RecordError {
    pub kind: &'static str,
    pub offset: usize,
    pub detail: &'static str,
}

/// One series definition: stable id and its sorted labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRecord<'a> {
    pub id: u64,
    pub labels: Vec<(&'a str, &'a str)>,
}

/// Appends one series entry to a series record payload. A series record is a plain
/// concatenation of entries, so several series can share one record.
pub fn encode_series_entry<'a>(
    dst: &mut Vec<u8>,
    id: u64,
    labels: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
) {
    varint::put_uvarint(dst, id);
    varint::put_uvarint(dst, labels.len() as u64);
    for (n, v) in labels {
        varint::put_uvarint(dst, n.len() as u64);
        dst.extend_from_slice(n.as_bytes());
        varint::put_uvarint(dst, v.len() as u64);
        dst.extend_from_slice(v.as_bytes());
    }
}

/// Decodes every entry of a series record, calling `f` for each.
pub fn decode_series<'a>(
    mut b: &'a [u8],
    mut f: impl FnMut(SeriesRecord<'a>),
) -> Result<(), RecordError> {
    let total = b.len();
    let err = |b: &[u8], detail| RecordError {
        kind: "series",
        offset: total - b.len(),
        detail,
    };
    while !b.is_empty() {
        let id = varint::uvarint(&mut b).ok_or_else(|| err(b, "bad series id"))?;
        let n = varint::uvarint(&mut b).ok_or_else(|| err(b, "bad label count"))? as usize;
        if n > b.len() {
            return Err(err(b, "label count exceeds record"));
        }
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let name = take_str(&mut b).ok_or_else(|| err(b, "bad label name"))?;
            let value = take_str(&mut b).ok_or_else(|| err(b, "bad label value"))?;
            labels.push((name, value));
        }
        f(SeriesRecord { id, labels });
    }
    Ok(())
}

fn take_str<'a>(b: &mut &'a [u8]) -> Option<&'a str> {
    let len = varint::uvarint(b)? as usize;
    if len > b.len() {
        return None;
    }
    let (s, rest) = b.split_at(len);
    *b = rest;
    std::str::from_utf8(s).ok()
}

/// Encodes a type-2 samples record (legacy: writers use [`encode_samples_v2`]; kept so tests
/// and benchmarks can produce old WALs). The first sample's id and timestamp are the base, every sample
/// stores zigzag deltas against them plus the raw value bits (bit-exact NaNs).
pub fn encode_samples(dst: &mut Vec<u8>, samples: &[(u64, i64, f64)]) {
    let Some(&(base_id, base_t, _)) = samples.first() else {
        return;
    };
    varint::put_uvarint(dst, base_id);
    varint::put_varint(dst, base_t);
    for &(id, t, v) in samples {
        varint::put_varint(dst, id.wrapping_sub(base_id) as i64);
        varint::put_varint(dst, t.wrapping_sub(base_t));
        dst.extend_from_slice(&v.to_bits().to_le_bytes());
    }
}

/// Decodes a samples record, calling `f(id, t, v)` for each sample in record order.
pub fn decode_samples(mut b: &[u8], mut f: impl FnMut(u64, i64, f64)) -> Result<(), RecordError> {
    let total = b.len();
    let err = |b: &[u8], detail| RecordError {
        kind: "samples",
        offset: total - b.len(),
        detail,
    };
    if b.is_empty() {
        return Ok(());
    }
    let base_id = varint::uvarint(&mut b).ok_or_else(|| err(b, "bad base id"))?;
    let base_t = varint::varint(&mut b).ok_or_else(|| err(b, "bad base timestamp"))?;
    while !b.is_empty() {
        let did = varint::varint(&mut b).ok_or_else(|| err(b, "bad id delta"))?;
        let dt = varint::varint(&mut b).ok_or_else(|| err(b, "bad timestamp delta"))?;
        let Some((v, rest)) = b.split_first_chunk::<8>() else {
            return Err(err(b, "truncated value"));
        };
        b = rest;
        f(
            base_id.wrapping_add(did as u64),
            base_t.wrapping_add(dt),
            f64::from_bits(u64::from_le_bytes(*v)),
        );
    }
    Ok(())
}

// ---- Type 4: samples in runs -------------------------------------------------------------
//
// Layout (docs/format/wal.md, "Type 4 — samples in runs"):
//
//   record  = base_t <varint> run*
//   run     = hdr <uvarint: (len - 1) << 1 | explicit_id> [id delta <varint>] sample × len
//   sample  = ctrl <u8: tclass << 6 | vdesc> [dod: 0, 1, 2 bytes LE or uvarint] [xor bytes]
//
// Byte-aligned rather than Gorilla's bit stream: on the benchmark records
// (`benches/wal_records.rs`) the bit-level XOR chunk codec is both larger (its delta-of-delta
// buckets spend 16 bits on a few ms of jitter) and about half as fast to encode and decode.

/// Worst-case encoded bytes of the first sample of a run: header and id delta (10 bytes each),
/// control byte, timestamp (10) and value (8).
const V2_FIRST_MAX: usize = 10 + 10 + 1 + 10 + 8;
/// Worst-case encoded bytes of a later sample of a run: control byte, dod (10), value (8).
const V2_NEXT_MAX: usize = 1 + 10 + 8;
/// Worst-case bytes per sample of a type-4 record (a run of one sample each, plus the record's
/// `base_t` amortised over at least one sample).
pub const SAMPLES_V2_MAX_BYTES_PER_SAMPLE: usize = V2_FIRST_MAX + 10;

/// Value descriptor (0..=36) of an XOR with `len >= 1` meaningful bytes above `tz` zero bytes
/// (`len + tz <= 8`); descriptor 0 is "XOR is zero".
#[inline]
fn vdesc(len: u32, tz: u32) -> u8 {
    (1 + (len - 1) * (18 - len) / 2 + tz) as u8
}

/// Decoding table indexed by the low 6 bits of a control byte: `(len, tz)`, or `len == 0xff`
/// for a descriptor no encoder writes.
const VDESC_TABLE: [(u8, u8); 64] = {
    let mut t = [(0xffu8, 0u8); 64];
    t[0] = (0, 0);
    let mut len = 1;
    while len <= 8 {
        let mut tz = 0;
        while len + tz <= 8 {
            t[1 + (len - 1) * (18 - len) / 2 + tz] = (len as u8, tz as u8);
            tz += 1;
        }
        len += 1;
    }
    t
};

/// `MASK[len]`: the low `len` bytes of a `u64`.
const MASK: [u64; 9] = {
    let mut m = [0u64; 9];
    let mut i = 1;
    while i < 9 {
        m[i] = u64::MAX >> (64 - 8 * i);
        i += 1;
    }
    m
};

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Writes `v` as a uvarint at `out[pos..]`, returning the new position. `out` has room.
#[inline]
fn put_uvarint_at(out: &mut [u8], mut pos: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        out[pos] = (v as u8) | 0x80;
        v >>= 7;
        pos += 1;
    }
    out[pos] = v as u8;
    pos + 1
}

/// Writes one sample (control byte, timestamp delta-of-delta `dod`, value XOR `x`) at
/// `out[pos..]`, returning the new position. `out` has [`V2_NEXT_MAX`] bytes of room.
#[inline(always)]
fn put_sample_at(out: &mut [u8], pos: usize, dod: i64, x: u64) -> usize {
    let z = zigzag(dod);
    let (tclass, tlen) = if z == 0 {
        (0u8, 0)
    } else if z < 1 << 8 {
        (1, 1)
    } else if z < 1 << 16 {
        (2, 2)
    } else {
        (3, 0)
    };
    let (vd, tz, len) = if x == 0 {
        (0, 0, 0)
    } else {
        let lz = x.leading_zeros() / 8;
        let tz = x.trailing_zeros() / 8;
        let len = 8 - lz - tz;
        (vdesc(len, tz), tz, len as usize)
    };
    out[pos] = tclass << 6 | vd;
    let mut p = pos + 1;
    if tclass == 3 {
        p = put_uvarint_at(out, p, z);
    } else {
        out[p..p + 2].copy_from_slice(&(z as u16).to_le_bytes());
        p += tlen;
    }
    // Always store 8 bytes (the room is there) and keep `len` of them: no per-length branch.
    out[p..p + 8].copy_from_slice(&(x >> (8 * tz)).to_le_bytes());
    p + len
}

/// Encodes a type-4 samples record ([`REC_SAMPLES_V2`]) of `samples` in the given order,
/// appending to `dst`. Consecutive samples of one series id form a run; samples are never
/// reordered, so interleaved series just make short runs. Every `(id, t, value bits)` decodes
/// exactly: timestamp arithmetic wraps (any `i64`, any order), values are handled as bits.
pub fn encode_samples_v2(dst: &mut Vec<u8>, samples: &[(u64, i64, f64)]) {
    let Some(&(_, base_t, _)) = samples.first() else {
        return;
    };
    varint::put_varint(dst, base_t);
    // Bytes are written into zeroed room past `p` and the vector is cut back at the end: no
    // per-byte capacity checks. Room grows by a typical size for the samples left, so the
    // zeroing costs about a byte per byte written.
    let mut p = dst.len();
    let mut prev_id = 0u64;
    let mut prev_v = 0u64;
    let mut i = 0;
    while i < samples.len() {
        let id = samples[i].0;
        let mut j = i + 1;
        while j < samples.len() && samples[j].0 == id {
            j += 1;
        }
        let run = &samples[i..j];
        let worst = V2_FIRST_MAX + V2_NEXT_MAX * (run.len() - 1);
        if dst.len() < p + worst {
            dst.resize(p + worst + 12 * (samples.len() - i), 0);
        }
        let out = &mut dst[..];
        let explicit = id != prev_id.wrapping_add(1);
        p = put_uvarint_at(out, p, ((run.len() as u64 - 1) << 1) | explicit as u64);
        if explicit {
            p = put_uvarint_at(out, p, zigzag(id.wrapping_sub(prev_id) as i64));
        }
        let (_, t0, v0) = run[0];
        let bits = v0.to_bits();
        p = put_sample_at(out, p, t0.wrapping_sub(base_t), bits ^ prev_v);
        prev_v = bits;
        let mut t_prev = t0;
        let mut d_prev = 0i64;
        for &(_, t, v) in &run[1..] {
            let d = t.wrapping_sub(t_prev);
            let bits = v.to_bits();
            p = put_sample_at(out, p, d.wrapping_sub(d_prev), bits ^ prev_v);
            d_prev = d;
            t_prev = t;
            prev_v = bits;
        }
        prev_id = id;
        i = j;
    }
    dst.truncate(p);
}

/// `TMASK[tclass]` for `tclass` 0..=2: the bytes of the two read that belong to the dod.
const TMASK: [u64; 3] = [0, 0xff, 0xffff];

/// Reads one sample's control byte, delta-of-delta and value XOR from the front of `b`.
#[inline(always)]
fn take_sample(b: &mut &[u8]) -> Result<(i64, u64), &'static str> {
    // Fast path: room for the longest fixed-size sample (1 + 2 + 8), so the dod and value are
    // read as whole words and masked, without a branch on their lengths.
    if let Some(w) = b.first_chunk::<11>() {
        let ctrl = w[0];
        let tclass = (ctrl >> 6) as usize;
        if tclass < 3 {
            let (len, tz) = VDESC_TABLE[(ctrl & 63) as usize];
            if len == 0xff {
                return Err("bad value descriptor");
            }
            let z = u64::from(u16::from_le_bytes([w[1], w[2]])) & TMASK[tclass];
            let mut v = [0u8; 8];
            v.copy_from_slice(&w[1 + tclass..9 + tclass]);
            let len = len as usize;
            let m = u64::from_le_bytes(v) & MASK[len];
            *b = &b[1 + tclass + len..];
            return Ok((unzigzag(z), m << (8 * tz)));
        }
    }
    let Some((&ctrl, rest)) = b.split_first() else {
        return Err("truncated sample");
    };
    *b = rest;
    let (len, tz) = VDESC_TABLE[(ctrl & 63) as usize];
    if len == 0xff {
        return Err("bad value descriptor");
    }
    let z = match ctrl >> 6 {
        0 => 0,
        1 => {
            let Some((&x, rest)) = b.split_first() else {
                return Err("truncated timestamp");
            };
            *b = rest;
            u64::from(x)
        }
        2 => {
            let Some((x, rest)) = b.split_first_chunk::<2>() else {
                return Err("truncated timestamp");
            };
            *b = rest;
            u64::from(u16::from_le_bytes(*x))
        }
        _ => varint::uvarint(b).ok_or("bad timestamp varint")?,
    };
    let len = len as usize;
    let Some(bytes) = b.get(..len) else {
        return Err("truncated value");
    };
    let mut w = [0u8; 8];
    w[..len].copy_from_slice(bytes);
    *b = &b[len..];
    Ok((unzigzag(z), u64::from_le_bytes(w) << (8 * tz)))
}

/// Decodes a type-4 samples record, calling `f(id, t, v)` for each sample in record order.
/// On an error, the samples before it have been passed to `f`.
pub fn decode_samples_v2(
    mut b: &[u8],
    mut f: impl FnMut(u64, i64, f64),
) -> Result<(), RecordError> {
    let total = b.len();
    let err = |b: &[u8], detail| RecordError {
        kind: "samples v2",
        offset: total - b.len(),
        detail,
    };
    if b.is_empty() {
        return Ok(());
    }
    let base_t = varint::varint(&mut b).ok_or_else(|| err(b, "bad base timestamp"))?;
    let mut prev_id = 0u64;
    let mut prev_v = 0u64;
    while !b.is_empty() {
        // Most runs are shorter than 64 samples and continue the previous id: a 1-byte header.
        let hdr = match b.split_first() {
            Some((&h, rest)) if h < 0x80 => {
                b = rest;
                u64::from(h)
            }
            _ => varint::uvarint(&mut b).ok_or_else(|| err(b, "bad run header"))?,
        };
        let id = if hdr & 1 == 1 {
            let d = varint::varint(&mut b).ok_or_else(|| err(b, "bad id delta"))?;
            prev_id.wrapping_add(d as u64)
        } else {
            prev_id.wrapping_add(1)
        };
        prev_id = id;
        // Every sample takes at least its control byte.
        let n = (hdr >> 1) + 1;
        if n > b.len() as u64 {
            return Err(err(b, "run length exceeds record"));
        }
        let (dod, x) = take_sample(&mut b).map_err(|d| err(b, d))?;
        let mut t = base_t.wrapping_add(dod);
        prev_v ^= x;
        f(id, t, f64::from_bits(prev_v));
        let mut d = 0i64;
        for _ in 1..n {
            let (dod, x) = take_sample(&mut b).map_err(|e| err(b, e))?;
            d = d.wrapping_add(dod);
            t = t.wrapping_add(d);
            prev_v ^= x;
            f(id, t, f64::from_bits(prev_v));
        }
    }
    Ok(())
}

/// Encodes a tombstones record.
pub fn encode_tombstones(dst: &mut Vec<u8>, entries: &[(u64, i64, i64)]) {
    for &(id, a, b) in entries {
        varint::put_uvarint(dst, id);
        varint::put_varint(dst, a);
        varint::put_varint(dst, b);
    }
}

/// Decodes a tombstones record, calling `f(id, mint, maxt)` per entry.
pub fn decode_tombstones(
    mut b: &[u8],
    mut f: impl FnMut(u64, i64, i64),
) -> Result<(), RecordError> {
    let total = b.len();
    while !b.is_empty() {
        let at = total - b.len();
        let err = |detail| RecordError {
            kind: "tombstones",
            offset: at,
            detail,
        };
        let id = varint::uvarint(&mut b).ok_or_else(|| err("bad series id"))?;
        let a = varint::varint(&mut b).ok_or_else(|| err("bad mint"))?;
        let m = varint::varint(&mut b).ok_or_else(|| err("bad maxt"))?;
        f(id, a, m);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tombstones_roundtrip() {
        let e = vec![(1u64, -5i64, 10i64), (1 << 40, i64::MIN, i64::MAX)];
        let mut buf = Vec::new();
        encode_tombstones(&mut buf, &e);
        let mut got = Vec::new();
        decode_tombstones(&buf, |a, b, c| got.push((a, b, c))).unwrap();
        assert_eq!(got, e);
        assert!(decode_tombstones(&buf[..buf.len() - 1], |_, _, _| {}).is_err());
    }

    #[test]
    fn series_roundtrip() {
        let mut buf = Vec::new();
        encode_series_entry(&mut buf, 7, [("__name__", "up"), ("job", "x")].into_iter());
        encode_series_entry(&mut buf, 1 << 40, [("a", "é")].into_iter());
        let mut got = Vec::new();
        decode_series(&buf, |s| got.push((s.id, s.labels))).unwrap();
        assert_eq!(
            got,
            vec![
                (7, vec![("__name__", "up"), ("job", "x")]),
                (1 << 40, vec![("a", "é")])
            ]
        );
        // Every strict prefix is either a whole number of entries or an error.
        for cut in 1..buf.len() {
            let mut n = 0;
            if decode_series(&buf[..cut], |_| n += 1).is_ok() {
                assert!(n <= 1, "prefix {cut} decoded {n} entries");
            }
        }
    }

    /// Adversarial samples: a few ids (so runs form) plus extremes, timestamps that jump,
    /// repeat and go backwards, and values that are special bit patterns or near neighbours.
    fn adversarial_samples() -> impl Strategy<Value = Vec<(u64, i64, u64)>> {
        let id = prop_oneof![
            0u64..4,
            Just(u64::MAX),
            Just(u64::MAX - 1),
            Just(1u64 << 63),
            any::<u64>(),
        ];
        let t = prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0i64),
            -3i64..3,
            1_700_000_000_000i64..1_700_000_100_000,
            any::<i64>(),
        ];
        let v = prop_oneof![
            Just(crate::STALE_NAN_BITS),
            Just(f64::NAN.to_bits()),
            Just(0x7ff8_0000_dead_beef_u64),
            Just((-0.0f64).to_bits()),
            Just(0u64),
            Just(f64::INFINITY.to_bits()),
            Just(f64::NEG_INFINITY.to_bits()),
            Just(1u64),
            Just(f64::MIN_POSITIVE.to_bits() - 1),
            (0u32..100_000).prop_map(|c| (f64::from(c) / 100.0).to_bits()),
            any::<u64>(),
        ];
        // Runs: repeat one id a few times, with its own timestamps and values.
        proptest::collection::vec((id, proptest::collection::vec((t, v), 1..8)), 0..12).prop_map(
            |runs| {
                runs.into_iter()
                    .flat_map(|(id, tv)| tv.into_iter().map(move |(t, v)| (id, t, v)))
                    .collect()
            },
        )
    }

    fn roundtrip_v2(want: &[(u64, i64, u64)]) -> Vec<u8> {
        let samples: Vec<(u64, i64, f64)> = want
            .iter()
            .map(|&(i, t, b)| (i, t, f64::from_bits(b)))
            .collect();
        let mut buf = vec![0xAA];
        encode_samples_v2(&mut buf, &samples);
        let mut got = Vec::new();
        decode_samples_v2(&buf[1..], |i, t, v| got.push((i, t, v.to_bits()))).unwrap();
        assert_eq!(got, want);
        assert_eq!(buf[0], 0xAA, "encoder must only append");
        buf.remove(0);
        buf
    }

    #[test]
    fn v2_edge_cases() {
        roundtrip_v2(&[]);
        roundtrip_v2(&[(u64::MAX, i64::MIN, crate::STALE_NAN_BITS)]);
        roundtrip_v2(&[
            (0, i64::MAX, (-0.0f64).to_bits()),
            (0, i64::MIN, f64::INFINITY.to_bits()),
            (0, i64::MAX, f64::NEG_INFINITY.to_bits()),
            (0, 5, crate::STALE_NAN_BITS),
            (0, 5, 0x7ff8_0000_0000_0001),
            (u64::MAX, 0, 0),
            (0, -1, 1),
            (1, i64::MIN, u64::MAX),
            (1 << 63, 0, 0),
            (7, 0, 0),
            (7, 0, 0),
        ]);
        // Interleaved series keep record order (runs of one).
        roundtrip_v2(&[(1, 10, 1), (2, 10, 2), (1, 20, 3), (2, 20, 4), (1, 15, 5)]);
    }

    #[test]
    fn vdesc_table_is_a_bijection() {
        let mut seen = std::collections::HashSet::new();
        for len in 1..=8u32 {
            for tz in 0..=(8 - len) {
                let d = vdesc(len, tz);
                assert!((1..37).contains(&d), "{len} {tz} -> {d}");
                assert!(seen.insert(d));
                assert_eq!(VDESC_TABLE[d as usize], (len as u8, tz as u8));
            }
        }
        assert_eq!(VDESC_TABLE[0], (0, 0));
        assert!(VDESC_TABLE[37..].iter().all(|e| e.0 == 0xff));
    }

    /// The exact bytes of a type-4 record, as documented in `docs/format/wal.md`: if this
    /// changes, old WALs no longer replay.
    #[test]
    fn v2_layout_is_stable() {
        let one = 1.0f64.to_bits(); // 0x3ff0_0000_0000_0000
        let samples = [
            (5u64, 1000i64, f64::from_bits(one)),
            (5, 16_000, f64::from_bits(one)),
            (5, 31_001, 2.0),
            (6, 1000, 2.0),
        ];
        let mut buf = Vec::new();
        encode_samples_v2(&mut buf, &samples);
        let want: &[u8] = &[
            0xd0, 0x0f, // base_t = 1000 (zigzag 2000)
            0x05, 0x0a, // run: hdr (3 - 1) << 1 | explicit; id delta +5 (zigzag 10)
            0x0f, 0xf0, 0x3f, // ctrl: tclass 0 (t = base_t), vdesc 15 (len 2, tz 6); 0x3ff0
            0x80, 0x30,
            0x75, // ctrl: tclass 2, vdesc 0 (same value); dod 15000 (zigzag 30000)
            0x4f, 0x02, 0xf0, 0x7f, // ctrl: tclass 1, vdesc 15; dod +1; XOR 0x7ff0 << 48
            0x00, // run: hdr len 1, id = previous + 1 (6)
            0x00, // ctrl: tclass 0 (t = base_t), vdesc 0 (2.0 again)
        ];
        assert_eq!(buf, want);
        let mut got = Vec::new();
        decode_samples_v2(&buf, |i, t, v| got.push((i, t, v))).unwrap();
        assert_eq!(got, samples);
    }

    /// A type-2 record written by an earlier hearth still decodes.
    #[test]
    fn v1_hand_written_payload_decodes() {
        let payload: &[u8] = &[
            0x07, // base id 7
            0xd0, 0x0f, // base t 1000
            0x00, 0x00, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // (7, 1000, 1.0)
            0x02, 0xe0, 0xd4, 0x03, 2, 0, 0, 0, 0, 0, 0xf0, 0x7f, // (8, 31000, stale NaN)
            0x01, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x80, // (6, 999, -0.0)
        ];
        let mut got = Vec::new();
        decode_samples(payload, |i, t, v| got.push((i, t, v.to_bits()))).unwrap();
        assert_eq!(
            got,
            vec![
                (7, 1000, 1.0f64.to_bits()),
                (8, 31_000, crate::STALE_NAN_BITS),
                (6, 999, (-0.0f64).to_bits()),
            ]
        );
    }

    #[test]
    fn malformed_v2_payloads_error() {
        let bad: &[(&[u8], &str)] = &[
            (&[0x80], "bad base timestamp"),
            (&[0x00, 0x80], "bad run header"),
            (&[0x00, 0x01], "bad id delta"),
            // Run of 2^62 samples: rejected before any is read.
            (
                &[
                    0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0x00,
                ],
                "run length exceeds record",
            ),
            (&[0x00, 0x00, 0x25], "bad value descriptor"),
            (&[0x00, 0x00, 0x3f], "bad value descriptor"),
            (&[0x00, 0x00, 0x40], "truncated timestamp"),
            (&[0x00, 0x00, 0x80, 0x01], "truncated timestamp"),
            (&[0x00, 0x00, 0xc0, 0xff], "bad timestamp varint"),
            (&[0x00, 0x00, 0x24], "truncated value"),
            (&[0x00, 0x00, 0x24, 1, 2, 3, 4, 5, 6, 7], "truncated value"),
            (&[0x00, 0x02, 0x00], "run length exceeds record"),
            (&[0x00, 0x02, 0x40, 0x01], "truncated sample"),
        ];
        for (b, detail) in bad {
            let e = decode_samples_v2(b, |_, _, _| {}).unwrap_err();
            assert_eq!(e.detail, *detail, "{b:?}");
        }
        // Every strict prefix of a record either errors or decodes whole runs.
        let samples: Vec<(u64, i64, f64)> = (0..4u64)
            .flat_map(|id| (0..5i64).map(move |k| (id * 3, k * 15_001, k as f64 * 0.1)))
            .collect();
        let mut buf = Vec::new();
        encode_samples_v2(&mut buf, &samples);
        for cut in 1..buf.len() {
            let mut n = 0;
            if decode_samples_v2(&buf[..cut], |_, _, _| n += 1).is_ok() {
                assert_eq!(n % 5, 0, "prefix {cut} decoded {n} samples");
            }
        }
    }

    #[test]
    fn v2_is_smaller_than_v1_on_scrape_and_counter_runs() {
        let mut scrape = Vec::new();
        let mut runs = Vec::new();
        for id in 0..100u64 {
            scrape.push((id, 1_700_000_000_000, (id * 1000) as f64 + 0.25));
            for k in 0..20i64 {
                runs.push((
                    id,
                    1_700_000_000_000 + k * 15_000 + k % 3,
                    1e4 + k as f64 * 0.01,
                ));
            }
        }
        for s in [scrape, runs] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            encode_samples(&mut a, &s);
            encode_samples_v2(&mut b, &s);
            assert!(b.len() < a.len(), "v2 {} vs v1 {}", b.len(), a.len());
        }
    }

    proptest! {
        #[test]
        fn samples_v2_roundtrip(v in adversarial_samples()) {
            roundtrip_v2(&v);
        }

        #[test]
        fn samples_v2_roundtrip_arbitrary(v in proptest::collection::vec((0u64..3, any::<i64>(), any::<u64>()), 0..50)) {
            roundtrip_v2(&v);
        }

        #[test]
        fn samples_roundtrip(v in proptest::collection::vec((any::<u64>(), any::<i64>(), any::<u64>()), 0..50)) {
            let samples: Vec<(u64, i64, f64)> = v.iter().map(|&(i, t, b)| (i, t, f64::from_bits(b))).collect();
            let mut buf = Vec::new();
            encode_samples(&mut buf, &samples);
            let mut got = Vec::new();
            decode_samples(&buf, |i, t, v| got.push((i, t, v.to_bits()))).unwrap();
            let want: Vec<_> = v.iter().map(|&(i, t, b)| (i, t, b)).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn decoders_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_samples(&b, |_, _, _| {});
            let _ = decode_samples_v2(&b, |_, _, _| {});
            let _ = decode_series(&b, |_| {});
        }
    }
}
