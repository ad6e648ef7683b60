//! The appending side: pending buffer, leader-based group commit, rotation, background sync.
//!
//! Locks, always taken in the order `leader` → `io` → `pending` (`leader` is never held while
//! waiting for another lock):
//! * `pending` guards the in-memory buffer of framed records. Appenders hold it only to frame
//!   one record; the commit leader holds it only to swap the buffer out.
//! * `io` is held by the one thread doing `write`/`fdatasync`/rotation. Appenders never take
//!   it, so they keep encoding while a leader waits on the disk, and their records form the
//!   next leader's batch.
//! * `leader` (+ `leader_done`) elects the committer that does the I/O. Followers wait on the
//!   condvar rather than queueing on `io`: queued on a mutex, a follower whose record the
//!   leader already synced would only find out after also waiting out the *next* leader's
//!   fsync (the next leader barges in first), which in a measurement here cut batches to ~2
//!   records. On the condvar every covered follower returns as soon as the leader publishes.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::segment::{self, SegmentRef, HEADER_LEN};
use super::{frame, FsyncPolicy, Lsn, WalError, WalOptions, WalStats, MIN_SEGMENT_SIZE};

/// A write batch buffer that grew past this (a burst) is freed after its write instead of
/// being kept as the spare, so one burst does not pin memory forever.
const SPARE_KEEP_CAPACITY: usize = 4 << 20;

/// An open write-ahead log. `Send + Sync`: share it by reference or `Arc` between appenders.
pub struct Wal {
    shared: Arc<Shared>,
    /// Present only with [`FsyncPolicy::Interval`].
    syncer: Option<Syncer>,
}

struct Shared {
    // Fixed after construction.
    dir: PathBuf,
    segment_size: u64,
    policy: FsyncPolicy,

    pending: Mutex<Pending>,
    io: Mutex<IoState>,
    /// True while a committer is leader (doing or waiting for I/O on behalf of others).
    leader: Mutex<bool>,
    /// Notified whenever a leader steps down, after it published the new LSNs.
    leader_done: Condvar,

    /// Highest LSN handed to `write`. Only grows; stored by the `io` holder.
    written: AtomicU64,
    /// Highest LSN such that it and every earlier record are fdatasync'ed. Only grows.
    synced: AtomicU64,
    /// Highest LSN returned by `append`; stored under `pending`.
    assigned: AtomicU64,
    /// Set by the first failed write/sync/rotation and never cleared: see the module docs of
    /// `wal` for why the WAL stops rather than retrying.
    failure: OnceLock<Failure>,
    counters: Counters,
}

struct Pending {
    /// Framed records in LSN order, not yet handed to `write`.
    buf: Vec<u8>,
    /// Number of records in `buf`.
    records: u64,
    /// LSN the next append gets; the last record in `buf` is `next_lsn - 1`.
    next_lsn: u64,
}

struct IoState {
    /// Shared with the background syncer, which fdatasyncs without holding `io`.
    file: Arc<File>,
    path: PathBuf,
    index: u32,
    /// Bytes in the current segment, header included.
    size: u64,
    /// Prefix of the current segment known to be fdatasync'ed.
    synced_size: u64,
    /// The previous batch buffer, swapped with `Pending::buf` so neither side reallocates.
    spare: Vec<u8>,
}

struct Failure {
    path: PathBuf,
    source: Arc<io::Error>,
}

#[derive(Default)]
struct Counters {
    bytes_written: AtomicU64,
    records_written: AtomicU64,
    commits: AtomicU64,
    write_batches: AtomicU64,
    fsyncs: AtomicU64,
    segments_created: AtomicU64,
    current_segment: AtomicU32,
    pending_bytes: AtomicU64,
}

struct Syncer {
    /// Dropping it wakes the thread and makes it exit.
    stop: mpsc::Sender<()>,
    handle: JoinHandle<()>,
}

/// Cuts `buf` back to `len` when dropped armed, so an `append_with` encoder that panics (or a
/// record that turns out too large) never leaves a half-framed record in the pending buffer;
/// parking_lot mutexes do not poison, so nothing else would notice.
struct TruncateOnDrop<'a> {
    buf: &'a mut Vec<u8>,
    len: usize,
    armed: bool,
}

/// Ends a commit leadership and wakes the followers, also when the leader's I/O panics (a
/// leader flag left set would hang every later commit).
struct StepDown<'a>(&'a Shared);

impl Drop for StepDown<'_> {
    fn drop(&mut self) {
        *self.0.leader.lock() = false;
        self.0.leader_done.notify_all();
    }
}

impl Drop for TruncateOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.buf.truncate(self.len);
        }
    }
}

