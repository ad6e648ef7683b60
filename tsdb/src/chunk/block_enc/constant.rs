//! The value of the constant encoding: one value for every sample, in as few bytes as it
//! takes. Layout: `docs/format/chunks.md`, section "Constant chunk".

use super::decimal::{self, MAX_EXP, MAX_MANTISSA};
use super::pack::{uvarint_len, zigzag, Bad, Cursor};
use crate::varint::put_varint;

/// Tags `0..=8`: that many leading (most significant) bytes of the value's bits follow, the rest
/// are zero. Tags `DECIMAL_TAG_BASE + (e + 22)` for `e` in `-22..=22`: a decimal mantissa follows.
const RAW_TAG_MAX: u8 = 8;
const DECIMAL_TAG_BASE: u8 = 9;
const DECIMAL_TAG_MAX: u8 = DECIMAL_TAG_BASE + 2 * MAX_EXP as u8;

/// Appends `v` in its shortest form.
pub(super) fn encode_value(v: f64, dst: &mut Vec<u8>) {
    let bits = v.to_bits();
    let raw_len = if bits == 0 {
        0
    } else {
        8 - (bits.trailing_zeros() / 8) as usize
    };
    if let Some(k) = decimal::min_scale(v, 0) {
        let e = -(k as i32);
        if let Some(m) = decimal::fit(v, e) {
            if uvarint_len(zigzag(m)) < raw_len {
                dst.push(DECIMAL_TAG_BASE + (e + MAX_EXP) as u8);
                put_varint(dst, m);
                return;
            }
        }
    }
    dst.push(raw_len as u8);
    dst.extend_from_slice(&bits.to_be_bytes()[..raw_len]);
}

pub(super) fn decode_value(c: &mut Cursor<'_>) -> Result<f64, Bad> {
    let tag = c.u8()?;
    if tag <= RAW_TAG_MAX {
        let b = c.take(tag as usize)?;
        if b.last() == Some(&0) {
            return Err(Bad::Corrupt("constant value has a zero trailing byte"));
        }
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        return Ok(f64::from_bits(u64::from_be_bytes(w)));
    }
    if tag <= DECIMAL_TAG_MAX {
        let e = i32::from(tag - DECIMAL_TAG_BASE) - MAX_EXP;
        let m = c.varint()?;
        if m.unsigned_abs() > MAX_MANTISSA {
            return Err(Bad::Corrupt("decimal mantissa out of range"));
        }
        return Ok(decimal::to_float(m, e));
    }
    Err(Bad::Corrupt("unknown constant value tag"))
}
