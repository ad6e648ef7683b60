//! The scrape benchmark: N targets on 127.0.0.1 serve the same exposition body (by default
//! the 237-family conformance file); hearth, then Prometheus, each scrape all of them at the
//! same interval for the same time, on a fresh data directory; then a table and the
//! hearth/Prometheus ratios of CPU and RSS.
//!
//! What is measured: server CPU (utime + stime of the whole process, from `/proc`) over the
//! run window, which starts when the server answers `/-/ready` and lasts `--duration`;
//! start-up CPU before ready is reported apart and is not in the ratios. "steady" is the same
//! from one interval after ready (every target scraped once, its series created) to the end.
//! Peak RSS is `VmHWM` at the end of the window, final RSS `VmRSS` then. Scrapes are counted
//! by the target server, per window, so CPU per scrape uses scrapes actually served.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{url_encode, Conn, Response};
use crate::process::{self, Server};
use crate::scrape_targets::{TargetServer, CONTENT_TYPE};

/// hearth's goals against Prometheus: CPU at most this fraction of Prometheus's...
pub const GOAL_CPU_RATIO: f64 = 0.5;
/// ...and peak RSS at most this fraction.
pub const GOAL_RSS_RATIO: f64 = 0.3;

/// The exposition body served by default: the 237-family conformance file, found relative
/// to the repository root (`../shared/conformance/...`).
pub const DEFAULT_BODY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/conformance/exposition/alltypes.237mfs.prom.txt"
);

/// Synthetic series both servers add per scrape (`up`, `scrape_duration_seconds`,
/// `scrape_samples_scraped`, `scrape_samples_post_metric_relabeling`, `scrape_series_added`).
const REPORT_SERIES: u64 = 5;

/// The servers the benchmark can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Hearth,
    Prometheus,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Hearth, Kind::Prometheus];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Hearth => "hearth",
            Kind::Prometheus => "Prometheus",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Kind::Hearth => "hearth",
            Kind::Prometheus => "prometheus",
        }
    }
}

/// Command-line options of the `scrape` binary.
#[derive(Debug, Clone)]
pub struct Options {
    pub hearth: PathBuf,
    pub prometheus: PathBuf,
    pub targets: usize,
    pub duration_s: u64,
    pub interval_s: u64,
    pub body: PathBuf,
    /// Where the servers' temporary data directories go (default: the system temp dir).
    pub tmp_dir: Option<PathBuf>,
    pub servers: Vec<Kind>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hearth: "target/release/hearth".into(),
            prometheus: "/usr/bin/prometheus".into(),
            targets: 200,
            duration_s: 150,
            interval_s: 15,
            body: DEFAULT_BODY.into(),
            tmp_dir: None,
            servers: Kind::ALL.to_vec(),
        }
    }
}

pub const USAGE: &str = "\
usage: scrape [options]

End-to-end scrape benchmark: hearth vs Prometheus scraping the same N targets (served by
this process on 127.0.0.1), one server after the other; CPU and RSS, and their ratios.

  --hearth PATH         hearth binary [target/release/hearth]
  --prometheus PATH     prometheus binary [/usr/bin/prometheus]
  --targets N           scrape targets (one port each) [200]
  --duration SECS       run window per server, from /-/ready [150]
  --interval SECS       scrape_interval (scrape_timeout = min(10 s, interval)) [15]
  --body PATH           exposition body every target serves
                        [../shared/conformance/exposition/alltypes.237mfs.prom.txt]
  --tmp-dir DIR         parent of the servers' data directories [system temp dir]
  --servers LIST        comma-separated subset of hearth,prometheus [both]
";

