//! The byte cursor and the integer-sequence codec shared by the block encodings: signed integers
//! divided by their common divisor, zigzagged, bit-packed at one width per sequence, with the
//! few values wider than that width patched in afterwards ("patched frame of reference", as in
//! Zukowski et al.'s PFOR). Layout: `docs/format/chunks.md`, section "Packed integers".

use crate::varint::{put_uvarint, put_varint};

/// Why a decode stopped; the caller turns it into a [`ChunkError`](crate::chunk::ChunkError)
/// with the byte offset it stopped at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bad {
    /// The bytes ended inside a field.
    Truncated,
    /// The bytes decode to something no encoder writes.
    Corrupt(&'static str),
}

/// Reads fields from the front of a chunk. Every read checks the length: no read panics.
#[derive(Debug)]
pub(super) struct Cursor<'a> {
    pub(super) data: &'a [u8],
    /// Offset of the next unread byte in `data`.
    pub(super) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(data: &'a [u8], pos: usize) -> Self {
        Cursor { data, pos }
    }

    #[inline]
    pub(super) fn u8(&mut self) -> Result<u8, Bad> {
        let b = *self.data.get(self.pos).ok_or(Bad::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        let end = self.pos.checked_add(n).ok_or(Bad::Truncated)?;
        let s = self.data.get(self.pos..end).ok_or(Bad::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    #[inline]
    pub(super) fn u64_le(&mut self) -> Result<u64, Bad> {
        let b = self.take(8)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        Ok(u64::from_le_bytes(w))
    }

    /// Go's `binary.Uvarint`: rejects an eleventh byte or a tenth byte above 1.
    #[inline]
    pub(super) fn uvarint(&mut self) -> Result<u64, Bad> {
        let mut x = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            if b < 0x80 {
                if i == 9 && b > 1 {
                    break;
                }
                return Ok(x | (u64::from(b) << (7 * i)));
            }
            x |= u64::from(b & 0x7f) << (7 * i);
        }
        Err(Bad::Corrupt("varint longer than 64 bits"))
    }

    #[inline]
    pub(super) fn varint(&mut self) -> Result<i64, Bad> {
        self.uvarint().map(unzigzag)
    }
}

#[inline]
pub(super) fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

#[inline]
pub(super) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Bytes `put_uvarint` writes for `x`.
#[inline]
pub(super) fn uvarint_len(x: u64) -> usize {
    (64 - (x | 1).leading_zeros() as usize).div_ceil(7)
}

/// A slot of a caller's output buffer that can hold a decoded integer until the caller turns it
/// into the final sample: lets the decoders work in place in `Vec<i64>` and `Vec<f64>` without
/// scratch memory.
pub(super) trait Slot: Copy {
    fn from_i64(x: i64) -> Self;
    fn to_i64(self) -> i64;
}

impl Slot for i64 {
    #[inline]
    fn from_i64(x: i64) -> Self {
        x
    }
    #[inline]
    fn to_i64(self) -> i64 {
        self
    }
}

impl Slot for f64 {
    #[inline]
    fn from_i64(x: i64) -> Self {
        f64::from_bits(x as u64)
    }
    #[inline]
    fn to_i64(self) -> i64 {
        self.to_bits() as i64
    }
}

/// How [`write`] will encode a sequence, and what it will cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Plan {
    /// Subtracted (modulo 2^64) from every value before anything else.
    pub(super) base: i64,
    /// Common divisor of all values; 0 when every value is 0 (nothing else is written).
    pub(super) div: u64,
    /// Bits per packed value.
    pub(super) width: u32,
    /// Encoded size in bytes; exact unless two exceptions are 128 or more values apart (their
    /// gap varint then takes 2 bytes, not the 1 assumed).
    pub(super) bytes: usize,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    if a == 0 {
        return b;
    }
    if b == 0 {
        return a;
    }
    let shift = (a | b).trailing_zeros();
    a >>= a.trailing_zeros();
    loop {
        b >>= b.trailing_zeros();
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        b -= a;
        if b == 0 {
            return a << shift;
        }
    }
}

/// `x / div`, exact because `div` divides every value; `div` may be 2^63, which is no `i64`.
#[inline]
fn quotient(x: i64, div: u64) -> i64 {
    if div == 1 {
        x
    } else {
        (i128::from(x) / i128::from(div)) as i64
    }
}

