//! Snapshots of a database (Prometheus's `POST /api/v1/admin/tsdb/snapshot`): a directory
//! under `<storage.path>/snapshots/` that is itself a valid storage directory, holding every
//! persisted block hard-linked file by file and, unless the head is skipped, the head's
//! samples written as blocks. Starting hearth with `--storage.path <snapshot>` serves the data
//! the database held when the snapshot was taken.
//!
//! Consistency: the snapshot holds the maintenance lock (`Blocks::work`) from linking the first
//! block to writing the last head block, so no block cut, compaction, retention deletion,
//! quarantine move or `delete_series` runs in between: no sample is missed or written twice,
//! and no block is renamed to `.deleted` under the snapshot's feet. Samples appended while the
//! snapshot runs may or may not be in it (the head's newest timestamp is read once, at the
//! start; later samples of older timestamps are read series by series).
//!
//! Crash safety: everything is written into `snapshots/<name>.tmp/`, fsynced and renamed to
//! `snapshots/<name>/` last, so a snapshot directory without the suffix is complete; leftover
//! `.tmp` directories are removed when the database opens (`remove_tmp_snapshots`).
//!
//! Disk: hard links share the blocks' bytes with the live database, so a snapshot costs only
//! its head blocks until the live blocks are deleted (compaction, retention). Blocks are only
//! copied where a hard link fails (another file system, a file system without links).
//! Snapshots are never opened, counted by size retention or deleted by hearth.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::block;
use crate::filenames::{self, TMP_SUFFIX};
use crate::persist::{sync_dir, BLOCK_RANGE_MS};
use crate::{Db, TsdbError};

/// What [`Db::snapshot`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotReport {
    /// The finished snapshot directory (`<storage.path>/snapshots/<name>`).
    pub path: PathBuf,
    /// Persisted blocks taken over (hard-linked, or copied where linking failed).
    pub blocks_linked: usize,
    /// Files copied because a hard link failed (0 on one file system).
    pub files_copied: usize,
    /// Blocks written from the head (0 with `with_head == false` or an empty head).
    pub head_blocks: usize,
}

