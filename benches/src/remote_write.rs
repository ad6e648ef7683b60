//! The remote_write ingest benchmark: the same pre-encoded requests sent by N concurrent
//! senders to hearth (WAL fsync `always` and `interval`) and to VictoriaMetrics, one server
//! at a time, each on a fresh data directory; then a table and the hearth/VM ratios.
//!
//! What is timed is only the send phase: from the moment all senders (already connected)
//! start until the last answer arrived. Server CPU is utime + stime of the whole server
//! process over that phase; after it the harness checks that every sample landed.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hearth_ingest::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;

use crate::dataset::{self, DatasetSpec, Encoded, SCRAPE_INTERVAL_MS};
use crate::http::{url_encode, Conn, Response};
use crate::process::{self, Server};

/// What the goal asks of hearth: samples per server CPU-second relative to VictoriaMetrics.
pub const GOAL_PER_CPU_RATIO: f64 = 1.5;

const REMOTE_WRITE_HEADERS: &[(&str, &str)] = &[
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ("User-Agent", "hearth-benches/remote_write"),
];

/// Series in the warm-up request (`job="warmup"`, kept apart from the measured data).
const WARMUP_SERIES: usize = 10;

/// The servers the benchmark can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// hearth with `storage.wal_fsync: always` (its default): answers after fdatasync.
    HearthFsyncAlways,
    /// hearth with `storage.wal_fsync: interval`: answers after the WAL write, syncs each 1 s.
    HearthFsyncInterval,
    /// VictoriaMetrics single-node: answers once rows are buffered in memory.
    VictoriaMetrics,
}

impl Target {
    pub const ALL: [Target; 3] = [
        Target::HearthFsyncAlways,
        Target::HearthFsyncInterval,
        Target::VictoriaMetrics,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::HearthFsyncAlways => "hearth fsync=always",
            Target::HearthFsyncInterval => "hearth fsync=interval",
            Target::VictoriaMetrics => "VictoriaMetrics",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Target::HearthFsyncAlways => "hearth-always",
            Target::HearthFsyncInterval => "hearth-interval",
            Target::VictoriaMetrics => "vm",
        }
    }

    fn is_hearth(self) -> bool {
        self != Target::VictoriaMetrics
    }
}

/// Command-line options of the `remote_write` binary.
#[derive(Debug, Clone)]
pub struct Options {
    pub hearth: PathBuf,
    pub vm: PathBuf,
    pub hosts: usize,
    pub series_per_host: usize,
    pub scrapes: usize,
    pub senders: usize,
    pub samples_per_request: usize,
    /// Where the servers' temporary data directories go (default: the system temp dir).
    pub tmp_dir: Option<PathBuf>,
    pub targets: Vec<Target>,
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hearth: "target/release/hearth".into(),
            vm: "/usr/bin/victoria-metrics".into(),
            hosts: 100,
            series_per_host: 500,
            scrapes: 40,
            senders: 4,
            samples_per_request: 2000,
            tmp_dir: None,
            targets: Target::ALL.to_vec(),
            seed: 0x6865_6172_7468,
        }
    }
}

pub const USAGE: &str = "\
usage: remote_write [options]

End-to-end remote_write ingest benchmark: hearth vs VictoriaMetrics on identical payloads.

  --hearth PATH               hearth binary [target/release/hearth]
  --vm PATH                   victoria-metrics binary [/usr/bin/victoria-metrics]
  --hosts N                   simulated node_exporter targets [100]
  --series-per-host N         series per target [500]
  --scrapes N                 scrapes per target, 15 s apart, ending now [40]
  --senders N                 concurrent senders, one keep-alive connection each [4]
  --samples-per-request N     samples per remote_write request [2000]
  --tmp-dir DIR               parent of the servers' data directories [system temp dir]
  --servers LIST              comma-separated subset of hearth-always,hearth-interval,vm [all]
  --seed N                    dataset seed
";

