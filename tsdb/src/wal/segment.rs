//! Segment files: naming, the 16-byte header, listing and creation
//! (`docs/format/wal.md`, "Segment files" and "Segment header").
//!
//! ```text
//! 0        4     5      6          8                12               16
//! +--------+-----+------+----------+----------------+----------------+
//! | "HWAL" | ver | flags| reserved | segment index  | CRC32C(0..12)  |
//! |        | u8  | u8   | 2 bytes  | u32 LE         | u32 LE         |
//! +--------+-----+------+----------+----------------+----------------+
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::WalError;

pub(super) const MAGIC: [u8; 4] = *b"HWAL";
pub(super) const VERSION: u8 = 1;
pub(super) const HEADER_LEN: usize = 16;

/// The highest index an 8-digit decimal name can hold.
pub(super) const MAX_SEGMENT_INDEX: u32 = 99_999_999;

const NAME_DIGITS: usize = 8;

/// Suffix of a segment being created. A crash between creating and renaming leaves one behind;
/// [`prepare_dir`] deletes it. Readers ignore it because it is not an 8-digit name.
const TMP_SUFFIX: &str = crate::filenames::TMP_SUFFIX;

/// One segment file on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentRef {
    /// Index parsed from the file name.
    pub index: u32,
    pub path: PathBuf,
    /// File size in bytes when listed.
    pub size: u64,
}

/// `00000042` for index 42.
pub(super) fn file_name(index: u32) -> String {
    crate::filenames::segment_name(index)
}

/// The index of a segment file name: exactly eight ASCII digits, nothing else.
pub(super) fn parse_file_name(name: &str) -> Option<u32> {
    if name.len() != NAME_DIGITS || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

pub(super) fn encode_header(index: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4] = VERSION;
    // h[5]: flags, none defined in version 1. h[6..8]: reserved, zero.
    h[8..12].copy_from_slice(&index.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..12]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Why a segment header was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HeaderError {
    Short,
    Magic,
    Crc,
    /// Checksum valid, but a version this build cannot read: not corruption, a newer writer.
    Version(u8),
    /// Checksum valid, but flag bits version 1 does not define; they could change how records
    /// must be read, so the segment is not guessed at.
    Flags,
}

impl HeaderError {
    pub(super) fn detail(self) -> &'static str {
        match self {
            HeaderError::Short => "file shorter than the segment header",
            HeaderError::Magic => "bad segment magic",
            HeaderError::Crc => "segment header checksum mismatch",
            HeaderError::Version(_) => "unsupported segment version",
            HeaderError::Flags => "unknown segment header flags",
        }
    }
}

/// Validates a segment header and returns the segment index stored in it.
pub(super) fn decode_header(buf: &[u8]) -> Result<u32, HeaderError> {
    let Some(h) = buf.get(..HEADER_LEN) else {
        return Err(HeaderError::Short);
    };
    if h[0..4] != MAGIC {
        return Err(HeaderError::Magic);
    }
    let stored = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    if crc32c::crc32c(&h[0..12]) != stored {
        return Err(HeaderError::Crc);
    }
    if h[4] != VERSION {
        return Err(HeaderError::Version(h[4]));
    }
    if h[5] != 0 {
        return Err(HeaderError::Flags);
    }
    Ok(u32::from_le_bytes([h[8], h[9], h[10], h[11]]))
}

/// Segment files in `dir`, sorted by index. Other files (including `*.tmp`) are ignored.
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentRef>, WalError> {
    let entries = fs::read_dir(dir).map_err(|e| WalError::io(dir, e))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| WalError::io(dir, e))?;
        let Some(index) = entry.file_name().to_str().and_then(parse_file_name) else {
            continue;
        };
        let path = entry.path();
        let meta = entry.metadata().map_err(|e| WalError::io(&path, e))?;
        if !meta.is_file() {
            continue;
        }
        segments.push(SegmentRef {
            index,
            path,
            size: meta.len(),
        });
    }
    segments.sort_by_key(|s| s.index);
    Ok(segments)
}

/// The index after `index`, if 8 digits can still name it.
pub(super) fn next_index(index: u32) -> Result<u32, WalError> {
    match index.checked_add(1) {
        Some(next) if next <= MAX_SEGMENT_INDEX => Ok(next),
        _ => Err(WalError::SegmentIndexExhausted { last: index }),
    }
}

/// fsyncs a directory so that file creations, renames and removals in it are durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| WalError::io(dir, e))
}