/// Picks the base, divisor and width that make `xs` smallest. `tmp` is scratch memory.
pub(super) fn plan(xs: &[i64], tmp: &mut Vec<i64>) -> Plan {
    // The median as base: the bulk of the values then sit on both sides of it, so outliers
    // either way (a counter reset, a missed scrape) become exceptions, not a wider width.
    tmp.clear();
    tmp.extend_from_slice(xs);
    let base = if tmp.is_empty() {
        0
    } else {
        let mid = tmp.len() / 2;
        *tmp.select_nth_unstable(mid).1
    };
    let head = uvarint_len(zigzag(base));
    let mut div = 0u64;
    for &x in xs {
        let r = x.wrapping_sub(base).unsigned_abs();
        // Usually the divisor already divides the next value: one `%` instead of a full gcd.
        if div == 0 || r % div != 0 {
            div = gcd(div, r);
        }
        if div == 1 {
            break;
        }
    }
    if div == 0 {
        return Plan {
            base,
            div: 0,
            width: 0,
            bytes: head + 1,
        };
    }
    // counts[l]: values whose zigzagged quotient is l bits long.
    let mut counts = [0u32; 65];
    for &x in xs {
        counts[(64 - zigzag(quotient(x.wrapping_sub(base), div)).leading_zeros()) as usize] += 1;
    }
    let max_len = counts.iter().rposition(|&c| c > 0).unwrap_or(0);
    let n = xs.len();
    // Exception cost: a gap varint (assumed 1 byte) plus the high bits as a varint.
    let mut best = (u32::MAX, usize::MAX);
    for w in 0..=max_len {
        let mut exc_count = 0usize;
        let mut exc_bytes = 0usize;
        for (l, &c) in counts.iter().enumerate().take(max_len + 1).skip(w + 1) {
            exc_count += c as usize;
            exc_bytes += c as usize * (1 + (l - w).div_ceil(7));
        }
        let bytes = (n * w).div_ceil(8) + uvarint_len(exc_count as u64) + exc_bytes;
        if bytes < best.1 {
            best = (w as u32, bytes);
        }
    }
    Plan {
        base,
        div,
        width: best.0,
        bytes: head + uvarint_len(div) + 1 + best.1,
    }
}

/// Appends `xs` as planned by [`plan`]; returns the bytes written.
pub(super) fn write(xs: &[i64], p: Plan, dst: &mut Vec<u8>) -> usize {
    let start = dst.len();
    put_varint(dst, p.base);
    put_uvarint(dst, p.div);
    if p.div == 0 {
        return dst.len() - start;
    }
    let w = p.width;
    dst.push(w as u8);
    let mask = low_mask(w);
    if w > 0 {
        let mut acc = 0u128;
        let mut nbits = 0u32;
        for &x in xs {
            acc |= u128::from(zigzag(quotient(x.wrapping_sub(p.base), p.div)) & mask) << nbits;
            nbits += w;
            if nbits >= 64 {
                dst.extend_from_slice(&(acc as u64).to_le_bytes());
                acc >>= 64;
                nbits -= 64;
            }
        }
        while nbits > 0 {
            dst.push(acc as u8);
            acc >>= 8;
            nbits = nbits.saturating_sub(8);
        }
    }
    let high = |x: i64| -> u64 {
        if w == 64 {
            0
        } else {
            zigzag(quotient(x.wrapping_sub(p.base), p.div)) >> w
        }
    };
    let exc = xs.iter().filter(|&&x| high(x) != 0).count();
    put_uvarint(dst, exc as u64);
    let mut next = 0usize;
    for (i, &x) in xs.iter().enumerate() {
        let h = high(x);
        if h != 0 {
            put_uvarint(dst, (i - next) as u64);
            put_uvarint(dst, h);
            next = i + 1;
        }
    }
    dst.len() - start
}

#[inline]
fn low_mask(w: u32) -> u64 {
    if w >= 64 {
        u64::MAX
    } else {
        (1u64 << w) - 1
    }
}

/// Little-endian `u64` at `i`, zero-padded past the end of `b`.
#[inline]
fn load_le(b: &[u8], i: usize) -> u64 {
    match b.get(i..).and_then(|r| r.first_chunk::<8>()) {
        Some(w) => u64::from_le_bytes(*w),
        None => load_tail(b, i),
    }
}

#[cold]
fn load_tail(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(rest) = b.get(i..) {
        w[..rest.len()].copy_from_slice(rest);
    }
    u64::from_le_bytes(w)
}