impl Options {
    /// Parses flags (without the program name). `Err` carries the message to print.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut o = Options::default();
        crate::cli::parse_flags(args, USAGE, |name, value| {
            let num = |v: String| crate::cli::positive(name, &v);
            match name {
                "--hearth" => o.hearth = value()?.into(),
                "--prometheus" => o.prometheus = value()?.into(),
                "--targets" => o.targets = num(value()?)? as usize,
                "--duration" => o.duration_s = num(value()?)?,
                "--interval" => o.interval_s = num(value()?)?,
                "--body" => o.body = value()?.into(),
                "--tmp-dir" => o.tmp_dir = Some(value()?.into()),
                "--servers" => o.servers = crate::cli::servers(&value()?, &Kind::ALL, Kind::flag)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(o)
    }

    fn scrape_timeout_s(&self) -> u64 {
        self.interval_s.min(10)
    }
}

/// The scrape config both servers get: `global` and one job `targets` listing `addrs`;
/// `storage` (hearth only) adds hearth's `storage.path`.
pub fn config_yaml(opts: &Options, addrs: &[SocketAddr], storage: Option<&Path>) -> String {
    let mut s = format!(
        "global:\n  scrape_interval: {}s\n  scrape_timeout: {}s\nscrape_configs:\n  - job_name: targets\n    static_configs:\n      - targets:\n",
        opts.interval_s,
        opts.scrape_timeout_s()
    );
    for a in addrs {
        let _ = writeln!(s, "          - \"{a}\"");
    }
    if let Some(p) = storage {
        let _ = writeln!(s, "storage:\n  path: \"{}\"", p.display());
    }
    s
}

/// Samples (non-comment, non-blank lines) in an exposition-format text.
pub fn count_samples(body: &str) -> u64 {
    body.lines()
        .filter(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .count() as u64
}

/// One point of a server's timeline, taken each interval of the window.
#[derive(Debug, Clone, Copy)]
struct Point {
    t_s: f64,
    cpu_s: f64,
    rss_bytes: u64,
    served: u64,
    /// Whether every target had been scraped by this server at least once.
    all_scraped: bool,
}

/// What one server did over its window.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub kind: Kind,
    pub version: String,
    pub window_s: f64,
    /// CPU before `/-/ready` (process start-up), not in the ratios.
    pub startup_cpu_s: f64,
    /// CPU over the window.
    pub cpu_s: f64,
    /// CPU from one interval after ready to the end of the window.
    pub steady_cpu_s: f64,
    pub peak_rss_bytes: u64,
    pub final_rss_bytes: u64,
    /// Scrapes the target server answered during the window (all targets).
    pub scrapes: u64,
    pub steady_scrapes: u64,
    /// Fewest / most scrapes of one target during the window.
    pub scrapes_min: u64,
    pub scrapes_max: u64,
    /// The harness's own CPU over the window (the target server, mostly).
    pub harness_cpu_s: f64,
    pub targets_active: usize,
    pub targets_up: usize,
    /// Samples appended by the server's storage (its own counter) by verification time.
    pub samples_appended: Option<f64>,
    pub head_series: Option<f64>,
    pub verified: String,
    pub verified_ok: bool,
    pub timeline: String,
    pub notes: Vec<String>,
}

impl Measurement {
    pub fn cpu_ms_per_scrape(&self) -> f64 {
        self.cpu_s * 1000.0 / self.scrapes as f64
    }

    pub fn steady_ms_per_scrape(&self) -> f64 {
        self.steady_cpu_s * 1000.0 / self.steady_scrapes as f64
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// Runs the whole benchmark and prints its report; the result says whether every server
/// ran and verified.
pub fn run(opts: &Options) -> Result<(), String> {
    let body = std::fs::read(&opts.body).map_err(|e| {
        format!(
            "reading the exposition body {}: {e}\n(the default is the conformance file under ../shared/conformance relative to the repository root; pass --body PATH)",
            opts.body.display()
        )
    })?;
    let text = String::from_utf8_lossy(&body).into_owned();
    let samples_per_scrape = count_samples(&text);
    if samples_per_scrape == 0 {
        return Err(format!("{}: no samples in the body", opts.body.display()));
    }
    let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();

    let targets = TargetServer::start(opts.targets, &body)
        .map_err(|e| format!("starting {} scrape targets: {e}", opts.targets))?;
    // Check the target server before a server spends minutes on it.
    let first = targets.addrs()[0];
    let r = Conn::connect(first)
        .and_then(|mut c| c.get("/metrics"))
        .map_err(|e| format!("fetching http://{first}/metrics from the target server: {e}"))?;
    if r.status != 200 || r.body != body || r.header("content-type") != Some(CONTENT_TYPE) {
        return Err(format!(
            "the target server answers wrongly: HTTP {}, {} bytes",
            r.status,
            r.body.len()
        ));
    }

    let tmp = opts.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    println!("scrape benchmark");
    println!(
        "  body: {} ({} bytes, {families} families, {samples_per_scrape} samples)",
        opts.body.display(),
        body.len()
    );
    println!(
        "  targets: {} on 127.0.0.1 ports {}..{} (served by this process), scrape_interval {} s, scrape_timeout {} s",
        opts.targets,
        targets.addrs().iter().map(|a| a.port()).min().unwrap_or(0),
        targets.addrs().iter().map(|a| a.port()).max().unwrap_or(0),
        opts.interval_s,
        opts.scrape_timeout_s()
    );
    println!(
        "  series expected per server: {} targets x ({samples_per_scrape} + {REPORT_SERIES} report series) = {}",
        opts.targets,
        opts.targets as u64 * (samples_per_scrape + REPORT_SERIES)
    );
    println!(
        "  window: {} s per server from /-/ready (~{:.0} scrapes per target); servers run one after the other",
        opts.duration_s,
        opts.duration_s as f64 / opts.interval_s as f64
    );
    println!(
        "  machine: {cores} CPUs visible; data dirs under {} ({})",
        tmp.display(),
        process::fs_type(&tmp)
    );
    println!();

    let mut results = Vec::new();
    let mut failed = Vec::new();
    for &kind in &opts.servers {
        println!("running {} for {} s ...", kind.name(), opts.duration_s);
        match run_one(kind, opts, &targets, &tmp, samples_per_scrape) {
            Ok(m) => {
                println!("{}", m.timeline);
                println!("  verified: {}", m.verified);
                if !m.verified_ok {
                    failed.push(format!("{}: not verified: {}", kind.name(), m.verified));
                }
                results.push(m);
            }
            Err(e) => {
                println!("  FAILED");
                eprintln!("{}: {e}", kind.name());
                failed.push(format!("{}: {e}", kind.name()));
            }
        }
    }
    println!();
    print!("{}", report(&results, opts));
    let other = targets.other_requests();
    if other > 0 {
        println!("WARNING: the target server answered {other} requests that were not GET /metrics");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("\n"))
    }
}

/// The table, the ratios and the goal verdict.
pub fn report(results: &[Measurement], opts: &Options) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<11} {:>8} {:>7} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "server",
        "up",
        "dur s",
        "scrapes",
        "CPU s",
        "ms/scrape",
        "steady ms",
        "peak MiB",
        "final MiB",
        "start CPU",
        "tgt CPU s"
    );
    for m in results {
        let _ = writeln!(
            s,
            "{:<11} {:>8} {:>7.1} {:>8} {:>7.2} {:>9.2} {:>9.2} {:>9.1} {:>9.1} {:>9.2} {:>9.2}",
            m.kind.name(),
            format!("{}/{}", m.targets_up, opts.targets),
            m.window_s,
            m.scrapes,
            m.cpu_s,
            m.cpu_ms_per_scrape(),
            m.steady_ms_per_scrape(),
            m.peak_rss_bytes as f64 / MIB,
            m.final_rss_bytes as f64 / MIB,
            m.startup_cpu_s,
            m.harness_cpu_s,
        );
    }
    let _ = writeln!(
        s,
        "(CPU s: server utime+stime over the window from /-/ready, raw, no baseline subtracted; ms/scrape: that / scrapes served in the window;"
    );
    let _ = writeln!(
        s,
        " steady ms: the same from the first timeline point by which every target had been scraped once (series created); peak MiB: VmHWM, final MiB: VmRSS at the end;"
    );
    let _ = writeln!(
        s,
        " start CPU: before ready, not counted; tgt CPU s: this harness serving the targets during the window)"
    );
    for m in results {
        let _ = writeln!(
            s,
            "{}: {}; scrapes per target in the window {}..{}",
            m.kind.name(),
            m.version,
            m.scrapes_min,
            m.scrapes_max
        );
        let _ = writeln!(s, "{}: verified: {}", m.kind.name(), m.verified);
        for n in &m.notes {
            let _ = writeln!(s, "{}: {n}", m.kind.name());
        }
    }
    let _ = writeln!(s);
    let (Some(h), Some(p)) = (
        results.iter().find(|m| m.kind == Kind::Hearth),
        results.iter().find(|m| m.kind == Kind::Prometheus),
    ) else {
        let _ = writeln!(s, "need both hearth and Prometheus results for ratios");
        return s;
    };
    let cpu_ratio = h.cpu_ms_per_scrape() / p.cpu_ms_per_scrape();
    let rss_ratio = h.peak_rss_bytes as f64 / p.peak_rss_bytes as f64;
    let _ = writeln!(
        s,
        "ratios hearth / Prometheus (lower is better for hearth):"
    );
    let _ = writeln!(
        s,
        "  CPU s {:.3}x   CPU per scrape {cpu_ratio:.3}x   steady CPU per scrape {:.3}x",
        h.cpu_s / p.cpu_s,
        h.steady_ms_per_scrape() / p.steady_ms_per_scrape()
    );
    let _ = writeln!(
        s,
        "  peak RSS {rss_ratio:.3}x   final RSS {:.3}x",
        h.final_rss_bytes as f64 / p.final_rss_bytes as f64
    );
    if (h.scrapes as f64 / p.scrapes as f64 - 1.0).abs() > 0.02 {
        let _ = writeln!(
            s,
            "  note: scrape counts in the window differ by more than 2% ({} vs {}; Prometheus starts scraping about 5 s after ready): the CPU verdict uses CPU per scrape",
            h.scrapes, p.scrapes
        );
    }
    let verdict = |ok: bool| if ok { "MET" } else { "NOT MET" };
    let _ = writeln!(s, "goals:");
    let _ = writeln!(
        s,
        "  CPU per scrape <= {GOAL_CPU_RATIO}x Prometheus: {cpu_ratio:.3}x  {}",
        verdict(cpu_ratio <= GOAL_CPU_RATIO)
    );
    let _ = writeln!(
        s,
        "  peak RSS       <= {GOAL_RSS_RATIO}x Prometheus: {rss_ratio:.3}x  {}",
        verdict(rss_ratio <= GOAL_RSS_RATIO)
    );
    let _ = writeln!(
        s,
        "note: hearth runs with its default storage.wal_fsync (always: an fdatasync per scrape commit, see its WAL line); Prometheus never fsyncs its WAL on append."
    );
    if !(h.verified_ok && p.verified_ok) {
        let _ = writeln!(
            s,
            "  (a server did not verify: the verdict compares unequal work)"
        );
    }
    s
}

