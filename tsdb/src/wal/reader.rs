//! Replay: reading segments back, classifying corruption, repairing torn tails
//! (`docs/format/wal.md`, "Reading and corruption").
//!
//! Segments are read into memory with `read` rather than mmapped: a disk read error then comes
//! back as an `Err` instead of a SIGBUS that kills the process, and repair can truncate the
//! file without a live mapping over it. Replay reuses one buffer for all segments.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::frame;
use super::segment::{self, HeaderError, HEADER_LEN};
use super::WalError;

/// One record as handed to a visitor. `payload` borrows the segment buffer (no copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub segment: u32,
    /// Byte offset of the record's framing in the segment file.
    pub offset: u64,
    pub rec_type: u8,
    pub payload: &'a [u8],
}

/// How a segment was damaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorruptionKind {
    /// No valid record follows the damage: an interrupted write (or a damaged last record,
    /// which looks the same). Truncated when repair is requested on the last segment.
    TornTail,
    /// Valid records follow the damage; reading resumed at the next one.
    MidSegment,
    /// The segment header is missing or invalid; the whole segment was skipped.
    BadHeader,
}

/// One damaged region found while reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorruptionInfo {
    pub segment: u32,
    pub path: PathBuf,
    /// Where the damage starts: the end of the last good record (0 for a bad header).
    pub offset: u64,
    /// Bytes not delivered as records: up to the next valid record, or to the end of the file.
    pub skipped_bytes: u64,
    pub kind: CorruptionKind,
    /// What the first check at `offset` found.
    pub detail: &'static str,
}

impl CorruptionInfo {
    /// This corruption as an error, for callers that stop instead of skipping.
    pub fn to_error(&self) -> WalError {
        WalError::Corruption {
            path: self.path.clone(),
            offset: self.offset,
            detail: format!(
                "{:?}: {} ({} bytes skipped)",
                self.kind, self.detail, self.skipped_bytes
            ),
        }
    }
}

/// What [`read_segment`] found in one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentReport {
    /// Index from the file name, or from the header if the name is not a segment name
    /// (0 if neither is usable).
    pub segment: u32,
    pub path: PathBuf,
    /// Records handed to the visitor.
    pub records: u64,
    /// Size of the file as read.
    pub bytes: u64,
    pub corruptions: Vec<CorruptionInfo>,
    /// `(segment, offset)` the file was truncated to by repair.
    pub truncated: Option<(u32, u64)>,
}

/// What [`replay`] found in a directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Segment files read (including skipped ones).
    pub segments: u32,
    pub records: u64,
    /// Sum of segment file sizes read.
    pub bytes: u64,
    pub corruptions: Vec<CorruptionInfo>,
    pub truncated: Option<(u32, u64)>,
}

