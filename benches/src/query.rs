//! The PromQL range-query benchmark: hearth, Prometheus and VictoriaMetrics are started side
//! by side on 127.0.0.1 (fresh temp dirs), all three get the same node-exporter-like data
//! over remote_write in one pass, and then the same dashboard-style range queries over 1 h,
//! 24 h and 7 d are timed against each, interleaved, with peak RSS over the query phase.
//!
//! The fleet has two groups so that 7 d stays small enough to ingest in minutes: `--hosts`
//! hosts with the last 24 h of data, and `--long-hosts` hosts with history over the longest
//! range (7 d). Both are [`crate::dataset`] hosts (scraped every 15 s), each with a classic
//! histogram added (`http_request_duration_seconds`). The data is sent in global time order
//! (every series in time order, all series within minutes of each other), which is what
//! Prometheus's remote-write receiver needs without an out-of-order window.
//!
//! What is timed is one query: from writing the HTTP request to reading the last byte of the
//! JSON answer, on a keep-alive connection, no compression. Each cell is the median of
//! `--repeat` runs after `--warmup` runs; servers take turns run by run, so drift on the
//! machine hits all three alike. The answers are then compared (series count, values at a
//! few steps) so that the ratios compare equal work.

mod answer;
mod fleet;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use answer::{compare, parse_matrix, Compare, Matrix, VALUE_TOLERANCE};
use fleet::produce;
pub use fleet::{build_fleet, Fleet, HISTOGRAM_SERIES, SCRAPES_PER_SERIES};

use crate::http::{url_encode, Conn, Response};
use crate::process::{self, Server};

/// The goals of the issue: median latency at most this fraction of Prometheus's...
pub const GOAL_PROMETHEUS_RATIO: f64 = 0.5;
/// ...and of VictoriaMetrics's; peak RSS lower than both.
pub const GOAL_VM_RATIO: f64 = 1.0;

const REMOTE_WRITE_HEADERS: &[(&str, &str)] = &[
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ("User-Agent", "hearth-benches/query"),
];

/// The servers the benchmark can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Hearth,
    Prometheus,
    VictoriaMetrics,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Hearth, Kind::Prometheus, Kind::VictoriaMetrics];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Hearth => "hearth",
            Kind::Prometheus => "Prometheus",
            Kind::VictoriaMetrics => "VictoriaMetrics",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Kind::Hearth => "hearth",
            Kind::Prometheus => "prometheus",
            Kind::VictoriaMetrics => "vm",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Kind::Hearth => "hearth",
            Kind::Prometheus => "Prom",
            Kind::VictoriaMetrics => "VM",
        }
    }
}

/// One query range and the step a Grafana panel about 1000 px wide would ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub name: &'static str,
    pub seconds: i64,
    pub step_s: i64,
}

pub const RANGES: [Range; 3] = [
    Range {
        name: "1h",
        seconds: 3600,
        step_s: 15,
    },
    Range {
        name: "24h",
        seconds: 86_400,
        step_s: 120,
    },
    Range {
        name: "7d",
        seconds: 7 * 86_400,
        step_s: 600,
    },
];

/// One benchmarked query.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    pub name: &'static str,
    pub expr: &'static str,
    pub compare: Compare,
}

pub const QUERIES: &[Query] = &[
    Query {
        name: "rate",
        expr: "rate(node_cpu_seconds_total[5m])",
        compare: Compare::Series,
    },
    Query {
        name: "sum_rate",
        expr: "sum by (instance, mode) (rate(node_cpu_seconds_total[5m]))",
        compare: Compare::Series,
    },
    Query {
        name: "memory_ratio",
        expr: "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
        compare: Compare::Series,
    },
    Query {
        name: "topk",
        expr: "topk(5, rate(node_interrupts_total[5m]))",
        compare: Compare::SortedValues,
    },
    Query {
        name: "hist_quantile",
        expr:
            "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        compare: Compare::Series,
    },
    Query {
        name: "regex_rate",
        expr: r#"sum by (instance, devices) (rate({__name__=~"node_interrupts.*", devices=~"virtio.*|eth.*"}[5m]))"#,
        compare: Compare::Series,
    },
];

