use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::filenames::{
    block_chunk_segment_name, BLOCK_CHUNKS_DIR, BLOCK_INDEX_FILE, BLOCK_META_FILE,
};
use crate::index::{MatchOp, Matcher};
use crate::{Labels, TsdbError, STALE_NAN_BITS};

type Data = Vec<(Labels, Vec<(i64, f64)>)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied()).unwrap()
}

/// Writes `data` (sorted here) as a block and returns its directory.
fn write(dir: &Path, data: &Data, per_chunk: usize, seg_size: u64) -> PathBuf {
    let mut data = data.clone();
    data.sort_by(|a, b| a.0.cmp(&b.0));
    let id = new_block_id();
    let mut w = BlockWriter::with_segment_size(dir, &id, seg_size).unwrap();
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for (l, s) in &data {
        w.add_series_samples(l, s, per_chunk).unwrap();
        if let (Some(f), Some(last)) = (s.first(), s.last()) {
            lo = lo.min(f.0);
            hi = hi.max(last.0);
        }
    }
    let meta = BlockMeta::new(id, lo.min(hi), hi.saturating_add(1).max(lo));
    w.finish(meta).unwrap()
}

/// Every sample of series `r`, decoded.
fn samples(b: &Block, r: BlockSeriesRef) -> Vec<(i64, u64)> {
    let (_, metas) = b.series(r).unwrap();
    let mut out = Vec::new();
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    for m in metas {
        b.decode_chunk(m.chunk_ref, &mut ts, &mut vs, &"test")
            .unwrap();
        assert_eq!(ts.first(), Some(&m.min_t));
        assert_eq!(ts.last(), Some(&m.max_t));
        out.extend(ts.iter().zip(&vs).map(|(t, v)| (*t, v.to_bits())));
    }
    out
}

fn brute(data: &Data, ms: &[Matcher]) -> Vec<Labels> {
    let mut out: Vec<Labels> = data
        .iter()
        .filter(|(l, s)| {
            !s.is_empty() && ms.iter().all(|m| m.matches(l.get(m.name()).unwrap_or("")))
        })
        .map(|(l, _)| l.clone())
        .collect();
    out.sort();
    out
}

fn check_block(b: &Block, data: &Data, matcher_sets: &[Vec<Matcher>]) {
    let stored: Vec<&(Labels, Vec<(i64, f64)>)> = {
        let mut v: Vec<_> = data.iter().filter(|(_, s)| !s.is_empty()).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(b.num_series() as usize, stored.len());
    assert_eq!(b.meta().stats.num_series as usize, stored.len());
    let total: usize = stored.iter().map(|s| s.1.len()).sum();
    assert_eq!(b.meta().stats.num_samples as usize, total);
    // Every series, by ref and by iteration.
    let all = b.select(&[]).unwrap();
    assert_eq!(all.len(), stored.len());
    let iterated: Vec<_> = b.all_series().collect::<Result<_, _>>().unwrap();
    assert_eq!(iterated.len(), stored.len());
    for (i, (l, s)) in stored.iter().enumerate() {
        let r = all[i];
        assert_eq!(&b.series(r).unwrap().0, l);
        assert_eq!(&iterated[i].0, l);
        assert_eq!(iterated[i].1, b.series(r).unwrap().1);
        let want: Vec<(i64, u64)> = s.iter().map(|(t, v)| (*t, v.to_bits())).collect();
        assert_eq!(samples(b, r), want, "{l}");
    }
    for ms in matcher_sets {
        let got: Vec<Labels> = b
            .select(ms)
            .unwrap()
            .into_iter()
            .map(|r| b.series(r).unwrap().0)
            .collect();
        assert_eq!(got, brute(data, ms), "{ms:?}");
        // Label names and values restricted to the selection.
        let sel = brute(data, ms);
        let mut names: Vec<String> = sel
            .iter()
            .flat_map(|l| l.iter().map(|p| p.0.to_owned()))
            .collect();
        names.sort();
        names.dedup();
        if !ms.is_empty() {
            assert_eq!(b.label_names(ms).unwrap(), names);
        }
        for n in ["job", "a", "nope"] {
            let mut vals: Vec<String> = sel
                .iter()
                .filter_map(|l| l.get(n).map(str::to_owned))
                .collect();
            vals.sort();
            vals.dedup();
            assert_eq!(b.label_values(n, ms).unwrap(), vals, "{n} {ms:?}");
        }
    }
    b.verify().unwrap();
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        Just(f64::from_bits(STALE_NAN_BITS)),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(f64::from_bits(0x7ff8_0000_0000_0001)),
        (0i64..1_000_000).prop_map(|m| m as f64 / 100.0),
        Just(42.0),
        Just(5e-324),
    ]
}

