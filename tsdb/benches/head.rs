//! Head + WAL benchmarks: append throughput with 8 concurrent appenders (fsync always, group
//! commit), WAL replay speed, and resident memory per active series.
//!
//! `cargo bench -p hearth-tsdb --bench head`. Under `cargo test` (debug build, `--test`
//! mode) the sizes shrink so every body still runs once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use hearth_tsdb::{config::WalFsync, Db, Labels, StorageConfig};

fn scale(full: usize) -> usize {
    if cfg!(debug_assertions) {
        (full / 50).max(1)
    } else {
        full
    }
}

/// node-exporter-like label sets: `hosts` hosts × `per_host` series.
fn series_labels(hosts: usize, per_host: usize) -> Vec<Labels> {
    let metrics = [
        "node_cpu_seconds_total",
        "node_memory_MemAvailable_bytes",
        "node_network_receive_bytes_total",
        "node_disk_read_bytes_total",
        "node_filesystem_avail_bytes",
    ];
    let mut out = Vec::with_capacity(hosts * per_host);
    for h in 0..hosts {
        for i in 0..per_host {
            let m = metrics[i % metrics.len()];
            out.push(
                Labels::new([
                    ("__name__", m.to_string()),
                    ("instance", format!("host-{h:03}.lan:9100")),
                    ("job", "node".to_string()),
                    // i = 320 * series + 20 * cpu + 5 * mode + metric: unique per host.
                    ("cpu", (i / 20 % 16).to_string()),
                    (
                        "mode",
                        ["idle", "user", "system", "iowait"][i / 5 % 4].to_string(),
                    ),
                    ("series", (i / 320).to_string()),
                ])
                .unwrap(),
            );
        }
    }
    out
}

fn cfg(dir: &std::path::Path, fsync: WalFsync) -> StorageConfig {
    StorageConfig {
        path: dir.to_path_buf(),
        wal_fsync: fsync,
        ..StorageConfig::default()
    }
}

/// 8 appenders, each owning `hosts/8` hosts, commit one scrape (all series of one host, one
/// sample each) at a time, as scrape loops do.
fn append(c: &mut Criterion) {
    let hosts = 64;
    let per_host = scale(500).max(10);
    let scrapes = 20;
    let labels = Arc::new(series_labels(hosts, per_host));
    let samples = (hosts * per_host * scrapes) as u64;
    let mut g = c.benchmark_group("head_wal_append");
    g.throughput(Throughput::Elements(samples));
    g.sample_size(10);
    for fsync in [WalFsync::Always, WalFsync::Interval] {
        g.bench_function(BenchmarkId::new("8_appenders", format!("{fsync:?}")), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap();
                    let db = Arc::new(Db::open(&cfg(dir.path(), fsync)).unwrap());
                    // Create the series first: steady-state scraping appends to known series.
                    let mut app = db.appender();
                    let refs: Vec<_> = labels.iter().map(|l| app.series(l).unwrap()).collect();
                    app.commit().unwrap();
                    let refs = Arc::new(refs);
                    let start = Instant::now();
                    let threads: Vec<_> = (0..8)
                        .map(|w| {
                            let (db, refs) = (db.clone(), refs.clone());
                            std::thread::spawn(move || {
                                for s in 0..scrapes {
                                    for h in (w..hosts).step_by(8) {
                                        let mut app = db.appender();
                                        let t = 1_700_000_000_000 + (s as i64) * 15_000 + h as i64;
                                        for r in &refs[h * per_host..(h + 1) * per_host] {
                                            app.append(r, t, (s * 7 + h) as f64 * 1.5);
                                        }
                                        app.commit().unwrap();
                                    }
                                }
                            })
                        })
                        .collect();
                    for t in threads {
                        t.join().unwrap();
                    }
                    total += start.elapsed();
                    drop(db);
                }
                total
            })
        });
    }
    g.finish();
}

fn replay(c: &mut Criterion) {
    let series = scale(100_000);
    let per_series = 120;
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(&cfg(dir.path(), WalFsync::Interval)).unwrap();
        let labels = series_labels(series / 500, 500);
        let mut app = db.appender();
        let refs: Vec<_> = labels.iter().map(|l| app.series(l).unwrap()).collect();
        app.commit().unwrap();
        for i in 0..per_series {
            for chunk in refs.chunks(1000) {
                let mut app = db.appender();
                for (k, r) in chunk.iter().enumerate() {
                    app.append(
                        r,
                        1_700_000_000_000 + i as i64 * 15_000,
                        (i * k) as f64 * 0.1,
                    );
                }
                app.commit().unwrap();
            }
        }
        db.close().unwrap();
    }
    let samples = (series / 500 * 500 * per_series) as u64;
    let mut g = c.benchmark_group("wal_replay");
    g.throughput(Throughput::Elements(samples));
    g.sample_size(10);
    g.bench_function(
        format!("{}_series_x_{per_series}", series / 500 * 500),
        |b| {
            b.iter(|| {
                let db = Db::open(&cfg(dir.path(), WalFsync::Interval)).unwrap();
                assert_eq!(db.replay_stats().samples, samples);
                drop(db);
            })
        },
    );
    g.finish();
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no memory-safety preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// Resident memory per active series: 100 k series, each with a half-full open chunk and a
/// few full chunks already written out, as after ~1.5 h of 15 s scrapes.
fn memory_per_series() {
    let series = scale(100_000);
    let dir = tempfile::tempdir().unwrap();
    let labels = series_labels(series / 500, 500);
    let before = rss_bytes();
    let db = Db::open(&cfg(dir.path(), WalFsync::Interval)).unwrap();
    let mut app = db.appender();
    let refs: Vec<_> = labels.iter().map(|l| app.series(l).unwrap()).collect();
    app.commit().unwrap();
    for i in 0..360i64 {
        for chunk in refs.chunks(5000) {
            let mut app = db.appender();
            for (k, r) in chunk.iter().enumerate() {
                let v = if k % 3 == 0 {
                    42.0
                } else {
                    (i * (k as i64 % 97)) as f64 * 0.01
                };
                app.append(r, 1_700_000_000_000 + i * 15_000 + (k as i64 % 5), v);
            }
            app.commit().unwrap();
        }
    }
    drop(labels);
    let after = rss_bytes();
    let n = refs.len() as f64;
    let mut m = String::new();
    db.write_metrics(&mut m);
    let heap: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("hearth_tsdb_head_memory_bytes "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    println!(
        "memory_per_series: {} series x 360 samples: RSS growth {:.0} B/series, head heap estimate {:.0} B/series (target <= 1024)",
        refs.len(),
        (after.saturating_sub(before)) as f64 / n,
        heap / n
    );
}

criterion_group!(benches, append, replay);

fn main() {
    benches();
    memory_per_series();
    Criterion::default().configure_from_args().final_summary();
}
