//! End-to-end tests: write with [`Wal`], damage the files, read back with [`replay`].

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

fn opts(dir: &Path, segment_size: u64) -> WalOptions {
    WalOptions {
        dir: dir.to_path_buf(),
        segment_size,
        fsync: FsyncPolicy::Always,
    }
}

/// Deterministic payload of varying length (0..=40 bytes) so record boundaries move around.
fn payload(i: u64) -> Vec<u8> {
    let len = (i * 7 % 41) as usize;
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

fn rec_type(i: u64) -> u8 {
    (i % 255 + 1) as u8
}

fn write_records(wal: &Wal, range: std::ops::Range<u64>) {
    let mut last = Lsn(0);
    for i in range {
        last = wal.append(rec_type(i), &payload(i)).unwrap();
    }
    wal.commit(last).unwrap();
}

type Seen = Vec<(u32, u64, u8, Vec<u8>)>;

fn replay_all(dir: &Path, repair: bool) -> (Seen, ReplayReport) {
    let mut seen = Vec::new();
    let report = replay::<WalError>(dir, repair, |r| {
        seen.push((r.segment, r.offset, r.rec_type, r.payload.to_vec()));
        Ok(())
    })
    .unwrap();
    (seen, report)
}

fn assert_records(seen: &Seen, range: std::ops::Range<u64>) {
    let got: Vec<(u8, Vec<u8>)> = seen.iter().map(|s| (s.2, s.3.clone())).collect();
    let want: Vec<(u8, Vec<u8>)> = range.map(|i| (rec_type(i), payload(i))).collect();
    assert_eq!(got.len(), want.len(), "record count");
    assert_eq!(got, want);
}

fn segment_path(dir: &Path, index: u32) -> std::path::PathBuf {
    dir.join(format!("{index:08}"))
}

#[test]
fn round_trip_across_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(opts(dir.path(), 512)).unwrap();
    // Commit in small groups so batches are small and rotation happens often.
    for chunk in 0..100 {
        write_records(&wal, chunk * 10..chunk * 10 + 10);
    }
    let stats = wal.stats();
    wal.close().unwrap();
    assert!(stats.segments_created >= 10, "{stats:?}");
    assert_eq!(stats.records_written, 1000);

    let segments = list_segments(dir.path()).unwrap();
    assert_eq!(segments.len() as u64, stats.segments_created);
    for s in &segments[..segments.len() - 1] {
        assert!(s.size <= 512, "segment {} is {} bytes", s.index, s.size);
    }
    let (seen, report) = replay_all(dir.path(), true);
    assert!(report.corruptions.is_empty(), "{report:?}");
    assert_eq!(report.truncated, None);
    assert_eq!(report.records, 1000);
    assert_eq!(report.segments as usize, segments.len());
    assert_records(&seen, 0..1000);
    // Records carry the segment they came from, in order.
    assert!(seen.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
}

#[test]
fn oversized_batch_gets_its_own_segment() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(opts(dir.path(), 256)).unwrap();
    write_records(&wal, 0..1);
    let big = wal.append(1, &[9u8; 1000]).unwrap();
    wal.commit(big).unwrap();
    write_records(&wal, 1..2);
    wal.close().unwrap();
    let sizes: Vec<u64> = list_segments(dir.path())
        .unwrap()
        .iter()
        .map(|s| s.size)
        .collect();
    assert_eq!(sizes.len(), 3, "{sizes:?}");
    assert_eq!(sizes[1], 16 + 13 + 1000);
}

