//! Throughput and size of the block chunk codecs (`chunk::block_enc`) on node-exporter-like
//! series, next to the head's XOR chunks.
//!
//! Same data as `benches/chunk.rs`: per kind, 100 series of 120 samples at a 15 s interval with
//! ±3 ms jitter, from fixed seeds. Throughput is in samples. Bytes per sample of XOR and of
//! `encode_best` are printed once per kind, since a faster codec that stores more is no win.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hearth_tsdb::chunk::block_enc::{decode_into, BlockEncoder};
use hearth_tsdb::chunk::Encoding;
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