fn command(kind: Kind, opts: &Options, cfg: &Path, data: &Path, addr: SocketAddr) -> Command {
    match kind {
        Kind::Hearth => {
            let mut c = Command::new(&opts.hearth);
            c.arg("--config")
                .arg(cfg)
                .arg("--web.listen-address")
                .arg(addr.to_string());
            c
        }
        Kind::Prometheus => {
            let mut c = Command::new(&opts.prometheus);
            c.arg(format!("--config.file={}", cfg.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address={addr}"));
            c
        }
    }
}

fn version(kind: Kind, opts: &Options) -> String {
    let bin = match kind {
        Kind::Hearth => &opts.hearth,
        Kind::Prometheus => &opts.prometheus,
    };
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let mut t = String::from_utf8_lossy(&o.stdout).into_owned();
            t.push_str(&String::from_utf8_lossy(&o.stderr));
            t.lines().next().map(|l| l.trim().to_string())
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| format!("{} (version unknown)", bin.display()))
}

/// `VmRSS` of `pid` in bytes.
fn rss_bytes(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| std::io::Error::other("no VmRSS in /proc/<pid>/status"))
}

/// Whether `pid` is running (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("State:"))
            .is_some_and(|st| !st.trim_start().starts_with('Z'))
    })
}

fn describe(r: &Response) -> String {
    let mut body = r.body_text();
    body.truncate(300);
    format!("HTTP {}: {}", r.status, body.trim_end())
}