#[test]
fn concurrent_appenders_group_commit() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 2000;
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(opts(dir.path(), 64 << 10)).unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let wal = &wal;
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    let lsn = wal
                        .append_with(1 + t as u8, |buf| {
                            buf.extend_from_slice(&t.to_le_bytes());
                            buf.extend_from_slice(&i.to_le_bytes());
                        })
                        .unwrap();
                    wal.commit(lsn).unwrap();
                }
            });
        }
    });
    let stats = wal.stats();
    wal.close().unwrap();
    eprintln!("group commit: {stats:?}");
    assert_eq!(stats.commits, THREADS * PER_THREAD);
    assert_eq!(stats.records_written, THREADS * PER_THREAD);
    // Every commit can be covered by an earlier leader's fsync, never the reverse. How many
    // commits share an fsync under free-running threads depends on scheduling (5 per fsync
    // measured idle, under 3 on a loaded CI machine), so the grouping itself is checked
    // deterministically in `group_commit_covers_every_appended_record`.
    assert!(stats.fsyncs <= stats.commits, "{stats:?}");

    let mut next = [0u64; THREADS as usize];
    let report = replay::<WalError>(dir.path(), false, |r| {
        let t = u64::from_le_bytes(r.payload[0..8].try_into().unwrap());
        let i = u64::from_le_bytes(r.payload[8..16].try_into().unwrap());
        assert_eq!(r.rec_type as u64, t + 1);
        assert_eq!(next[t as usize], i, "thread {t} out of order");
        next[t as usize] += 1;
        Ok(())
    })
    .unwrap();
    assert!(report.corruptions.is_empty());
    assert_eq!(next, [PER_THREAD; THREADS as usize]);
}

#[test]
fn group_commit_covers_every_appended_record() {
    // THREADS appenders each append a record, wait until all have appended, then commit: the
    // first committer's fsync makes every record durable, so a round costs exactly one fsync
    // however the threads are scheduled. One fsync per commit would mean no group commit.
    const THREADS: usize = 8;
    const ROUNDS: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(opts(dir.path(), 64 << 10)).unwrap();
    let appended = std::sync::Barrier::new(THREADS);
    let committed = std::sync::Barrier::new(THREADS);
    for round in 0..ROUNDS {
        let before = wal.stats();
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (wal, appended, committed) = (&wal, &appended, &committed);
                s.spawn(move || {
                    let lsn = wal
                        .append_with(1 + t as u8, |buf| {
                            buf.extend_from_slice(&round.to_le_bytes())
                        })
                        .unwrap();
                    appended.wait();
                    wal.commit(lsn).unwrap();
                    committed.wait();
                });
            }
        });
        let after = wal.stats();
        assert_eq!(after.commits - before.commits, THREADS as u64);
        assert_eq!(
            after.fsyncs - before.fsyncs,
            1,
            "round {round}: one fsync must cover all {THREADS} appended records: {after:?}"
        );
    }
    wal.close().unwrap();
    let (seen, report) = replay_all(dir.path(), false);
    assert!(report.corruptions.is_empty());
    assert_eq!(seen.len(), THREADS * ROUNDS as usize);
}

#[test]
fn torn_tail_at_every_offset_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(opts(dir.path(), 1 << 20)).unwrap();
    write_records(&wal, 0..20);
    let good_end = wal.segments().unwrap()[0].size;
    let last = wal.append(7, b"the last record, torn").unwrap();
    wal.commit(last).unwrap();
    wal.close().unwrap();
    let path = segment_path(dir.path(), 1);
    let full = fs::read(&path).unwrap();

    for cut in good_end..full.len() as u64 {
        fs::write(&path, &full[..cut as usize]).unwrap();
        let (seen, report) = replay_all(dir.path(), true);
        assert_records(&seen, 0..20);
        if cut == good_end {
            assert!(report.corruptions.is_empty());
            continue;
        }
        assert_eq!(report.corruptions.len(), 1, "cut {cut}: {report:?}");
        let c = &report.corruptions[0];
        assert_eq!(c.kind, CorruptionKind::TornTail, "cut {cut}");
        assert_eq!((c.segment, c.offset), (1, good_end));
        assert_eq!(c.skipped_bytes, cut - good_end);
        assert_eq!(report.truncated, Some((1, good_end)));
        assert_eq!(fs::metadata(&path).unwrap().len(), good_end);
        // The repaired segment now reads clean.
        let (_, again) = replay_all(dir.path(), true);
        assert!(again.corruptions.is_empty());
    }
}

