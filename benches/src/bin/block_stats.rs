//! Bytes per sample of hearth blocks written straight from the storage benchmark's dataset
//! (20 hosts × 500 series, 24 h at 15 s, node_exporter units, 0–4 ms jitter): 2 h, 6 h and
//! 24 h blocks, chunk files and index apart. No servers, a few seconds: the quick check for
//! block-encoding work. `cargo run --release -p hearth-benches --bin block_stats`.
//! The end-to-end comparison with the peers is `bash benches/storage.sh`.
use hearth_benches::dataset;
use hearth_tsdb::block::{new_block_id, BlockMeta, BlockWriter};
use hearth_tsdb::Labels;

fn dir_size(p: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    n
}

fn main() {
    let spec = dataset::DatasetSpec {
        hosts: 20,
        series_per_host: 500,
        scrapes: 5760,
        end_ms: 1_795_322_220_000,
        seed: 1,
    };
    let mut hosts = dataset::generate(&spec);
    dataset::round_like_node_exporter(&mut hosts);
    let mut all: Vec<(Labels, Vec<(i64, f64)>)> = Vec::new();
    for h in &hosts {
        for s in &h.series {
            let l = Labels::new(s.labels.iter().map(|l| {
                (
                    std::str::from_utf8(&l.name).unwrap(),
                    std::str::from_utf8(&l.value).unwrap(),
                )
            }))
            .unwrap();
            all.push((
                l,
                h.timestamps
                    .iter()
                    .copied()
                    .zip(s.values.iter().copied())
                    .collect(),
            ));
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let n: usize = all.iter().map(|s| s.1.len()).sum();
    for hours in [2usize, 6, 24] {
        let per = hours * 240;
        let tmp = tempfile::tempdir().unwrap();
        let (mut chunks, mut index) = (0u64, 0u64);
        for w0 in (0..5760).step_by(per) {
            let id = new_block_id();
            let mut w = BlockWriter::create(tmp.path(), &id).unwrap();
            for (l, s) in &all {
                w.add_series_samples(l, &s[w0..(w0 + per).min(s.len())], 8192)
                    .unwrap();
            }
            let p = w
                .finish(BlockMeta::new(
                    id,
                    all[0].1[w0].0 - 20_000,
                    all[0].1[(w0 + per).min(5760) - 1].0 + 20_000,
                ))
                .unwrap();
            chunks += dir_size(&p.join("chunks"));
            index += std::fs::metadata(p.join("index")).unwrap().len();
        }
        println!(
            "{hours}h blocks: chunks {:.4} B/sample, index {:.4} B/sample, total {:.4}",
            chunks as f64 / n as f64,
            index as f64 / n as f64,
            (chunks + index) as f64 / n as f64
        );
    }
}
