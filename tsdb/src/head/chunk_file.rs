//! The head-chunks files (`<storage>/chunks_head/NNNNNNNN`): full head chunks are written here
//! and read back through a read-only memory map, so the head's resident memory does not grow
//! with the history it holds (the role of Prometheus's `chunks_head/`).
//!
//! Format: `docs/format/head_chunks.md`. These files are a memory offload, not a source of
//! truth: the WAL is. On open the directory is emptied and the head rebuilt from the WAL.
//!
//! Files are pre-sized with `set_len` (sparse) and mapped once at full size; chunks are
//! written with `pwrite`, which lands in the same page cache the mapping shows. A chunk's
//! [`ChunkRef`] is handed out only after its bytes are written, so readers never see a
//! partial chunk.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::Mmap;
use parking_lot::{Mutex, RwLock};

use crate::filenames;
use crate::varint;
use crate::TsdbError;

/// Magic number at the start of every head-chunks file.
pub(crate) const MAGIC: [u8; 4] = *b"HCHK";
/// Format version of head-chunks files.
pub(crate) const VERSION: u8 = 1;
const HEADER_LEN: u64 = 8;
/// Fixed part of a chunk record before the varint length.
const FIXED_LEN: usize = 8 + 8 + 8 + 1 + 1;

/// Flag bit: the chunk holds out-of-order samples.
pub(crate) const FLAG_OOO: u8 = 1;

/// Where a chunk lives: file index in the high 32 bits, byte offset in the low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkRef(u64);

impl ChunkRef {
    fn new(file: u32, offset: u32) -> Self {
        ChunkRef((u64::from(file) << 32) | u64::from(offset))
    }
    fn file(self) -> u32 {
        (self.0 >> 32) as u32
    }
    fn offset(self) -> u32 {
        self.0 as u32
    }
}

/// A chunk's encoded bytes, borrowed from a mapping kept alive by the `Arc`.
#[derive(Clone)]
pub(crate) struct MappedChunk {
    map: Arc<Mmap>,
    start: usize,
    end: usize,
}

impl MappedChunk {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map[self.start..self.end]
    }
}

struct Writer {
    file: File,
    index: u32,
    offset: u64,
    scratch: Vec<u8>,
}

pub(crate) struct HeadChunkFiles {
    dir: PathBuf,
    /// Size every file is pre-sized and mapped to. Fixed after construction; bounded so a
    /// 32-bit host is not starved of address space by a long-lived head.
    file_size: u64,
    /// Guards the file being appended to; only writers take it.
    writer: Mutex<Writer>,
    /// Mapping of file `i` at position `i - 1`. Grows only (under the writer lock).
    /// Mapping of file `i + 1`; `None` once deleted by [`Self::truncate_before`].
    maps: RwLock<Vec<Option<Arc<Mmap>>>>,
    /// Newest chunk `max_t` written to file `i + 1` (`i64::MIN` while empty).
    max_times: Mutex<Vec<i64>>,
    bytes_written: AtomicU64,
}

