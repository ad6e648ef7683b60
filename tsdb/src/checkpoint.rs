//! WAL checkpoints (`docs/format/wal.md`, "Checkpointing").
//!
//! Once head data before `T` is persisted in a block and the head truncated there, the log
//! segments written so far hold nothing the head still needs except what is also in memory.
//! [`write`] cuts the log (every earlier record is in a lower-numbered segment), writes the
//! head's remaining content — a series record for every live series and its samples at or
//! after `T` — into `wal/checkpoint.NNNNNNNN` (the number of the last segment it replaces),
//! and then deletes the replaced segments and older checkpoints. The checkpoint is written
//! into `checkpoint.NNNNNNNN.tmp`, fsynced and renamed, so a crash leaves either the old
//! segments or a complete checkpoint (plus, possibly, segments it replaced: replay skips
//! segments numbered at or below the checkpoint's). Samples appended while the checkpoint is
//! written may appear in both it and a newer segment; replay treats the second copy as the
//! exact duplicate it is.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::record;
use crate::wal::{self, FsyncPolicy, Wal, WalOptions};
use crate::{Db, TsdbError};

const PREFIX: &str = "checkpoint.";
/// Samples per samples record (type 4) in a checkpoint. A series' samples are consecutive, so
/// each record holds a few long runs.
const SAMPLES_PER_RECORD: usize = 64 * 1024;

/// `checkpoint.NNNNNNNN` for the last segment index it covers.
pub(crate) fn dir_name(last_segment: u32) -> String {
    format!("{PREFIX}{:08}", last_segment)
}