#[test]
fn torn_tail_without_repair_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(opts(dir.path(), 1 << 20)).unwrap();
    write_records(&wal, 0..5);
    wal.close().unwrap();
    let path = segment_path(dir.path(), 1);
    let len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let (seen, report) = replay_all(dir.path(), false);
    assert_records(&seen, 0..4);
    assert_eq!(report.corruptions[0].kind, CorruptionKind::TornTail);
    assert_eq!(report.truncated, None);
    assert_eq!(fs::metadata(&path).unwrap().len(), len - 3);
}

#[test]
fn torn_tail_in_older_segment_is_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(opts(dir.path(), 1 << 20)).unwrap();
    write_records(&wal, 0..5);
    wal.close().unwrap();
    let first = segment_path(dir.path(), 1);
    let mut f = OpenOptions::new().append(true).open(&first).unwrap();
    f.write_all(&[0xAB; 7]).unwrap();
    drop(f);
    let wal = Wal::open(opts(dir.path(), 1 << 20)).unwrap();
    write_records(&wal, 5..10);
    wal.close().unwrap();

    let before = fs::metadata(&first).unwrap().len();
    let (seen, report) = replay_all(dir.path(), true);
    assert_records(&seen, 0..10);
    assert_eq!(report.corruptions.len(), 1);
    assert_eq!(report.corruptions[0].kind, CorruptionKind::TornTail);
    assert_eq!(report.truncated, None);
    assert_eq!(fs::metadata(&first).unwrap().len(), before);
}

#[test]
fn mid_segment_bit_flips_are_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(opts(dir.path(), 1 << 20)).unwrap();
    write_records(&wal, 0..50);
    wal.close().unwrap();
    let path = segment_path(dir.path(), 1);
    let clean = fs::read(&path).unwrap();
    let (good, _) = replay_all(dir.path(), false);
    let offsets: Vec<u64> = good.iter().map(|s| s.1).collect();

    // Flip one bit in every byte of record 20 (header and payload) in turn.
    let (start, end) = (offsets[20], offsets[21]);
    for at in start..end {
        let mut bad = clean.clone();
        bad[at as usize] ^= 0x10;
        fs::write(&path, &bad).unwrap();
        let (seen, report) = replay_all(dir.path(), true);
        assert_eq!(report.corruptions.len(), 1, "flip at {at}: {report:?}");
        let c = &report.corruptions[0];
        assert_eq!(c.kind, CorruptionKind::MidSegment, "flip at {at}");
        assert_eq!((c.segment, c.offset), (1, start));
        assert_eq!(c.skipped_bytes, end - start);
        assert_eq!(
            report.truncated, None,
            "mid-segment damage must not truncate"
        );
        let got: Vec<u64> = seen.iter().map(|s| s.1).collect();
        let want: Vec<u64> = offsets.iter().copied().filter(|&o| o != start).collect();
        assert_eq!(got, want, "flip at {at}");
    }

    // Damage spanning several records: one report, everything after it still replays.
    let mut bad = clean.clone();
    for b in &mut bad[offsets[10] as usize + 3..offsets[13] as usize + 2] {
        *b = 0xFF;
    }
    fs::write(&path, &bad).unwrap();
    let (seen, report) = replay_all(dir.path(), false);
    assert_eq!(report.corruptions.len(), 1, "{report:?}");
    assert_eq!(report.corruptions[0].offset, offsets[10]);
    assert_eq!(
        report.corruptions[0].skipped_bytes,
        offsets[14] - offsets[10]
    );
    assert_eq!(seen.len(), 50 - 4);
    assert_eq!(seen.last().unwrap().3, payload(49));
}