fn series_samples() -> impl Strategy<Value = Vec<(i64, f64)>> {
    let kind = prop_oneof![
        // Irregular, arbitrary values.
        proptest::collection::vec((1i64..100_000, value()), 0..200).boxed(),
        // Regular decimal counter.
        (1usize..300, 0i64..1000)
            .prop_map(|(n, inc)| (0..n)
                .map(|i| (15_000, (i as i64 * inc) as f64 / 10.0))
                .collect())
            .boxed(),
        // Constant.
        (1usize..300, value())
            .prop_map(|(n, v)| vec![(15_000, v); n])
            .boxed(),
    ];
    (any::<i64>().prop_map(|t| t / 4), kind).prop_map(|(t0, deltas)| {
        let mut t = t0;
        deltas
            .into_iter()
            .map(|(d, v)| {
                t += d;
                (t, v)
            })
            .collect()
    })
}

fn label_set() -> impl Strategy<Value = Labels> {
    let vals = ["x", "y", "z", "foo", "bar", "x1", "long-value-é"];
    (
        0usize..3,
        proptest::option::of(0usize..4),
        proptest::option::of(0usize..7),
        proptest::option::of(0usize..7),
    )
        .prop_map(move |(name, job, a, b)| {
            let mut p = vec![(
                "__name__".to_string(),
                ["up", "rate", "m"][name].to_string(),
            )];
            if let Some(j) = job {
                p.push(("job".into(), vals[j].into()));
            }
            if let Some(a) = a {
                p.push(("a".into(), vals[a].into()));
            }
            if let Some(b) = b {
                p.push(("b".into(), vals[b].into()));
            }
            Labels::new(p).unwrap()
        })
}

fn matcher() -> impl Strategy<Value = Matcher> {
    let names = ["__name__", "job", "a", "b", "nope"];
    let patterns = [
        "x", "", "foo", "x|y", "x.*", ".*", ".+", "|x", "up", "f.o|ba.", "(?i)FOO", "x1|z|",
    ];
    (0usize..5, 0usize..4, 0usize..patterns.len()).prop_map(move |(n, op, p)| {
        let op = [
            MatchOp::Equal,
            MatchOp::NotEqual,
            MatchOp::Regex,
            MatchOp::NotRegex,
        ][op];
        Matcher::new(op, names[n], patterns[p]).unwrap()
    })
}

fn dataset() -> impl Strategy<Value = Data> {
    proptest::collection::btree_map(label_set(), series_samples(), 0..40)
        .prop_map(|m: BTreeMap<Labels, Vec<(i64, f64)>>| m.into_iter().collect())
}