/// Command-line options of the `query` binary.
#[derive(Debug, Clone)]
pub struct Options {
    pub hearth: PathBuf,
    pub prometheus: PathBuf,
    pub vm: PathBuf,
    /// Hosts with the last 24 h (or the longest range, if shorter) of data.
    pub hosts: usize,
    /// Hosts with data over the longest range.
    pub long_hosts: usize,
    pub series_per_host: usize,
    pub repeat: usize,
    pub warmup: usize,
    pub ranges: Vec<Range>,
    pub queries: Vec<Query>,
    pub samples_per_request: usize,
    pub tmp_dir: Option<PathBuf>,
    pub servers: Vec<Kind>,
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hearth: "target/release/hearth".into(),
            prometheus: "/usr/bin/prometheus".into(),
            vm: "/usr/bin/victoria-metrics".into(),
            hosts: 8,
            long_hosts: 2,
            series_per_host: 500,
            repeat: 5,
            warmup: 1,
            ranges: RANGES.to_vec(),
            queries: QUERIES.to_vec(),
            samples_per_request: 5000,
            tmp_dir: None,
            servers: Kind::ALL.to_vec(),
            seed: 0x6865_6172_7468,
        }
    }
}

pub const USAGE: &str = "\
usage: query [options]

End-to-end PromQL range-query benchmark: hearth vs Prometheus vs VictoriaMetrics on the same
data, same queries, same run.

  --hearth PATH            hearth binary [target/release/hearth]
  --prometheus PATH        prometheus binary [/usr/bin/prometheus]
  --vm PATH                victoria-metrics binary [/usr/bin/victoria-metrics]
  --hosts N                hosts with the last 24 h of data [8]
  --long-hosts N           hosts with data over the longest range (7 d) [2]
  --series-per-host N      series per host, 56 of them the histogram [500]
  --repeat N               timed runs per query and server (median reported) [5]
  --warmup N               untimed runs first [1]
  --ranges LIST            comma-separated subset of 1h,24h,7d [all]
  --queries LIST           comma-separated subset of the query names in the table [all]
  --samples-per-request N  samples per remote_write request during ingest [5000]
  --tmp-dir DIR            parent of the servers' data directories [system temp dir]
  --servers LIST           comma-separated subset of hearth,prometheus,vm [all]
  --seed N                 dataset seed
";