#[test]
fn bad_header_skips_segment_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(opts(dir.path(), 256)).unwrap();
    for chunk in 0..10 {
        write_records(&wal, chunk * 10..chunk * 10 + 10);
    }
    wal.close().unwrap();
    let segments = list_segments(dir.path()).unwrap();
    assert!(segments.len() >= 3);
    let victim = &segments[1];
    let (in_victim, _) = {
        let mut n = 0;
        let r = read_segment::<WalError>(&victim.path, false, |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        (n, r)
    };
    let mut bytes = fs::read(&victim.path).unwrap();
    bytes[2] ^= 0xFF; // magic
    fs::write(&victim.path, &bytes).unwrap();

    let (seen, report) = replay_all(dir.path(), true);
    assert_eq!(report.corruptions.len(), 1);
    let c = &report.corruptions[0];
    assert_eq!(c.kind, CorruptionKind::BadHeader);
    assert_eq!((c.segment, c.offset), (victim.index, 0));
    assert_eq!(c.path, victim.path);
    assert!(matches!(
        c.to_error(),
        WalError::Corruption { offset: 0, .. }
    ));
    assert_eq!(seen.len(), 100 - in_victim);
    assert_eq!(seen.last().unwrap().3, payload(99));

    // A header that belongs to another segment (file copied over) is also a bad header.
    let other = fs::read(&segments[0].path).unwrap();
    fs::write(&victim.path, &other).unwrap();
    let (_, report) = replay_all(dir.path(), false);
    assert_eq!(report.corruptions[0].kind, CorruptionKind::BadHeader);
}

#[test]
fn unsupported_version_stops_replay() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(opts(dir.path(), 1 << 20)).unwrap();
    write_records(&wal, 0..3);
    wal.close().unwrap();
    let path = segment_path(dir.path(), 1);
    let mut bytes = fs::read(&path).unwrap();
    bytes[4] = 9;
    let crc = crc32c::crc32c(&bytes[0..12]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    let err = replay::<WalError>(dir.path(), true, |_| Ok(())).unwrap_err();
    assert!(
        matches!(err, WalError::UnsupportedVersion { version: 9, .. }),
        "{err:?}"
    );
}

#[test]
fn zero_filled_tail_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(opts(dir.path(), 1 << 20)).unwrap();
    write_records(&wal, 0..10);
    wal.close().unwrap();
    let path = segment_path(dir.path(), 1);
    let good_end = fs::metadata(&path).unwrap().len();
    // Like preallocated space, or a crash that extended the size before the data landed.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&vec![0u8; 64 << 10]).unwrap();
    drop(f);

    let (seen, report) = replay_all(dir.path(), true);
    assert_records(&seen, 0..10);
    assert_eq!(report.corruptions.len(), 1);
    assert_eq!(report.corruptions[0].kind, CorruptionKind::TornTail);
    assert_eq!(report.corruptions[0].offset, good_end);
    assert_eq!(report.corruptions[0].skipped_bytes, 64 << 10);
    assert_eq!(report.truncated, Some((1, good_end)));
    assert_eq!(fs::metadata(&path).unwrap().len(), good_end);
}

#[test]
fn empty_segments() {
    let dir = tempfile::tempdir().unwrap();
    // Header-only segments (opened and closed without records) are clean and empty.
    Wal::open(opts(dir.path(), 1 << 20))
        .unwrap()
        .close()
        .unwrap();
    Wal::open(opts(dir.path(), 1 << 20))
        .unwrap()
        .close()
        .unwrap();
    let (seen, report) = replay_all(dir.path(), true);
    assert!(seen.is_empty());
    assert_eq!(report.segments, 2);
    assert!(report.corruptions.is_empty());

    // A zero-length file cannot have come from the writer (it renames complete headers into
    // place) but must still be handled: bad header, skipped.
    fs::write(segment_path(dir.path(), 3), b"").unwrap();
    let (_, report) = replay_all(dir.path(), true);
    assert_eq!(report.corruptions.len(), 1);
    assert_eq!(report.corruptions[0].kind, CorruptionKind::BadHeader);
    assert_eq!(report.truncated, None);

    // No directory at all is an empty WAL.
    let (seen, report) = replay_all(&dir.path().join("missing"), true);
    assert!(seen.is_empty() && report == ReplayReport::default());
}