/// Gives every series of `data` the timestamps of its first series (each keeps its values,
/// truncated to the first series' length).
fn share_timestamps(data: &mut Data) {
    let Some(first) = data.first().map(|(_, s)| s.clone()) else {
        return;
    };
    for (_, s) in data.iter_mut().skip(1) {
        s.truncate(first.len());
        for (i, smp) in s.iter_mut().enumerate() {
            smp.0 = first[i].0;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(
        mut data in dataset(),
        share in any::<bool>(),
        per_chunk in prop_oneof![Just(1usize), 2usize..50, Just(120), Just(65_535)],
        seg_size in prop_oneof![Just(MAX_SEGMENT_SIZE), 64u64..4096],
        matcher_sets in proptest::collection::vec(proptest::collection::vec(matcher(), 0..4), 0..12),
    ) {
        if share {
            // Series scraped together: every series takes the first one's timestamps (the
            // writer then shares timestamp columns between their chunks).
            share_timestamps(&mut data);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &data, per_chunk, seg_size);
        let b = Block::open(&path).unwrap();
        check_block(&b, &data, &matcher_sets);
    }
}

#[test]
fn label_names_and_values_unrestricted() {
    let dir = tempfile::tempdir().unwrap();
    let data: Data = vec![
        (labels(&[("__name__", "up"), ("job", "a")]), vec![(1, 1.0)]),
        (
            labels(&[("__name__", "up"), ("job", "b"), ("zone", "eu")]),
            vec![(1, 1.0)],
        ),
        (labels(&[("__name__", "down"), ("x", "1")]), vec![(5, 2.0)]),
        // No samples: not stored.
        (labels(&[("__name__", "empty"), ("only", "here")]), vec![]),
    ];
    let b = Block::open(&write(dir.path(), &data, 10, MAX_SEGMENT_SIZE)).unwrap();
    assert_eq!(
        b.label_names(&[]).unwrap(),
        ["__name__", "job", "x", "zone"]
    );
    assert_eq!(b.label_values("__name__", &[]).unwrap(), ["down", "up"]);
    assert_eq!(b.label_values("job", &[]).unwrap(), ["a", "b"]);
    assert!(b.label_values("only", &[]).unwrap().is_empty());
    let m = Matcher::new(MatchOp::Equal, "job", "b").unwrap();
    assert_eq!(
        b.label_names(std::slice::from_ref(&m)).unwrap(),
        ["__name__", "job", "zone"]
    );
    assert_eq!(b.label_values("job", &[m]).unwrap(), ["b"]);
    assert_eq!(b.meta().min_time, 1);
    assert_eq!(b.meta().max_time, 6);
    assert_eq!(b.meta().level, 1);
    check_block(&b, &data, &[]);
}

#[test]
fn many_segments_exceed_the_mapping_cap() {
    let dir = tempfile::tempdir().unwrap();
    let data: Data = (0..200)
        .map(|i| {
            let l = labels(&[("__name__", "m"), ("i", &format!("{i:04}"))]);
            (
                l,
                (0..50).map(|t| (t * 1000, (t * i) as f64 * 0.5)).collect(),
            )
        })
        .collect();
    let path = write(dir.path(), &data, 10, 200);
    let segs = std::fs::read_dir(path.join(BLOCK_CHUNKS_DIR))
        .unwrap()
        .count();
    // A private cache holding a few of them, so reads map and evict all the time.
    let cache = Arc::new(MappingCache::new(1 << 20, 4));
    assert!(segs > cache.max_mappings(), "{segs} segment files");
    let b = Block::open_with(&path, Arc::clone(&cache)).unwrap();
    check_block(&b, &data, &[]);
    // Hold a chunk while others get mapped and evicted: it stays valid.
    let (_, metas) = b.series(BlockSeriesRef(0)).unwrap();
    let held = b.chunk(metas[0].chunk_ref).unwrap();
    let copy = held.to_vec();
    for r in b.select(&[]).unwrap() {
        samples(&b, r);
    }
    assert_eq!(&*held, &copy[..]);
    assert!(cache.stats().cached_mappings <= 4);
}

#[test]
fn block_ids() {
    let a = new_block_id();
    let b = new_block_id();
    assert!(is_block_id(&a) && is_block_id(&b), "{a} {b}");
    assert!(a < b, "{a} {b}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let t = block_id_time_ms(&a).unwrap();
    assert!(now.abs_diff(t) < 60_000);
    assert_eq!(encode_ulid(0), "00000000000000000000000000");
    assert_eq!(encode_ulid(u128::MAX), "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    assert!(!is_block_id("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
    assert!(!is_block_id("0000000000000000000000000I"));
    assert!(!is_block_id("abc"));
}

#[test]
fn meta_json_round_trip_and_field_names() {
    let mut m = BlockMeta::new("01J0000000000000000000FIXT", -5, 7200000);
    m.stats = BlockStats {
        num_samples: 10,
        num_series: 2,
        num_chunks: 3,
        num_bytes: 400,
    };
    m.level = 2;
    m.sources = vec!["A".into(), "B".into()];
    let mut buf = Vec::new();
    m.encode_into(&mut buf);
    let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
    assert_eq!(v["ulid"], "01J0000000000000000000FIXT");
    assert_eq!(v["minTime"], -5);
    assert_eq!(v["maxTime"], 7200000);
    assert_eq!(v["stats"]["numSamples"], 10);
    assert_eq!(v["compaction"]["level"], 2);
    assert_eq!(v["compaction"]["sources"][1], "B");
    assert_eq!(v["version"], 1);
    assert_eq!(BlockMeta::decode(&buf, Path::new("m")).unwrap(), m);
}

fn small_block(dir: &Path) -> (PathBuf, Data) {
    let data: Data = vec![
        (
            labels(&[("__name__", "up"), ("job", "a")]),
            vec![
                (1000, 1.0),
                (2000, f64::from_bits(STALE_NAN_BITS)),
                (3000, -0.0),
            ],
        ),
        (
            labels(&[("__name__", "up"), ("job", "b")]),
            (0..30).map(|i| (i * 15_000, i as f64 * 0.1)).collect(),
        ),
        (
            labels(&[("__name__", "c"), ("x", "y")]),
            vec![(5, 7.0), (6, 7.0)],
        ),
        // Two series with the same jittered timestamps: their chunks share a column.
        (
            labels(&[("__name__", "up"), ("job", "c")]),
            (0..30)
                .map(|i| (i * 15_000 + i * 7 % 5, i as f64))
                .collect(),
        ),
        (
            labels(&[("__name__", "up"), ("job", "d")]),
            (0..30).map(|i| (i * 15_000 + i * 7 % 5, 0.5)).collect(),
        ),
    ];
    (write(dir, &data, 8, MAX_SEGMENT_SIZE), data)
}

fn is_corruption<T: std::fmt::Debug>(r: Result<T, TsdbError>) -> bool {
    matches!(r, Err(TsdbError::Corruption { .. }))
}

/// Opens and reads everything a query could; returns whether any step reported corruption.
/// Any other error kind, or a panic, fails the test.
fn detects_corruption(path: &Path) -> bool {
    let b = match Block::open(path) {
        Ok(b) => b,
        Err(TsdbError::Corruption { .. }) => return true,
        Err(e) => panic!("unexpected error kind: {e}"),
    };
    let m = Matcher::new(MatchOp::Regex, "job", "a|b").unwrap();
    let m2 = Matcher::new(MatchOp::NotRegex, "x", "y.*").unwrap();
    for ms in [vec![], vec![m.clone()], vec![m2]] {
        if let Ok(refs) = b.select(&ms) {
            for r in refs {
                if let Ok((_, metas)) = b.series(r) {
                    for c in metas {
                        let _ = b.decode_chunk(c.chunk_ref, &mut Vec::new(), &mut Vec::new(), &"");
                    }
                }
            }
        }
    }
    let _ = b.label_names(std::slice::from_ref(&m));
    let _ = b.label_values("job", &[m]);
    let _ = b.label_values("__name__", &[]);
    let _ = b.all_series().count();
    match b.verify() {
        Ok(()) => false,
        Err(TsdbError::Corruption { .. }) => true,
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}

#[test]
fn every_bit_flip_in_the_index_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = small_block(dir.path());
    let index = path.join(BLOCK_INDEX_FILE);
    let orig = std::fs::read(&index).unwrap();
    assert!(!detects_corruption(&path));
    for at in 0..orig.len() {
        for bit in [0, 3, 7] {
            let mut bad = orig.clone();
            bad[at] ^= 1 << bit;
            std::fs::write(&index, &bad).unwrap();
            assert!(
                detects_corruption(&path),
                "flip of bit {bit} at {at} not detected"
            );
        }
    }
    std::fs::write(&index, &orig).unwrap();
    assert!(!detects_corruption(&path));
}

#[test]
fn every_bit_flip_in_a_chunk_segment_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = small_block(dir.path());
    let seg = path
        .join(BLOCK_CHUNKS_DIR)
        .join(block_chunk_segment_name(1));
    let orig = std::fs::read(&seg).unwrap();
    for at in 0..orig.len() {
        for bit in [0, 5] {
            let mut bad = orig.clone();
            bad[at] ^= 1 << bit;
            std::fs::write(&seg, &bad).unwrap();
            assert!(
                detects_corruption(&path),
                "flip of bit {bit} at {at} not detected"
            );
        }
    }
}

#[test]
fn truncated_files_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = small_block(dir.path());
    for file in [
        path.join(BLOCK_INDEX_FILE),
        path.join(BLOCK_CHUNKS_DIR)
            .join(block_chunk_segment_name(1)),
    ] {
        let orig = std::fs::read(&file).unwrap();
        for len in 0..orig.len() {
            std::fs::write(&file, &orig[..len]).unwrap();
            assert!(
                detects_corruption(&path),
                "{file:?} cut at {len} not detected"
            );
        }
        // Appended garbage too.
        let mut longer = orig.clone();
        longer.extend_from_slice(&[0, 0, 1]);
        std::fs::write(&file, &longer).unwrap();
        assert!(
            detects_corruption(&path),
            "{file:?} with trailing bytes not detected"
        );
        std::fs::write(&file, &orig).unwrap();
    }
    assert!(!detects_corruption(&path));
}

#[test]
fn bad_magic_version_and_meta_are_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = small_block(dir.path());
    let index = path.join(BLOCK_INDEX_FILE);
    let orig = std::fs::read(&index).unwrap();
    let mut bad = orig.clone();
    bad[..4].copy_from_slice(b"XIDX");
    std::fs::write(&index, &bad).unwrap();
    assert!(is_corruption(Block::open(&path)));
    let mut bad = orig.clone();
    bad[4] = 2;
    std::fs::write(&index, &bad).unwrap();
    assert!(is_corruption(Block::open(&path)));
    std::fs::write(&index, &orig).unwrap();
    assert!(Block::open(&path).is_ok());

    let meta = path.join(BLOCK_META_FILE);
    let good = std::fs::read(&meta).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    for bad in [
        "".to_string(),
        "{".to_string(),
        "[]".to_string(),
        text.replace("\"version\": 1", "\"version\": 9"),
        text.replace("\"minTime\"", "\"minTim\""),
        text.replace("\"ulid\": \"", "\"ulid\": 5, \"x\": \""),
        text.replace("\"level\": 1", "\"level\": -1"),
    ] {
        std::fs::write(&meta, &bad).unwrap();
        assert!(is_corruption(Block::open(&path)), "{bad}");
    }
    std::fs::remove_file(&meta).unwrap();
    assert!(is_corruption(Block::open(&path)));
    std::fs::write(&meta, &good).unwrap();
    std::fs::remove_file(&index).unwrap();
    assert!(is_corruption(Block::open(&path)));
}

#[test]
fn unfinished_blocks_are_never_opened() {
    let dir = tempfile::tempdir().unwrap();
    let id = new_block_id();
    let mut w = BlockWriter::create(dir.path(), &id).unwrap();
    w.add_series_samples(&labels(&[("a", "b")]), &[(1, 1.0)], 10)
        .unwrap();
    let tmp = w.tmp_dir().to_path_buf();
    assert!(tmp.exists());
    assert!(!dir.path().join(&id).exists());
    // A crash mid-write: the writer never finishes nor cleans up.
    std::mem::forget(w);
    assert!(is_corruption(Block::open(&tmp)));
    assert_eq!(remove_tmp_blocks(dir.path()).unwrap(), 1);
    assert!(!tmp.exists());

    // A dropped writer cleans up after itself.
    let w = BlockWriter::create(dir.path(), &id).unwrap();
    drop(w);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // A leftover temp dir is replaced; finish renames atomically and leaves no temp dir.
    std::fs::create_dir_all(dir.path().join(format!("{id}.tmp")).join("junk")).unwrap();
    let mut w = BlockWriter::create(dir.path(), &id).unwrap();
    w.add_series_samples(&labels(&[("a", "b")]), &[(1, 1.0)], 10)
        .unwrap();
    let final_dir = w.finish(BlockMeta::new(&id, 0, 2)).unwrap();
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, std::slice::from_ref(&id));
    let mut files: Vec<String> = std::fs::read_dir(&final_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["chunks", "index", "meta.json"]);
    Block::open(&final_dir).unwrap().verify().unwrap();
}

