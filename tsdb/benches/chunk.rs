//! Encode/decode throughput of the XOR chunk codec on node-exporter-like series.
//!
//! Each data kind is 100 series of 120 samples (one full head chunk each at a 15 s scrape
//! interval, with a few ms of jitter), generated from fixed seeds so runs compare. Throughput is
//! in samples. The encoded size of each kind is printed once, since a faster codec that stores
//! more bytes per sample is not a win.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hearth_tsdb::chunk::{XorChunk, XorIter};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;

const SAMPLES_PER_CHUNK: usize = 120;
const SERIES: usize = 100;

/// `(timestamp ms, value)` samples of one series.
type Series = Vec<(i64, f64)>;

#[derive(Clone, Copy)]
enum Kind {
    /// node_cpu_seconds_total: float counter with 0.01 s resolution.
    CounterFloat,
    /// node_network_receive_bytes_total: integer counter.
    CounterInt,
    /// node_memory_MemAvailable_bytes: integer gauge moving in 4 KiB pages.
    Gauge,
    /// node_filesystem_size_bytes and the like: never changes.
    Constant,
}

const KINDS: [Kind; 4] = [
    Kind::CounterFloat,
    Kind::CounterInt,
    Kind::Gauge,
    Kind::Constant,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::CounterFloat => "counter_float",
            Kind::CounterInt => "counter_int",
            Kind::Gauge => "gauge",
            Kind::Constant => "constant",
        }
    }
}

fn series(kind: Kind, rng: &mut StdRng) -> Series {
    let mut t: i64 = 1_700_000_000_000 + rng.random_range(0..15_000);
    let mut ticks: i64 = rng.random_range(1_000_000..100_000_000);
    let mut bytes: i64 = rng.random_range(0..1 << 40);
    let mut mem: i64 = rng.random_range(1 << 30..1 << 34) & !4095;
    let constant = (rng.random_range(1i64..1 << 20) * 4096) as f64;
    (0..SAMPLES_PER_CHUNK)
        .map(|_| {
            let v = match kind {
                // Busy CPU: up to 15 s of CPU time per 15 s, e.g. +14.73.
                Kind::CounterFloat => {
                    ticks += rng.random_range(0..1500);
                    ticks as f64 / 100.0
                }
                Kind::CounterInt => {
                    bytes += rng.random_range(0..2_000_000);
                    bytes as f64
                }
                Kind::Gauge => {
                    mem += rng.random_range(-2000..2000) * 4096;
                    mem as f64
                }
                Kind::Constant => constant,
            };
            let s = (t, v);
            t += 15_000 + rng.random_range(-3..=3);
            s
        })
        .collect()
}

fn dataset(kind: Kind) -> Vec<Series> {
    let mut rng = StdRng::seed_from_u64(0x6865_6172_7468 ^ kind as u64);
    (0..SERIES).map(|_| series(kind, &mut rng)).collect()
}

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
