//! Payloads of the metric records the head writes into the WAL.
//!
//! The WAL itself ([`crate::wal`]) only frames and checksums opaque typed records; this module
//! owns what is inside them. Layouts are documented in `docs/format/wal.md` ("Record
//! payloads"). Record type bytes only ever grow.

use crate::varint;

/// WAL record type: series definitions (labels written once per series).
pub const REC_SERIES: u8 = 1;
/// WAL record type: float samples, delta-packed.
pub const REC_SAMPLES: u8 = 2;
/// Deleted time ranges of series (`POST /api/v1/admin/tsdb/delete_series`): repeated
/// `uvarint series id, varint mint, varint maxt` (both inclusive, ms).
pub const REC_TOMBSTONES: u8 = 3;

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

/// Encodes a samples record: the first sample's id and timestamp are the base, every sample
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

    proptest! {
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
            let _ = decode_series(&b, |_| {});
        }
    }
}