#[test]
fn writer_rejects_misuse_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let id = new_block_id();
    let mut w = BlockWriter::create(dir.path(), &id).unwrap();
    w.add_series_samples(&labels(&[("a", "b")]), &[(1, 1.0)], 10)
        .unwrap();
    // Not ascending.
    assert!(w
        .add_series_samples(&labels(&[("a", "b")]), &[(1, 1.0)], 10)
        .is_err());
    assert!(w
        .add_series_samples(&labels(&[("a", "a")]), &[(1, 1.0)], 10)
        .is_err());
    // Bad samples and chunks.
    let l = labels(&[("a", "c")]);
    assert!(w.add_series_samples(&l, &[(2, 1.0), (2, 1.0)], 10).is_err());
    assert!(w.add_series(&l, &[(1, 2, &[9, 0][..])]).is_err());
    assert!(w.add_series(&l, &[(3, 2, &[3, 1, 0][..])]).is_err());
    assert!(BlockWriter::create(dir.path(), "x.tmp").is_err());
    assert!(BlockWriter::create(dir.path(), "a/b").is_err());
    assert!(w.finish(BlockMeta::new("other", 0, 1)).is_err());
}

#[test]
fn empty_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &Vec::new(), 10, MAX_SEGMENT_SIZE);
    let b = Block::open(&path).unwrap();
    assert_eq!(b.num_series(), 0);
    assert!(b.select(&[]).unwrap().is_empty());
    assert!(b.label_names(&[]).unwrap().is_empty());
    assert_eq!(b.all_series().count(), 0);
    b.verify().unwrap();
}