fn run_one(
    kind: Kind,
    opts: &Options,
    targets: &TargetServer,
    tmp: &Path,
    samples_per_scrape: u64,
) -> Result<Measurement, String> {
    let dir = tempfile::Builder::new()
        .prefix("hearth-bench-scrape-")
        .tempdir_in(tmp)
        .map_err(|e| format!("creating a temp dir in {}: {e}", tmp.display()))?;
    let data = dir.path().join("data");
    let cfg = dir.path().join("config.yml");
    let storage = (kind == Kind::Hearth).then_some(data.as_path());
    std::fs::write(&cfg, config_yaml(opts, targets.addrs(), storage))
        .map_err(|e| format!("writing {}: {e}", cfg.display()))?;
    let port = process::free_port().map_err(|e| format!("finding a free port: {e}"))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let cmd = command(kind, opts, &cfg, &data, addr);
    let version = version(kind, opts);
    let per_target_spawn = targets.served_per_target();
    let served_at_spawn: u64 = per_target_spawn.iter().sum();
    let mut server = Server::spawn(kind.name(), cmd, addr, dir).map_err(|e| e.to_string())?;
    server
        .wait_ready("/-/ready", Duration::from_secs(120))
        .map_err(|e| e.to_string())?;
    let pid = server.pid();
    let cpu = || process::cpu_seconds(pid).map_err(|e| format!("reading server CPU: {e}"));
    let http = |path: &str| -> Result<Response, String> {
        Conn::connect(addr)
            .and_then(|mut c| c.get(path))
            .map_err(|e| format!("GET {path}: {e}"))
    };
    let mut notes = Vec::new();

    // The window.
    let t0 = Instant::now();
    let startup_cpu_s = cpu()?;
    let per_target0 = targets.served_per_target();
    let served0: u64 = per_target0.iter().sum();
    let harness0 = process::self_cpu_seconds();
    let mut points = vec![Point {
        t_s: 0.0,
        cpu_s: startup_cpu_s,
        rss_bytes: rss_bytes(pid).unwrap_or(0),
        served: served0,
        all_scraped: false,
    }];
    let all_scraped = |now: &[u64]| now.iter().zip(&per_target_spawn).all(|(a, b)| a > b);
    let window = Duration::from_secs(opts.duration_s);
    let interval = Duration::from_secs(opts.interval_s);
    let mut next_point = interval;
    loop {
        let el = t0.elapsed();
        if el >= window {
            break;
        }
        if !alive(pid) {
            return Err(format!(
                "{} exited during the window after {:.1} s; log:\n{}",
                kind.name(),
                el.as_secs_f64(),
                server.log_tail(40)
            ));
        }
        if el >= next_point {
            points.push(Point {
                t_s: el.as_secs_f64(),
                cpu_s: cpu()?,
                rss_bytes: rss_bytes(pid).unwrap_or(0),
                served: targets.served_total(),
                all_scraped: all_scraped(&targets.served_per_target()),
            });
            next_point += interval;
        }
        thread::sleep(
            (window - el)
                .min(next_point.saturating_sub(el))
                .min(Duration::from_secs(1)),
        );
    }
    let cpu_end = cpu()?;
    let window_s = t0.elapsed().as_secs_f64();
    let harness_cpu_s = process::self_cpu_seconds() - harness0;
    let per_target1 = targets.served_per_target();
    let peak_rss_bytes = process::peak_rss_bytes(pid).map_err(|e| format!("reading RSS: {e}"))?;
    let final_rss_bytes = rss_bytes(pid).map_err(|e| format!("reading RSS: {e}"))?;
    let served1: u64 = per_target1.iter().sum();
    let end = Point {
        t_s: window_s,
        cpu_s: cpu_end,
        rss_bytes: final_rss_bytes,
        served: served1,
        all_scraped: all_scraped(&per_target1),
    };
    if points.last().is_none_or(|p| end.t_s - p.t_s > 0.5) {
        points.push(end);
    }
    let per_window: Vec<u64> = per_target1
        .iter()
        .zip(&per_target0)
        .map(|(a, b)| a - b)
        .collect();
    // "steady": from the first point by which every target had been scraped once (its
    // series created); the end point itself if that was only reached then (no figure).
    let steady_from = points
        .iter()
        .find(|p| p.all_scraped)
        .copied()
        .unwrap_or(end);
    if steady_from.t_s > opts.interval_s as f64 + 0.5 {
        notes.push(format!(
            "first scrape of every target only by {:.0} s after ready (steady CPU counted from there)",
            steady_from.t_s
        ));
    }

    let mut timeline = String::from("  timeline (s: CPU s, RSS MiB, scrapes):");
    for p in &points {
        let _ = write!(
            timeline,
            " {:.0}: {:.2}, {:.0}, {}",
            p.t_s,
            p.cpu_s - startup_cpu_s,
            p.rss_bytes as f64 / MIB,
            p.served - served0
        );
        if p.t_s < window_s - 0.5 {
            timeline.push_str(" |");
        }
    }

    // Verification.
    let (targets_active, targets_up, down_error) = match http("/api/v1/targets?state=active") {
        Ok(r) if r.is_success() => count_targets(&r.body_text()),
        Ok(r) => return Err(format!("/api/v1/targets: {}", describe(&r))),
        Err(e) => return Err(e),
    };
    let metrics = http("/metrics")?.body_text();
    let expected_series = opts.targets as u64 * (samples_per_scrape + REPORT_SERIES);
    let mut parts = vec![format!(
        "{targets_up} of {targets_active} active targets up (expected {})",
        opts.targets
    )];
    let mut ok = targets_active == opts.targets && targets_up == opts.targets;
    if let Some(e) = down_error {
        parts.push(format!("a down target's lastError: {e}"));
    }
    let (appended, series) = match kind {
        Kind::Hearth => {
            let appended = metric(&metrics, "hearth_tsdb_head_samples_appended_total");
            let series = metric(&metrics, "hearth_tsdb_head_series");
            ok &= appended > 0.0;
            parts.push(format!(
                "hearth_tsdb_head_samples_appended_total {appended}, hearth_tsdb_head_series {series} (expected {expected_series})"
            ));
            let fsyncs = metric(&metrics, "hearth_tsdb_wal_fsyncs_total");
            let commits = metric(&metrics, "hearth_tsdb_wal_commits_total");
            let wal = metric(&metrics, "hearth_tsdb_wal_bytes_written_total");
            let rejected = metric(&metrics, "hearth_tsdb_head_samples_rejected_total");
            let dups = metric(&metrics, "hearth_tsdb_head_duplicate_samples_total");
            notes.push(format!(
                "WAL: {commits} commits, {fsyncs} fsyncs, {:.1} MiB written ({:.2} bytes/sample); rejected {rejected}, duplicates {dups}",
                wal / MIB,
                wal / appended.max(1.0)
            ));
            let mem = metric(&metrics, "hearth_tsdb_head_memory_bytes");
            if mem.is_finite() {
                notes.push(format!(
                    "hearth_tsdb_head_memory_bytes {:.1} MiB ({:.0} bytes/series)",
                    mem / MIB,
                    mem / series.max(1.0)
                ));
            }
            (appended, series)
        }
        Kind::Prometheus => {
            let q = "sum(scrape_samples_scraped)";
            let scraped = match http(&format!("/api/v1/query?query={}", url_encode(q))) {
                Ok(r) if r.is_success() => json_value_string(&r.body_text()),
                Ok(r) => {
                    parts.push(format!("query: {}", describe(&r)));
                    None
                }
                Err(e) => {
                    parts.push(e);
                    None
                }
            };
            ok &= scraped.is_some_and(|v| v > 0.0);
            parts.push(format!(
                "{q} = {} (expected {})",
                scraped.map_or("?".into(), |v| v.to_string()),
                opts.targets as u64 * samples_per_scrape
            ));
            let appended = metric(&metrics, "prometheus_tsdb_head_samples_appended_total");
            let series = metric(&metrics, "prometheus_tsdb_head_series");
            parts.push(format!(
                "prometheus_tsdb_head_samples_appended_total {appended}, prometheus_tsdb_head_series {series} (expected {expected_series})"
            ));
            let failed = metric(
                &metrics,
                "prometheus_target_scrapes_sample_out_of_order_total",
            ) + metric(
                &metrics,
                "prometheus_target_scrapes_sample_duplicate_timestamp_total",
            ) + metric(
                &metrics,
                "prometheus_target_scrapes_exceeded_sample_limit_total",
            );
            if failed > 0.0 {
                notes.push(format!(
                    "scrape sample errors (out of order, duplicate timestamp, sample limit): {failed}"
                ));
            }
            (appended, series)
        }
    };
    let samples_appended = appended.is_finite().then_some(appended);
    let head_series = series.is_finite().then_some(series);
    let served_by_server = targets.served_total() - served_at_spawn;
    if let (Some(a), true) = (samples_appended, served_by_server > 0) {
        notes.push(format!(
            "samples appended per scrape served since its start: {:.1} ({served_by_server} scrapes; body {samples_per_scrape} + {REPORT_SERIES} report series = {})",
            a / served_by_server as f64,
            samples_per_scrape + REPORT_SERIES
        ));
    }
    let word = if ok { "yes" } else { "NO" };
    let verified = format!("{word}: {}", parts.join("; "));

    let (log_lines, log_first) =
        log_problems(&std::fs::read_to_string(&server.log_path).unwrap_or_default());
    if log_lines > 0 {
        notes.push(format!(
            "{log_lines} warning/error lines in its log; first: {}",
            log_first.join(" || ")
        ));
    } else {
        notes.push("no warning/error lines in its log".into());
    }

    let t = Instant::now();
    match server.stop(Duration::from_secs(60)) {
        Ok(st) if st.success() => notes.push(format!(
            "stopped cleanly in {:.2} s after SIGTERM",
            t.elapsed().as_secs_f64()
        )),
        Ok(st) => notes.push(format!("exit after SIGTERM: {st}")),
        Err(e) => notes.push(format!("stopping: {e}")),
    }
    // Let the scraper's connections close before the next server starts.
    thread::sleep(Duration::from_millis(500));

    let steady_scrapes = end.served - steady_from.served;
    Ok(Measurement {
        kind,
        version,
        window_s,
        startup_cpu_s,
        cpu_s: cpu_end - startup_cpu_s,
        steady_cpu_s: cpu_end - steady_from.cpu_s,
        peak_rss_bytes,
        final_rss_bytes,
        scrapes: served1 - served0,
        steady_scrapes,
        scrapes_min: per_window.iter().copied().min().unwrap_or(0),
        scrapes_max: per_window.iter().copied().max().unwrap_or(0),
        harness_cpu_s,
        targets_active,
        targets_up,
        samples_appended,
        head_series,
        verified,
        verified_ok: ok,
        timeline,
        notes,
    })
}

