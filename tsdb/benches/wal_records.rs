//! Encode/decode throughput and size of the WAL samples records: type 2 (`encode_samples`, what
//! hearth wrote before) against type 4 (`encode_samples_v2`, runs with delta-of-delta timestamps
//! and byte-aligned XOR values), with the bit-level Gorilla XOR chunk codec on the same runs as
//! the reference for a bit-packed layout.
//!
//! Three record shapes, generated from fixed seeds:
//! - `remote_write`: 250 series × 20 consecutive samples (a remote_write request carrying 20
//!   scrapes per series), float counters growing in 0.01 steps, 15 s ± 4 ms timestamps.
//! - `scrape`: 500 series × 1 sample at one timestamp (one scrape), a node-exporter-like mix of
//!   float counters, integer counters, page-sized gauges and constants.
//! - `checkpoint`: 136 series × 480 samples (2 h at 15 s), one run per series as the checkpoint
//!   writes them (about 64 Ki samples, its record size), series ids in label order (not
//!   ascending).
//!
//! Throughput is in samples per second of the benchmark thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), not wall time: the VMs these run on are shared, and time spent
//! descheduled is not the codec's. Bytes per sample (record payload only, no WAL framing) are
//! printed once per shape.

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hearth_tsdb::chunk::{XorChunk, XorIter};
use hearth_tsdb::record::{decode_samples, decode_samples_v2, encode_samples, encode_samples_v2};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::time::Duration;

/// Criterion measurement of the calling thread's CPU time (formatted like wall time).
struct ThreadCpuTime(WallTime);

fn thread_cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.0.formatter()
    }
}

type Sample = (u64, i64, f64);

const T0: i64 = 1_700_000_000_000;

/// `n` samples of one float counter (centisecond ticks / 100) at 15 s ± 4 ms.
fn counter_run(rng: &mut StdRng, id: u64, n: usize) -> Vec<Sample> {
    let mut ticks: u64 = rng.random_range(0..100_000_000);
    let start = T0 + rng.random_range(-4..=4);
    (0..n as i64)
        .map(|k| {
            ticks += rng.random_range(0..1500);
            let t = start + k * 15_000 + rng.random_range(-4..=4);
            (id, t, ticks as f64 / 100.0)
        })
        .collect()
}

fn remote_write(rng: &mut StdRng) -> Vec<Sample> {
    (0..250)
        .flat_map(|i| counter_run(rng, 10_000 + i, 20))
        .collect()
}

fn scrape(rng: &mut StdRng) -> Vec<Sample> {
    (0..500u64)
        .map(|i| {
            let v = match i % 4 {
                0 => rng.random_range(0..100_000_000u64) as f64 / 100.0,
                1 => rng.random_range(0..1u64 << 40) as f64,
                2 => (rng.random_range(0..1u64 << 20) * 4096) as f64,
                _ => [0.0, 1.0, 4.0, 1.6e10][rng.random_range(0..4)],
            };
            (10_000 + i, T0, v)
        })
        .collect()
}

fn checkpoint(rng: &mut StdRng) -> Vec<Sample> {
    let mut ids: Vec<u64> = (0..136).map(|i| 10_000 + i * 7).collect();
    ids.shuffle(rng);
    ids.into_iter()
        .flat_map(|id| counter_run(rng, id, 480))
        .collect()
}

/// The record's runs (consecutive samples of one id) as `(t, v)` lists, for the XOR chunk codec.
fn runs(rec: &[Sample]) -> Vec<Vec<(i64, f64)>> {
    rec.chunk_by(|a, b| a.0 == b.0)
        .map(|r| r.iter().map(|&(_, t, v)| (t, v)).collect())
        .collect()
}

fn xor_encode(run: &[(i64, f64)]) -> XorChunk {
    let mut c = XorChunk::new();
    for &(t, v) in run {
        c.append(t, v).expect("generated runs are in order");
    }
    c
}