/// Writes 1M series and checks the block reads back; run with `--ignored --release`.
#[test]
#[ignore]
fn million_series() {
    let dir = tempfile::tempdir().unwrap();
    let id = new_block_id();
    let mut w = BlockWriter::create(dir.path(), &id).unwrap();
    let n = 1_000_000u32;
    let mut all: Vec<Labels> = (0..n)
        .map(|i| {
            labels(&[
                ("__name__", &format!("m{}", i % 100)),
                ("i", &format!("{i}")),
            ])
        })
        .collect();
    all.sort();
    for l in &all {
        w.add_series_samples(l, &[(0, 1.0), (15_000, 2.0)], 120)
            .unwrap();
    }
    let path = w.finish(BlockMeta::new(&id, 0, 15_001)).unwrap();
    let t = std::time::Instant::now();
    let b = Block::open(&path).unwrap();
    assert!(t.elapsed().as_millis() < 100, "{:?}", t.elapsed());
    let m = Matcher::new(MatchOp::Equal, "i", "123456").unwrap();
    let refs = b.select(&[m]).unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(b.series(refs[0]).unwrap().0.get("__name__"), Some("m56"));
    assert_eq!(b.all_series().count(), n as usize);
}

#[test]
fn block_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Block>();
    check::<ChunkBytes>();
}

