//! The timestamp column of the decimal and constant encodings. Layout: `docs/format/chunks.md`,
//! section "Timestamp column".
//!
//! Three modes, the encoder picks the smallest:
//! - regular: `t0` and one interval, the scrape-at-a-fixed-interval case, 8 bytes whatever the
//!   sample count;
//! - delta-of-delta: `t0`, the first delta, then packed delta-of-deltas (handles drift and gaps);
//! - grid: `t0`, an interval, then each timestamp's packed offset from `t0 + i * interval`
//!   (jitter around a fixed schedule costs about one bit less than as delta-of-deltas);
//! - delta: `t0`, then the packed deltas (around their median: jitter that accumulates, as
//!   when each scrape is scheduled from the previous one, costs a bit less than as
//!   delta-of-deltas).
//!
//! All arithmetic is modulo 2^64, as in the XOR chunk: strictly increasing timestamps have deltas
//! that fit a `u64`, and wrapping sums undo wrapping differences exactly, so every strictly
//! increasing `i64` sequence round-trips.

use super::pack::{self, Bad, Cursor};
use crate::varint::{put_uvarint, put_varint};

const REGULAR: u8 = 0;
const DOD: u8 = 1;
const GRID: u8 = 2;
const DELTA: u8 = 3;
/// The column is another chunk's: `ref <uvarint>` names a chunk of the same block whose own
/// column (modes 0–3) holds exactly these timestamps. Only a block reader can resolve it
/// (`super::decode_into_resolving`); the encoder never writes it, the block writer does.
pub(super) const SHARED: u8 = 4;

/// Appends the column for `ts` (non-empty, strictly increasing). `scratch` and `tmp` are reused
/// memory.
pub(super) fn encode(ts: &[i64], scratch: &mut Vec<i64>, tmp: &mut Vec<i64>, dst: &mut Vec<u8>) {
    let n = ts.len();
    debug_assert!(n > 0);
    let t0 = ts[0];
    let delta = |i: usize| ts[i].wrapping_sub(ts[i - 1]) as u64;
    if n == 1 || (2..n).all(|i| delta(i) == delta(1)) {
        dst.push(REGULAR);
        put_varint(dst, t0);
        if n > 1 {
            put_uvarint(dst, delta(1));
        }
        return;
    }
    // n >= 3 here: two timestamps always have a single interval. Plan every mode, write the
    // smallest (`scratch` ends up holding the winner's sequence).
    let d1 = delta(1);
    let span = ts[n - 1].wrapping_sub(t0) as u64;
    let k = (n - 1) as u64;
    let interval = span / k + u64::from((span % k) * 2 >= k);
    let fill = |mode: u8, xs: &mut Vec<i64>| {
        xs.clear();
        match mode {
            DELTA => xs.extend((1..n).map(|i| delta(i) as i64)),
            DOD => xs.extend((2..n).map(|i| delta(i).wrapping_sub(delta(i - 1)) as i64)),
            _ => xs.extend((1..n).map(|i| {
                (ts[i].wrapping_sub(t0) as u64).wrapping_sub(interval.wrapping_mul(i as u64)) as i64
            })),
        }
    };
    let mut best = (DELTA, pack::Plan::default(), usize::MAX);
    for mode in [DELTA, DOD, GRID] {
        fill(mode, scratch);
        let plan = pack::plan(scratch, tmp);
        let head = match mode {
            DELTA => 0,
            DOD => pack::uvarint_len(d1),
            _ => pack::uvarint_len(interval),
        };
        if head + plan.bytes < best.2 {
            best = (mode, plan, head + plan.bytes);
        }
    }
    let (mode, plan, _) = best;
    fill(mode, scratch);
    dst.push(mode);
    put_varint(dst, t0);
    match mode {
        DELTA => {}
        DOD => put_uvarint(dst, d1),
        _ => put_uvarint(dst, interval),
    }
    pack::write(scratch, plan, dst);
}

/// Fills `out` (its length is the sample count, at least 1) from the column at the cursor.
pub(super) fn decode(c: &mut Cursor<'_>, out: &mut [i64]) -> Result<(), Bad> {
    let n = out.len();
    let mode = c.u8()?;
    let t0 = c.varint()?;
    let Some((first, rest)) = out.split_first_mut() else {
        return Ok(());
    };
    *first = t0;
    match mode {
        REGULAR => {
            if n > 1 {
                let d = c.uvarint()?;
                let mut t = t0;
                for o in rest.iter_mut() {
                    t = t.wrapping_add(d as i64);
                    *o = t;
                }
            }
        }
        DOD => {
            if n < 3 {
                return Err(Bad::Corrupt(
                    "delta-of-delta timestamps for fewer than 3 samples",
                ));
            }
            let d1 = c.uvarint()?;
            let (second, dods) = rest.split_at_mut(1);
            second[0] = t0.wrapping_add(d1 as i64);
            pack::read(c, dods)?;
            let (mut t, mut d) = (second[0], d1);
            for o in dods.iter_mut() {
                d = d.wrapping_add(*o as u64);
                t = t.wrapping_add(d as i64);
                *o = t;
            }
        }
        DELTA => {
            if n < 3 {
                return Err(Bad::Corrupt("delta timestamps for fewer than 3 samples"));
            }
            pack::read(c, rest)?;
            let mut t = t0;
            for o in rest.iter_mut() {
                t = t.wrapping_add(*o);
                *o = t;
            }
        }
        GRID => {
            if n < 3 {
                return Err(Bad::Corrupt("grid timestamps for fewer than 3 samples"));
            }
            let interval = c.uvarint()?;
            pack::read(c, rest)?;
            let mut base = t0;
            for o in rest.iter_mut() {
                base = base.wrapping_add(interval as i64);
                *o = base.wrapping_add(*o);
            }
        }
        _ => return Err(Bad::Corrupt("unknown timestamp mode")),
    }
    // A wrapped sum lands below its predecessor, so this also catches overflow past i64::MAX.
    if out.windows(2).any(|w| w[1] <= w[0]) {
        return Err(Bad::Corrupt("timestamps do not increase"));
    }
    Ok(())
}