impl Options {
    /// Parses flags (without the program name). `Err` carries the message to print.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut o = Options::default();
        crate::cli::parse_flags(args, USAGE, |name, value| {
            let num = |v: String| crate::cli::positive(name, &v).map(|n| n as usize);
            match name {
                "--hearth" => o.hearth = value()?.into(),
                "--vm" => o.vm = value()?.into(),
                "--hosts" => o.hosts = num(value()?)?,
                "--series-per-host" => o.series_per_host = num(value()?)?,
                "--scrapes" => o.scrapes = num(value()?)?,
                "--senders" => o.senders = num(value()?)?,
                "--samples-per-request" => o.samples_per_request = num(value()?)?,
                "--tmp-dir" => o.tmp_dir = Some(value()?.into()),
                "--seed" => o.seed = crate::cli::positive(name, &value()?)?,
                "--servers" => {
                    o.targets = crate::cli::servers(&value()?, &Target::ALL, Target::flag)?
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(o)
    }

    pub fn dataset_spec(&self, end_ms: i64) -> DatasetSpec {
        DatasetSpec {
            hosts: self.hosts,
            series_per_host: self.series_per_host,
            scrapes: self.scrapes,
            end_ms,
            seed: self.seed,
        }
    }
}

/// What one server did with the whole dataset.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub target: Target,
    pub samples: u64,
    pub wall_s: f64,
    /// Server CPU over the send phase.
    pub server_cpu_s: f64,
    /// Server CPU from the start of the send phase until after the flush and a 1 s settle
    /// (catches work a server defers past its answer, such as VictoriaMetrics's in-memory
    /// buffers and part merges).
    pub server_cpu_settled_s: f64,
    pub peak_rss_bytes: u64,
    /// The harness's own CPU over the send phase (the senders).
    pub client_cpu_s: f64,
    pub reconnects: u64,
    /// What could be checked after the send phase, in words.
    pub verified: String,
    /// Whether everything checked matched.
    pub verified_ok: bool,
    pub notes: Vec<String>,
}

impl Measurement {
    pub fn samples_per_s(&self) -> f64 {
        self.samples as f64 / self.wall_s
    }

    pub fn samples_per_cpu_s(&self) -> f64 {
        self.samples as f64 / self.server_cpu_s
    }

    pub fn samples_per_cpu_s_settled(&self) -> f64 {
        self.samples as f64 / self.server_cpu_settled_s
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs the whole benchmark and prints its report; the result says whether every server ran
/// and verified.
pub fn run(opts: &Options) -> Result<(), String> {
    let end_ms = now_ms();
    let spec = opts.dataset_spec(end_ms);
    let t = Instant::now();
    let hosts = dataset::generate(&spec);
    dataset::check_dataset(&hosts, &spec)?;
    let enc = dataset::encode_requests(&hosts, opts.senders, opts.samples_per_request);
    drop(hosts);
    let prep_s = t.elapsed().as_secs_f64();

    let tmp = opts.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    println!("remote_write ingest benchmark");
    println!(
        "  dataset: {} hosts x {} series x {} scrapes = {} samples, {} series",
        opts.hosts, opts.series_per_host, opts.scrapes, enc.samples, enc.series
    );
    println!(
        "  requests: {} of <= {} samples, {:.1} MiB protobuf -> {:.1} MiB snappy ({:.1} bytes/sample on the wire); prepared in {prep_s:.1} s",
        enc.requests,
        opts.samples_per_request,
        enc.raw_bytes as f64 / MIB,
        enc.compressed_bytes as f64 / MIB,
        enc.compressed_bytes as f64 / enc.samples as f64,
    );
    let per_sender: Vec<usize> = enc.per_sender.iter().map(Vec::len).collect();
    println!(
        "  senders: {} (requests each: {per_sender:?}); hosts dealt round-robin to senders",
        opts.senders
    );
    if opts.hosts % opts.senders != 0 {
        println!("  WARNING: hosts is not a multiple of senders: senders have unequal work");
    }
    println!(
        "  machine: {cores} CPUs visible; data dirs under {} ({})",
        tmp.display(),
        process::fs_type(&tmp)
    );
    println!();

    let mut results = Vec::new();
    let mut failed = Vec::new();
    for &target in &opts.targets {
        print!("running {} ... ", target.name());
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let warmup_ts = end_ms - (opts.scrapes as i64 + 1) * SCRAPE_INTERVAL_MS;
        match run_one(target, opts, &enc, &tmp, warmup_ts) {
            Ok(m) => {
                println!(
                    "{:.2} s, {:.0} samples/s, verified: {}",
                    m.wall_s,
                    m.samples_per_s(),
                    m.verified
                );
                if !m.verified_ok {
                    failed.push(format!("{}: not verified: {}", target.name(), m.verified));
                }
                results.push(m);
            }
            Err(e) => {
                println!("FAILED");
                eprintln!("{}: {e}", target.name());
                failed.push(format!("{}: {e}", target.name()));
            }
        }
    }
    println!();
    print!("{}", report(&results));
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("\n"))
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// The table, the ratios and the goal verdict.
pub fn report(results: &[Measurement]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<22} {:>9} {:>7} {:>11} {:>8} {:>12} {:>9} {:>13} {:>8} {:>8}",
        "server",
        "samples",
        "wall s",
        "samples/s",
        "srv CPU",
        "samples/CPUs",
        "RSS MiB",
        "+settle CPU s",
        "per CPUs",
        "cli CPU"
    );
    for m in results {
        let _ = writeln!(
            s,
            "{:<22} {:>9} {:>7.2} {:>11.0} {:>8.2} {:>12.0} {:>9.1} {:>13.2} {:>8.0} {:>8.2}",
            m.target.name(),
            m.samples,
            m.wall_s,
            m.samples_per_s(),
            m.server_cpu_s,
            m.samples_per_cpu_s(),
            m.peak_rss_bytes as f64 / MIB,
            m.server_cpu_settled_s,
            m.samples_per_cpu_s_settled(),
            m.client_cpu_s,
        );
    }
    let _ = writeln!(
        s,
        "(srv CPU: server utime+stime during the send phase; +settle: until after the flush and 1 s more; cli CPU: the senders)"
    );
    if results.iter().any(|m| m.server_cpu_s < 2.0) {
        let _ = writeln!(
            s,
            "WARNING: a server used under 2 CPU-seconds; /proc counts CPU in 10 ms ticks, so per-CPU figures are coarse: send more data"
        );
    }
    for m in results {
        let _ = writeln!(s, "{}: verified: {}", m.target.name(), m.verified);
        for n in &m.notes {
            let _ = writeln!(s, "{}: {n}", m.target.name());
        }
    }
    let vm = results.iter().find(|m| m.target == Target::VictoriaMetrics);
    let _ = writeln!(s);
    let Some(vm) = vm else {
        let _ = writeln!(s, "no VictoriaMetrics result: no ratios");
        return s;
    };
    let _ = writeln!(
        s,
        "ratios hearth / VictoriaMetrics (RSS: lower is better for hearth):"
    );
    for m in results.iter().filter(|m| m.target.is_hearth()) {
        let _ = writeln!(
            s,
            "  {:<22} samples/s {:.2}x   samples/CPU-s {:.2}x   (incl. settle {:.2}x)   peak RSS {:.2}x",
            m.target.name(),
            m.samples_per_s() / vm.samples_per_s(),
            m.samples_per_cpu_s() / vm.samples_per_cpu_s(),
            m.samples_per_cpu_s_settled() / vm.samples_per_cpu_s_settled(),
            m.peak_rss_bytes as f64 / vm.peak_rss_bytes as f64,
        );
    }
    let _ = writeln!(
        s,
        "goal: hearth >= {GOAL_PER_CPU_RATIO}x VictoriaMetrics samples per server CPU-second"
    );
    for m in results.iter().filter(|m| m.target.is_hearth()) {
        let r = m.samples_per_cpu_s() / vm.samples_per_cpu_s();
        let verdict = if r >= GOAL_PER_CPU_RATIO {
            "MET"
        } else {
            "NOT MET"
        };
        let _ = writeln!(s, "  {:<22} {r:.2}x  {verdict}", m.target.name());
    }
    let _ = writeln!(
        s,
        "note: VictoriaMetrics answers before its data is on disk (rows buffered in memory, flushed about every second); hearth fsync=always answers after fdatasync of the WAL, fsync=interval after the WAL write."
    );
    s
}

/// Builds the command line for `target` with its data under `dir`.
fn command(target: Target, opts: &Options, dir: &std::path::Path, addr: SocketAddr) -> Command {
    let data = dir.join("data");
    match target {
        Target::HearthFsyncAlways | Target::HearthFsyncInterval => {
            let mut c = Command::new(&opts.hearth);
            c.arg("--storage.path")
                .arg(&data)
                .arg("--web.listen-address")
                .arg(addr.to_string());
            if target == Target::HearthFsyncInterval {
                let cfg = dir.join("hearth.yml");
                // Written before the spawn; a failure shows up as hearth refusing to start.
                let _ = std::fs::write(&cfg, "storage:\n  wal_fsync: interval\n");
                c.arg("--config").arg(cfg);
            }
            c
        }
        Target::VictoriaMetrics => {
            let mut c = Command::new(&opts.vm);
            c.arg(format!("-storageDataPath={}", data.display()))
                .arg(format!("-httpListenAddr={addr}"))
                .arg("-retentionPeriod=100y");
            c
        }
    }
}

/// A small request of its own series (`job="warmup"`), so the servers have their
/// connection handling, allocators and caches warm before the timed phase.
fn warmup_body(ts: i64) -> Vec<u8> {
    let timeseries = (0..WARMUP_SERIES)
        .map(|i| TimeSeries {
            labels: vec![
                label("__name__", "hearth_bench_warmup"),
                label("i", &i.to_string()),
                label("job", "warmup"),
            ],
            samples: vec![Sample {
                value: i as f64,
                timestamp: ts,
            }],
            ..TimeSeries::default()
        })
        .collect();
    let req = WriteRequest {
        timeseries,
        ..WriteRequest::default()
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("BUG: small body")
}

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.as_bytes().to_vec().into(),
        value: value.as_bytes().to_vec().into(),
    }
}

#[derive(Default)]
struct SenderResult {
    ok: u64,
    non_2xx: u64,
    first_error: Option<String>,
    reconnects: u64,
}

fn describe(r: &Response) -> String {
    let mut body = r.body_text();
    body.truncate(300);
    format!("HTTP {}: {}", r.status, body.trim_end())
}

fn run_one(
    target: Target,
    opts: &Options,
    enc: &Encoded,
    tmp: &std::path::Path,
    warmup_ts: i64,
) -> Result<Measurement, String> {
    let dir = tempfile::Builder::new()
        .prefix("hearth-bench-")
        .tempdir_in(tmp)
        .map_err(|e| format!("creating a temp dir in {}: {e}", tmp.display()))?;
    let port = process::free_port().map_err(|e| format!("finding a free port: {e}"))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let cmd = command(target, opts, dir.path(), addr);
    let mut server = Server::spawn(target.name(), cmd, addr, dir).map_err(|e| e.to_string())?;
    let ready_path = if target.is_hearth() {
        "/-/ready"
    } else {
        "/health"
    };
    server
        .wait_ready(ready_path, Duration::from_secs(120))
        .map_err(|e| e.to_string())?;
    let pid = server.pid();
    let mut notes = Vec::new();
    let http = |path: &str| -> Result<Response, String> {
        Conn::connect(addr)
            .and_then(|mut c| c.get(path))
            .map_err(|e| format!("GET {path}: {e}"))
    };

    let warm = Conn::connect(addr)
        .and_then(|mut c| {
            c.request(
                "POST",
                "/api/v1/write",
                REMOTE_WRITE_HEADERS,
                &warmup_body(warmup_ts),
            )
        })
        .map_err(|e| format!("warm-up request: {e}"))?;
    if !warm.is_success() {
        return Err(format!("warm-up request refused: {}", describe(&warm)));
    }
    if target == Target::VictoriaMetrics {
        if let Ok(r) = http("/metrics") {
            let text = r.body_text();
            if let Some(v) = text
                .lines()
                .find(|l| l.starts_with("vm_app_version"))
                .and_then(|l| l.split("short_version=\"").nth(1))
                .and_then(|v| v.split('"').next())
                .filter(|v| !v.is_empty())
            {
                notes.push(format!("version {v}"));
            } else if let Some(v) = dpkg_version("victoria-metrics") {
                // Debian's build leaves vm_app_version empty.
                notes.push(format!("version {v} (Debian package)"));
            }
        }
    }
    let hearth_before = if target.is_hearth() {
        Some(hearth_counters(&http("/metrics")?.body_text()))
    } else {
        None
    };

    // The send phase.
    let mut conns = Vec::with_capacity(enc.per_sender.len());
    for _ in &enc.per_sender {
        conns.push(Conn::connect(addr).map_err(|e| format!("connecting a sender: {e}"))?);
    }
    let barrier = Barrier::new(conns.len() + 1);
    let abort = AtomicBool::new(false);
    let (wall_s, client_cpu_s, cpu_start, cpu_end, sent) = thread::scope(|sc| {
        let handles: Vec<_> = conns
            .into_iter()
            .zip(&enc.per_sender)
            .map(|(mut conn, bodies)| {
                let (barrier, abort) = (&barrier, &abort);
                sc.spawn(move || {
                    let mut r = SenderResult::default();
                    barrier.wait();
                    for body in bodies {
                        if abort.load(Ordering::Relaxed) {
                            break;
                        }
                        match conn.request("POST", "/api/v1/write", REMOTE_WRITE_HEADERS, body) {
                            Ok(resp) if resp.is_success() => r.ok += 1,
                            Ok(resp) => {
                                r.non_2xx += 1;
                                r.first_error.get_or_insert_with(|| describe(&resp));
                                abort.store(true, Ordering::Relaxed);
                            }
                            Err(e) => {
                                r.first_error
                                    .get_or_insert_with(|| format!("I/O error: {e}"));
                                abort.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                    r.reconnects = conn.reconnects;
                    r
                })
            })
            .collect();
        let cpu_start = process::cpu_seconds(pid);
        let client_start = process::self_cpu_seconds();
        barrier.wait();
        let t0 = Instant::now();
        let sent: Vec<SenderResult> = handles
            .into_iter()
            .map(|h| h.join().expect("sender thread panicked"))
            .collect();
        let wall = t0.elapsed().as_secs_f64();
        let cpu_end = process::cpu_seconds(pid);
        let client = process::self_cpu_seconds() - client_start;
        (wall, client, cpu_start, cpu_end, sent)
    });
    let cpu_start = cpu_start.map_err(|e| format!("reading server CPU: {e}"))?;
    let cpu_end = cpu_end.map_err(|e| format!("reading server CPU: {e}"))?;
    let peak_rss_bytes = process::peak_rss_bytes(pid).map_err(|e| format!("reading RSS: {e}"))?;

    let ok: u64 = sent.iter().map(|r| r.ok).sum();
    let non_2xx: u64 = sent.iter().map(|r| r.non_2xx).sum();
    let reconnects: u64 = sent.iter().map(|r| r.reconnects).sum();
    if let Some(e) = sent.iter().find_map(|r| r.first_error.clone()) {
        return Err(format!(
            "send phase aborted after {ok} accepted requests, {non_2xx} non-2xx answers; first error: {e}\nserver log:\n{}",
            server.log_tail(20)
        ));
    }
    if reconnects > 0 {
        notes.push(format!(
            "{reconnects} reconnects during the send phase (server closed keep-alive connections)"
        ));
    }

    // Let deferred work happen, then count it too.
    if target == Target::VictoriaMetrics {
        let r = http("/internal/force_flush")?;
        if !r.is_success() {
            notes.push(format!("/internal/force_flush: {}", describe(&r)));
        }
    }
    thread::sleep(Duration::from_secs(1));
    let cpu_settled = process::cpu_seconds(pid).map_err(|e| format!("reading server CPU: {e}"))?;

    let (verified, verified_ok) = match hearth_before {
        Some(before) => verify_hearth(
            &before,
            &hearth_counters(&http("/metrics")?.body_text()),
            enc,
            &mut notes,
        ),
        None => verify_vm(&http, enc, opts),
    };

    let t = Instant::now();
    match server.stop(Duration::from_secs(60)) {
        Ok(st) if st.success() => {
            notes.push(format!(
                "stopped cleanly in {:.2} s after SIGTERM",
                t.elapsed().as_secs_f64()
            ));
        }
        Ok(st) => notes.push(format!("exit after SIGTERM: {st}")),
        Err(e) => notes.push(format!("stopping: {e}")),
    }
    Ok(Measurement {
        target,
        samples: enc.samples,
        wall_s,
        server_cpu_s: cpu_end - cpu_start,
        server_cpu_settled_s: cpu_settled - cpu_start,
        peak_rss_bytes,
        client_cpu_s,
        reconnects,
        verified,
        verified_ok,
        notes,
    })
}

fn dpkg_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .ok()?;
    let v = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !v.is_empty()).then_some(v)
}

/// hearth's counters the verification reads, from its `/metrics` text.
#[derive(Debug, Default, Clone, Copy)]
struct HearthCounters {
    appended: f64,
    out_of_order: f64,
    duplicates: f64,
    rejected: f64,
    series: f64,
    wal_fsyncs: f64,
    wal_commits: f64,
}

/// The sum of all series of metric `name` in an exposition-format text (NaN if absent).
fn metric(text: &str, name: &str) -> f64 {
    let values: Vec<f64> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = match rest.strip_prefix('{') {
                Some(r) => r.split_once('}')?.1,
                None => rest,
            };
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
        .collect();
    if values.is_empty() {
        f64::NAN
    } else {
        values.iter().sum()
    }
}

fn hearth_counters(text: &str) -> HearthCounters {
    HearthCounters {
        appended: metric(text, "hearth_tsdb_head_samples_appended_total"),
        out_of_order: metric(text, "hearth_tsdb_head_out_of_order_samples_appended_total"),
        duplicates: metric(text, "hearth_tsdb_head_duplicate_samples_total"),
        rejected: metric(text, "hearth_tsdb_head_samples_rejected_total"),
        series: metric(text, "hearth_tsdb_head_series"),
        wal_fsyncs: metric(text, "hearth_tsdb_wal_fsyncs_total"),
        wal_commits: metric(text, "hearth_tsdb_wal_commits_total"),
    }
}

fn verify_hearth(
    before: &HearthCounters,
    after: &HearthCounters,
    enc: &Encoded,
    notes: &mut Vec<String>,
) -> (String, bool) {
    let appended = after.appended - before.appended;
    let series = after.series - WARMUP_SERIES as f64;
    let ok = appended == enc.samples as f64 && series == enc.series as f64;
    let fsyncs = after.wal_fsyncs - before.wal_fsyncs;
    let commits = after.wal_commits - before.wal_commits;
    notes.push(format!(
        "WAL during the send phase: {commits} commits, {fsyncs} fsyncs ({:.0} samples per fsync); out-of-order appended {}, duplicates {}, rejected {}",
        appended / fsyncs.max(1.0),
        after.out_of_order - before.out_of_order,
        after.duplicates - before.duplicates,
        after.rejected - before.rejected,
    ));
    let word = if ok { "yes" } else { "NO" };
    (
        format!(
            "{word}: hearth_tsdb_head_samples_appended_total +{appended} (sent {}), head series {series} (+{WARMUP_SERIES} warm-up; expected {})",
            enc.samples, enc.series
        ),
        ok,
    )
}

/// Counts what VictoriaMetrics stored: series via `/api/v1/series/count`, samples with
/// `sum(count_over_time({job="node"}[...]))` at now (with `nocache=1`, which also turns off
/// the 30 s `-search.latencyOffset` that would hide the newest samples).
fn verify_vm(
    http: &dyn Fn(&str) -> Result<Response, String>,
    enc: &Encoded,
    opts: &Options,
) -> (String, bool) {
    let mut parts = Vec::new();
    let mut ok = true;
    match http("/api/v1/series/count") {
        Ok(r) if r.is_success() => {
            let n = json_number_after(&r.body_text(), "\"data\":[");
            let want = (enc.series + WARMUP_SERIES as u64) as f64;
            ok &= n == Some(want);
            parts.push(format!(
                "series/count {} (expected {want} incl. warm-up)",
                n.map_or("?".into(), |v| v.to_string())
            ));
        }
        Ok(r) => {
            ok = false;
            parts.push(format!("series/count: {}", describe(&r)));
        }
        Err(e) => {
            ok = false;
            parts.push(e);
        }
    }
    let window_s = opts.scrapes as i64 * SCRAPE_INTERVAL_MS / 1000 + 3600;
    let q = format!("sum(count_over_time({{job=\"node\"}}[{window_s}s]))");
    let time = now_ms() as f64 / 1000.0 + 1.0;
    let path = format!(
        "/api/v1/query?query={}&time={time:.3}&nocache=1",
        url_encode(&q)
    );
    match http(&path) {
        Ok(r) if r.is_success() => {
            let n = json_value_string(&r.body_text());
            ok &= n == Some(enc.samples as f64);
            parts.push(format!(
                "{q} = {} (sent {})",
                n.map_or("?".into(), |v| v.to_string()),
                enc.samples
            ));
        }
        Ok(r) => {
            ok = false;
            parts.push(format!("query: {}", describe(&r)));
        }
        Err(e) => {
            ok = false;
            parts.push(e);
        }
    }
    let word = if ok { "yes" } else { "NO" };
    (
        format!("{word}: after /internal/force_flush: {}", parts.join("; ")),
        ok,
    )
}

/// The number right after `key` in a JSON text (a tiny scan; no JSON crate for two fields).
fn json_number_after(text: &str, key: &str) -> Option<f64> {
    let rest = &text[text.find(key)? + key.len()..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || ".eE+-".contains(c)))?;
    rest[..end].parse().ok()
}

/// The value of the first `"value":[<ts>,"<v>"]` of a Prometheus query answer.
fn json_value_string(text: &str) -> Option<f64> {
    let rest = &text[text.find("\"value\":[")? + 9..];
    let rest = &rest[rest.find(",\"")? + 2..];
    rest[..rest.find('"')?].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags() {
        let o = Options::parse(
            [
                "--hosts",
                "8",
                "--senders=2",
                "--servers",
                "vm,hearth-always",
            ]
            .map(String::from),
        )
        .unwrap();
        assert_eq!((o.hosts, o.senders, o.series_per_host), (8, 2, 500));
        assert_eq!(
            o.targets,
            vec![Target::VictoriaMetrics, Target::HearthFsyncAlways]
        );
        assert!(Options::parse(["--hosts".to_string(), "0".into()]).is_err());
        assert!(Options::parse(["--nope".to_string()]).is_err());
    }

    #[test]
    fn reads_answers() {
        assert_eq!(
            json_number_after(r#"{"status":"success","data":[50010]}"#, "\"data\":["),
            Some(50010.0)
        );
        let q = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1712.5,"2000000"]}]}}"#;
        assert_eq!(json_value_string(q), Some(2_000_000.0));
        let m = "# TYPE x counter\nhearth_tsdb_head_series_created_total 3\nhearth_tsdb_head_series 7\nr{a=\"b c\"} 2\nr{a=\"d\"} 3\n";
        assert_eq!(metric(m, "hearth_tsdb_head_series"), 7.0);
        assert_eq!(metric(m, "r"), 5.0);
        assert!(metric(m, "absent").is_nan());
    }
}
