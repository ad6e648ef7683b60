//! Throughput and size of the block chunk codecs (`chunk::block_enc`) on node-exporter-like
//! series, next to the head's XOR chunks.
//!
//! Same data as `benches/chunk.rs`: per kind, 100 series of 120 samples at a 15 s interval with
//! ±3 ms jitter, from fixed seeds. Throughput is in samples. Bytes per sample of XOR and of
//! `encode_best` are printed once per kind, since a faster codec that stores more is no win.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hearth_tsdb::chunk::block_enc::{decode_into, BlockEncoder};
use hearth_tsdb::chunk::Encoding;
use std::hint::black_box;

mod common {
    pub(crate) mod datagen;
}
use common::datagen::{dataset, Kind, Series, KINDS, SAMPLES_PER_CHUNK, SERIES};

fn bench_block_enc(c: &mut Criterion) {
    let data: Vec<(Kind, Vec<Series>)> = KINDS.iter().map(|&k| (k, dataset(k))).collect();
    let samples = (SERIES * SAMPLES_PER_CHUNK) as u64;
    let mut enc = BlockEncoder::new();

    for (kind, d) in &data {
        let (mut xor, mut best) = (0usize, 0usize);
        let mut buf = Vec::new();
        let mut chosen = Vec::new();
        for s in d {
            buf.clear();
            enc.encode_as(Encoding::Xor, s, &mut buf)
                .expect("XOR encodes anything");
            xor += buf.len();
            buf.clear();
            chosen.push(enc.encode_best(s, &mut buf));
            best += buf.len();
        }
        chosen.dedup();
        eprintln!(
            "block chunk size, {}: xor {:.3} bytes/sample, best {:.3} ({:?})",
            kind.name(),
            xor as f64 / samples as f64,
            best as f64 / samples as f64,
            chosen
        );
    }

    let mut g = c.benchmark_group("block_encode_best");
    g.throughput(Throughput::Elements(samples));
    for (kind, d) in &data {
        g.bench_with_input(BenchmarkId::from_parameter(kind.name()), d, |b, d| {
            let mut buf = Vec::with_capacity(4096);
            b.iter(|| {
                for s in d {
                    buf.clear();
                    black_box(enc.encode_best(black_box(s), &mut buf));
                }
                black_box(buf.len())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("block_decode_into");
    g.throughput(Throughput::Elements(samples));
    for (kind, d) in &data {
        let chunks: Vec<Vec<u8>> = d
            .iter()
            .map(|s| {
                let mut buf = Vec::new();
                enc.encode_best(s, &mut buf);
                buf
            })
            .collect();
        g.bench_with_input(
            BenchmarkId::from_parameter(kind.name()),
            &chunks,
            |b, chunks| {
                let (mut ts, mut vals) = (Vec::new(), Vec::new());
                b.iter(|| {
                    let mut acc = 0u64;
                    for chunk in chunks {
                        decode_into(black_box(chunk), &mut ts, &mut vals)
                            .expect("chunks just encoded decode");
                        acc = acc.wrapping_add(ts[ts.len() - 1] as u64 ^ vals[0].to_bits());
                    }
                    black_box(acc)
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench_block_enc);
criterion_main!(benches);
