//! Compatibility: a tiny block written by format version 1 (`docs/format/block.md`) is
//! committed under `tests/fixtures/block_v1/` and must keep reading back exactly, as Tantivy
//! does with its `compat_tests_data`. Never regenerate it for a released version; a new
//! format version gets a new fixture directory next to it.
//!
//! To (re)create the fixture while the format is still unreleased:
//! `HEARTH_WRITE_BLOCK_FIXTURE=1 cargo test -p hearth-tsdb --test block_compat`.

use std::path::PathBuf;

use hearth_tsdb::block::{Block, BlockMeta, BlockStats, BlockWriter};
use hearth_tsdb::chunk::block_enc::has_shared_timestamps;
use hearth_tsdb::chunk::Encoding;
use hearth_tsdb::{Labels, MatchOp, Matcher, STALE_NAN_BITS};

const ID: &str = "01JCZ0000000000000000FX001";

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/block_v1")
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied()).unwrap()
}

/// The fixture's content, in label order: every chunk encoding, a shared timestamp column,
/// the stale marker, a NaN payload, ±Inf, -0.0 and a subnormal.
fn expected() -> Vec<(Labels, Vec<(i64, f64)>)> {
    vec![
        // Scraped together (same jittered timestamps): the second series' chunks borrow the
        // first one's timestamp columns (mode 4).
        (
            labels(&[
                ("__name__", "node_load1"),
                ("instance", "a:9100"),
                ("job", "node"),
            ]),
            (0..40)
                .map(|i| (1_700_000_000_000 + i * 15_000 + i * 3 % 5, i as f64 * 0.01))
                .collect(),
        ),
        (
            labels(&[
                ("__name__", "node_load5"),
                ("instance", "a:9100"),
                ("job", "node"),
            ]),
            (0..40)
                .map(|i| {
                    (
                        1_700_000_000_000 + i * 15_000 + i * 3 % 5,
                        2.0 + i as f64 * 0.02,
                    )
                })
                .collect(),
        ),
        (
            labels(&[("__name__", "temp"), ("room", "attic")]),
            vec![
                (1_700_000_000_000, 21.5),
                (1_700_000_015_000, f64::from_bits(STALE_NAN_BITS)),
                (1_700_000_030_017, -0.0),
                (1_700_000_045_000, f64::INFINITY),
                (1_700_000_046_000, f64::NEG_INFINITY),
                (1_700_000_047_000, f64::from_bits(0x7ff8_dead_beef_0001)),
                (1_700_000_048_000, 5e-324),
            ],
        ),
        (
            labels(&[("__name__", "up"), ("instance", "a:9100"), ("job", "node")]),
            (0..40)
                .map(|i| (1_700_000_000_000 + i * 15_000, 1.0))
                .collect(),
        ),
        (
            labels(&[("__name__", "up"), ("instance", "b:9100"), ("job", "node")]),
            (0..40)
                .map(|i| {
                    (
                        1_700_000_000_000 + i * 15_000,
                        if i == 20 { 0.0 } else { 1.0 },
                    )
                })
                .collect(),
        ),
        (
            labels(&[("__name__", "x_total"), ("job", "node")]),
            (0..40)
                .map(|i| (1_700_000_000_000 + i * 15_000, i as f64 * 0.25 + 1e3))
                .collect(),
        ),
    ]
}

fn write_fixture() {
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Small segments so the fixture has more than one chunk file.
    let mut w = BlockWriter::with_segment_size(&dir, ID, 256).unwrap();
    for (l, s) in expected() {
        w.add_series_samples(&l, &s, 16).unwrap();
    }
    let mut meta = BlockMeta::new(ID, 1_700_000_000_000, 1_700_000_600_000);
    meta.level = 2;
    meta.sources = vec![
        "01JCZ0000000000000000SRC01".into(),
        "01JCZ0000000000000000SRC02".into(),
    ];
    w.finish(meta).unwrap();
}