/// Reads `out.len()` integers written by [`write`] into `out`.
pub(super) fn read<T: Slot>(c: &mut Cursor<'_>, out: &mut [T]) -> Result<(), Bad> {
    let base = c.varint()?;
    let div = c.uvarint()?;
    if div == 0 {
        out.fill(T::from_i64(base));
        return Ok(());
    }
    let w = u32::from(c.u8()?);
    if w > 64 {
        return Err(Bad::Corrupt("bit width over 64"));
    }
    let n = out.len();
    // n <= 65535 and w <= 64: no overflow.
    let used_bits = n * w as usize;
    let packed = c.take(used_bits.div_ceil(8))?;
    let mask = low_mask(w);
    if w == 0 {
        out.fill(T::from_i64(0));
    } else {
        for (i, o) in out.iter_mut().enumerate() {
            let bit = i * w as usize;
            let byte = bit / 8;
            let sh = (bit % 8) as u32;
            let mut v = load_le(packed, byte) >> sh;
            if sh + w > 64 {
                // Only for w >= 58; sh >= 1 here, so the shift is below 64.
                v |= u64::from(packed.get(byte + 8).copied().unwrap_or(0)) << (64 - sh);
            }
            *o = T::from_i64((v & mask) as i64);
        }
        if used_bits % 8 != 0 {
            let last = packed.last().copied().unwrap_or(0);
            if last >> (used_bits % 8) != 0 {
                return Err(Bad::Corrupt("non-zero padding bits after packed integers"));
            }
        }
    }
    let exc = c.uvarint()?;
    if exc > n as u64 || (w == 64 && exc > 0) {
        return Err(Bad::Corrupt("more exceptions than packed integers"));
    }
    let mut next = 0usize;
    for _ in 0..exc {
        let gap = c.uvarint()?;
        let i = usize::try_from(gap)
            .ok()
            .and_then(|g| g.checked_add(next))
            .filter(|&i| i < n)
            .ok_or(Bad::Corrupt("exception index past the end"))?;
        let high = c.uvarint()?;
        if high == 0 || (w > 0 && high >> (64 - w) != 0) {
            return Err(Bad::Corrupt("exception high bits out of range"));
        }
        out[i] = T::from_i64((out[i].to_i64() as u64 | high << w) as i64);
        next = i + 1;
    }
    for o in out.iter_mut() {
        *o = T::from_i64(base.wrapping_add(unzigzag(o.to_i64() as u64).wrapping_mul(div as i64)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn roundtrip(xs: &[i64]) -> usize {
        let p = plan(xs, &mut Vec::new());
        let mut buf = vec![0xaa];
        let n = write(xs, p, &mut buf);
        assert_eq!(n, buf.len() - 1);
        assert!(n >= p.bytes, "the plan never overestimates");
        let mut c = Cursor::new(&buf, 1);
        let mut out = vec![7i64; xs.len()];
        read(&mut c, &mut out).expect("decodes");
        assert_eq!(out, xs);
        assert_eq!(c.pos, buf.len());
        n
    }

    #[test]
    fn divisor_and_exceptions_shrink_output() {
        assert_eq!(roundtrip(&[0; 100]), 2);
        assert_eq!(roundtrip(&[5; 100]), 2);
        let pages: Vec<i64> = (0..100).map(|i| (i % 7 - 3) * 4096).collect();
        assert!(roundtrip(&pages) < 1 + 1 + 2 + 1 + 40);
        // Deltas of a counter, 0..2^20: 20 bits each around the median, not 21.
        let deltas: Vec<i64> = (0..128).map(|i| (i * 8191) % (1 << 20)).collect();
        assert!(roundtrip(&deltas) <= 3 + 3 + 1 + 128 * 20 / 8 + 1);
        let mut spiky = vec![1i64; 100];
        spiky[50] = 1 << 40;
        // Width 2 (zigzag of 1), one exception: not 100 values of 42 bits.
        assert!(roundtrip(&spiky) < 1 + 1 + 1 + 25 + 1 + 1 + 7);
        roundtrip(&[i64::MIN, 0, i64::MIN]);
        roundtrip(&[i64::MIN, i64::MAX, -1, 1]);
        roundtrip(&[]);
    }

    fn ints() -> impl Strategy<Value = Vec<i64>> {
        let one = prop_oneof![
            any::<i64>(),
            -20i64..20,
            Just(i64::MIN),
            Just(i64::MAX),
            (-100i64..100).prop_map(|x| x * 4096),
        ];
        vec(one, 0..300)
    }

    proptest! {
        #[test]
        fn prop_roundtrip(xs in ints()) {
            roundtrip(&xs);
        }

        #[test]
        fn prop_read_arbitrary_never_panics(bytes in vec(any::<u8>(), 0..200), n in 0usize..300) {
            let mut out = vec![0i64; n];
            let _ = read(&mut Cursor::new(&bytes, 0), &mut out);
        }
    }
}
