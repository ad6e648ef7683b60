//! The value column of the decimal encoding. Layout: `docs/format/chunks.md`, section
//! "Decimal chunk".
//!
//! A value `v` is stored as an integer mantissa `m` (|m| < 2^53) and one exponent `e` shared by
//! the chunk (|e| <= 22) when `v` is *bit for bit* what the decoder computes from them:
//! `m as f64 * 10^e` for `e >= 0`, `m as f64 / 10^-e` for `e < 0`. Both operands are exact
//! (`m` fits the 53-bit significand, 10^22 is the largest power of ten a `f64` holds exactly)
//! and IEEE multiplication and division round correctly, so the result is the same on every
//! platform: the `f64` nearest to the rational `m * 10^e`. That is also what parsing the decimal
//! text `m e e` gives, which is why scraped values like `12345.67` fit.
//!
//! Values that do not fit (NaNs including the stale marker, ±Inf, -0.0, most results of float
//! arithmetic) are escapes: their raw bits are stored after the mantissas, which hold a
//! placeholder (the previous mantissa, so deltas stay small) at their index.
//!
//! Mantissas are stored as whichever of three integer sequences packs smallest: offsets from a
//! median (gauges), deltas (counters) or delta-of-deltas (steady counters).

use super::pack::{self, uvarint_len, zigzag, Bad, Cursor, Slot};
use super::Scratch;
use crate::varint::{put_uvarint, put_varint};

/// Largest |exponent|: 10^22 is the largest power of ten that is an exact `f64`.
pub(super) const MAX_EXP: i32 = 22;
/// Largest |mantissa|: every integer up to 2^53 is an exact `f64`.
pub(super) const MAX_MANTISSA: u64 = (1 << 53) - 1;

#[rustfmt::skip]
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

const MODE_PLAIN: u8 = 0;
const MODE_DELTA: u8 = 1;
const MODE_DOD: u8 = 2;

/// Bits an escape costs (gap varint + 8 raw bytes), against ~3.32 bits per sample for every
/// extra decimal digit of the shared exponent.
const ESCAPE_BITS: f64 = 72.0;
const BITS_PER_DIGIT: f64 = std::f64::consts::LOG2_10;

/// The value the decoder computes from `m` and `e` (|e| <= 22, |m| <= 2^53 - 1).
#[inline]
pub(super) fn to_float(m: i64, e: i32) -> f64 {
    if e >= 0 {
        m as f64 * POW10[e as usize]
    } else {
        m as f64 / POW10[e.unsigned_abs() as usize]
    }
}

/// The mantissa that stores `v` exactly at exponent `e`, if there is one.
#[inline]
pub(super) fn fit(v: f64, e: i32) -> Option<i64> {
    let x = if e >= 0 {
        v / POW10[e as usize]
    } else {
        v * POW10[e.unsigned_abs() as usize]
    };
    let r = x.round();
    if r.is_nan() || r.abs() > MAX_MANTISSA as f64 {
        return None;
    }
    let m = r as i64;
    (to_float(m, e).to_bits() == v.to_bits()).then_some(m)
}

/// The smallest `k` in `from..=22` with `v` exact at exponent `-k`.
#[inline]
pub(super) fn min_scale(v: f64, from: u32) -> Option<u32> {
    let a = v.abs();
    (from..=MAX_EXP as u32)
        // Past this |v * 10^k| only grows beyond the mantissa range.
        .take_while(|&k| a * POW10[k as usize] <= MAX_MANTISSA as f64 * 2.0)
        .find(|&k| fit(v, -(k as i32)).is_some())
}