#[test]
fn reopen_after_torn_tail_starts_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(opts(dir.path(), 1 << 20)).unwrap();
    write_records(&wal, 0..10);
    let torn = wal.append(1, b"interrupted write").unwrap();
    wal.commit(torn).unwrap();
    drop(wal);
    let path = segment_path(dir.path(), 1);
    let len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    // Without replaying first: the torn segment is left as is, never appended to.
    let wal = Wal::open(opts(dir.path(), 1 << 20)).unwrap();
    assert_eq!(wal.stats().current_segment, 2);
    write_records(&wal, 10..20);
    wal.close().unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), len - 5);

    let (seen, report) = replay_all(dir.path(), true);
    assert_eq!(report.corruptions.len(), 1);
    assert_eq!(report.corruptions[0].kind, CorruptionKind::TornTail);
    assert_eq!(report.corruptions[0].segment, 1);
    assert_eq!(seen.len(), 20);
    assert_records(&seen, 0..20);
}

#[test]
fn interval_policy_commits_without_fsync_and_syncs_in_background() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path(), 1 << 20);
    o.fsync = FsyncPolicy::Interval(Duration::from_millis(20));
    let wal = Wal::open(o).unwrap();
    for i in 0..100 {
        let lsn = wal.append(1, &payload(i)).unwrap();
        wal.commit(lsn).unwrap();
    }
    // Committed means written: visible to a reader without any sync.
    let (seen, _) = replay_all(dir.path(), false);
    assert_eq!(seen.len(), 100);

    // Appended but never committed: the syncer writes it within an interval or so.
    wal.append(1, b"uncommitted").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while wal.stats().pending_bytes > 0 || wal.stats().fsyncs == 0 {
        assert!(
            Instant::now() < deadline,
            "syncer never ran: {:?}",
            wal.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = wal.stats();
    assert!(
        stats.fsyncs < 50,
        "interval policy fsynced per commit: {stats:?}"
    );
    wal.close().unwrap();
    let (seen, report) = replay_all(dir.path(), true);
    assert_eq!(seen.len(), 101);
    assert!(report.corruptions.is_empty());
}

#[test]
fn cut_and_remove_segments() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(opts(dir.path(), 1 << 20)).unwrap();
    write_records(&wal, 0..10);
    // Appended, not committed: cut_segment must still put it before the cut.
    wal.append(rec_type(10), &payload(10)).unwrap();
    let cut = wal.cut_segment().unwrap();
    assert_eq!(cut, 2);
    write_records(&wal, 11..20);
    assert_eq!(wal.cut_segment().unwrap(), 3);
    write_records(&wal, 20..30);

    let (seen, _) = replay_all(dir.path(), false);
    let in_first: Vec<u32> = seen.iter().take(11).map(|s| s.0).collect();
    assert_eq!(in_first, [1; 11]);
    assert!(seen[11..20].iter().all(|s| s.0 == 2));

    assert_eq!(wal.remove_segments_before(cut).unwrap(), 1);
    assert_eq!(wal.remove_segments_before(cut).unwrap(), 0);
    let idx: Vec<u32> = wal.segments().unwrap().iter().map(|s| s.index).collect();
    assert_eq!(idx, [2, 3]);
    // Never removes the segment being written.
    assert_eq!(wal.remove_segments_before(u32::MAX).unwrap(), 1);
    let idx: Vec<u32> = wal.segments().unwrap().iter().map(|s| s.index).collect();
    assert_eq!(idx, [3]);
    write_records(&wal, 30..31);
    wal.close().unwrap();
    let (seen, report) = replay_all(dir.path(), true);
    assert!(report.corruptions.is_empty());
    assert_records(&seen, 20..31);
}

