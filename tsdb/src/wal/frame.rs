//! Record framing (`docs/format/wal.md`, "Record framing").
//!
//! ```text
//! 0        4      5          9           13
//! +--------+------+----------+-----------+-----------------+
//! | len    | type | crc      | hcrc      | payload         |
//! | u32 LE | u8   | u32 LE   | u32 LE    | len bytes       |
//! +--------+------+----------+-----------+-----------------+
//! crc  = CRC32C(payload)
//! hcrc = CRC32C(bytes 0..9)   (len, type, crc)
//! ```
//!
//! Why a header checksum on top of the brief's single CRC: after corruption the reader tries
//! every byte offset as a record start. With one CRC over the payload each candidate whose
//! random `len` fits in the file costs a CRC over up to `len` bytes, which makes resyncing
//! through a damaged megabyte quadratic. `hcrc` rejects a false candidate after 9 bytes.

use super::WalError;

/// Bytes of framing before each payload.
pub(super) const RECORD_HEADER_LEN: usize = 13;

/// See [`super::MAX_PAYLOAD_LEN`].
pub(super) const MAX_PAYLOAD_LEN: usize = 64 << 20;

/// Appends a placeholder header to `buf` and returns where the record starts; the caller then
/// appends the payload and calls [`finish`].
pub(super) fn begin(buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    start
}

/// Fills in the header of the record that starts at `start` and whose payload is everything
/// after its header. `rec_type` must be non-zero (checked by the caller).
pub(super) fn finish(buf: &mut [u8], start: usize, rec_type: u8) -> Result<(), WalError> {
    let Some(record) = buf.get_mut(start..) else {
        panic!("BUG: WAL record start {start} is past the end of the buffer");
    };
    let (header, payload) = record.split_at_mut(RECORD_HEADER_LEN);
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(WalError::RecordTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_LEN,
        });
    }
    // Cannot truncate: MAX_PAYLOAD_LEN < u32::MAX.
    header[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[4] = rec_type;
    header[5..9].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let hcrc = crc32c::crc32c(&header[0..9]);
    header[9..13].copy_from_slice(&hcrc.to_le_bytes());
    Ok(())
}

/// A record that passed every check, as positions in the buffer it was decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Frame {
    pub(super) rec_type: u8,
    pub(super) payload_start: usize,
    /// One past the last payload byte: where the next record starts.
    pub(super) end: usize,
}

/// Why the bytes at an offset are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FrameError {
    /// Fewer than [`RECORD_HEADER_LEN`] bytes left.
    ShortHeader,
    /// Type 0: typically zero-filled (preallocated or torn) space.
    ZeroType,
    HeaderCrc,
    /// `len` above [`MAX_PAYLOAD_LEN`] despite a valid header CRC (a foreign writer).
    LengthTooLarge,
    /// The header is intact but the payload runs past the end of the data: a torn write.
    LengthPastEnd,
    PayloadCrc,
}

impl FrameError {
    pub(super) fn detail(self) -> &'static str {
        match self {
            FrameError::ShortHeader => "fewer bytes left than a record header",
            FrameError::ZeroType => "record type 0 (zero-filled space?)",
            FrameError::HeaderCrc => "record header checksum mismatch",
            FrameError::LengthTooLarge => "record length above the maximum payload size",
            FrameError::LengthPastEnd => "record extends past the end of the segment",
            FrameError::PayloadCrc => "record payload checksum mismatch",
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes the record starting at `pos` of `buf`. Never panics, whatever `buf` holds.
///
/// The checks run cheapest first because the reader calls this at every byte offset of a
/// damaged region: type, header CRC (9 bytes), bounds, and only then the payload CRC.
pub(super) fn decode_at(buf: &[u8], pos: usize) -> Result<Frame, FrameError> {
    let rest = buf.get(pos..).unwrap_or_default();
    let Some(header) = rest.get(..RECORD_HEADER_LEN) else {
        return Err(FrameError::ShortHeader);
    };
    let rec_type = header[4];
    if rec_type == 0 {
        return Err(FrameError::ZeroType);
    }
    if crc32c::crc32c(&header[0..9]) != u32_at(header, 9) {
        return Err(FrameError::HeaderCrc);
    }
    let len = u32_at(header, 0) as usize;
    if len > MAX_PAYLOAD_LEN {
        return Err(FrameError::LengthTooLarge);
    }
    let Some(payload) = rest.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
        return Err(FrameError::LengthPastEnd);
    };
    if crc32c::crc32c(payload) != u32_at(header, 5) {
        return Err(FrameError::PayloadCrc);
    }
    let payload_start = pos + RECORD_HEADER_LEN;
    Ok(Frame {
        rec_type,
        payload_start,
        end: payload_start + len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(records: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut buf = Vec::new();
        for (t, p) in records {
            let start = begin(&mut buf);
            buf.extend_from_slice(p);
            finish(&mut buf, start, *t).unwrap();
        }
        buf
    }

    #[test]
    fn header_layout_is_pinned() {
        // Pins the byte layout documented in docs/format/wal.md.
        // The CRC32C variant the format document names.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let buf = framed(&[(7, b"abc".to_vec())]);
        assert_eq!(buf.len(), RECORD_HEADER_LEN + 3);
        assert_eq!(&buf[0..4], &3u32.to_le_bytes());
        assert_eq!(buf[4], 7);
        assert_eq!(&buf[5..9], &crc32c::crc32c(b"abc").to_le_bytes());
        assert_eq!(&buf[9..13], &crc32c::crc32c(&buf[0..9]).to_le_bytes());
        assert_eq!(&buf[13..], b"abc");
    }

    #[test]
    fn zeros_never_decode() {
        let zeros = [0u8; 64];
        for pos in 0..zeros.len() {
            assert!(decode_at(&zeros, pos).is_err());
        }
    }

    #[test]
    fn too_large_payload_is_rejected() {
        let mut buf = Vec::new();
        let start = begin(&mut buf);
        buf.resize(start + RECORD_HEADER_LEN + MAX_PAYLOAD_LEN + 1, 1);
        assert!(matches!(
            finish(&mut buf, start, 1),
            Err(WalError::RecordTooLarge { .. })
        ));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let buf = framed(&[(3, b"hello wal".to_vec())]);
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    decode_at(&bad, 0).is_err(),
                    "flip {byte}:{bit} went unnoticed"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn round_trip(records in proptest::collection::vec(
            (1u8..=255, proptest::collection::vec(any::<u8>(), 0..300)), 0..20)
        ) {
            let buf = framed(&records);
            let mut pos = 0;
            for (t, p) in &records {
                let f = decode_at(&buf, pos).unwrap();
                prop_assert_eq!(f.rec_type, *t);
                prop_assert_eq!(&buf[f.payload_start..f.end], &p[..]);
                pos = f.end;
            }
            prop_assert_eq!(pos, buf.len());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            for pos in 0..=bytes.len() + 1 {
                if let Ok(f) = decode_at(&bytes, pos) {
                    prop_assert!(f.end <= bytes.len());
                }
            }
        }
    }
}