impl Options {
    /// Parses flags (without the program name). `Err` carries the message to print.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut o = Options::default();
        crate::cli::parse_flags(args, USAGE, |name, value| {
            let num = |v: String| crate::cli::positive(name, &v).map(|n| n as usize);
            match name {
                "--hearth" => o.hearth = value()?.into(),
                "--prometheus" => o.prometheus = value()?.into(),
                "--vm" => o.vm = value()?.into(),
                "--hosts" => o.hosts = num(value()?)?,
                "--long-hosts" => o.long_hosts = num(value()?)?,
                "--series-per-host" => o.series_per_host = num(value()?)?,
                "--repeat" => o.repeat = num(value()?)?,
                "--warmup" => {
                    let v = value()?;
                    o.warmup = v
                        .parse()
                        .map_err(|_| format!("--warmup: expected an integer, got {v:?}"))?;
                }
                "--ranges" => {
                    o.ranges = value()?
                        .split(',')
                        .map(|s| {
                            RANGES
                                .iter()
                                .copied()
                                .find(|r| r.name == s.trim())
                                .ok_or_else(|| format!("--ranges: unknown range {s:?}"))
                        })
                        .collect::<Result<_, _>>()?
                }
                "--queries" => {
                    o.queries = value()?
                        .split(',')
                        .map(|s| {
                            QUERIES
                                .iter()
                                .copied()
                                .find(|q| q.name == s.trim())
                                .ok_or_else(|| format!("--queries: unknown query {s:?}"))
                        })
                        .collect::<Result<_, _>>()?
                }
                "--samples-per-request" => o.samples_per_request = num(value()?)?,
                "--tmp-dir" => o.tmp_dir = Some(value()?.into()),
                "--seed" => o.seed = crate::cli::positive(name, &value()?)?,
                "--servers" => o.servers = crate::cli::servers(&value()?, &Kind::ALL, Kind::flag)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if o.series_per_host < HISTOGRAM_SERIES + 150 {
            return Err(format!(
                "--series-per-host: at least {} (the histogram and the CPU, memory, disk and network series)",
                HISTOGRAM_SERIES + 150
            ));
        }
        Ok(o)
    }

    /// Seconds of history of the long group: the longest range asked for.
    fn long_span_s(&self) -> i64 {
        self.ranges.iter().map(|r| r.seconds).max().unwrap_or(3600)
    }

    fn short_span_s(&self) -> i64 {
        self.long_span_s().min(86_400)
    }
}

// ---------------------------------------------------------------------------------------
// The servers

fn command(kind: Kind, opts: &Options, dir: &Path, addr: SocketAddr) -> Command {
    let data = dir.join("data");
    match kind {
        Kind::Hearth => {
            let cfg = dir.join("hearth.yml");
            // No scrape configs (no self-scrape); `interval` only to ingest faster: the
            // query phase does not write. A failed write shows as hearth refusing to start.
            let _ = std::fs::write(&cfg, "storage:\n  wal_fsync: interval\n");
            let mut c = Command::new(&opts.hearth);
            c.arg("--config")
                .arg(cfg)
                .arg("--storage.path")
                .arg(&data)
                .arg("--web.listen-address")
                .arg(addr.to_string())
                .arg("--query.timeout=10m");
            c
        }
        Kind::Prometheus => {
            let cfg = dir.join("prometheus.yml");
            let _ = std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n");
            let mut c = Command::new(&opts.prometheus);
            c.arg(format!("--config.file={}", cfg.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--web.enable-remote-write-receiver")
                .arg("--storage.tsdb.retention.time=30d")
                .arg("--query.timeout=10m");
            c
        }
        Kind::VictoriaMetrics => {
            let mut c = Command::new(&opts.vm);
            c.arg(format!("-storageDataPath={}", data.display()))
                .arg(format!("-httpListenAddr={addr}"))
                .arg("-retentionPeriod=100y")
                // Its rollup-result cache would answer repeated queries from memory.
                .arg("-search.disableCache")
                .arg("-search.maxQueryDuration=10m");
            c
        }
    }
}

fn version(kind: Kind, opts: &Options) -> String {
    match kind {
        Kind::Hearth => process::version(&opts.hearth, "--version"),
        Kind::Prometheus => process::version(&opts.prometheus, "--version"),
        Kind::VictoriaMetrics => process::version(&opts.vm, "-version"),
    }
}

fn start(kind: Kind, opts: &Options, tmp: &Path) -> Result<Server, String> {
    let ready = match kind {
        Kind::Hearth | Kind::Prometheus => "/-/ready",
        Kind::VictoriaMetrics => "/health",
    };
    Server::start_in(
        kind.name(),
        "hearth-bench-query-",
        tmp,
        ready,
        |dir, addr| command(kind, opts, dir, addr),
    )
}

/// What one server's ingest did.
#[derive(Debug, Default)]
struct Ingested {
    requests: u64,
    wall_s: f64,
    error: Option<String>,
}

/// Posts every body from `rx` to `addr` in order; stops at the first failure.
fn consume(addr: SocketAddr, rx: Receiver<Arc<Vec<u8>>>) -> Ingested {
    let t = Instant::now();
    let mut r = Ingested::default();
    let mut conn = match Conn::connect(addr) {
        Ok(c) => c,
        Err(e) => {
            r.error = Some(format!("connecting: {e}"));
            return r;
        }
    };
    for body in rx {
        match conn.request("POST", "/api/v1/write", REMOTE_WRITE_HEADERS, &body) {
            Ok(resp) if resp.is_success() => r.requests += 1,
            Ok(resp) => {
                r.error = Some(format!("request {}: {}", r.requests + 1, resp.summary()));
                break;
            }
            Err(e) => {
                r.error = Some(format!("request {}: {e}", r.requests + 1));
                break;
            }
        }
    }
    r.wall_s = t.elapsed().as_secs_f64();
    r
}

/// Waits until every server used under 2.5% of a core over three 2 s windows in a row
/// (compactions, merges and flushes after the ingest done), at most `timeout`. Returns how
/// long it took.
fn settle(servers: &[(Kind, Server)], timeout: Duration) -> Result<f64, String> {
    let t = Instant::now();
    let mut quiet = 0;
    while quiet < 3 {
        let before: Vec<f64> = servers
            .iter()
            .map(|(_, s)| process::cpu_seconds(s.pid()).unwrap_or(0.0))
            .collect();
        thread::sleep(Duration::from_secs(2));
        let busy = servers
            .iter()
            .zip(&before)
            .any(|((_, s), b)| process::cpu_seconds(s.pid()).unwrap_or(0.0) - b > 0.05);
        quiet = if busy { 0 } else { quiet + 1 };
        if t.elapsed() > timeout {
            return Err(format!("servers still busy after {timeout:?}"));
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// The query phase

/// One range query as a path, start and end aligned to the step (as Grafana aligns them), so
/// that no server moves the grid.
fn query_path(expr: &str, range: Range, end_ms: i64) -> String {
    let step_ms = range.step_s * 1000;
    let end = end_ms.div_euclid(step_ms) * step_ms / 1000;
    let start = end - range.seconds;
    format!(
        "/api/v1/query_range?query={}&start={start}&end={end}&step={}",
        url_encode(expr),
        range.step_s
    )
}

/// One cell of the table: a query over a range on one server.
#[derive(Debug, Default, Clone)]
pub struct Timing {
    /// Wall milliseconds of the timed runs.
    pub runs_ms: Vec<f64>,
    /// Server CPU seconds over the timed runs.
    pub cpu_s: f64,
    pub error: Option<String>,
    pub bytes: usize,
}

impl Timing {
    pub fn median_ms(&self) -> Option<f64> {
        (self.error.is_none() && !self.runs_ms.is_empty()).then(|| median(&self.runs_ms))
    }
}

/// The median of `v` (the mean of the middle two for an even count); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Steps at 10%, 30%, 50%, 70% and 90% of the range (Unix ms, on the step grid).
fn check_points(range: Range, end_ms: i64) -> Vec<i64> {
    let step_ms = range.step_s * 1000;
    let end = end_ms.div_euclid(step_ms) * step_ms;
    let steps = range.seconds / range.step_s;
    [1, 3, 5, 7, 9]
        .iter()
        .map(|tenth| end - range.seconds * 1000 + steps * tenth / 10 * step_ms)
        .collect()
}

/// Everything measured for one range × query.
#[derive(Debug, Clone)]
pub struct Cell {
    pub range: Range,
    pub query: Query,
    pub timings: Vec<(Kind, Timing)>,
    /// Series and points in the reference answer.
    pub series: usize,
    pub points: usize,
    /// Disagreements between the answers, if any.
    pub warnings: Vec<String>,
}

impl Cell {
    fn median(&self, kind: Kind) -> Option<f64> {
        self.timings
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, t)| t.median_ms())
    }

    /// hearth's median over `peer`'s.
    pub fn ratio(&self, peer: Kind) -> Option<f64> {
        Some(self.median(Kind::Hearth)? / self.median(peer)?)
    }

    /// Server CPU per timed run in milliseconds.
    fn cpu_ms(&self, kind: Kind) -> Option<f64> {
        let (_, t) = self.timings.iter().find(|(k, _)| *k == kind)?;
        (t.error.is_none() && !t.runs_ms.is_empty()).then(|| t.cpu_s * 1e3 / t.runs_ms.len() as f64)
    }

    /// hearth's server CPU per run over `peer`'s, for cells where both used at least 20 ms
    /// (/proc counts 10 ms ticks).
    pub fn cpu_ratio(&self, peer: Kind) -> Option<f64> {
        let (h, p) = (self.cpu_ms(Kind::Hearth)?, self.cpu_ms(peer)?);
        (h >= 20.0 && p >= 20.0).then(|| h / p)
    }
}

fn run_cell(
    servers: &[(Kind, Server)],
    conns: &mut [Conn],
    opts: &Options,
    range: Range,
    query: Query,
    end_ms: i64,
) -> Cell {
    let path = query_path(query.expr, range, end_ms);
    let mut timings: Vec<(Kind, Timing)> = servers
        .iter()
        .map(|(k, _)| (*k, Timing::default()))
        .collect();
    let mut last: Vec<Option<Response>> = vec![None; servers.len()];
    for run in 0..opts.warmup + opts.repeat {
        for (i, (_, server)) in servers.iter().enumerate() {
            let timing = &mut timings[i].1;
            if timing.error.is_some() {
                continue;
            }
            let cpu0 = process::cpu_seconds(server.pid()).unwrap_or(f64::NAN);
            let t = Instant::now();
            let resp = conns[i].get(&path);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let cpu1 = process::cpu_seconds(server.pid()).unwrap_or(f64::NAN);
            match resp {
                Ok(r) if r.is_success() => {
                    if run >= opts.warmup {
                        timing.runs_ms.push(ms);
                        timing.cpu_s += cpu1 - cpu0;
                    }
                    timing.bytes = r.body.len();
                    last[i] = Some(r);
                }
                Ok(r) => timing.error = Some(r.summary()),
                Err(e) => timing.error = Some(format!("GET: {e}")),
            }
        }
    }

    let mut warnings = Vec::new();
    let matrices: Vec<Option<Matrix>> = last
        .iter()
        .zip(&servers.iter().map(|(k, _)| *k).collect::<Vec<_>>())
        .map(|(r, k)| {
            let m = parse_matrix(&r.as_ref()?.body);
            if let Err(e) = &m {
                warnings.push(format!("{}: {e}", k.name()));
            }
            m.ok()
        })
        .collect();
    // Prometheus is the reference when it ran: its semantics are the ones to match.
    let order = [Kind::Prometheus, Kind::VictoriaMetrics, Kind::Hearth];
    let reference = order.iter().find_map(|want| {
        servers
            .iter()
            .position(|(k, _)| k == want)
            .and_then(|i| matrices[i].as_ref().map(|m| (*want, m)))
    });
    let (mut series, mut points) = (0, 0);
    if let Some((ref_kind, reference)) = reference {
        series = reference.len();
        points = reference.iter().map(|(_, p)| p.len()).sum();
        let at = check_points(range, end_ms);
        for (i, (kind, _)) in servers.iter().enumerate() {
            if *kind == ref_kind {
                continue;
            }
            if let Some(m) = &matrices[i] {
                if let Some(d) = compare(reference, m, query.compare, &at) {
                    warnings.push(format!("{} vs {}: {d}", kind.name(), ref_kind.name()));
                }
            }
        }
    }
    for (kind, t) in &timings {
        if let Some(e) = &t.error {
            warnings.push(format!("{}: query failed: {e}", kind.name()));
        }
    }
    Cell {
        range,
        query,
        timings,
        series,
        points,
        warnings,
    }
}

// ---------------------------------------------------------------------------------------
// The run

/// Peak RSS over the query phase, per server.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub kind: Kind,
    /// RSS when the query phase started (after ingest and settling).
    pub start_bytes: u64,
    pub peak_bytes: u64,
    /// Whether the peak covers the query phase only (the reset worked) or the whole run.
    pub phase_only: bool,
    pub query_cpu_s: f64,
}

const MIB: f64 = 1024.0 * 1024.0;

/// Runs the whole benchmark and prints its report.
pub fn run(opts: &Options) -> Result<(), String> {
    let tmp = opts.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
    // Old enough that VictoriaMetrics's 30 s -search.latencyOffset does not hide the end.
    let end_ms = now_ms() - 60_000;
    let t = Instant::now();
    let fleet = build_fleet(opts, end_ms)?;
    let gen_s = t.elapsed().as_secs_f64();
    let short_h = opts.short_span_s() as f64 / 3600.0;
    let long_h = opts.long_span_s() as f64 / 3600.0;
    println!("PromQL range-query benchmark");
    println!(
        "  dataset: {} hosts x {} series over the last {short_h} h + {} hosts x {} series over the last {long_h} h, scraped every 15 s",
        opts.hosts, opts.series_per_host, opts.long_hosts, opts.series_per_host
    );
    println!(
        "           = {} series, {} samples (generated in {gen_s:.1} s)",
        fleet.series, fleet.samples
    );
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "  machine: {cores} CPUs visible; data dirs under {} ({})",
        tmp.display(),
        process::fs_type(&tmp)
    );
    for kind in &opts.servers {
        println!("  {}: {}", kind.name(), version(*kind, opts));
    }

    let mut servers = Vec::new();
    for &kind in &opts.servers {
        servers.push((kind, start(kind, opts, &tmp)?));
    }

    // Ingest into all servers at once from one producer.
    print!("ingesting into {} servers ... ", servers.len());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let t = Instant::now();
    let cpu0: Vec<f64> = servers
        .iter()
        .map(|(_, s)| process::cpu_seconds(s.pid()).unwrap_or(f64::NAN))
        .collect();
    let ingested: Vec<Ingested> = thread::scope(|sc| {
        let mut txs = Vec::new();
        let mut handles = Vec::new();
        for (_, s) in &servers {
            let (tx, rx) = sync_channel(16);
            txs.push(tx);
            let addr = s.addr;
            handles.push(sc.spawn(move || consume(addr, rx)));
        }
        let fleet = &fleet;
        sc.spawn(move || produce(fleet, opts.samples_per_request, txs));
        handles
            .into_iter()
            .map(|h| h.join().expect("ingest thread panicked"))
            .collect()
    });
    println!("{:.1} s", t.elapsed().as_secs_f64());
    for (((kind, s), ing), c0) in servers.iter().zip(&ingested).zip(&cpu0) {
        let cpu = process::cpu_seconds(s.pid()).unwrap_or(f64::NAN) - c0;
        println!(
            "  {:<16} {} requests in {:.1} s, {:.1} CPU-s ({:.0} samples per CPU-s), RSS {:.0} MiB",
            kind.name(),
            ing.requests,
            ing.wall_s,
            cpu,
            fleet.samples as f64 / cpu,
            process::rss_bytes(s.pid()).unwrap_or(0) as f64 / MIB,
        );
        if let Some(e) = &ing.error {
            return Err(format!(
                "{}: ingest failed: {e}\nserver log:\n{}",
                kind.name(),
                s.log_tail(20)
            ));
        }
    }
    if let Some((_, vm)) = servers.iter().find(|(k, _)| *k == Kind::VictoriaMetrics) {
        let r = Conn::connect(vm.addr).and_then(|mut c| c.get("/internal/force_flush"));
        if !r.as_ref().is_ok_and(|r| r.is_success()) {
            println!("  WARNING: VictoriaMetrics /internal/force_flush failed");
        }
    }
    let settled = settle(&servers, Duration::from_secs(600))?;
    println!("  settled (all servers under 2.5% CPU for 6 s) after {settled:.1} s more");
    verify_counts(&servers, &fleet, opts);

    // The query phase.
    let mut conns = Vec::new();
    let mut memory = Vec::new();
    for (kind, s) in &servers {
        conns.push(Conn::connect(s.addr).map_err(|e| format!("{}: {e}", kind.name()))?);
        let start_bytes = process::rss_bytes(s.pid()).unwrap_or(0);
        memory.push(Memory {
            kind: *kind,
            start_bytes,
            peak_bytes: 0,
            phase_only: process::reset_peak_rss(s.pid()).is_ok(),
            query_cpu_s: 0.0,
        });
    }
    println!(
        "querying: {} queries x {} ranges, {} warm-up + {} timed runs each, servers in turn\n",
        opts.queries.len(),
        opts.ranges.len(),
        opts.warmup,
        opts.repeat
    );
    let mut cells = Vec::new();
    for &range in &opts.ranges {
        for &query in &opts.queries {
            let cell = run_cell(&servers, &mut conns, opts, range, query, end_ms);
            println!("{}", cell_line(&cell, &opts.servers));
            for w in &cell.warnings {
                println!("    WARNING: {w}");
            }
            cells.push(cell);
        }
    }
    for (m, (_, s)) in memory.iter_mut().zip(&servers) {
        m.peak_bytes = process::peak_rss_bytes(s.pid()).unwrap_or(0);
        m.query_cpu_s = cells
            .iter()
            .flat_map(|c| c.timings.iter().filter(|(k, _)| *k == m.kind))
            .map(|(_, t)| t.cpu_s)
            .sum();
    }
    println!();
    print!("{}", report(&cells, &memory, opts));
    Ok(())
}

/// Checks each server holds every series and every sample (per host, of the constant
/// `node_boot_time_seconds` over the whole span), printing what it found.
fn verify_counts(servers: &[(Kind, Server)], fleet: &Fleet, opts: &Options) {
    let window_s = opts.long_span_s() + 3600;
    let at = fleet.end_ms as f64 / 1000.0;
    let want_samples = fleet
        .hosts
        .iter()
        .map(|h| h.timestamps.len())
        .sum::<usize>() as f64;
    let checks = [
        ("count({job=\"node\"})".to_string(), fleet.series as f64),
        (
            format!("sum(count_over_time(node_boot_time_seconds[{window_s}s]))"),
            want_samples,
        ),
    ];
    for (kind, s) in servers {
        let mut parts = Vec::new();
        for (q, want) in &checks {
            let path = format!("/api/v1/query?query={}&time={at:.3}", url_encode(q));
            let got = Conn::connect(s.addr)
                .and_then(|mut c| c.get(&path))
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    if r.is_success() {
                        instant_value(&r.body).ok_or_else(|| r.summary())
                    } else {
                        Err(r.summary())
                    }
                });
            match got {
                Ok(v) if v == *want => parts.push(format!("{q} = {v} ok")),
                Ok(v) => parts.push(format!("{q} = {v}, WARNING: expected {want}")),
                Err(e) => parts.push(format!("{q}: WARNING: {e}")),
            }
        }
        println!("  {:<16} {}", kind.name(), parts.join("; "));
    }
}

/// The value of the first sample of an instant-query answer.
fn instant_value(body: &[u8]) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("ERR".into(), |v| format!("{v:.1}"))
}