#[test]
fn block_v1_reads_back_exactly() {
    if std::env::var_os("HEARTH_WRITE_BLOCK_FIXTURE").is_some() {
        write_fixture();
    }
    let b = Block::open(&fixture_dir().join(ID)).unwrap();
    b.verify().unwrap();
    let want = expected();
    let m = b.meta();
    assert_eq!(m.id, ID);
    assert_eq!(
        (m.min_time, m.max_time),
        (1_700_000_000_000, 1_700_000_600_000)
    );
    assert_eq!(m.level, 2);
    assert_eq!(
        m.sources,
        ["01JCZ0000000000000000SRC01", "01JCZ0000000000000000SRC02"]
    );
    let samples: usize = want.iter().map(|s| s.1.len()).sum();
    assert_eq!(
        m.stats,
        BlockStats {
            num_samples: samples as u64,
            num_series: 6,
            num_chunks: 1 + 3 + 3 + 3 + 3 + 3,
            num_bytes: m.stats.num_bytes,
        }
    );
    assert!(m.stats.num_bytes > 0);

    let mut encodings = Vec::new();
    let mut shared = 0;
    let got: Vec<_> = b.all_series().collect::<Result<_, _>>().unwrap();
    assert_eq!(got.len(), want.len());
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    for ((labels, metas), (want_labels, want_samples)) in got.iter().zip(&want) {
        assert_eq!(labels, want_labels);
        let mut samples = Vec::new();
        for c in metas {
            let bytes = b.chunk(c.chunk_ref).unwrap();
            encodings.push(Encoding::from_u8(bytes[0]).unwrap());
            shared += usize::from(has_shared_timestamps(&bytes));
            b.decode_chunk(c.chunk_ref, &mut ts, &mut vs, labels)
                .unwrap();
            assert_eq!((ts[0], ts[ts.len() - 1]), (c.min_t, c.max_t));
            samples.extend(ts.iter().zip(&vs).map(|(t, v)| (*t, v.to_bits())));
        }
        let want_bits: Vec<_> = want_samples
            .iter()
            .map(|(t, v)| (*t, v.to_bits()))
            .collect();
        assert_eq!(samples, want_bits, "{labels}");
    }
    // node_load5 borrows node_load1's columns; up{b} and x_total borrow up{a}'s (a reference
    // is smaller than even a regular column's t0 + interval).
    assert_eq!(shared, 9, "chunks with a shared timestamp column");
    for e in [Encoding::Xor, Encoding::Decimal, Encoding::Constant] {
        assert!(encodings.contains(&e), "fixture lacks a {e:?} chunk");
    }
    let segments = std::fs::read_dir(fixture_dir().join(ID).join("chunks"))
        .unwrap()
        .count();
    assert!(segments > 1);

    assert_eq!(
        b.label_names(&[]).unwrap(),
        ["__name__", "instance", "job", "room"]
    );
    assert_eq!(
        b.label_values("__name__", &[]).unwrap(),
        ["node_load1", "node_load5", "temp", "up", "x_total"]
    );
    let sel = |ms: &[Matcher]| -> Vec<String> {
        b.select(ms)
            .unwrap()
            .into_iter()
            .map(|r| b.series(r).unwrap().0.to_string())
            .collect()
    };
    let up = Matcher::new(MatchOp::Equal, "__name__", "up").unwrap();
    let not_a = Matcher::new(MatchOp::NotRegex, "instance", "a:.*").unwrap();
    assert_eq!(
        sel(&[up.clone(), not_a.clone()]),
        [r#"up{instance="b:9100", job="node"}"#]
    );
    assert_eq!(sel(&[not_a]).len(), 3);
    let a = Matcher::new(MatchOp::Equal, "instance", "a:9100").unwrap();
    assert_eq!(sel(&[a]).len(), 3);
    let job = Matcher::new(MatchOp::Equal, "job", "").unwrap();
    assert_eq!(sel(&[job]), [r#"temp{room="attic"}"#]);
    assert_eq!(
        b.label_values("instance", &[up]).unwrap(),
        ["a:9100", "b:9100"]
    );
}