/// Active targets, how many are up, and the first non-empty `lastError` of one that is not,
/// from an `/api/v1/targets` answer (compact JSON as both servers write it).
fn count_targets(json: &str) -> (usize, usize, Option<String>) {
    let active = json.matches("\"scrapeUrl\":").count();
    let up = json.matches("\"health\":\"up\"").count();
    let err = json
        .split("\"lastError\":\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|e| !e.is_empty())
        .map(str::to_string);
    (active, up, err)
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
            rest.strip_prefix(' ')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    if values.is_empty() {
        f64::NAN
    } else {
        values.iter().sum()
    }
}

/// The value of the first `"value":[<ts>,"<v>"]` of a Prometheus query answer.
fn json_value_string(text: &str) -> Option<f64> {
    let rest = &text[text.find("\"value\":[")? + 9..];
    let rest = &rest[rest.find(",\"")? + 2..];
    rest[..rest.find('"')?].parse().ok()
}

/// Lines of a server log at warning level or above (hearth's `tracing` format or
/// Prometheus's logfmt), and the first three of them.
fn log_problems(log: &str) -> (usize, Vec<String>) {
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains(" WARN ")
                || l.contains(" ERROR ")
                || l.contains("level=warn")
                || l.contains("level=error")
                || l.contains("panicked")
        })
        .collect();
    let first = bad
        .iter()
        .take(3)
        .map(|l| {
            let mut l = l.trim().to_string();
            l.truncate(300);
            l
        })
        .collect();
    (bad.len(), first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags() {
        let o = Options::parse(
            ["--targets", "3", "--duration=20", "--servers", "prometheus"].map(String::from),
        )
        .unwrap();
        assert_eq!((o.targets, o.duration_s, o.interval_s), (3, 20, 15));
        assert_eq!(o.servers, vec![Kind::Prometheus]);
        assert!(Options::parse(["--targets".to_string(), "0".into()]).is_err());
        assert!(Options::parse(["--nope".to_string()]).is_err());
    }

    #[test]
    fn writes_configs() {
        let o = Options {
            interval_s: 5,
            ..Options::default()
        };
        let addrs = [SocketAddr::from((Ipv4Addr::LOCALHOST, 1234))];
        let p = config_yaml(&o, &addrs, None);
        assert!(p.contains("scrape_interval: 5s\n  scrape_timeout: 5s\n"));
        assert!(p.contains("- \"127.0.0.1:1234\"\n"));
        assert!(!p.contains("storage"));
        let h = config_yaml(&Options::default(), &addrs, Some(Path::new("/tmp/x")));
        assert!(h.contains("scrape_timeout: 10s\n"));
        assert!(h.ends_with("storage:\n  path: \"/tmp/x\"\n"));
    }

    #[test]
    fn reads_answers() {
        let t = r#"{"status":"success","data":{"activeTargets":[{"scrapeUrl":"http://a/metrics","lastError":"","health":"up"},{"scrapeUrl":"http://b/metrics","lastError":"connection refused","health":"down"}],"droppedTargets":[]}}"#;
        assert_eq!(
            count_targets(t),
            (2, 1, Some("connection refused".to_string()))
        );
        let m = "# TYPE x counter\nx_total{type=\"float\"} 3\nx_total{type=\"histogram\"} 4 1700000000000\nx_total_more 9\n";
        assert_eq!(metric(m, "x_total"), 7.0);
        assert!(metric(m, "absent").is_nan());
        let q = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1712.5,"371400"]}]}}"#;
        assert_eq!(json_value_string(q), Some(371_400.0));
        assert_eq!(
            count_samples("# HELP a b\n# TYPE a counter\na 1\n\na{x=\"y z\"} 2\n"),
            2
        );
        let (n, first) =
            log_problems("ts=1 level=info msg=ok\nts=2 level=warn msg=\"x\"\n2024 ERROR boom\n");
        assert_eq!((n, first.len()), (2, 2));
    }
}
