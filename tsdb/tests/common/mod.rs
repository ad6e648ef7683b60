//! Helpers shared by the tsdb integration tests (each test file is its own crate and pulls
//! this in with `mod common;`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hearth_tsdb::config::{PromDuration, RetentionConfig};
use hearth_tsdb::{Db, StorageConfig};

pub(crate) const H: i64 = 3_600_000;
pub(crate) const STEP: i64 = 60_000;

/// Series (labels as text) → samples as `(t, value bits)`.
pub(crate) type Data = BTreeMap<String, Vec<(i64, u64)>>;

/// Storage under `dir`: 64 KiB WAL segments, time retention `retention`.
pub(crate) fn cfg(dir: &Path, retention: Duration) -> StorageConfig {
    StorageConfig {
        path: dir.to_path_buf(),
        wal_segment_size: 64 << 10,
        retention: RetentionConfig {
            time: PromDuration(retention),
            size: None,
        },
        ..Default::default()
    }
}

/// Every series with samples in `[mint, maxt]`, bit-exact; checks that the pull iterator
/// agrees with the batch decoder on the way.
pub(crate) fn read_all(db: &Db, mint: i64, maxt: i64) -> Data {
    let mut out = Data::new();
    for s in db.querier(mint, maxt).select(&[]).unwrap() {
        let mut v = Vec::new();
        s.decode_into(&mut v).unwrap();
        // The pull iterator agrees with the batch decoder.
        let it: Vec<_> = s.iter().collect();
        assert_eq!(
            it.iter().map(|p| (p.0, p.1.to_bits())).collect::<Vec<_>>(),
            v.iter().map(|p| (p.0, p.1.to_bits())).collect::<Vec<_>>()
        );
        if v.is_empty() {
            // A series whose chunks overlap the range without a sample inside it.
            continue;
        }
        out.insert(
            s.labels.to_string(),
            v.into_iter().map(|(t, x)| (t, x.to_bits())).collect(),
        );
    }
    out
}