/// Appends the value column for `vals` (non-empty), or `None` if more than a quarter of them
/// would be escapes: such a chunk is smaller as XOR, so the encoder does not try harder.
pub(super) fn encode(vals: &[f64], s: &mut Scratch, dst: &mut Vec<u8>) -> Option<()> {
    let n = vals.len();
    let budget = n / 4;

    // Pass 1: the scale each value needs. A value that fits the largest scale seen so far is
    // counted there (it may fit a smaller one; that only biases the choice towards safety).
    let mut hist = [0u32; MAX_EXP as usize + 1];
    let mut escapes = 0usize;
    let mut kmax = 0u32;
    for &v in vals {
        if fit(v, -(kmax as i32)).is_some() {
            hist[kmax as usize] += 1;
        } else if let Some(k) = min_scale(v, kmax + 1) {
            hist[k as usize] += 1;
            kmax = k;
        } else {
            escapes += 1;
            if escapes > budget {
                return None;
            }
        }
    }
    // The shared scale: trade escaping the values that need more digits against one more digit
    // for every sample.
    let mut k_best = kmax;
    let mut best_cost = f64::INFINITY;
    for k in 0..=kmax {
        let above: u32 = hist[k as usize + 1..].iter().sum();
        let cost = f64::from(above) * ESCAPE_BITS + n as f64 * BITS_PER_DIGIT * f64::from(k);
        if cost < best_cost {
            best_cost = cost;
            k_best = k;
        }
    }
    let e = -(k_best as i32);

    // Pass 2: mantissas at the shared exponent, checked exactly as the decoder will compute.
    s.m.clear();
    s.esc.clear();
    let mut prev = None;
    for (i, &v) in vals.iter().enumerate() {
        match fit(v, e) {
            Some(m) => {
                s.m.push(m);
                prev = Some(m);
            }
            None => {
                s.esc.push(i);
                s.m.push(prev.unwrap_or(0));
            }
        }
    }
    if s.esc.len() > budget {
        return None;
    }
    // Leading escapes take the first real mantissa as placeholder, not 0.
    let leading = s
        .esc
        .iter()
        .enumerate()
        .take_while(|(j, &i)| *j == i)
        .count();
    if leading < n {
        let m0 = s.m[leading];
        s.m[..leading].fill(m0);
    }

    let m = &s.m;
    let fill = |mode: u8, xs: &mut Vec<i64>| {
        xs.clear();
        // |m| < 2^53, so no difference overflows.
        match mode {
            MODE_PLAIN => xs.extend_from_slice(m),
            MODE_DELTA => xs.extend(m.windows(2).map(|w| w[1] - w[0])),
            _ => xs.extend(m.windows(3).map(|w| (w[2] - w[1]) - (w[1] - w[0]))),
        }
    };
    let d1 = if n > 1 { m[1] - m[0] } else { 0 };
    let header = |mode: u8| match mode {
        MODE_PLAIN => 0,
        MODE_DELTA => uvarint_len(zigzag(m[0])),
        _ => uvarint_len(zigzag(m[0])) + if n > 1 { uvarint_len(zigzag(d1)) } else { 0 },
    };
    let mut best = (MODE_PLAIN, pack::Plan::default(), usize::MAX);
    for mode in [MODE_PLAIN, MODE_DELTA, MODE_DOD] {
        fill(mode, &mut s.xs);
        let plan = pack::plan(&s.xs, &mut s.tmp);
        let bytes = header(mode) + plan.bytes;
        if bytes < best.2 {
            best = (mode, plan, bytes);
        }
    }
    let (mode, plan, _) = best;
    fill(mode, &mut s.xs);

    dst.push(e as i8 as u8);
    dst.push(mode);
    match mode {
        MODE_PLAIN => {}
        MODE_DELTA => put_varint(dst, m[0]),
        _ => {
            put_varint(dst, m[0]);
            if n > 1 {
                put_varint(dst, d1);
            }
        }
    }
    pack::write(&s.xs, plan, dst);

    put_uvarint(dst, s.esc.len() as u64);
    let mut next = 0usize;
    for &i in &s.esc {
        put_uvarint(dst, (i - next) as u64);
        dst.extend_from_slice(&vals[i].to_bits().to_le_bytes());
        next = i + 1;
    }
    Some(())
}

/// Fills `out` (its length is the sample count, at least 1) from the column at the cursor.
pub(super) fn decode(c: &mut Cursor<'_>, out: &mut [f64]) -> Result<(), Bad> {
    let n = out.len();
    let e = i32::from(c.u8()? as i8);
    if e.abs() > MAX_EXP {
        return Err(Bad::Corrupt("decimal exponent out of range"));
    }
    let mode = c.u8()?;
    match mode {
        MODE_PLAIN => pack::read(c, out)?,
        MODE_DELTA => {
            let m0 = c.varint()?;
            let (first, rest) = out.split_at_mut(1);
            first[0] = Slot::from_i64(m0);
            pack::read(c, rest)?;
            let mut m = m0;
            for o in rest.iter_mut() {
                m = m.wrapping_add(o.to_i64());
                *o = Slot::from_i64(m);
            }
        }
        MODE_DOD => {
            let m0 = c.varint()?;
            let (head, rest) = out.split_at_mut(n.min(2));
            head[0] = Slot::from_i64(m0);
            let (mut m, mut d) = (m0, 0i64);
            if n > 1 {
                d = c.varint()?;
                m = m0.wrapping_add(d);
                head[1] = Slot::from_i64(m);
            }
            pack::read(c, rest)?;
            for o in rest.iter_mut() {
                d = d.wrapping_add(o.to_i64());
                m = m.wrapping_add(d);
                *o = Slot::from_i64(m);
            }
        }
        _ => return Err(Bad::Corrupt("unknown mantissa mode")),
    }
    for o in out.iter_mut() {
        let m = o.to_i64();
        if m.unsigned_abs() > MAX_MANTISSA {
            return Err(Bad::Corrupt("decimal mantissa out of range"));
        }
        *o = to_float(m, e);
    }

    let escapes = c.uvarint()?;
    if escapes > n as u64 {
        return Err(Bad::Corrupt("more escapes than samples"));
    }
    let mut next = 0usize;
    for _ in 0..escapes {
        let gap = c.uvarint()?;
        let i = usize::try_from(gap)
            .ok()
            .and_then(|g| g.checked_add(next))
            .filter(|&i| i < n)
            .ok_or(Bad::Corrupt("escape index past the end"))?;
        out[i] = f64::from_bits(c.u64_le()?);
        next = i + 1;
    }
    Ok(())
}
