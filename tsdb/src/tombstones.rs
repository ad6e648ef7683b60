//! Deleted time ranges of series (`POST /api/v1/admin/tsdb/delete_series`).
//!
//! Blocks are immutable, so a deletion is recorded next to the data and applied when reading;
//! compaction writes the merged block without the deleted samples (and without tombstones).
//! - In a block: the file `<block>/tombstones` (`docs/format/tombstones.md`) maps the block's
//!   series refs to deleted intervals. It is replaced atomically (tmp + rename).
//! - In the head: a map from series id to intervals, logged to the WAL as `REC_TOMBSTONES`
//!   records and rebuilt at replay. Checkpoints write the head's samples with the deleted
//!   ones already left out, so tombstones never need to survive one.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use crate::varint;
use crate::TsdbError;

/// File name inside a block directory.
pub const FILE: &str = "tombstones";
const MAGIC: [u8; 4] = *b"HTMB";
const VERSION: u8 = 1;

/// Inclusive `(mint, maxt)` ranges, sorted and merged.
pub type Intervals = Vec<(i64, i64)>;

/// Adds `(a, b)` to sorted, merged `list`, keeping it sorted and merged.
pub fn add_interval(list: &mut Intervals, a: i64, b: i64) {
    if a > b {
        return;
    }
    list.push((a, b));
    list.sort_unstable();
    let mut out: Intervals = Vec::with_capacity(list.len());
    for &(x, y) in list.iter() {
        match out.last_mut() {
            Some(last) if x <= last.1.saturating_add(1) => last.1 = last.1.max(y),
            _ => out.push((x, y)),
        }
    }
    *list = out;
}

/// Whether `t` lies in one of `list`'s intervals.
pub fn is_deleted(list: &[(i64, i64)], t: i64) -> bool {
    let i = list.partition_point(|iv| iv.1 < t);
    list.get(i).is_some_and(|iv| iv.0 <= t)
}

/// Removes deleted samples from `samples` (sorted by time).
pub fn apply(list: &[(i64, i64)], samples: &mut Vec<(i64, f64)>) {
    if !list.is_empty() {
        samples.retain(|s| !is_deleted(list, s.0));
    }
}

/// The tombstones of one block, by block series ref.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BlockTombstones {
    pub by_series: HashMap<u32, Intervals>,
}

impl BlockTombstones {
    /// Reads `<dir>/tombstones`; an absent file is no tombstones.
    pub fn read(dir: &Path) -> Result<BlockTombstones, TsdbError> {
        let path = dir.join(FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(BlockTombstones::default())
            }
            Err(e) => return Err(TsdbError::io(&path, e)),
        };
        let corrupt = |offset: usize, detail: &str| TsdbError::Corruption {
            path: path.clone(),
            offset: offset as u64,
            detail: detail.to_string(),
        };
        if bytes.len() < 9 || bytes[..4] != MAGIC {
            return Err(corrupt(0, "bad magic or truncated header"));
        }
        if bytes[4] != VERSION {
            return Err(corrupt(4, "unsupported tombstones version"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body).to_le_bytes() != crc {
            return Err(corrupt(body.len(), "CRC mismatch"));
        }
        let mut b = &body[5..];
        let mut t = BlockTombstones::default();
        while !b.is_empty() {
            let at = bytes.len() - 4 - b.len();
            let r = varint::uvarint(&mut b).ok_or_else(|| corrupt(at, "bad series ref"))?;
            let n = varint::uvarint(&mut b).ok_or_else(|| corrupt(at, "bad count"))?;
            let list = t.by_series.entry(r as u32).or_default();
            for _ in 0..n {
                let x = varint::varint(&mut b).ok_or_else(|| corrupt(at, "bad mint"))?;
                let y = varint::varint(&mut b).ok_or_else(|| corrupt(at, "bad maxt"))?;
                add_interval(list, x, y);
            }
        }
        Ok(t)
    }

    /// Writes `<dir>/tombstones` atomically (tmp, fsync, rename, fsync dir).
    pub fn write(&self, dir: &Path) -> Result<(), TsdbError> {
        let mut buf = Vec::new();
        buf.extend_from_slice(&MAGIC);
        buf.push(VERSION);
        let mut refs: Vec<&u32> = self.by_series.keys().collect();
        refs.sort();
        for r in refs {
            let list = &self.by_series[r];
            varint::put_uvarint(&mut buf, u64::from(*r));
            varint::put_uvarint(&mut buf, list.len() as u64);
            for &(a, b) in list {
                varint::put_varint(&mut buf, a);
                varint::put_varint(&mut buf, b);
            }
        }
        let crc = crc32c::crc32c(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        let tmp = dir.join(format!("{FILE}{}", crate::filenames::TMP_SUFFIX));
        let path = dir.join(FILE);
        let io = |e| TsdbError::io(&path, e);
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(&buf).and_then(|_| f.sync_all()).map_err(io)?;
        fs::rename(&tmp, &path).map_err(io)?;
        crate::persist::sync_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_merge_and_match() {
        let mut l = Intervals::new();
        add_interval(&mut l, 10, 20);
        add_interval(&mut l, 30, 40);
        add_interval(&mut l, 21, 25);
        add_interval(&mut l, 5, 1);
        assert_eq!(l, vec![(10, 25), (30, 40)]);
        assert!(is_deleted(&l, 10) && is_deleted(&l, 25) && is_deleted(&l, 35));
        assert!(!is_deleted(&l, 9) && !is_deleted(&l, 26) && !is_deleted(&l, 41));
        let mut s = vec![(9, 1.0), (10, 2.0), (26, 3.0), (40, 4.0)];
        apply(&l, &mut s);
        assert_eq!(s, vec![(9, 1.0), (26, 3.0)]);
    }

    #[test]
    fn file_roundtrip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            BlockTombstones::read(dir.path()).unwrap(),
            BlockTombstones::default()
        );
        let mut t = BlockTombstones::default();
        t.by_series.insert(3, vec![(i64::MIN, -1), (5, 9)]);
        t.by_series.insert(0, vec![(0, 0)]);
        t.write(dir.path()).unwrap();
        assert_eq!(BlockTombstones::read(dir.path()).unwrap(), t);
        let p = dir.path().join(FILE);
        let mut b = fs::read(&p).unwrap();
        for i in 0..b.len() {
            b[i] ^= 0x10;
            fs::write(&p, &b).unwrap();
            assert!(BlockTombstones::read(dir.path()).is_err(), "flip at {i}");
            b[i] ^= 0x10;
        }
        fs::write(&p, &b[..b.len() - 1]).unwrap();
        assert!(BlockTombstones::read(dir.path()).is_err());
    }
}
