//! Exposition-format parse throughput, against a baseline measured in the same run.
//!
//! Baseline: the `prometheus-parse` crate (the most used Rust parser for the
//! Prometheus text format; line-by-line with `regex`). Its API takes an
//! iterator of owned `String` lines, so turning the body into lines is part of
//! its measured cost, as it would be for a caller.
//!
//! For scale: Prometheus's own Go parser (`model/textparse`, PromParser) does
//! roughly 30–60 MB/s on this kind of input. Goal for hearth: at least 3× the
//! baseline's lines/s.
//!
//! After the criterion groups, a short same-run comparison prints lines/s,
//! MB/s and the ours/baseline ratio for each body (skipped under `--test`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use hearth_ingest::exposition::{Entry, Format, Parser};

const ALLTYPES_237: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/conformance/exposition/alltypes.237mfs.prom.txt"
));

/// A node-exporter-like body of about 10k samples: many label pairs per sample,
/// counters with large values, gauges, histograms and a few escaped HELP texts.
fn node_exporter_body() -> String {
    let mut out = String::with_capacity(1 << 20);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let modes = [
        "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
    ];
    out.push_str("# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n");
    out.push_str("# TYPE node_cpu_seconds_total counter\n");
    for cpu in 0..64 {
        for mode in modes {
            let v = (next() % 100_000_000) as f64 / 100.0;
            out.push_str(&format!(
                "node_cpu_seconds_total{{cpu=\"{cpu}\",mode=\"{mode}\"}} {v}\n"
            ));
        }
    }
    let fs_metrics = [
        "node_filesystem_avail_bytes",
        "node_filesystem_files",
        "node_filesystem_files_free",
        "node_filesystem_free_bytes",
        "node_filesystem_readonly",
        "node_filesystem_size_bytes",
    ];
    for m in fs_metrics {
        out.push_str(&format!(
            "# HELP {m} Filesystem metric \\\\ from statfs(2).\n# TYPE {m} gauge\n"
        ));
        for i in 0..150 {
            let v = (next() % 1_000_000_000_000) as f64;
            out.push_str(&format!(
                "{m}{{device=\"/dev/mapper/vg0-lv{i}\",fstype=\"ext4\",mountpoint=\"/srv/data/{i}\"}} {v:e}\n"
            ));
        }
    }
    let net_metrics = [
        "node_network_receive_bytes_total",
        "node_network_receive_packets_total",
        "node_network_receive_errs_total",
        "node_network_receive_drop_total",
        "node_network_transmit_bytes_total",
        "node_network_transmit_packets_total",
        "node_network_transmit_errs_total",
        "node_network_transmit_drop_total",
    ];
    for m in net_metrics {
        out.push_str(&format!(
            "# HELP {m} Network device statistic.\n# TYPE {m} counter\n"
        ));
        for i in 0..500 {
            let v = next() % 10_000_000_000;
            out.push_str(&format!("{m}{{device=\"veth{i:05x}\"}} {v}\n"));
        }
    }
    out.push_str("# HELP node_disk_io_time_seconds Time spent doing I/Os.\n");
    out.push_str("# TYPE node_disk_io_time_seconds histogram\n");
    let les = [
        "0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "10", "+Inf",
    ];
    for d in 0..400 {
        let mut acc = 0u64;
        for le in les {
            acc += next() % 1000;
            out.push_str(&format!(
                "node_disk_io_time_seconds_bucket{{device=\"nvme{d}n1\",le=\"{le}\"}} {acc}\n"
            ));
        }
        out.push_str(&format!(
            "node_disk_io_time_seconds_sum{{device=\"nvme{d}n1\"}} {}\n",
            (next() % 1_000_000) as f64 / 1e3
        ));
        out.push_str(&format!(
            "node_disk_io_time_seconds_count{{device=\"nvme{d}n1\"}} {acc}\n"
        ));
    }
    out.push_str("# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\nnode_load1 0.21\n");
    out
}

fn parse_ours(body: &str) -> f64 {
    let mut p = Parser::new(body, Format::Text);
    let mut sum = 0.0;
    while let Some(entry) = p.next_entry() {
        match entry {
            Ok(Entry::Sample(s)) => sum += s.value + s.labels.len() as f64,
            Ok(_) => {}
            Err(e) => panic!("benchmark body must parse: {e}"),
        }
    }
    sum
}

fn parse_baseline(body: &str) -> usize {
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("baseline parses the body");
    scrape.samples.len()
}

fn bodies() -> Vec<(&'static str, String)> {
    vec![
        ("alltypes_237mfs", ALLTYPES_237.to_owned()),
        ("node_exporter_10k", node_exporter_body()),
    ]
}

fn bench_parsers(c: &mut Criterion) {
    for (name, body) in bodies() {
        let mut group = c.benchmark_group(format!("exposition/{name}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("hearth", name), &body, |b, body| {
            b.iter(|| parse_ours(black_box(body)))
        });
        group.bench_with_input(
            BenchmarkId::new("prometheus-parse", name),
            &body,
            |b, body| b.iter(|| parse_baseline(black_box(body))),
        );
        group.finish();
    }
}

/// Mean time per parse over roughly `budget` of repeated runs.
fn time_per_parse(budget: Duration, mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    let start = Instant::now();
    let mut runs = 0u32;
    while start.elapsed() < budget {
        f();
        runs += 1;
    }
    start.elapsed() / runs
}

fn print_comparison() {
    println!("\nsame-run comparison (Prometheus's Go parser: roughly 30-60 MB/s):");
    for (name, body) in bodies() {
        let lines = body.lines().count() as f64;
        let mb = body.len() as f64 / 1e6;
        let ours = time_per_parse(Duration::from_secs(2), || {
            black_box(parse_ours(black_box(&body)));
        });
        let base = time_per_parse(Duration::from_secs(2), || {
            black_box(parse_baseline(black_box(&body)));
        });
        let (o, b) = (ours.as_secs_f64(), base.as_secs_f64());
        println!(
            "  {name:<18} {:>6} lines {:>7.1} KB | hearth {:>6.2} Mlines/s {:>7.1} MB/s | \
             prometheus-parse {:>5.2} Mlines/s {:>6.1} MB/s | ratio {:.1}x",
            lines,
            body.len() as f64 / 1e3,
            lines / o / 1e6,
            mb / o,
            lines / b / 1e6,
            mb / b,
            b / o,
        );
    }
}

criterion_group!(benches, bench_parsers);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let test_mode = std::env::args().any(|a| a == "--test" || a == "--list");
    if !test_mode {
        print_comparison();
    }
}