fn fmt_ratio(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}x"))
}

fn header(kinds: &[Kind]) -> String {
    let mut s = format!("{:<5} {:<19}", "range", "query");
    for k in kinds {
        let _ = write!(s, " {:>10}", format!("{} ms", k.short()));
    }
    if kinds.contains(&Kind::Hearth) {
        for peer in [Kind::Prometheus, Kind::VictoriaMetrics] {
            if kinds.contains(&peer) {
                let _ = write!(s, " {:>9}", format!("h/{}", peer.short()));
            }
        }
    }
    let _ = write!(s, " {:>7} {:>9}  check", "series", "points");
    s
}

fn cell_line(c: &Cell, kinds: &[Kind]) -> String {
    let mut s = format!("{:<5} {:<19}", c.range.name, c.query.name);
    for k in kinds {
        let _ = write!(s, " {:>10}", fmt_ms(c.median(*k)));
    }
    if kinds.contains(&Kind::Hearth) {
        for peer in [Kind::Prometheus, Kind::VictoriaMetrics] {
            if kinds.contains(&peer) {
                let _ = write!(s, " {:>9}", fmt_ratio(c.ratio(peer)));
            }
        }
    }
    let check = if c.warnings.is_empty() { "ok" } else { "WARN" };
    let _ = write!(s, " {:>7} {:>9}  {check}", c.series, c.points);
    s
}

