//! Deterministic node-exporter-like series, shared by the chunk benchmarks
//! (`benches/chunk.rs`, `benches/block_enc.rs`) and the block-encoding size tests
//! (`src/chunk/block_enc/tests.rs`), so sizes and speeds are measured on the same data.
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Samples per chunk: one full head chunk.
pub(crate) const SAMPLES_PER_CHUNK: usize = 120;
/// Series (chunks) per data kind.
pub(crate) const SERIES: usize = 100;

/// `(timestamp ms, value)` samples of one series.
pub(crate) type Series = Vec<(i64, f64)>;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind {
    /// node_cpu_seconds_total: float counter with 0.01 s resolution.
    CounterFloat,
    /// node_network_receive_bytes_total: integer counter.
    CounterInt,
    /// node_memory_MemAvailable_bytes: integer gauge moving in 4 KiB pages.
    Gauge,
    /// node_filesystem_size_bytes and the like: never changes.
    Constant,
}

pub(crate) const KINDS: [Kind; 4] = [
    Kind::CounterFloat,
    Kind::CounterInt,
    Kind::Gauge,
    Kind::Constant,
];

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::CounterFloat => "counter_float",
            Kind::CounterInt => "counter_int",
            Kind::Gauge => "gauge",
            Kind::Constant => "constant",
        }
    }
}

/// The generator of one data kind, seeded per kind.
pub(crate) fn rng_for(kind: Kind) -> StdRng {
    StdRng::seed_from_u64(0x6865_6172_7468 ^ kind as u64)
}

/// One series of `n` samples at a 15 s interval, with ±3 ms jitter when `jitter`.
pub(crate) fn series(kind: Kind, rng: &mut StdRng, jitter: bool, n: usize) -> Series {
    let mut t: i64 = 1_700_000_000_000 + rng.random_range(0..15_000);
    let mut ticks: i64 = rng.random_range(1_000_000..100_000_000);
    let mut bytes: i64 = rng.random_range(0..1 << 40);
    let mut mem: i64 = rng.random_range(1 << 30..1 << 34) & !4095;
    let constant = (rng.random_range(1i64..1 << 20) * 4096) as f64;
    (0..n)
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
            t += 15_000 + if jitter { rng.random_range(-3..=3) } else { 0 };
            s
        })
        .collect()
}

/// [`SERIES`] jittered series of [`SAMPLES_PER_CHUNK`] samples of one kind.
pub(crate) fn dataset(kind: Kind) -> Vec<Series> {
    let mut rng = rng_for(kind);
    (0..SERIES)
        .map(|_| series(kind, &mut rng, true, SAMPLES_PER_CHUNK))
        .collect()
}
