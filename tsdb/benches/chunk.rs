//! Encode/decode throughput of the XOR chunk codec on node-exporter-like series.
//!
//! Each data kind is 100 series of 120 samples (one full head chunk each at a 15 s scrape
//! interval, with a few ms of jitter), generated from fixed seeds so runs compare. Throughput is
//! in samples. The encoded size of each kind is printed once, since a faster codec that stores
//! more bytes per sample is not a win.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hearth_tsdb::chunk::{XorChunk, XorIter};
use std::hint::black_box;

mod common {
    pub(crate) mod datagen;
}
use common::datagen::{dataset, Kind, Series, KINDS, SAMPLES_PER_CHUNK, SERIES};

fn encode(series: &[(i64, f64)]) -> XorChunk {
    let mut c = XorChunk::new();
    for &(t, v) in series {
        c.append(t, v).expect("generated series are in order");
    }
    c
}

fn bench_xor(c: &mut Criterion) {
    let data: Vec<(Kind, Vec<Series>)> = KINDS.iter().map(|&k| (k, dataset(k))).collect();
    let samples = (SERIES * SAMPLES_PER_CHUNK) as u64;

    for (kind, d) in &data {
        let bytes: usize = d.iter().map(|s| encode(s).bytes().len()).sum();
        eprintln!(
            "xor chunk size, {}: {:.3} bytes/sample ({} samples per chunk)",
            kind.name(),
            bytes as f64 / samples as f64,
            SAMPLES_PER_CHUNK
        );
    }

    let mut g = c.benchmark_group("xor_encode");
    g.throughput(Throughput::Elements(samples));
    for (kind, d) in &data {
        g.bench_with_input(BenchmarkId::from_parameter(kind.name()), d, |b, d| {
            b.iter(|| {
                for s in d {
                    black_box(encode(black_box(s)).bytes().len());
                }
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("xor_decode");
    g.throughput(Throughput::Elements(samples));
    for (kind, d) in &data {
        let chunks: Vec<Vec<u8>> = d.iter().map(|s| encode(s).into_bytes()).collect();
        g.bench_with_input(
            BenchmarkId::from_parameter(kind.name()),
            &chunks,
            |b, chunks| {
                // One iterator reset per chunk, as the querier does.
                let mut it = XorIter::new(&chunks[0]);
                b.iter(|| {
                    let mut acc = 0u64;
                    for chunk in chunks {
                        it.reset(black_box(chunk));
                        for (t, v) in it.by_ref() {
                            acc = acc.wrapping_add(t as u64 ^ v.to_bits());
                        }
                    }
                    black_box(acc)
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench_xor);
criterion_main!(benches);