impl HeadChunkFiles {
    /// Empties `dir` (the head is rebuilt from the WAL) and starts file 1.
    pub(crate) fn open(dir: &Path, file_size: u64) -> Result<Self, TsdbError> {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(|e| TsdbError::io(dir, e))?;
        }
        fs::create_dir_all(dir).map_err(|e| TsdbError::io(dir, e))?;
        let maps = RwLock::new(Vec::new());
        let (file, map) = Self::create_file(dir, 1, file_size)?;
        maps.write().push(Some(map));
        Ok(HeadChunkFiles {
            dir: dir.to_path_buf(),
            file_size,
            writer: Mutex::new(Writer {
                file,
                index: 1,
                offset: HEADER_LEN,
                scratch: Vec::with_capacity(4096),
            }),
            maps,
            max_times: Mutex::new(vec![i64::MIN]),
            bytes_written: AtomicU64::new(0),
        })
    }

    fn create_file(dir: &Path, index: u32, size: u64) -> Result<(File, Arc<Mmap>), TsdbError> {
        let path = dir.join(filenames::segment_name(index));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| TsdbError::io(&path, e))?;
        let mut header = [0u8; HEADER_LEN as usize];
        header[..4].copy_from_slice(&MAGIC);
        header[4] = VERSION;
        file.write_all_at(&header, 0)
            .and_then(|_| file.set_len(size))
            .map_err(|e| TsdbError::io(&path, e))?;
        // SAFETY: the file is private to this process and only ever grows in content at
        // offsets past every handed-out ChunkRef; mapped bytes we read are never rewritten.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| TsdbError::io(&path, e))?;
        Ok((file, Arc::new(map)))
    }

    /// Writes one chunk and returns where it is.
    pub(crate) fn write(
        &self,
        series_id: u64,
        min_t: i64,
        max_t: i64,
        encoding: u8,
        flags: u8,
        data: &[u8],
    ) -> Result<ChunkRef, TsdbError> {
        let mut w = self.writer.lock();
        let w = &mut *w;
        w.scratch.clear();
        w.scratch.extend_from_slice(&series_id.to_le_bytes());
        w.scratch.extend_from_slice(&min_t.to_le_bytes());
        w.scratch.extend_from_slice(&max_t.to_le_bytes());
        w.scratch.push(encoding);
        w.scratch.push(flags);
        varint::put_uvarint(&mut w.scratch, data.len() as u64);
        w.scratch.extend_from_slice(data);
        let crc = crc32c::crc32c(&w.scratch);
        w.scratch.extend_from_slice(&crc.to_le_bytes());
        let need = w.scratch.len() as u64;
        if need + HEADER_LEN > self.file_size {
            return Err(TsdbError::Corruption {
                path: self.dir.clone(),
                offset: 0,
                detail: format!("chunk of {need} bytes larger than a head-chunks file"),
            });
        }
        if w.offset + need > self.file_size {
            let index = w.index + 1;
            let (file, map) = Self::create_file(&self.dir, index, self.file_size)?;
            self.maps.write().push(Some(map));
            self.max_times.lock().push(i64::MIN);
            w.file = file;
            w.index = index;
            w.offset = HEADER_LEN;
        }
        let offset = w.offset;
        w.file
            .write_all_at(&w.scratch, offset)
            .map_err(|e| TsdbError::io(&self.dir.join(filenames::segment_name(w.index)), e))?;
        w.offset += need;
        self.bytes_written.fetch_add(need, Ordering::Relaxed);
        if let Some(m) = self.max_times.lock().get_mut(w.index as usize - 1) {
            *m = (*m).max(max_t);
        }
        Ok(ChunkRef::new(w.index, offset as u32))
    }

    /// The encoded bytes of the chunk at `r`.
    /// Deletes the files (other than the one being written) whose chunks all end before `t`.
    /// Callers first drop every reference to such chunks (head truncation); a reader still
    /// holding a [`MappedChunk`] keeps its mapping, which outlives the unlinked file.
    pub(crate) fn truncate_before(&self, t: i64) -> usize {
        let current = self.writer.lock().index;
        let mut deleted = 0;
        let max_times = self.max_times.lock().clone();
        let mut maps = self.maps.write();
        for (i, max_t) in max_times.iter().enumerate() {
            let index = i as u32 + 1;
            if index == current || *max_t >= t || maps[i].is_none() {
                continue;
            }
            maps[i] = None;
            let path = self.dir.join(filenames::segment_name(index));
            match fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "removing head-chunks file")
                }
            }
        }
        deleted
    }

    pub(crate) fn read(&self, r: ChunkRef) -> Result<MappedChunk, TsdbError> {
        let map = {
            let maps = self.maps.read();
            maps.get(r.file() as usize - 1).cloned().flatten()
        };
        let corrupt = |detail: &str| TsdbError::Corruption {
            path: self.dir.join(filenames::segment_name(r.file())),
            offset: u64::from(r.offset()),
            detail: detail.to_string(),
        };
        let map = map.ok_or_else(|| corrupt("chunk reference to a missing file"))?;
        let start = r.offset() as usize;
        let fixed_end = start + FIXED_LEN;
        if fixed_end > map.len() {
            return Err(corrupt("chunk reference past end of file"));
        }
        let mut rest = &map[fixed_end..];
        let before = rest.len();
        let len = varint::uvarint(&mut rest).ok_or_else(|| corrupt("bad chunk length"))? as usize;
        let data_start = fixed_end + (before - rest.len());
        let data_end = data_start
            .checked_add(len)
            .filter(|&e| e + 4 <= map.len())
            .ok_or_else(|| corrupt("chunk length past end of file"))?;
        Ok(MappedChunk {
            map,
            start: data_start,
            end: data_end,
        })
    }

    pub(crate) fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    /// Number of head-chunks files in use.
    pub(crate) fn files(&self) -> usize {
        self.maps.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let files = HeadChunkFiles::open(&dir.path().join("chunks_head"), 4096).unwrap();
        let mut refs = Vec::new();
        for i in 0..100u64 {
            let data: Vec<u8> = (0..(i as u8 % 50 + 1)).collect();
            let r = files.write(i, 1, 2, 1, 0, &data).unwrap();
            refs.push((r, data));
        }
        assert!(files.files() > 1);
        for (r, data) in refs {
            assert_eq!(files.read(r).unwrap().bytes(), &data[..]);
        }
        assert!(files.write(1, 1, 2, 1, 0, &[0u8; 5000]).is_err());
        assert!(files.read(ChunkRef::new(99, 8)).is_err());
        assert!(files.read(ChunkRef::new(1, 4095)).is_err());
    }
}