/// Total bytes of a block's chunk segment files.
fn chunk_bytes(block_dir: &Path) -> u64 {
    std::fs::read_dir(block_dir.join(BLOCK_CHUNKS_DIR))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn series_scraped_together_share_timestamp_columns() {
    // 50 series of one target (one scrape timestamp each, 0-4 ms jitter) vs the same values
    // with each series jittered on its own. Jitter and increments are pseudo-random.
    let hash = |x: u64| {
        let mut h = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
        h.wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 40
    };
    let ts: Vec<i64> = (0..960)
        .map(|i: u64| 1_700_000_000_000 + i as i64 * 15_000 + (hash(i) % 5) as i64)
        .collect();
    let data = |own_jitter: bool| -> Data {
        (0..50u64)
            .map(|k| {
                let l = labels(&[("__name__", "m"), ("k", &format!("{k:02}"))]);
                let mut v = 0i64;
                let s = ts
                    .iter()
                    .enumerate()
                    .map(|(i, &t)| {
                        let i = i as u64;
                        let t = if own_jitter {
                            t - t % 5 + (hash(i * 1000 + k) % 5) as i64
                        } else {
                            t
                        };
                        v += (hash(i * 77 + k * 13) % 100) as i64;
                        (t, v as f64 / 100.0)
                    })
                    .collect();
                (l, s)
            })
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let (shared, apart) = (data(false), data(true));
    let p_shared = write(&dir.path().join("a"), &shared, 480, MAX_SEGMENT_SIZE);
    let p_apart = write(&dir.path().join("b"), &apart, 480, MAX_SEGMENT_SIZE);
    let b = Block::open(&p_shared).unwrap();
    check_block(&b, &shared, &[vec![]]);
    check_block(&Block::open(&p_apart).unwrap(), &apart, &[vec![]]);
    // Count chunks that borrowed their column: all but the first series' two chunks.
    let mut borrowed = 0;
    for r in b.select(&[]).unwrap() {
        for m in b.series(r).unwrap().1 {
            borrowed += usize::from(crate::chunk::block_enc::has_shared_timestamps(
                &b.chunk(m.chunk_ref).unwrap(),
            ));
        }
    }
    assert_eq!(borrowed, 49 * 2);
    let (a, c) = (chunk_bytes(&p_shared), chunk_bytes(&p_apart));
    // ~3 bits per sample of timestamps saved on 49 of 50 series.
    assert!(a * 10 < c * 8, "shared {a} bytes vs apart {c}");
}

#[test]
fn corrupt_shared_column_fails_the_chunks_borrowing_it() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = small_block(dir.path());
    let b = Block::open(&path).unwrap();
    // The first chunk of `up{job="c"}` holds the column `up{job="d"}` borrows.
    let chunk_of = |job: &str| {
        let m = Matcher::new(MatchOp::Equal, "job", job).unwrap();
        let r = b.select(&[m]).unwrap()[0];
        b.series(r).unwrap().1[0].chunk_ref
    };
    let (owner, borrower) = (chunk_of("c"), chunk_of("d"));
    assert!(crate::chunk::block_enc::has_shared_timestamps(
        &b.chunk(borrower).unwrap()
    ));
    drop(b);
    let seg = path
        .join(BLOCK_CHUNKS_DIR)
        .join(block_chunk_segment_name(owner.segment()));
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[owner.offset() as usize + 4] ^= 0x10;
    std::fs::write(&seg, bytes).unwrap();
    let b = Block::open(&path).unwrap();
    let err = b
        .decode_chunk(borrower, &mut Vec::new(), &mut Vec::new(), &"up{job=\"d\"}")
        .unwrap_err();
    assert!(matches!(err, TsdbError::Corruption { .. }), "{err}");
    assert!(is_corruption(b.verify()));
}

// ---- The process-wide mapping cache (`MappingCache`), each test with a private one. ----

/// `n` series of 40 samples each, values distinct per block `k`.
fn mapping_data(k: usize, n: usize) -> Data {
    (0..n)
        .map(|i| {
            let l = labels(&[("__name__", "m"), ("i", &format!("{i:04}"))]);
            let s = (0..40)
                .map(|t| {
                    (
                        t * 1000,
                        (k * 1_000_000 + i * 1000 + t as usize) as f64 * 0.25,
                    )
                })
                .collect();
            (l, s)
        })
        .collect()
}

/// Sizes of the segment files of block `path`.
fn segment_sizes(path: &Path) -> Vec<u64> {
    std::fs::read_dir(path.join(BLOCK_CHUNKS_DIR))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect()
}

#[test]
fn mapping_cache_bounds_many_blocks_read_round_robin() {
    let dir = tempfile::tempdir().unwrap();
    let datas: Vec<Data> = (0..6).map(|k| mapping_data(k, 30)).collect();
    let paths: Vec<PathBuf> = datas
        .iter()
        .map(|d| write(dir.path(), d, 10, 300))
        .collect();
    let largest = paths.iter().flat_map(|p| segment_sizes(p)).max().unwrap();
    let total_segs: usize = paths.iter().map(|p| segment_sizes(p).len()).sum();
    // Room for about three segments; the blocks have dozens each.
    let budget = 3 * largest;
    assert!(total_segs > 50, "{total_segs} segment files");
    let cache = Arc::new(MappingCache::new(budget, 1000));
    let blocks: Vec<Block> = paths
        .iter()
        .map(|p| Block::open_with(p, Arc::clone(&cache)).unwrap())
        .collect();
    let expected = |k: usize, r: BlockSeriesRef| -> Vec<(i64, u64)> {
        let mut d = datas[k].clone();
        d.sort_by(|a, b| a.0.cmp(&b.0));
        d[r.0 as usize]
            .1
            .iter()
            .map(|(t, v)| (*t, v.to_bits()))
            .collect()
    };
    // Round robin over the blocks, series by series: every read maps a different block.
    for i in 0..30 {
        for (k, b) in blocks.iter().enumerate() {
            let r = BlockSeriesRef(i);
            assert_eq!(samples(b, r), expected(k, r), "block {k} series {i}");
            let st = cache.stats();
            assert!(st.cached_bytes <= budget, "{st:?} > {budget}");
            // Nothing is held between reads, so nothing outlives its eviction.
            assert_eq!(st.live_bytes, st.cached_bytes, "{st:?}");
            assert_eq!(st.live_mappings, st.cached_mappings, "{st:?}");
        }
    }
    // The same from several threads at once.
    std::thread::scope(|s| {
        for t in 0..4 {
            let (blocks, cache, expected) = (&blocks, &cache, &expected);
            s.spawn(move || {
                for i in 0..30 {
                    let k = (i as usize + t) % blocks.len();
                    let r = BlockSeriesRef(i);
                    assert_eq!(samples(&blocks[k], r), expected(k, r));
                    assert!(cache.stats().cached_bytes <= budget);
                }
            });
        }
    });
    for b in &blocks {
        b.verify().unwrap();
    }
    assert!(cache.stats().cached_bytes <= budget);
    drop(blocks);
    assert_eq!(cache.stats(), MappingStats::default());
}

#[test]
fn mapping_cache_caps_the_number_of_mappings() {
    let dir = tempfile::tempdir().unwrap();
    let data = mapping_data(0, 40);
    let path = write(dir.path(), &data, 10, 300);
    let cache = Arc::new(MappingCache::new(u64::MAX, 3));
    let b = Block::open_with(&path, Arc::clone(&cache)).unwrap();
    for r in b.select(&[]).unwrap() {
        samples(&b, r);
        assert!(cache.stats().cached_mappings <= 3);
    }
    check_block(&b, &data, &[]);
    assert_eq!(cache.stats().cached_mappings, 3);
}

#[test]
fn segment_larger_than_the_mapping_budget_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let small = write(dir.path(), &mapping_data(0, 20), 10, 300);
    let big_data = mapping_data(1, 50);
    let big = write(dir.path(), &big_data, 10, MAX_SEGMENT_SIZE);
    let big_len = segment_sizes(&big)[0];
    let budget = big_len / 4;
    assert!(segment_sizes(&small).iter().all(|&l| l <= budget));
    let cache = Arc::new(MappingCache::new(budget, 100));
    let s = Block::open_with(&small, Arc::clone(&cache)).unwrap();
    let b = Block::open_with(&big, Arc::clone(&cache)).unwrap();
    samples(&s, BlockSeriesRef(0));
    assert_eq!(cache.stats().cached_mappings, 1);
    // The big segment evicts everything else and stays cached alone (it is reused, not
    // remapped, by the next read).
    check_block(&b, &big_data, &[]);
    let st = cache.stats();
    assert_eq!(
        (st.cached_bytes, st.cached_mappings),
        (big_len, 1),
        "{st:?}"
    );
    assert_eq!(cache.owner_mappings(s.cache_owner()), 0);
    // The next small mapping evicts it again.
    samples(&s, BlockSeriesRef(1));
    let st = cache.stats();
    assert!(st.cached_bytes <= budget, "{st:?}");
    assert_eq!(cache.owner_mappings(b.cache_owner()), 0);
}