impl Wal {
    /// Opens the WAL in `opts.dir`, creating the directory if needed, and starts a new segment
    /// after the highest existing one. Existing segments are left untouched; replay them (with
    /// [`super::replay`]) before opening.
    pub fn open(opts: WalOptions) -> Result<Wal, WalError> {
        if opts.segment_size < MIN_SEGMENT_SIZE {
            return Err(WalError::InvalidOptions {
                detail: "segment_size is below MIN_SEGMENT_SIZE",
            });
        }
        if opts.fsync == FsyncPolicy::Interval(Duration::ZERO) {
            return Err(WalError::InvalidOptions {
                detail: "FsyncPolicy::Interval needs a non-zero interval",
            });
        }
        segment::prepare_dir(&opts.dir)?;
        let index = match segment::list_segments(&opts.dir)?.last() {
            Some(last) => segment::next_index(last.index)?,
            None => 1,
        };
        let (file, path) = segment::create(&opts.dir, index)?;
        let counters = Counters::default();
        counters.segments_created.store(1, Ordering::Relaxed);
        counters.current_segment.store(index, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            dir: opts.dir,
            segment_size: opts.segment_size,
            policy: opts.fsync,
            pending: Mutex::new(Pending {
                buf: Vec::new(),
                records: 0,
                next_lsn: 1,
            }),
            io: Mutex::new(IoState {
                file: Arc::new(file),
                path,
                index,
                size: HEADER_LEN as u64,
                synced_size: HEADER_LEN as u64,
                spare: Vec::new(),
            }),
            leader: Mutex::new(false),
            leader_done: Condvar::new(),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            assigned: AtomicU64::new(0),
            failure: OnceLock::new(),
            counters,
        });
        let syncer = match shared.policy {
            FsyncPolicy::Always => None,
            FsyncPolicy::Interval(every) => Some(Syncer::spawn(Arc::clone(&shared), every)?),
        };
        tracing::debug!(dir = %shared.dir.display(), segment = index, "opened WAL");
        Ok(Wal { shared, syncer })
    }

    /// Buffers one record and returns its LSN. Does no I/O: call [`Wal::commit`] to make it
    /// durable. `rec_type` must be non-zero.
    pub fn append(&self, rec_type: u8, payload: &[u8]) -> Result<Lsn, WalError> {
        if payload.len() > frame::MAX_PAYLOAD_LEN {
            return Err(WalError::RecordTooLarge {
                len: payload.len(),
                max: frame::MAX_PAYLOAD_LEN,
            });
        }
        self.append_with(rec_type, |buf| buf.extend_from_slice(payload))
    }

    /// Like [`Wal::append`], but `encode` appends the payload straight into the pending buffer
    /// (no intermediate copy).
    ///
    /// `encode` runs under the pending-buffer mutex, which every appender needs: keep it to
    /// plain encoding (no I/O, no locks, no WAL calls). It must only append to the `Vec` it is
    /// given; the bytes already in it belong to other records.
    pub fn append_with(
        &self,
        rec_type: u8,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Lsn, WalError> {
        if rec_type == 0 {
            return Err(WalError::InvalidRecordType);
        }
        let shared = &*self.shared;
        shared.check_failed()?;
        let mut pending = shared.pending.lock();
        let pending = &mut *pending;
        let start = frame::begin(&mut pending.buf);
        let mut guard = TruncateOnDrop {
            buf: &mut pending.buf,
            len: start,
            armed: true,
        };
        encode(guard.buf);
        assert!(
            guard.buf.len() >= start + frame::RECORD_HEADER_LEN,
            "BUG: append_with encoder removed bytes from the WAL buffer"
        );
        frame::finish(guard.buf, start, rec_type)?;
        guard.armed = false;
        drop(guard);

        let lsn = pending.next_lsn;
        pending.next_lsn += 1;
        pending.records += 1;
        shared.assigned.store(lsn, Ordering::Release);
        shared
            .counters
            .pending_bytes
            .store(pending.buf.len() as u64, Ordering::Relaxed);
        Ok(Lsn(lsn))
    }

    /// Returns once the record `lsn` and all earlier ones are written to the segment file and,
    /// with [`FsyncPolicy::Always`], fdatasync'ed.
    ///
    /// Fails with the I/O error if this call's batch failed, or with [`WalError::Failed`] if the
    /// record was lost in an earlier failed batch (or appended after it).
    pub fn commit(&self, lsn: Lsn) -> Result<(), WalError> {
        let shared = &*self.shared;
        shared.counters.commits.fetch_add(1, Ordering::Relaxed);
        if shared.is_committed(lsn) {
            return Ok(());
        }
        let last = shared.assigned.load(Ordering::Acquire);
        if lsn.0 > last {
            return Err(WalError::UnknownLsn { lsn: lsn.0, last });
        }
        let mut busy = shared.leader.lock();
        loop {
            // The leader we waited for may have written our record with its batch.
            if shared.is_committed(lsn) {
                return Ok(());
            }
            shared.check_failed()?;
            if !*busy {
                break;
            }
            shared.leader_done.wait(&mut busy);
        }
        *busy = true;
        drop(busy);
        let _step_down = StepDown(shared);
        let mut io = shared.io.lock();
        // sync(), cut_segment() or the syncer may have flushed it while we waited for `io`.
        if shared.is_committed(lsn) {
            return Ok(());
        }
        shared.check_failed()?;
        shared.flush(&mut io, shared.policy == FsyncPolicy::Always)
    }

    /// Writes and fdatasyncs everything appended so far, whatever the policy. For graceful
    /// shutdown and tests.
    pub fn sync(&self) -> Result<(), WalError> {
        let shared = &*self.shared;
        let mut io = shared.io.lock();
        shared.check_failed()?;
        shared.flush(&mut io, true)
    }

    /// [`Wal::sync`]s and stops the background syncer. Dropping a `Wal` without `close` loses
    /// records that were appended but never committed, and with [`FsyncPolicy::Interval`]
    /// leaves the last interval to the kernel's writeback.
    pub fn close(self) -> Result<(), WalError> {
        self.sync()
    }

    /// Counters since open; cheap (relaxed atomic loads).
    pub fn stats(&self) -> WalStats {
        let c = &self.shared.counters;
        WalStats {
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            records_written: c.records_written.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            write_batches: c.write_batches.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            segments_created: c.segments_created.load(Ordering::Relaxed),
            current_segment: c.current_segment.load(Ordering::Relaxed),
            pending_bytes: c.pending_bytes.load(Ordering::Relaxed),
        }
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Segment files currently in the directory, by index (the last one is being written).
    pub fn segments(&self) -> Result<Vec<SegmentRef>, WalError> {
        segment::list_segments(&self.shared.dir)
    }

    /// Writes everything appended so far into the current segment, makes it durable, and
    /// starts the next segment, whose index is returned. Every record whose `append` returned
    /// before this call lives in a segment with a lower index.
    pub fn cut_segment(&self) -> Result<u32, WalError> {
        let shared = &*self.shared;
        let mut io = shared.io.lock();
        shared.check_failed()?;
        shared.flush(&mut io, false)?;
        shared.rotate(&mut io)?;
        Ok(io.index)
    }

    /// Deletes the segments with an index below `index` (never the one being written) in
    /// ascending order, so a crash part-way leaves no gap. Returns how many were removed.
    pub fn remove_segments_before(&self, index: u32) -> Result<usize, WalError> {
        let shared = &*self.shared;
        // The current index only grows and segments below it are never written again, so no
        // lock is needed while unlinking.
        let current = shared.counters.current_segment.load(Ordering::Acquire);
        let limit = index.min(current);
        let mut removed = 0;
        for seg in segment::list_segments(&shared.dir)? {
            if seg.index >= limit {
                break;
            }
            std::fs::remove_file(&seg.path).map_err(|e| WalError::io(&seg.path, e))?;
            removed += 1;
        }
        if removed > 0 {
            segment::sync_dir(&shared.dir)?;
            tracing::debug!(removed, before = limit, "removed WAL segments");
        }
        Ok(removed)
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if let Some(Syncer { stop, handle }) = self.syncer.take() {
            drop(stop);
            if handle.join().is_err() {
                tracing::error!("BUG: WAL sync thread panicked");
            }
        }
    }
}

impl Shared {
    fn is_committed(&self, lsn: Lsn) -> bool {
        let mark = match self.policy {
            FsyncPolicy::Always => &self.synced,
            FsyncPolicy::Interval(_) => &self.written,
        };
        mark.load(Ordering::Acquire) >= lsn.0
    }

    fn check_failed(&self) -> Result<(), WalError> {
        match self.failure.get() {
            None => Ok(()),
            Some(f) => Err(WalError::Failed {
                path: f.path.clone(),
                source: Arc::clone(&f.source),
            }),
        }
    }

    /// Records the first failure, logs it, and passes `err` on to the caller that hit it.
    fn poison(&self, err: WalError) -> WalError {
        let (path, source) = match &err {
            // io::Error is not Clone; the other committers get its kind and message.
            WalError::Io { path, source } => (
                path.clone(),
                io::Error::new(source.kind(), source.to_string()),
            ),
            other => (self.dir.clone(), io::Error::other(other.to_string())),
        };
        tracing::error!(error = %err, "WAL write failed; refusing further appends");
        let _ = self.failure.set(Failure {
            path,
            source: Arc::new(source),
        });
        err
    }

    /// Leader step: takes the whole pending buffer, writes it with one `write` (rotating first
    /// if it would overflow the segment), optionally fdatasyncs, and publishes the LSNs.
    fn flush(&self, io: &mut IoState, sync: bool) -> Result<(), WalError> {
        let mut batch = std::mem::take(&mut io.spare);
        let (last_lsn, records) = {
            let mut pending = self.pending.lock();
            std::mem::swap(&mut pending.buf, &mut batch);
            self.counters.pending_bytes.store(0, Ordering::Relaxed);
            (pending.next_lsn - 1, std::mem::take(&mut pending.records))
        };
        let written = self.write_batch(io, &batch, records);
        batch.clear();
        if batch.capacity() > SPARE_KEEP_CAPACITY {
            batch = Vec::new();
        }
        io.spare = batch;
        written?;
        self.written.fetch_max(last_lsn, Ordering::Release);
        if sync {
            self.sync_current(io)?;
            // Earlier segments were synced when rotated away from.
            self.synced.fetch_max(last_lsn, Ordering::Release);
        }
        Ok(())
    }

    fn write_batch(&self, io: &mut IoState, batch: &[u8], records: u64) -> Result<(), WalError> {
        if batch.is_empty() {
            return Ok(());
        }
        let len = batch.len() as u64;
        // Rotate before the write, so a segment only exceeds segment_size when one batch alone
        // is larger than that (it then fills a fresh segment by itself).
        if io.size > HEADER_LEN as u64 && io.size + len > self.segment_size {
            self.rotate(io)?;
        }
        if let Err(e) = (&*io.file).write_all(batch) {
            return Err(self.poison(WalError::io(&io.path, e)));
        }
        io.size += len;
        let c = &self.counters;
        c.bytes_written.fetch_add(len, Ordering::Relaxed);
        c.records_written.fetch_add(records, Ordering::Relaxed);
        c.write_batches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn sync_current(&self, io: &mut IoState) -> Result<(), WalError> {
        if io.synced_size >= io.size {
            return Ok(());
        }
        if let Err(e) = io.file.sync_data() {
            // After a failed fsync the kernel may have dropped the dirty pages; retrying would
            // report success for data that is gone. Hence poison, never retry.
            return Err(self.poison(WalError::io(&io.path, e)));
        }
        io.synced_size = io.size;
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Closes the current segment durably and creates the next.
    fn rotate(&self, io: &mut IoState) -> Result<(), WalError> {
        // With Interval the old segment may have unsynced writes, and the syncer only ever
        // syncs the current file: sync it now so the one-interval loss bound still holds.
        self.sync_current(io)?;
        self.synced
            .fetch_max(self.written.load(Ordering::Acquire), Ordering::Release);
        let next = segment::next_index(io.index).map_err(|e| self.poison(e))?;
        let (file, path) = segment::create(&self.dir, next).map_err(|e| self.poison(e))?;
        io.file = Arc::new(file);
        io.path = path;
        io.index = next;
        io.size = HEADER_LEN as u64;
        io.synced_size = HEADER_LEN as u64;
        self.counters
            .segments_created
            .fetch_add(1, Ordering::Relaxed);
        self.counters.current_segment.store(next, Ordering::Release);
        Ok(())
    }

    /// One round of the Interval syncer: write what is pending, then fdatasync *without*
    /// holding `io`, so committers (who only need `write`) are not stalled behind the disk.
    fn background_sync(&self) -> Result<(), WalError> {
        let (file, path, index, size, lsn) = {
            let mut io = self.io.lock();
            self.check_failed()?;
            self.flush(&mut io, false)?;
            let lsn = self.written.load(Ordering::Acquire);
            if io.synced_size >= io.size {
                self.synced.fetch_max(lsn, Ordering::Release);
                return Ok(());
            }
            (
                Arc::clone(&io.file),
                io.path.clone(),
                io.index,
                io.size,
                lsn,
            )
        };
        if let Err(e) = file.sync_data() {
            return Err(self.poison(WalError::io(path, e)));
        }
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        let mut io = self.io.lock();
        if io.index == index {
            io.synced_size = io.synced_size.max(size);
        }
        drop(io);
        self.synced.fetch_max(lsn, Ordering::Release);
        Ok(())
    }
}

impl Syncer {
    fn spawn(shared: Arc<Shared>, every: Duration) -> Result<Syncer, WalError> {
        let (stop, wake) = mpsc::channel::<()>();
        let dir = shared.dir.clone();
        let handle = std::thread::Builder::new()
            .name("hearth-wal-sync".into())
            .spawn(move || loop {
                match wake.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                // The failure is recorded and returned to every later committer; nothing
                // more for this thread to do.
                if shared.background_sync().is_err() {
                    return;
                }
            })
            .map_err(|e| WalError::io(dir, e))?;
        Ok(Syncer { stop, handle })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path) -> WalOptions {
        WalOptions {
            dir: dir.to_path_buf(),
            segment_size: 1024,
            fsync: FsyncPolicy::Always,
        }
    }

    #[test]
    fn rejects_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        o.segment_size = 10;
        assert!(matches!(Wal::open(o), Err(WalError::InvalidOptions { .. })));
        let mut o = opts(dir.path());
        o.fsync = FsyncPolicy::Interval(Duration::ZERO);
        assert!(matches!(Wal::open(o), Err(WalError::InvalidOptions { .. })));

        let wal = Wal::open(opts(dir.path())).unwrap();
        assert!(matches!(
            wal.append(0, b"x"),
            Err(WalError::InvalidRecordType)
        ));
        assert!(matches!(
            wal.commit(Lsn(1)),
            Err(WalError::UnknownLsn { lsn: 1, last: 0 })
        ));
        wal.commit(Lsn(0)).unwrap();
    }

    #[test]
    fn lsns_increase_and_commit_covers_earlier_records() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(opts(dir.path())).unwrap();
        let a = wal.append(1, b"a").unwrap();
        let b = wal
            .append_with(2, |buf| buf.extend_from_slice(b"bb"))
            .unwrap();
        assert_eq!((a, b), (Lsn(1), Lsn(2)));
        assert_eq!(wal.stats().pending_bytes, 2 * 13 + 3);
        wal.commit(b).unwrap();
        wal.commit(a).unwrap();
        let s = wal.stats();
        assert_eq!(s.records_written, 2);
        assert_eq!(s.write_batches, 1);
        assert_eq!(s.fsyncs, 1);
        assert_eq!(s.pending_bytes, 0);
        assert_eq!(s.bytes_written, 2 * 13 + 3);
    }

    #[test]
    fn panicking_encoder_leaves_no_partial_record() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(opts(dir.path())).unwrap();
        wal.append(1, b"before").unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wal.append_with(1, |buf| {
                buf.extend_from_slice(b"half");
                panic!("encoder failed");
            })
        }));
        assert!(r.is_err());
        let last = wal.append(1, b"after").unwrap();
        assert_eq!(last, Lsn(2));
        wal.commit(last).unwrap();
        let mut seen = Vec::new();
        let report = super::super::replay::<WalError>(dir.path(), false, |r| {
            seen.push(r.payload.to_vec());
            Ok(())
        })
        .unwrap();
        assert!(report.corruptions.is_empty());
        assert_eq!(seen, [b"before".to_vec(), b"after".to_vec()]);
    }

    #[test]
    fn oversized_record_is_refused_without_damage() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(opts(dir.path())).unwrap();
        let big = frame::MAX_PAYLOAD_LEN + 1;
        assert!(matches!(
            wal.append_with(1, |buf| buf.resize(buf.len() + big, 7)),
            Err(WalError::RecordTooLarge { .. })
        ));
        assert_eq!(wal.stats().pending_bytes, 0);
        let lsn = wal.append(1, b"ok").unwrap();
        assert_eq!(lsn, Lsn(1));
        wal.commit(lsn).unwrap();
    }

    #[test]
    fn failed_write_is_reported_to_committers_and_poisons() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(opts(dir.path())).unwrap();
        let ok = wal.append(1, b"durable").unwrap();
        wal.commit(ok).unwrap();
        // Swap the segment handle for a read-only one so the next write fails with EBADF.
        {
            let mut io = wal.shared.io.lock();
            io.file = Arc::new(File::open(&io.path).unwrap());
        }
        let a = wal.append(1, b"lost-a").unwrap();
        let b = wal.append(1, b"lost-b").unwrap();
        assert!(matches!(wal.commit(b), Err(WalError::Io { .. })));
        // The other record of the failed batch gets an error too, not a silent Ok.
        assert!(matches!(wal.commit(a), Err(WalError::Failed { .. })));
        // Records made durable before the failure still report success.
        wal.commit(ok).unwrap();
        assert!(matches!(wal.append(1, b"x"), Err(WalError::Failed { .. })));
        assert!(matches!(wal.sync(), Err(WalError::Failed { .. })));
    }
}