/// Complete checkpoints in `wal_dir`, oldest first. Leftover `.tmp` directories (a crash while
/// writing one) are deleted.
pub(crate) fn list(wal_dir: &Path) -> Result<Vec<(u32, PathBuf)>, TsdbError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(wal_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(TsdbError::io(wal_dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| TsdbError::io(wal_dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if rest.ends_with(crate::filenames::TMP_SUFFIX) {
            let p = entry.path();
            fs::remove_dir_all(&p).map_err(|e| TsdbError::io(&p, e))?;
            continue;
        }
        if let Ok(n) = rest.parse::<u32>() {
            out.push((n, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// What [`write`] did.
#[derive(Debug, Clone, Default)]
pub struct CheckpointStats {
    pub series: u64,
    pub samples: u64,
    pub segments_removed: usize,
    pub duration: Duration,
}

/// Writes a checkpoint of the head's content at or after `min_t` and drops the segments it
/// replaces. Call after the head was truncated at `min_t`.
pub(crate) fn write(db: &Db, min_t: i64) -> Result<CheckpointStats, TsdbError> {
    let start = std::time::Instant::now();
    let wal_dir = db.wal.dir().to_path_buf();
    // No series may be half-created across the cut (record logged before it, series
    // published after the checkpoint listed the head's series).
    let next = {
        let _g = db.head.creation.write();
        db.wal.cut_segment()?
    };
    let last = next - 1;
    let final_dir = wal_dir.join(dir_name(last));
    let tmp = wal_dir.join(format!(
        "{}{}",
        dir_name(last),
        crate::filenames::TMP_SUFFIX
    ));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| TsdbError::io(&tmp, e))?;
    }
    let mut stats = CheckpointStats::default();
    {
        let cp = Wal::open(WalOptions {
            dir: tmp.clone(),
            segment_size: wal::DEFAULT_SEGMENT_SIZE,
            // One explicit sync at the end (close) makes the whole checkpoint durable.
            fsync: FsyncPolicy::Interval(Duration::from_secs(3600)),
        })?;
        // Every series of the head, with or without samples: one created by an appender
        // whose batch is not committed yet has its series record in a replaced segment and
        // its samples in a later one.
        let head = &db.head;
        for id in head.postings.all().iter() {
            let Some(s) = head.by_id(id) else { continue };
            if s.id != id {
                continue;
            }
            let labels = head.labels_of(&s);
            cp.append_with(record::REC_SERIES, |buf| {
                record::encode_series_entry(buf, id, labels.iter())
            })?;
            stats.series += 1;
        }
        let series = db.querier(min_t, i64::MAX).select_head(&[])?;
        let mut batch: Vec<(u64, i64, f64)> = Vec::with_capacity(SAMPLES_PER_RECORD);
        let mut samples = Vec::new();
        let mut payload = Vec::new();
        let mut records = 0u64;
        for s in &series {
            samples.clear();
            s.decode_into(&mut samples)?;
            for &(t, v) in &samples {
                batch.push((s.id, t, v));
                if batch.len() >= SAMPLES_PER_RECORD {
                    payload.clear();
                    record::encode_samples_v2(&mut payload, &batch);
                    cp.append(record::REC_SAMPLES_V2, &payload)?;
                    stats.samples += batch.len() as u64;
                    batch.clear();
                    // Write out what is buffered now and then, so a checkpoint of a large
                    // head does not sit in memory until `close`.
                    records += 1;
                    if records % 16 == 0 {
                        cp.sync()?;
                    }
                }
            }
        }
        if !batch.is_empty() {
            payload.clear();
            record::encode_samples_v2(&mut payload, &batch);
            cp.append(record::REC_SAMPLES_V2, &payload)?;
            stats.samples += batch.len() as u64;
        }
        cp.close()?;
    }
    fs::rename(&tmp, &final_dir).map_err(|e| TsdbError::io(&final_dir, e))?;
    sync_dir(&wal_dir)?;
    stats.segments_removed = db.wal.remove_segments_before(next)?;
    for (n, p) in list(&wal_dir)? {
        if n < last {
            fs::remove_dir_all(&p).map_err(|e| TsdbError::io(&p, e))?;
        }
    }
    stats.duration = start.elapsed();
    tracing::info!(
        checkpoint = %final_dir.display(), series = stats.series, samples = stats.samples,
        segments_removed = stats.segments_removed, duration = ?stats.duration,
        "WAL checkpoint written"
    );
    Ok(stats)
}

fn sync_dir(dir: &Path) -> Result<(), TsdbError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| TsdbError::io(dir, e))
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::labels::Labels;
    use crate::{Db, StorageConfig};

    const H: i64 = 3_600_000;

    fn open(dir: &std::path::Path) -> Db {
        Db::open(&StorageConfig {
            path: dir.to_path_buf(),
            wal_segment_size: 256,
            ..Default::default()
        })
        .unwrap()
    }

    /// Every series of `db` with its samples as `(t, value bits)`, in label order.
    pub(crate) fn all(db: &Db) -> Vec<(String, Vec<(i64, u64)>)> {
        db.querier(i64::MIN, i64::MAX)
            .select(&[])
            .unwrap()
            .iter()
            .map(|s| {
                let v = s.samples().unwrap();
                (
                    s.labels.to_string(),
                    v.iter().map(|p| (p.0, p.1.to_bits())).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn truncation_and_checkpoint_keep_exactly_the_newer_data_across_restart() {
        let dir = tempfile::tempdir().unwrap();
        let a = Labels::new([("__name__", "a")]).unwrap();
        let b = Labels::new([("__name__", "b")]).unwrap();
        let c = Labels::new([("__name__", "c")]).unwrap();
        {
            let db = open(dir.path());
            for k in 0..(3 * 60) {
                let t = k * 60_000;
                let mut app = db.appender();
                app.add(&a, t, k as f64).unwrap();
                if t < H {
                    app.add(&b, t, 1.0).unwrap();
                }
                app.commit().unwrap();
            }
            // `c` is created by a batch that commits only after the truncation.
            let mut pending = db.appender();
            let cref = pending.series(&c).unwrap();
            let segments_before = db.wal.segments().unwrap().len();
            assert!(segments_before > 3);
            let (removed, cp) = db.truncate_head(2 * H).unwrap();
            // `b` had nothing at or after 2h; `c` had no samples yet.
            assert_eq!(removed, 2);
            assert!(cp.segments_removed >= segments_before - 1);
            assert_eq!(cp.samples, 60);
            // Too old for the head now.
            let mut app = db.appender();
            app.add(&a, 2 * H - 1, 0.0).unwrap();
            assert_eq!(app.commit().unwrap().too_old, 1);
            // The stale reference to `c` re-resolves.
            pending.append(&cref, 3 * H, 42.0);
            assert_eq!(pending.commit().unwrap().appended, 1);
            let got = all(&db);
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].1.len(), 60);
            assert_eq!(got[0].1[0].0, 2 * H);
            assert_eq!(got[1], (c.to_string(), vec![(3 * H, 42f64.to_bits())]));
            db.close().unwrap();
        }
        let db = open(dir.path());
        let got = all(&db);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].1.len(), 60);
        assert_eq!(got[0].1[0].0, 2 * H);
        assert_eq!(got[1].1, vec![(3 * H, 42f64.to_bits())]);
        assert_eq!(super::list(db.wal.dir()).unwrap().len(), 1);
    }
}