fn bench_records(c: &mut Criterion<ThreadCpuTime>) {
    let mut rng = StdRng::seed_from_u64(0x5741_4c32);
    let shapes: Vec<(&str, Vec<Sample>)> = vec![
        ("remote_write", remote_write(&mut rng)),
        ("scrape", scrape(&mut rng)),
        ("checkpoint", checkpoint(&mut rng)),
    ];

    for (name, rec) in &shapes {
        let (mut v1, mut v2) = (Vec::new(), Vec::new());
        encode_samples(&mut v1, rec);
        encode_samples_v2(&mut v2, rec);
        let mut back = Vec::with_capacity(rec.len());
        decode_samples_v2(&v2, |i, t, v| back.push((i, t, v.to_bits()))).unwrap();
        let want: Vec<_> = rec.iter().map(|&(i, t, v)| (i, t, v.to_bits())).collect();
        assert_eq!(back, want, "type 4 round trip of {name}");
        // Bit-level reference: one Gorilla XOR chunk per run, plus the run's id as a varint.
        let xor: usize = runs(rec)
            .iter()
            .map(|r| xor_encode(r).bytes().len() + 2)
            .sum();
        let n = rec.len() as f64;
        eprintln!(
            "wal samples record, {name}: type 2 {:.2} B/sample, type 4 {:.2} B/sample ({:.1} % of type 2), \
             bit-level XOR chunks {:.2} B/sample ({} samples)",
            v1.len() as f64 / n,
            v2.len() as f64 / n,
            100.0 * v2.len() as f64 / v1.len() as f64,
            xor as f64 / n,
            rec.len()
        );
    }

    let mut g = c.benchmark_group("wal_samples_encode");
    for (name, rec) in &shapes {
        g.throughput(Throughput::Elements(rec.len() as u64));
        let mut buf = Vec::new();
        g.bench_with_input(BenchmarkId::new("type2", name), rec, |b, rec| {
            b.iter(|| {
                buf.clear();
                encode_samples(&mut buf, black_box(rec));
                black_box(buf.len())
            })
        });
        g.bench_with_input(BenchmarkId::new("type4", name), rec, |b, rec| {
            b.iter(|| {
                buf.clear();
                encode_samples_v2(&mut buf, black_box(rec));
                black_box(buf.len())
            })
        });
        if *name != "scrape" {
            let rs = runs(rec);
            g.bench_with_input(BenchmarkId::new("xor_chunks", name), &rs, |b, rs| {
                b.iter(|| {
                    for r in rs {
                        black_box(xor_encode(black_box(r)).bytes().len());
                    }
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("wal_samples_decode");
    for (name, rec) in &shapes {
        g.throughput(Throughput::Elements(rec.len() as u64));
        let (mut v1, mut v2) = (Vec::new(), Vec::new());
        encode_samples(&mut v1, rec);
        encode_samples_v2(&mut v2, rec);
        // Decoded into a reused vector, as replay batches samples for its workers.
        let mut out: Vec<Sample> = Vec::with_capacity(rec.len());
        g.bench_with_input(BenchmarkId::new("type2", name), &v1, |b, p| {
            b.iter(|| {
                out.clear();
                decode_samples(black_box(p), |i, t, v| out.push((i, t, v))).unwrap();
                black_box(out.len())
            })
        });
        g.bench_with_input(BenchmarkId::new("type4", name), &v2, |b, p| {
            b.iter(|| {
                out.clear();
                decode_samples_v2(black_box(p), |i, t, v| out.push((i, t, v))).unwrap();
                black_box(out.len())
            })
        });
        if *name != "scrape" {
            let chunks: Vec<Vec<u8>> = runs(rec)
                .iter()
                .map(|r| xor_encode(r).into_bytes())
                .collect();
            g.bench_with_input(
                BenchmarkId::new("xor_chunks", name),
                &chunks,
                |b, chunks| {
                    let mut it = XorIter::new(&chunks[0]);
                    b.iter(|| {
                        out.clear();
                        for c in chunks {
                            it.reset(black_box(c));
                            out.extend(it.by_ref().map(|(t, v)| (0, t, v)));
                        }
                        black_box(out.len())
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime(WallTime));
    targets = bench_records
}
criterion_main!(benches);
