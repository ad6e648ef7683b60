//! LEB128 varints as Go's `encoding/binary` writes them (unsigned, and zigzag for signed),
//! the encoding Prometheus uses in its WAL and index. Decoders never panic: malformed or
//! truncated input (including an over-long encoding) returns `None`.

#[inline]
pub(crate) fn put_uvarint(dst: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        dst.push((v as u8) | 0x80);
        v >>= 7;
    }
    dst.push(v as u8);
}

#[inline]
pub(crate) fn put_varint(dst: &mut Vec<u8>, v: i64) {
    put_uvarint(dst, ((v << 1) ^ (v >> 63)) as u64)
}

/// Reads an unsigned varint from the front of `b`, advancing it.
#[inline]
pub(crate) fn uvarint(b: &mut &[u8]) -> Option<u64> {
    let mut x: u64 = 0;
    let mut s = 0u32;
    for (i, &c) in b.iter().enumerate() {
        if i == 10 {
            return None;
        }
        if c < 0x80 {
            if i == 9 && c > 1 {
                return None;
            }
            *b = &b[i + 1..];
            return Some(x | (u64::from(c) << s));
        }
        x |= u64::from(c & 0x7f) << s;
        s += 7;
    }
    None
}

#[inline]
pub(crate) fn varint(b: &mut &[u8]) -> Option<i64> {
    let u = uvarint(b)?;
    Some(((u >> 1) as i64) ^ -((u & 1) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn roundtrip(u in any::<u64>(), i in any::<i64>()) {
            let mut buf = Vec::new();
            put_uvarint(&mut buf, u);
            put_varint(&mut buf, i);
            let mut b = buf.as_slice();
            prop_assert_eq!(uvarint(&mut b), Some(u));
            prop_assert_eq!(varint(&mut b), Some(i));
            prop_assert!(b.is_empty());
        }
    }

    #[test]
    fn rejects_overlong_and_truncated() {
        let mut b: &[u8] = &[0x80, 0x80];
        assert_eq!(uvarint(&mut b), None);
        let mut b: &[u8] = &[0xff; 11];
        assert_eq!(uvarint(&mut b), None);
        let mut b: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(uvarint(&mut b), None);
    }
}