#[test]
fn visitor_error_stops_replay() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(opts(dir.path(), 1 << 20)).unwrap();
    write_records(&wal, 0..10);
    wal.close().unwrap();
    let mut n = 0;
    let err = replay(dir.path(), false, |_| {
        n += 1;
        if n == 3 {
            Err(WalError::InvalidRecordType)
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert!(matches!(err, WalError::InvalidRecordType));
    assert_eq!(n, 3);
}

/// Throughput check, not a benchmark: `cargo test --release -- --ignored --nocapture wal_throughput`.
#[test]
#[ignore]
fn wal_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let threads = 8u64;
    let per_thread = 20_000u64;
    let payload = [0x42u8; 100];
    for policy in [
        FsyncPolicy::Always,
        FsyncPolicy::Interval(Duration::from_millis(100)),
    ] {
        let sub = dir.path().join(format!("{policy:?}"));
        let mut o = opts(&sub, 8 << 20);
        o.fsync = policy;
        let wal = Wal::open(o).unwrap();
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                let wal = &wal;
                s.spawn(move || {
                    for _ in 0..per_thread {
                        let lsn = wal.append(1, &payload).unwrap();
                        wal.commit(lsn).unwrap();
                    }
                });
            }
        });
        let secs = start.elapsed().as_secs_f64();
        let stats = wal.stats();
        wal.close().unwrap();
        println!(
            "{policy:?}: {threads} threads x {per_thread} commits of 100 B: {:.0} commits/s, \
             {} fsyncs ({:.1} commits/fsync), {} batches, {} segments",
            stats.commits as f64 / secs,
            stats.fsyncs,
            stats.commits as f64 / stats.fsyncs.max(1) as f64,
            stats.write_batches,
            stats.segments_created,
        );
        let start = Instant::now();
        let report = replay::<WalError>(&sub, false, |_| Ok(())).unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "replay: {} records, {:.1} MB in {:.3}s = {:.0} MB/s, {:.1} M records/s",
            report.records,
            report.bytes as f64 / 1e6,
            secs,
            report.bytes as f64 / 1e6 / secs,
            report.records as f64 / 1e6 / secs,
        );
    }
    // Resync speed through a fully garbage segment (worst case for the byte-by-byte scan).
    let garbage_dir = dir.path().join("garbage");
    let wal = Wal::open(opts(&garbage_dir, 64 << 20)).unwrap();
    write_records(&wal, 0..1);
    wal.close().unwrap();
    let path = segment_path(&garbage_dir, 1);
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..(32 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    f.write_all(&noise).unwrap();
    drop(f);
    let start = Instant::now();
    let report = replay::<WalError>(&garbage_dir, false, |_| Ok(())).unwrap();
    println!(
        "resync through 32 MiB of random bytes: {:.3}s, {:?}",
        start.elapsed().as_secs_f64(),
        report
            .corruptions
            .iter()
            .map(|c| c.kind)
            .collect::<Vec<_>>()
    );
}

/// Version-1 segment 1 holding `(1, "hello")`, `(200, "")` and `(255, 00 11 .. ff)`, built from
/// docs/format/wal.md by an independent implementation (not by this code). Never change it:
/// it pins that released files stay readable and that the writer's bytes do not drift.
const V1_FIXTURE_HEX: &str = "4857414c01000000010000008970a4d005000000014cbb719a3289ca1268656c\
                              6c6f00000000c800000000c0dc712710000000ff82e9df48a65d9da400112233\
                              445566778899aabbccddeeff";

fn v1_fixture() -> Vec<u8> {
    (0..V1_FIXTURE_HEX.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&V1_FIXTURE_HEX[i..i + 2], 16).unwrap())
        .collect()
}

fn v1_records() -> Vec<(u8, Vec<u8>)> {
    vec![
        (1, b"hello".to_vec()),
        (200, Vec::new()),
        (255, (0..=255).step_by(17).collect()),
    ]
}

#[test]
fn reads_v1_fixture() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(segment_path(dir.path(), 1), v1_fixture()).unwrap();
    let (seen, report) = replay_all(dir.path(), true);
    assert!(report.corruptions.is_empty(), "{report:?}");
    let got: Vec<(u8, Vec<u8>)> = seen.into_iter().map(|s| (s.2, s.3)).collect();
    assert_eq!(got, v1_records());
}

#[test]
fn writer_output_matches_v1_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(opts(dir.path(), 1 << 20)).unwrap();
    for (t, p) in v1_records() {
        wal.append(t, &p).unwrap();
    }
    wal.close().unwrap();
    assert_eq!(fs::read(segment_path(dir.path(), 1)).unwrap(), v1_fixture());
}