/// Reads one segment file, calling `visit` for each valid record in order.
///
/// Corruption is reported in the result, never returned as an error; reading resumes after
/// mid-segment damage. With `repair`, a torn tail is truncated away (and the file fsynced):
/// pass `repair = true` only for the newest segment of a WAL that no writer has open, since
/// it is the only place an interrupted write can be. An `Err` means the file could not be
/// read, has an unsupported version ([`WalError::UnsupportedVersion`]), or `visit` failed.
pub fn read_segment<E: From<WalError>>(
    path: &Path,
    repair: bool,
    mut visit: impl FnMut(RecordRef<'_>) -> Result<(), E>,
) -> Result<SegmentReport, E> {
    let mut buf = Vec::new();
    read_segment_into(path, repair, &mut buf, &mut visit)
}

/// Reads every segment of `dir` in index order (see [`read_segment`]); `repair` applies to the
/// last segment only. A missing directory is an empty WAL.
pub fn replay<E: From<WalError>>(
    dir: &Path,
    repair: bool,
    mut visit: impl FnMut(RecordRef<'_>) -> Result<(), E>,
) -> Result<ReplayReport, E> {
    let segments = match segment::list_segments(dir) {
        Ok(s) => s,
        Err(WalError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(ReplayReport::default())
        }
        Err(e) => return Err(e.into()),
    };
    let mut report = ReplayReport::default();
    let mut buf = Vec::new();
    let mut expected = None;
    for (i, seg) in segments.iter().enumerate() {
        if expected.is_some_and(|e| e != seg.index) {
            // A segment was deleted out of order (or by hand): records are missing, but the
            // rest is still worth replaying.
            tracing::warn!(dir = %dir.display(), before = seg.index, "gap in WAL segment indexes");
        }
        expected = seg.index.checked_add(1);
        let last = i + 1 == segments.len();
        let r = read_segment_into(&seg.path, repair && last, &mut buf, &mut visit)?;
        report.segments += 1;
        report.records += r.records;
        report.bytes += r.bytes;
        report.corruptions.extend(r.corruptions);
        if r.truncated.is_some() {
            report.truncated = r.truncated;
        }
    }
    Ok(report)
}

fn read_segment_into<E: From<WalError>>(
    path: &Path,
    repair: bool,
    buf: &mut Vec<u8>,
    visit: &mut impl FnMut(RecordRef<'_>) -> Result<(), E>,
) -> Result<SegmentReport, E> {
    buf.clear();
    File::open(path)
        .and_then(|mut f| f.read_to_end(buf))
        .map_err(|e| WalError::io(path, e))?;
    let name_index = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(segment::parse_file_name);
    let mut report = SegmentReport {
        segment: name_index.unwrap_or(0),
        path: path.to_path_buf(),
        records: 0,
        bytes: buf.len() as u64,
        corruptions: Vec::new(),
        truncated: None,
    };
    let header = match segment::decode_header(buf) {
        Ok(index) if name_index.is_none_or(|n| n == index) => Ok(index),
        // A file renamed or copied to the wrong place would replay out of order.
        Ok(_) => Err("segment index in header does not match the file name"),
        Err(HeaderError::Version(version)) => {
            return Err(WalError::UnsupportedVersion {
                path: path.to_path_buf(),
                version,
                supported: segment::VERSION,
            }
            .into())
        }
        Err(e) => Err(e.detail()),
    };
    let index = match header {
        Ok(index) => index,
        Err(detail) => {
            report.corruptions.push(CorruptionInfo {
                segment: report.segment,
                path: path.to_path_buf(),
                offset: 0,
                skipped_bytes: buf.len() as u64,
                kind: CorruptionKind::BadHeader,
                detail,
            });
            log_corruption(&report.corruptions);
            return Ok(report);
        }
    };
    report.segment = index;

    let torn_at = scan(buf, index, path, &mut report, visit)?;
    log_corruption(&report.corruptions);
    if let (Some(offset), true) = (torn_at, repair) {
        truncate(path, offset as u64)?;
        tracing::warn!(path = %path.display(), offset, "truncated torn WAL tail");
        report.truncated = Some((index, offset as u64));
    }
    Ok(report)
}

/// Walks the records after the header, resyncing after damage. Returns the offset of a torn
/// tail, if there is one.
fn scan<E>(
    buf: &[u8],
    segment: u32,
    path: &Path,
    report: &mut SegmentReport,
    visit: &mut impl FnMut(RecordRef<'_>) -> Result<(), E>,
) -> Result<Option<usize>, E> {
    let mut pos = HEADER_LEN;
    while pos < buf.len() {
        match frame::decode_at(buf, pos) {
            Ok(f) => {
                visit(RecordRef {
                    segment,
                    offset: pos as u64,
                    rec_type: f.rec_type,
                    payload: &buf[f.payload_start..f.end],
                })?;
                report.records += 1;
                pos = f.end;
            }
            Err(err) => {
                let next = resync(buf, pos + 1);
                let (kind, end) = match next {
                    Some(next) => (CorruptionKind::MidSegment, next),
                    None => (CorruptionKind::TornTail, buf.len()),
                };
                report.corruptions.push(CorruptionInfo {
                    segment,
                    path: path.to_path_buf(),
                    offset: pos as u64,
                    skipped_bytes: (end - pos) as u64,
                    kind,
                    detail: err.detail(),
                });
                match next {
                    Some(next) => pos = next,
                    None => return Ok(Some(pos)),
                }
            }
        }
    }
    Ok(None)
}

/// The first offset at or after `from` holding a fully valid record.
///
/// Byte by byte, because after damage nothing says where records start. `decode_at` rejects
/// almost every false candidate on the type byte or the 9-byte header CRC, so this is linear
/// in the damaged length; a false positive needs a 32-bit header CRC and a 32-bit payload CRC
/// to match by chance.
fn resync(buf: &[u8], from: usize) -> Option<usize> {
    let last_start = buf.len().checked_sub(frame::RECORD_HEADER_LEN)?;
    (from..=last_start).find(|&p| {
        // Cheap pre-checks before any CRC: zero-filled tails (the common case) fail on the
        // type byte, and random bytes almost always have a length that does not fit.
        let len = u32::from_le_bytes([buf[p], buf[p + 1], buf[p + 2], buf[p + 3]]) as usize;
        buf[p + 4] != 0
            && len <= frame::MAX_PAYLOAD_LEN
            && len <= last_start - p
            && frame::decode_at(buf, p).is_ok()
    })
}

fn truncate(path: &Path, len: u64) -> Result<(), WalError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| WalError::io(path, e))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| WalError::io(path, e))
}

fn log_corruption(found: &[CorruptionInfo]) {
    for c in found {
        tracing::warn!(
            path = %c.path.display(),
            segment = c.segment,
            offset = c.offset,
            skipped = c.skipped_bytes,
            kind = ?c.kind,
            detail = c.detail,
            "corrupt WAL data"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A segment image: header for `index` followed by framed records.
    fn image(index: u32, records: &[(u8, &[u8])]) -> Vec<u8> {
        let mut buf = segment::encode_header(index).to_vec();
        for (t, p) in records {
            let start = frame::begin(&mut buf);
            buf.extend_from_slice(p);
            frame::finish(&mut buf, start, *t).unwrap();
        }
        buf
    }

    /// Records seen as `(offset, payload)`, the report, and the torn-tail offset.
    type Scanned = (Vec<(u64, Vec<u8>)>, SegmentReport, Option<usize>);

    fn scan_all(buf: &[u8]) -> Scanned {
        let mut report = SegmentReport {
            segment: 1,
            path: PathBuf::from("mem"),
            records: 0,
            bytes: buf.len() as u64,
            corruptions: Vec::new(),
            truncated: None,
        };
        let mut seen = Vec::new();
        let torn = scan::<WalError>(buf, 1, Path::new("mem"), &mut report, &mut |r| {
            seen.push((r.offset, r.payload.to_vec()));
            Ok(())
        })
        .unwrap();
        (seen, report, torn)
    }

    #[test]
    fn resync_skips_to_next_record() {
        let buf = image(1, &[(1, b"one"), (2, b"two"), (3, b"three")]);
        let second = HEADER_LEN + 13 + 3;
        let mut bad = buf.clone();
        bad[second + 13] ^= 0x40; // payload byte of record two
        let (seen, report, torn) = scan_all(&bad);
        assert_eq!(torn, None);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1].1, b"three");
        let c = &report.corruptions[0];
        assert_eq!(c.kind, CorruptionKind::MidSegment);
        assert_eq!(c.offset, second as u64);
        assert_eq!(c.skipped_bytes, 13 + 3);
        assert_eq!(c.detail, frame::FrameError::PayloadCrc.detail());
    }

    proptest! {
        #[test]
        fn scanning_garbage_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut buf = image(1, &[(1, b"x")]);
            buf.extend_from_slice(&tail);
            let (seen, report, torn) = scan_all(&buf);
            prop_assert!(!seen.is_empty());
            let damaged: u64 = report.corruptions.iter().map(|c| c.skipped_bytes).sum();
            let delivered: u64 = seen.iter().map(|(_, p)| 13 + p.len() as u64).sum();
            // Every byte after the header is either delivered or reported, exactly once.
            prop_assert_eq!(damaged + delivered, (buf.len() - HEADER_LEN) as u64);
            if let Some(t) = torn {
                prop_assert!(t <= buf.len());
            }
        }

        #[test]
        fn any_single_flip_loses_at_most_the_hit_record(
            sizes in proptest::collection::vec(0usize..64, 2..12),
            flip in any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            let payloads: Vec<Vec<u8>> = sizes.iter().enumerate()
                .map(|(i, n)| vec![i as u8 ^ 0x5a; *n]).collect();
            let records: Vec<(u8, &[u8])> = payloads.iter().map(|p| (1, &p[..])).collect();
            let mut buf = image(1, &records);
            let at = HEADER_LEN + flip.index(buf.len() - HEADER_LEN);
            buf[at] ^= 1 << bit;
            let (seen, report, _) = scan_all(&buf);
            prop_assert_eq!(report.corruptions.len(), 1);
            prop_assert!(seen.len() + 1 >= payloads.len());
        }
    }
}