#[test]
fn dropping_a_block_drops_its_mappings() {
    let dir = tempfile::tempdir().unwrap();
    let a_data = mapping_data(0, 20);
    let a_path = write(dir.path(), &a_data, 10, 300);
    let b_path = write(dir.path(), &mapping_data(1, 20), 10, 300);
    let cache = Arc::new(MappingCache::new(1 << 20, 1000));
    let a = Block::open_with(&a_path, Arc::clone(&cache)).unwrap();
    let b = Block::open_with(&b_path, Arc::clone(&cache)).unwrap();
    check_block(&a, &a_data, &[]);
    samples(&b, BlockSeriesRef(0));
    let (a_owner, b_owner) = (a.cache_owner(), b.cache_owner());
    assert!(cache.owner_mappings(a_owner) > 1);
    assert_eq!(cache.owner_mappings(b_owner), 1);
    // A chunk handed out outlives its block and keeps its mapping.
    let (_, metas) = a.series(BlockSeriesRef(3)).unwrap();
    let held = a.chunk(metas[0].chunk_ref).unwrap();
    let copy = held.to_vec();
    // Retention deletes the block's directory, then the last reference to the Block goes.
    std::fs::remove_dir_all(&a_path).unwrap();
    drop(a);
    assert_eq!(cache.owner_mappings(a_owner), 0);
    let st = cache.stats();
    assert_eq!((st.cached_mappings, st.live_mappings), (1, 2), "{st:?}");
    assert_eq!(&*held, &copy[..]);
    drop(held);
    #[cfg(target_os = "linux")]
    {
        // No mapping of the deleted files is left, so the kernel can free their blocks.
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let a_dir = a_path.to_string_lossy().into_owned();
        assert!(!maps.contains(&a_dir), "{a_dir} still mapped");
    }
    drop(b);
    assert_eq!(cache.stats(), MappingStats::default());
}

#[test]
fn global_mapping_cache_defaults() {
    let g = MappingCache::global();
    assert_eq!(g.max_bytes(), DEFAULT_MAX_MAPPED_BYTES);
    assert_eq!(g.max_mappings(), DEFAULT_MAX_MAPPINGS);
    assert!(std::ptr::eq(g.as_ref(), MappingCache::global().as_ref()));
}