/// Creates `dir` if needed (durably) and deletes segments left half-created by a crash.
pub(super) fn prepare_dir(dir: &Path) -> Result<(), WalError> {
    if !dir.is_dir() {
        fs::create_dir_all(dir).map_err(|e| WalError::io(dir, e))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    let entries = fs::read_dir(dir).map_err(|e| WalError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| WalError::io(dir, e))?;
        let name = entry.file_name();
        let is_tmp = name
            .to_str()
            .and_then(|n| n.strip_suffix(TMP_SUFFIX))
            .and_then(parse_file_name)
            .is_some();
        if is_tmp {
            let path = entry.path();
            tracing::info!(path = %path.display(), "removing half-created WAL segment");
            fs::remove_file(&path).map_err(|e| WalError::io(&path, e))?;
        }
    }
    Ok(())
}

/// Creates segment `index` with its header and makes it durable, returning the file positioned
/// after the header.
///
/// The header is written and synced under a temporary name and then renamed, so a crash never
/// leaves a segment with a missing or partial header behind (which every later replay would
/// report as a bad header). The directory is fsynced so the new name survives a power cut.
pub(super) fn create(dir: &Path, index: u32) -> Result<(File, PathBuf), WalError> {
    let path = dir.join(file_name(index));
    let tmp = dir.join(format!("{}{TMP_SUFFIX}", file_name(index)));
    // The writer picks an index above every existing segment; an existing file means a second
    // writer or a bug, and renaming over it would destroy data.
    if path.exists() {
        return Err(WalError::io(
            &path,
            io::Error::new(io::ErrorKind::AlreadyExists, "WAL segment already exists"),
        ));
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| WalError::io(&tmp, e))?;
    file.write_all(&encode_header(index))
        .and_then(|()| file.sync_all())
        .map_err(|e| WalError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| WalError::io(&path, e))?;
    sync_dir(dir)?;
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(file_name(1), "00000001");
        assert_eq!(file_name(MAX_SEGMENT_INDEX), "99999999");
        assert_eq!(parse_file_name("00000042"), Some(42));
        for bad in [
            "0000042",
            "000000042",
            "0000004a",
            "+0000042",
            "00000042.tmp",
            "",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad:?}");
        }
        assert!(next_index(MAX_SEGMENT_INDEX).is_err());
        assert_eq!(next_index(7).unwrap(), 8);
    }

    #[test]
    fn header_round_trip_and_rejections() {
        let h = encode_header(42);
        assert_eq!(&h[0..4], b"HWAL");
        assert_eq!(decode_header(&h), Ok(42));
        assert_eq!(decode_header(&h[..15]), Err(HeaderError::Short));

        let mut bad = h;
        bad[0] = b'X';
        assert_eq!(decode_header(&bad), Err(HeaderError::Magic));
        let mut bad = h;
        bad[9] ^= 1;
        assert_eq!(decode_header(&bad), Err(HeaderError::Crc));

        // A correctly checksummed header from a future version or with unknown flags.
        let reseal = |mut h: [u8; HEADER_LEN]| {
            let crc = crc32c::crc32c(&h[0..12]);
            h[12..16].copy_from_slice(&crc.to_le_bytes());
            h
        };
        let mut v2 = h;
        v2[4] = 2;
        assert_eq!(decode_header(&reseal(v2)), Err(HeaderError::Version(2)));
        let mut flagged = h;
        flagged[5] = 1;
        assert_eq!(decode_header(&reseal(flagged)), Err(HeaderError::Flags));
    }

    #[test]
    fn create_and_list() {
        let dir = tempfile::tempdir().unwrap();
        create(dir.path(), 3).unwrap();
        create(dir.path(), 1).unwrap();
        fs::write(dir.path().join("00000002.tmp"), b"junk").unwrap();
        fs::write(dir.path().join("notes"), b"x").unwrap();
        assert!(
            create(dir.path(), 3).is_err(),
            "must not overwrite a segment"
        );

        let listed = list_segments(dir.path()).unwrap();
        let idx: Vec<u32> = listed.iter().map(|s| s.index).collect();
        assert_eq!(idx, [1, 3]);
        assert!(listed.iter().all(|s| s.size == HEADER_LEN as u64));

        prepare_dir(dir.path()).unwrap();
        assert!(!dir.path().join("00000002.tmp").exists());
        assert!(dir.path().join("notes").exists());
    }
}