/// The table, memory, the ratios and the goal verdicts.
pub fn report(cells: &[Cell], memory: &[Memory], opts: &Options) -> String {
    let kinds = &opts.servers;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "median of {} runs, milliseconds from request to the last byte of the JSON answer:",
        opts.repeat
    );
    let _ = writeln!(s, "{}", header(kinds));
    for c in cells {
        let _ = writeln!(s, "{}", cell_line(c, kinds));
    }
    let _ = writeln!(
        s,
        "server CPU per run, ms (utime+stime over the timed runs / runs; /proc counts 10 ms ticks), and CPU/latency (above 1: the query ran on more than one core):"
    );
    let mut h = format!("{:<5} {:<19}", "range", "query");
    for k in kinds {
        let _ = write!(h, " {:>10} {:>6}", format!("{} CPU", k.short()), "/lat");
    }
    let _ = writeln!(s, "{h}");
    for c in cells {
        let mut line = format!("{:<5} {:<19}", c.range.name, c.query.name);
        for (k, _) in &c.timings {
            let cpu_ms = c.cpu_ms(*k).unwrap_or(f64::NAN);
            let par = c.median(*k).map_or(f64::NAN, |m| cpu_ms / m);
            let _ = write!(line, " {cpu_ms:>10.1} {par:>6.2}");
        }
        let _ = writeln!(s, "{line}");
    }
    let warned = cells.iter().filter(|c| !c.warnings.is_empty()).count();
    if warned > 0 {
        let _ = writeln!(
            s,
            "WARNING: answers differ (or failed) in {warned} of {} cells (details above): those ratios may compare unequal work",
            cells.len()
        );
    }
    let _ = writeln!(s, "queries:");
    for q in &opts.queries {
        let _ = writeln!(s, "  {:<19} {}", q.name, q.expr);
    }
    let steps: Vec<String> = opts
        .ranges
        .iter()
        .map(|r| format!("{} step {}s", r.name, r.step_s))
        .collect();
    let _ = writeln!(s, "  ({})", steps.join(", "));
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<16} {:>14} {:>14} {:>14}",
        "server", "RSS start MiB", "peak RSS MiB", "query CPU s"
    );
    for m in memory {
        let scope = if m.phase_only { "" } else { " (since start)" };
        let _ = writeln!(
            s,
            "{:<16} {:>14.0} {:>14.0} {:>14.2}{scope}",
            m.kind.name(),
            m.start_bytes as f64 / MIB,
            m.peak_bytes as f64 / MIB,
            m.query_cpu_s
        );
    }
    let _ = writeln!(
        s,
        "(peak RSS over the query phase: VmHWM reset after ingest; query CPU: server utime+stime over the timed runs)"
    );
    let hearth_mem = memory.iter().find(|m| m.kind == Kind::Hearth);
    let _ = writeln!(s);
    for (peer, goal) in [
        (Kind::Prometheus, GOAL_PROMETHEUS_RATIO),
        (Kind::VictoriaMetrics, GOAL_VM_RATIO),
    ] {
        let ratios: Vec<f64> = cells.iter().filter_map(|c| c.ratio(peer)).collect();
        let Some(hm) = hearth_mem else { break };
        let Some(pm) = memory.iter().find(|m| m.kind == peer) else {
            continue;
        };
        if ratios.is_empty() {
            let _ = writeln!(s, "hearth / {}: no cell where both answered", peer.name());
            continue;
        }
        let med = median(&ratios);
        let rss = hm.peak_bytes as f64 / pm.peak_bytes as f64;
        let verdict = |ok: bool| if ok { "MET" } else { "NOT MET" };
        let _ = writeln!(
            s,
            "summary hearth / {}: median of {} latency ratios {med:.2}x (goal <= {goal}x: {}), range {:.2}x..{:.2}x; peak RSS {rss:.2}x (goal < 1x: {})",
            peer.name(),
            ratios.len(),
            verdict(med <= goal),
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            verdict(rss < 1.0),
        );
        let cpu: Vec<f64> = cells.iter().filter_map(|c| c.cpu_ratio(peer)).collect();
        if !cpu.is_empty() {
            let _ = writeln!(
                s,
                "        server CPU per query: median of {} ratios {:.2}x (less sensitive to other load on the machine than latency; a peer that spreads a query over cores spends more CPU for less latency)",
                cpu.len(),
                median(&cpu)
            );
        }
    }
    if hearth_mem.is_none() {
        let _ = writeln!(s, "hearth did not run: no ratios");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags() {
        let o = Options::parse(
            [
                "--hosts",
                "3",
                "--ranges=1h,24h",
                "--servers",
                "vm,prometheus",
                "--warmup",
                "0",
                "--queries=topk,rate",
            ]
            .map(String::from),
        )
        .unwrap();
        assert_eq!((o.hosts, o.long_hosts, o.warmup), (3, 2, 0));
        assert_eq!(o.ranges, vec![RANGES[0], RANGES[1]]);
        assert_eq!(o.servers, vec![Kind::VictoriaMetrics, Kind::Prometheus]);
        let names: Vec<&str> = o.queries.iter().map(|q| q.name).collect();
        assert_eq!(names, ["topk", "rate"]);
        assert_eq!((o.long_span_s(), o.short_span_s()), (86_400, 86_400));
        assert!(Options::parse(["--ranges".to_string(), "2h".into()]).is_err());
        assert!(Options::parse(["--series-per-host".to_string(), "60".into()]).is_err());
    }

    #[test]
    fn aligns_queries_to_the_step() {
        let p = query_path("up", RANGES[1], 1_700_000_123_456);
        assert_eq!(
            p,
            "/api/v1/query_range?query=up&start=1699913640&end=1700000040&step=120"
        );
        let at = check_points(RANGES[0], 1_700_000_123_456);
        assert_eq!(at.len(), 5);
        assert!(at.iter().all(|t| t % 15_000 == 0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