impl Db {
    /// Writes a snapshot named `name` to `<storage.path>/snapshots/<name>/`: every persisted
    /// block (hard-linked, with its tombstones) and, if `with_head`, the head's in-order and
    /// out-of-order samples with tombstones applied, as blocks aligned to the 2 h block range
    /// (the last one ends just after the head's newest sample). Blocks waiting to be
    /// quarantined after a failed read are left out, as queries skip them.
    ///
    /// `name` must be a plain directory name (no `/`, not starting with `.`, not ending with
    /// `.tmp`) that does not exist yet. Maintenance waits while the snapshot is written.
    pub fn snapshot(&self, name: &str, with_head: bool) -> Result<SnapshotReport, TsdbError> {
        self.check_open()?;
        if name.is_empty()
            || name.starts_with('.')
            || name.contains(['/', '\\', '\0'])
            || name.ends_with(TMP_SUFFIX)
        {
            return Err(TsdbError::Internal {
                detail: format!("invalid snapshot name {name:?}"),
            });
        }
        let root = self.path().join(filenames::SNAPSHOTS_DIR);
        fs::create_dir_all(&root).map_err(|e| TsdbError::io(&root, e))?;
        let dst = root.join(name);
        if dst.exists() {
            return Err(TsdbError::io(
                &dst,
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }
        let tmp = root.join(format!("{name}{TMP_SUFFIX}"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| TsdbError::io(&tmp, e))?;
        }
        let r = self.write_snapshot(&tmp, with_head).and_then(|mut report| {
            sync_dir(&tmp)?;
            fs::rename(&tmp, &dst).map_err(|e| TsdbError::io(&dst, e))?;
            sync_dir(&root)?;
            report.path = dst.clone();
            Ok(report)
        });
        match r {
            Ok(report) => {
                tracing::info!(snapshot = %dst.display(), blocks_linked = report.blocks_linked,
                    files_copied = report.files_copied, head_blocks = report.head_blocks,
                    "snapshot written");
                Ok(report)
            }
            Err(e) => {
                // Best effort: a leftover is also removed at the next start.
                let _ = fs::remove_dir_all(&tmp);
                tracing::error!(snapshot = %dst.display(), error = %e, "snapshot failed");
                Err(e)
            }
        }
    }

    /// Fills `dir` (a fresh `<name>.tmp`) with the blocks and the head, under the maintenance
    /// lock.
    fn write_snapshot(&self, dir: &Path, with_head: bool) -> Result<SnapshotReport, TsdbError> {
        let blocks_dir = dir.join(filenames::BLOCKS_DIR);
        fs::create_dir_all(&blocks_dir).map_err(|e| TsdbError::io(&blocks_dir, e))?;
        let mut report = SnapshotReport::default();
        // No cut, compaction, retention or tombstone change until the snapshot is complete.
        let _g = self.blocks.work.lock();
        let queue = self.blocks.quarantine_queue();
        for b in self.blocks.snapshot().iter() {
            let id = &b.meta().id;
            if queue.contains(id) {
                tracing::warn!(block = %id, "block failed a read and is not served; left out of the snapshot");
                continue;
            }
            self.check_open()?;
            report.files_copied += link_tree(b.dir(), &blocks_dir.join(id))?;
            report.blocks_linked += 1;
        }
        if with_head {
            report.head_blocks = self.snapshot_head(&blocks_dir)?;
        }
        sync_dir(&blocks_dir)?;
        Ok(report)
    }

    /// Writes the head's samples as blocks into `blocks_dir`, one per 2 h range it touches
    /// (caller holds the maintenance lock, so the head starts at its read floor and nothing
    /// below it is still in the head). Returns the number of blocks written.
    fn snapshot_head(&self, blocks_dir: &Path) -> Result<usize, TsdbError> {
        let head = &self.head;
        let hi = head.max_t.load(Ordering::SeqCst);
        let floor = head.read_floor.load(Ordering::SeqCst);
        let Some(lo) = head.min_time().map(|t| t.max(floor)) else {
            return Ok(0);
        };
        if hi == i64::MIN || lo > hi {
            return Ok(0);
        }
        let end = hi.saturating_add(1);
        let mut written = 0;
        let mut a = lo.div_euclid(BLOCK_RANGE_MS) * BLOCK_RANGE_MS;
        while a < end {
            self.check_open()?;
            let next = a.saturating_add(BLOCK_RANGE_MS);
            let id = block::new_block_id();
            if self
                .write_head_range(blocks_dir, &id, a.max(lo), next.min(end), floor)?
                .is_some()
            {
                written += 1;
            }
            a = next;
        }
        Ok(written)
    }
}

/// Recreates the directory tree `src` at `dst` (which must not exist) with hard links, copying
/// a file only where linking it fails (e.g. `EXDEV`). Files being written (`*.tmp`) are
/// skipped. Fsyncs the directories it creates (and the copies). Returns the files copied.
fn link_tree(src: &Path, dst: &Path) -> Result<usize, TsdbError> {
    fs::create_dir(dst).map_err(|e| TsdbError::io(dst, e))?;
    let mut copied = 0;
    let entries = fs::read_dir(src).map_err(|e| TsdbError::io(src, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| TsdbError::io(src, e))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| TsdbError::io(&from, e))?;
        if kind.is_dir() {
            copied += link_tree(&from, &to)?;
        } else if kind.is_file() && !entry.file_name().to_string_lossy().ends_with(TMP_SUFFIX) {
            if let Err(link_err) = fs::hard_link(&from, &to) {
                tracing::debug!(file = %from.display(), error = %link_err, "hard link failed; copying");
                fs::copy(&from, &to)
                    .and_then(|_| fs::File::open(&to)?.sync_all())
                    .map_err(|e| TsdbError::io(&to, e))?;
                copied += 1;
            }
        }
    }
    sync_dir(dst)?;
    Ok(copied)
}

/// Deletes every `snapshots/*.tmp` directory under the storage path `path` (snapshots whose
/// writing was interrupted); returns how many were removed. Called when the database opens.
pub(crate) fn remove_tmp_snapshots(path: &Path) -> Result<usize, TsdbError> {
    let root = path.join(filenames::SNAPSHOTS_DIR);
    let entries = match fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(TsdbError::io(&root, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| TsdbError::io(&root, e))?;
        let p = entry.path();
        if entry.file_name().to_string_lossy().ends_with(TMP_SUFFIX) && p.is_dir() {
            tracing::info!(dir = %p.display(), "removing an interrupted snapshot");
            fs::remove_dir_all(&p).map_err(|e| TsdbError::io(&p, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn link_tree_links_every_file_and_skips_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("b");
        fs::create_dir_all(src.join("chunks")).unwrap();
        fs::write(src.join("index"), b"i").unwrap();
        fs::write(src.join("chunks/000001"), b"c").unwrap();
        fs::write(src.join("tombstones.tmp"), b"half").unwrap();
        let dst = dir.path().join("s");
        assert_eq!(link_tree(&src, &dst).unwrap(), 0);
        for f in ["index", "chunks/000001"] {
            let (a, b) = (
                fs::metadata(src.join(f)).unwrap(),
                fs::metadata(dst.join(f)).unwrap(),
            );
            assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()), "{f} is a hard link");
        }
        assert!(!dst.join("tombstones.tmp").exists());
        // The destination must be new.
        assert!(link_tree(&src, &dst).is_err());
    }

    #[test]
    fn interrupted_snapshots_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(remove_tmp_snapshots(dir.path()).unwrap(), 0);
        let root = dir.path().join(filenames::SNAPSHOTS_DIR);
        fs::create_dir_all(root.join("20240101T000000Z-0000000000000001.tmp/blocks")).unwrap();
        fs::create_dir_all(root.join("20240101T000000Z-0000000000000002/blocks")).unwrap();
        assert_eq!(remove_tmp_snapshots(dir.path()).unwrap(), 1);
        let left: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, vec!["20240101T000000Z-0000000000000002".to_string()]);
    }
}
