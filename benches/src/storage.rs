//! The storage benchmark: the same node-exporter-like dataset (by default 20 hosts × 500
//! series over the last 24 h at 15 s) is sent over remote_write, in time order, to
//! VictoriaMetrics, Prometheus and hearth, one server at a time in the same run, each on a
//! fresh data directory; then each is left to persist what it holds and its data directory
//! is measured. It prints bytes on disk per sample, peak RSS during ingest, ingest time and
//! the hearth/peer ratios against the goals.
//!
//! Bytes on disk are *allocated* bytes (`st_blocks × 512`, what `du` shows by default):
//! what the disk gives up. The apparent size (the sum of file lengths, `du
//! --apparent-size`) is printed beside it but is no measure of cost here: hearth's
//! head-chunk files are sized up front as sparse files, so their length counts space that
//! was never written; Prometheus preallocates its current head-chunk file with
//! `fallocate`, which the allocated size does count, as the disk does.
//!
//! Each server is measured twice: right after the last remote_write answer, and once it
//! has persisted what it holds — VictoriaMetrics after `/internal/force_flush` and
//! `/internal/force_merge` and its merges finished; Prometheus after its own head
//! compactions (its data directory as a user sees it: 2 h blocks plus the last hours in
//! the WAL and head chunks) and, as a third row, a snapshot with the head written as a
//! block (`/api/v1/admin/tsdb/snapshot`: everything as blocks, its best case); hearth after
//! its block persistence went quiet (`hearth_tsdb_blocks` steady, bounded by
//! `--hearth-wait`), or right away if this hearth writes no blocks, and then, like
//! Prometheus, as a snapshot with its head written as blocks (the same API).
//!
//! Ratios are printed twice: everything compacted (both snapshots; VictoriaMetrics's merged
//! data dir, which has no WAL) and the data dir as a user sees it (blocks plus the live
//! head's WAL and head chunks, which a 24 h dataset weighs far more than 30 days would).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::dataset::{self, DatasetSpec, TimeOrdered, SCRAPE_INTERVAL_MS};
use crate::http::{url_encode, Conn, Response};
use crate::process::{self, Server};

/// Goal: hearth's bytes per sample at most this multiple of VictoriaMetrics's...
pub const GOAL_VM_RATIO: f64 = 1.0;
/// ...and of Prometheus's.
pub const GOAL_PROMETHEUS_RATIO: f64 = 0.3;

/// Scrapes per `TimeSeries` in a body: 20 × 15 s = 5 minutes of one series.
pub const SCRAPES_PER_SERIES: usize = 20;

const REMOTE_WRITE_HEADERS: &[(&str, &str)] = &[
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ("User-Agent", "hearth-benches/storage"),
];

/// The servers the benchmark can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Hearth,
    Prometheus,
    VictoriaMetrics,
}

impl Kind {
    /// Run order: the peers first, so hearth (whose numbers move most between trees) is
    /// last on screen next to the ratios.
    pub const ALL: [Kind; 3] = [Kind::VictoriaMetrics, Kind::Prometheus, Kind::Hearth];

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
}

/// Command-line options of the `storage` binary.
#[derive(Debug, Clone)]
pub struct Options {
    pub hearth: PathBuf,
    pub prometheus: PathBuf,
    pub vm: PathBuf,
    pub hosts: usize,
    pub series_per_host: usize,
    pub hours: usize,
    pub senders: usize,
    pub samples_per_request: usize,
    /// Keep the generator's full-precision floats instead of node_exporter's units.
    pub raw_values: bool,
    /// Scrape timestamps exactly 15 s apart (no jitter).
    pub aligned_timestamps: bool,
    /// Longest wait for hearth's block persistence to go quiet.
    pub hearth_wait: Duration,
    /// Longest wait for a peer's flushes, merges and compactions.
    pub settle_timeout: Duration,
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
            hosts: 20,
            series_per_host: 500,
            hours: 24,
            senders: 2,
            samples_per_request: 5000,
            raw_values: false,
            aligned_timestamps: false,
            hearth_wait: Duration::from_secs(180),
            settle_timeout: Duration::from_secs(300),
            tmp_dir: None,
            servers: Kind::ALL.to_vec(),
            seed: 0x6865_6172_7468,
        }
    }
}

pub const USAGE: &str = "\
usage: storage [options]

Storage benchmark: bytes on disk per sample, peak RSS and ingest time of hearth, Prometheus
and VictoriaMetrics on the same node-exporter-like data, one server after another.

  --hearth PATH            hearth binary [target/release/hearth]
  --prometheus PATH        prometheus binary [/usr/bin/prometheus]
  --vm PATH                victoria-metrics binary [/usr/bin/victoria-metrics]
  --hosts N                simulated node_exporter targets [20]
  --series-per-host N      series per target [500]
  --hours N                hours of history at 15 s, ending now [24]
  --senders N              concurrent remote_write senders, kept in step [2]
  --samples-per-request N  samples per remote_write request [5000]
  --raw-values             keep full-precision random floats instead of rounding values to
                           the units node_exporter reports (0.01 s CPU, whole packets, ...)
  --aligned-timestamps     scrape timestamps exactly 15 s apart, without the 0-4 ms jitter
                           (Prometheus aligns scrape timestamps within
                           --scrape.timestamp-tolerance, 2 ms by default)
  --hearth-wait SECONDS    longest wait for hearth's block persistence after ingest [180]
  --settle-timeout SECONDS longest wait for a peer's flushes and compactions [300]
  --tmp-dir DIR            parent of the servers' data directories [system temp dir]
  --servers LIST           comma-separated subset of vm,prometheus,hearth [all]
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
                "--series-per-host" => o.series_per_host = num(value()?)?,
                "--hours" => o.hours = num(value()?)?,
                "--senders" => o.senders = num(value()?)?,
                "--samples-per-request" => o.samples_per_request = num(value()?)?,
                "--raw-values" => o.raw_values = true,
                "--aligned-timestamps" => o.aligned_timestamps = true,
                "--hearth-wait" => {
                    o.hearth_wait = Duration::from_secs(crate::cli::positive(name, &value()?)?)
                }
                "--settle-timeout" => {
                    o.settle_timeout = Duration::from_secs(crate::cli::positive(name, &value()?)?)
                }
                "--tmp-dir" => o.tmp_dir = Some(value()?.into()),
                "--seed" => o.seed = crate::cli::positive(name, &value()?)?,
                "--servers" => o.servers = crate::cli::servers(&value()?, &Kind::ALL, Kind::flag)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(o)
    }

    pub fn scrapes(&self) -> usize {
        self.hours * 3600 * 1000 / SCRAPE_INTERVAL_MS as usize
    }
}

// ---------------------------------------------------------------------------------------
// Disk usage

/// Bytes under one top-level entry of a data directory (or under all of it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// `wal/`, `chunks_head/`, `<ULID>/ x N` (blocks), a file name, or `total`.
    pub name: String,
    /// Sum of file and directory lengths (`du --apparent-size --bytes`).
    pub apparent: u64,
    /// Allocated blocks × 512 (`du --block-size=1`).
    pub allocated: u64,
    pub files: u64,
}

/// What a data directory holds, in total and by top-level entry (block directories, named
/// by ULID, grouped into one line).
#[derive(Debug, Clone, Default)]
pub struct DiskUsage {
    pub total: Usage,
    pub parts: Vec<Usage>,
}

/// Prometheus-style block directories are named by a ULID: 26 Crockford base-32 characters.
fn is_ulid(name: &str) -> bool {
    name.len() == 26
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b)))
}

/// Walks `root` like `du`: every file and directory below it (not `root` itself), each
/// hard-linked inode once. Entries that vanish during the walk (merges deleting parts) are
/// skipped.
pub fn disk_usage(root: &Path) -> io::Result<DiskUsage> {
    let mut seen = HashSet::new();
    let mut parts: Vec<Usage> = Vec::new();
    let mut blocks = Usage::default();
    let mut block_dirs = 0;
    let mut entries: Vec<_> = std::fs::read_dir(root)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut u = Usage::default();
        add_tree(&entry.path(), &mut seen, &mut u)?;
        if is_ulid(&name) && entry.path().is_dir() {
            block_dirs += 1;
            blocks.apparent += u.apparent;
            blocks.allocated += u.allocated;
            blocks.files += u.files;
        } else {
            u.name = if entry.path().is_dir() {
                format!("{name}/")
            } else {
                name
            };
            parts.push(u);
        }
    }
    if block_dirs > 0 {
        blocks.name = format!("<ULID>/ x {block_dirs}");
        parts.insert(0, blocks);
    }
    let mut total = Usage {
        name: "total".into(),
        ..Usage::default()
    };
    for p in &parts {
        total.apparent += p.apparent;
        total.allocated += p.allocated;
        total.files += p.files;
    }
    Ok(DiskUsage { total, parts })
}

fn add_tree(path: &Path, seen: &mut HashSet<(u64, u64)>, u: &mut Usage) -> io::Result<()> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if seen.insert((md.dev(), md.ino())) {
        u.apparent += md.len();
        u.allocated += md.blocks() * 512;
        if !md.is_dir() {
            u.files += 1;
        }
    }
    if md.is_dir() {
        let dir = match std::fs::read_dir(path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in dir {
            match entry {
                Ok(e) => add_tree(&e.path(), seen, u)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The servers

fn command(kind: Kind, opts: &Options, dir: &Path, addr: SocketAddr) -> Command {
    let data = dir.join("data");
    match kind {
        Kind::Hearth => {
            // hearth's defaults (fsync always), without the default config's self-scrape,
            // which would add series of its own. A failed write shows as hearth refusing
            // to start.
            let cfg = dir.join("hearth.yml");
            let _ = std::fs::write(&cfg, "storage:\n  wal_fsync: always\n");
            let mut c = Command::new(&opts.hearth);
            c.arg("--config")
                .arg(cfg)
                .arg("--storage.path")
                .arg(&data)
                .arg("--web.listen-address")
                .arg(addr.to_string())
                .arg("--web.enable-admin-api");
            c
        }
        Kind::Prometheus => {
            // No scrape configs (no self-scrape); the default 15 d retention keeps all of
            // the data. The admin API is for the snapshot with the head.
            let cfg = dir.join("prometheus.yml");
            let _ = std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n");
            let mut c = Command::new(&opts.prometheus);
            c.arg(format!("--config.file={}", cfg.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--web.enable-remote-write-receiver")
                .arg("--web.enable-admin-api");
            c
        }
        Kind::VictoriaMetrics => {
            let mut c = Command::new(&opts.vm);
            c.arg(format!("-storageDataPath={}", data.display()))
                .arg(format!("-httpListenAddr={addr}"))
                .arg("-retentionPeriod=100y");
            c
        }
    }
}

fn start(kind: Kind, opts: &Options, tmp: &Path) -> Result<Server, String> {
    let ready = match kind {
        Kind::Hearth | Kind::Prometheus => "/-/ready",
        Kind::VictoriaMetrics => "/health",
    };
    Server::start_in(
        kind.name(),
        "hearth-bench-storage-",
        tmp,
        ready,
        |dir, addr| command(kind, opts, dir, addr),
    )
}

fn get(addr: SocketAddr, path: &str) -> Result<Response, String> {
    Conn::connect(addr)
        .and_then(|mut c| c.get(path))
        .map_err(|e| format!("GET {path}: {e}"))
}

/// The sum of the series of metric `name` whose label text contains `labels` (all series
/// for `""`) in an exposition-format text; `None` if there is none.
pub fn metric_sum(text: &str, name: &str, labels: &str) -> Option<f64> {
    let mut sum = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, rest) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once('}') {
                Some(x) => x,
                None => continue,
            },
            None => ("", rest),
        };
        if !label_text.contains(labels) {
            continue;
        }
        let Some(v) = rest
            .strip_prefix(' ')
            .and_then(|r| r.split_whitespace().next()?.parse::<f64>().ok())
        else {
            continue;
        };
        *sum.get_or_insert(0.0) += v;
    }
    sum
}

fn metrics_text(addr: SocketAddr) -> Result<String, String> {
    let r = get(addr, "/metrics")?;
    if r.is_success() {
        Ok(r.body_text())
    } else {
        Err(format!("GET /metrics: {}", r.summary()))
    }
}

/// Posts every sender's bodies, senders in parallel and in step slice by slice. Returns the
/// wall seconds from the first request to the last answer.
fn ingest(addr: SocketAddr, data: &TimeOrdered) -> Result<f64, String> {
    let senders = data.per_sender.len();
    let mut conns = Vec::with_capacity(senders);
    for _ in 0..senders {
        conns.push(Conn::connect(addr).map_err(|e| format!("connecting a sender: {e}"))?);
    }
    let go = Barrier::new(senders + 1);
    let in_step = Barrier::new(senders);
    let abort = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    let wall = thread::scope(|sc| {
        for (mut conn, slices) in conns.into_iter().zip(&data.per_sender) {
            let (go, in_step, abort, first_error) = (&go, &in_step, &abort, &first_error);
            sc.spawn(move || {
                go.wait();
                for (g, bodies) in slices.iter().enumerate() {
                    for body in bodies {
                        if abort.load(Ordering::Relaxed) {
                            break;
                        }
                        let err =
                            match conn.request("POST", "/api/v1/write", REMOTE_WRITE_HEADERS, body)
                            {
                                Ok(r) if r.is_success() => continue,
                                Ok(r) => r.summary(),
                                Err(e) => format!("I/O error: {e}"),
                            };
                        abort.store(true, Ordering::Relaxed);
                        let mut fe = first_error.lock().expect("no panics while held");
                        fe.get_or_insert(format!("time slice {g}: {err}"));
                    }
                    // Every sender reaches every barrier, also after an abort.
                    in_step.wait();
                }
            });
        }
        go.wait();
        let t0 = Instant::now();
        // The scope joins the senders before returning.
        t0
    })
    .elapsed()
    .as_secs_f64();
    match first_error.into_inner().expect("no panics while held") {
        Some(e) => Err(e),
        None => Ok(wall),
    }
}

/// One measurement of a data directory.
#[derive(Debug, Clone)]
pub struct Point {
    /// `after ingest`, `flushed+merged`, `data dir, compacted`, ...
    pub state: String,
    pub disk: DiskUsage,
    /// A snapshot directory with the head written as blocks, not the server's data dir.
    pub snapshot: bool,
}

/// Everything measured for one server.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub kind: Kind,
    pub samples: u64,
    pub ingest_s: f64,
    /// Server CPU over the ingest.
    pub ingest_cpu_s: f64,
    /// VmHWM right after the ingest (since start-up, which is seconds before it).
    pub peak_rss_ingest: u64,
    /// VmHWM after the server persisted everything (compactions, merges, snapshot).
    pub peak_rss_end: u64,
    /// Seconds from the last answer until the server was measured as persisted.
    pub persist_s: f64,
    pub points: Vec<Point>,
    pub verified: String,
    pub verified_ok: bool,
    pub notes: Vec<String>,
}

impl Measurement {
    /// The last measurement of the server's own data directory as a user sees it (for
    /// Prometheus and hearth: blocks plus the live head's WAL and head chunks).
    pub fn settled(&self) -> &Point {
        self.points
            .iter()
            .rev()
            .find(|p| !p.snapshot)
            .expect("BUG: a measurement starts with a data-dir point")
    }

    /// Everything compacted, nothing left in a WAL: Prometheus's and hearth's snapshot with
    /// the head written as blocks, VictoriaMetrics's data dir after the forced flush and
    /// merge (it keeps no WAL). `None` if the snapshot failed.
    pub fn all_blocks(&self) -> Option<&Point> {
        match self.kind {
            Kind::VictoriaMetrics => Some(self.settled()),
            _ => self.points.iter().find(|p| p.snapshot),
        }
    }

    pub fn bytes_per_sample(&self, p: &Point) -> f64 {
        p.disk.total.allocated as f64 / self.samples as f64
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Ingests `data` into a fresh `kind`, lets it persist, measures.
fn run_one(
    kind: Kind,
    opts: &Options,
    data: &TimeOrdered,
    spec: &DatasetSpec,
    tmp: &Path,
) -> Result<Measurement, String> {
    let server = start(kind, opts, tmp)?;
    let addr = server.addr;
    let pid = server.pid();
    let data_dir = server.dir.path().join("data");
    let mut notes = Vec::new();
    let measure = |state: &str| -> Result<Point, String> {
        Ok(Point {
            state: state.to_string(),
            disk: disk_usage(&data_dir)
                .map_err(|e| format!("measuring {}: {e}", data_dir.display()))?,
            snapshot: false,
        })
    };
    let before = measure("empty")?;
    if before.disk.total.allocated > 1 << 20 {
        notes.push(format!(
            "{:.1} MiB on disk before the first sample (counted in every row)",
            before.disk.total.allocated as f64 / MIB
        ));
    }

    let cpu0 = process::cpu_seconds(pid).map_err(|e| format!("reading CPU: {e}"))?;
    let ingest_s = ingest(addr, data)
        .map_err(|e| format!("ingest failed: {e}\nserver log:\n{}", server.log_tail(20)))?;
    let ingest_cpu_s = process::cpu_seconds(pid).map_err(|e| format!("reading CPU: {e}"))? - cpu0;
    let peak_rss_ingest = process::peak_rss_bytes(pid).map_err(|e| format!("reading RSS: {e}"))?;
    let rss_split = |when: &str| match process::rss_anon_file_bytes(pid) {
        Ok((anon, file)) => format!(
            "RSS {when}: {:.0} MiB anonymous + {:.0} MiB file-backed (mapped files)",
            anon as f64 / MIB,
            file as f64 / MIB
        ),
        Err(e) => format!("RSS {when}: {e}"),
    };
    notes.push(rss_split("at the end of ingest"));
    let t_ingested = Instant::now();
    let mut points = vec![measure("after ingest")?];

    match kind {
        Kind::VictoriaMetrics => {
            notes.push(format!("parts after ingest: {}", vm_parts(addr)));
            for path in ["/internal/force_flush", "/internal/force_merge"] {
                let r = get(addr, path)?;
                if !r.is_success() {
                    notes.push(format!("{path}: {}", r.summary()));
                }
            }
            // The forced merge runs in the background; its parts count in vm_active_merges.
            let waited = process::wait_quiet(pid, opts.settle_timeout, || {
                metrics_text(addr)
                    .ok()
                    .and_then(|t| metric_sum(&t, "vm_active_merges", ""))
                    .is_some_and(|n| n == 0.0)
            });
            note_timeout(&mut notes, waited, "merges");
            notes.push(format!("parts after the forced merge: {}", vm_parts(addr)));
            points.push(measure("flushed + merged")?);
        }
        Kind::Prometheus => {
            // Head compactions into 2 h blocks (and 2 h into 6 h) start on their own once
            // the head spans more than 3 h; wait until they are done.
            let waited = process::wait_quiet(pid, opts.settle_timeout, || true);
            note_timeout(&mut notes, waited, "compactions");
            if let Ok(t) = metrics_text(addr) {
                let m = |name| metric_sum(&t, name, "").unwrap_or(f64::NAN);
                notes.push(format!(
                    "prometheus_tsdb_blocks_loaded {}, prometheus_tsdb_compactions_total {}, head series {}",
                    m("prometheus_tsdb_blocks_loaded"),
                    m("prometheus_tsdb_compactions_total"),
                    m("prometheus_tsdb_head_series"),
                ));
            }
            points.push(measure("data dir, compacted")?);
            take_snapshot(addr, &data_dir, &mut points, &mut notes)?;
        }
        Kind::Hearth => {
            let text = metrics_text(addr)?;
            if metric_sum(&text, "hearth_tsdb_blocks", "").is_none() {
                notes.push(
                    "hearth_tsdb_blocks absent from /metrics: this hearth writes no blocks; measured right after ingest"
                        .into(),
                );
            } else {
                // Maintenance (cutting head ranges into blocks, compaction) runs every
                // 15 s and does all due work in one pass: done once the block counters
                // stood still for longer than one period after the ingest, with the CPU
                // quiet and nothing `pending`.
                let counters = |t: &str| -> Vec<Option<f64>> {
                    HEARTH_BLOCK_COUNTERS
                        .iter()
                        .map(|name| metric_sum(t, name, ""))
                        .collect()
                };
                let mut last = counters(&text);
                let mut changed_at = t_ingested;
                let waited = process::wait_quiet(pid, opts.hearth_wait, || {
                    let Ok(t) = metrics_text(addr) else {
                        return false;
                    };
                    let now = counters(&t);
                    if now != last {
                        last = now;
                        changed_at = Instant::now();
                    }
                    changed_at.elapsed() > HEARTH_MAINTENANCE_PERIOD && pending(&t) == 0.0
                });
                note_timeout(&mut notes, waited, "block persistence");
                let t = metrics_text(addr)?;
                let counts: Vec<String> = HEARTH_BLOCK_COUNTERS
                    .iter()
                    .map(|name| {
                        let v = metric_sum(&t, name, "").unwrap_or(f64::NAN);
                        format!("{name} {v}")
                    })
                    .collect();
                notes.push(counts.join(", "));
                let blocks = |name| metric_sum(&t, name, "").unwrap_or(f64::NAN);
                let (bytes, samples) = (
                    blocks("hearth_tsdb_blocks_bytes"),
                    blocks("hearth_tsdb_blocks_samples"),
                );
                notes.push(format!(
                    "in blocks: {samples} samples in {:.1} MiB = {:.3} B/sample (hearth_tsdb_blocks_bytes / _samples; the rest is head)",
                    bytes / MIB,
                    bytes / samples
                ));
                points.push(measure("blocks persisted")?);
                take_snapshot(addr, &data_dir, &mut points, &mut notes)?;
            }
        }
    }
    let persist_s = t_ingested.elapsed().as_secs_f64();
    let peak_rss_end = process::peak_rss_bytes(pid).map_err(|e| format!("reading RSS: {e}"))?;
    notes.push(rss_split("once persisted"));
    let (verified, verified_ok) = verify(kind, addr, data, spec);
    Ok(Measurement {
        kind,
        samples: data.samples,
        ingest_s,
        ingest_cpu_s,
        peak_rss_ingest,
        peak_rss_end,
        persist_s,
        points,
        verified,
        verified_ok,
        notes,
    })
}

/// Takes a snapshot with the head (`/api/v1/admin/tsdb/snapshot`, the same API on
/// Prometheus and hearth) and measures it as the "snapshot, all blocks" point; a refused
/// snapshot becomes a note.
fn take_snapshot(
    addr: SocketAddr,
    data_dir: &Path,
    points: &mut Vec<Point>,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    match snapshot(addr) {
        Ok(name) => {
            let dir = data_dir.join("snapshots").join(&name);
            let disk = disk_usage(&dir).map_err(|e| format!("measuring {}: {e}", dir.display()))?;
            points.push(Point {
                state: "snapshot, all blocks".into(),
                disk,
                snapshot: true,
            });
        }
        Err(e) => notes.push(format!("no snapshot: {e}")),
    }
    Ok(())
}

/// hearth's block metrics that move while it persists: the wait ends once they stand still.
const HEARTH_BLOCK_COUNTERS: &[&str] = &[
    "hearth_tsdb_blocks",
    "hearth_tsdb_head_blocks_written_total",
    "hearth_tsdb_compactions_total",
    "hearth_tsdb_blocks_deleted_total",
];

/// A little over hearth's block maintenance period (15 s).
const HEARTH_MAINTENANCE_PERIOD: Duration = Duration::from_secs(17);

/// The sum of hearth's gauges whose name says `pending` (persistence work it still has
/// queued, if it exposes any); 0 without such gauges.
fn pending(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("hearth_tsdb_") && !l.starts_with('#'))
        .filter(|l| {
            l.split(['{', ' '])
                .next()
                .is_some_and(|n| n.contains("pending"))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn note_timeout(notes: &mut Vec<String>, waited: Result<f64, f64>, what: &str) {
    if let Err(s) = waited {
        notes.push(format!(
            "WARNING: still busy after {s:.0} s of waiting for {what}; measured anyway"
        ));
    }
}

/// VictoriaMetrics's part counts by type (`vm_parts`), for the notes.
fn vm_parts(addr: SocketAddr) -> String {
    let Ok(t) = metrics_text(addr) else {
        return "?".into();
    };
    t.lines()
        .filter_map(|l| l.strip_prefix("vm_parts{type=\""))
        .filter_map(|l| {
            let (typ, rest) = l.split_once("\"}")?;
            Some(format!("{typ} {}", rest.trim()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Asks Prometheus for a snapshot that includes the head (written as a block). Returns the
/// snapshot's directory name under `snapshots/`.
fn snapshot(addr: SocketAddr) -> Result<String, String> {
    let path = "/api/v1/admin/tsdb/snapshot?skip_head=false";
    let r = Conn::connect(addr)
        .and_then(|mut c| c.request("POST", path, &[], &[]))
        .map_err(|e| format!("POST {path}: {e}"))?;
    if !r.is_success() {
        return Err(format!("POST {path}: {}", r.summary()));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&r.body).map_err(|e| format!("snapshot answer: {e}"))?;
    v["data"]["name"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("snapshot answer without a name: {}", r.body_text()))
}

/// Checks the server holds every series, and every sample of the constant
/// `node_boot_time_seconds` (one per host and scrape), with two instant queries at the
/// dataset's end.
fn verify(kind: Kind, addr: SocketAddr, data: &TimeOrdered, spec: &DatasetSpec) -> (String, bool) {
    let window_s = spec.scrapes as i64 * SCRAPE_INTERVAL_MS / 1000 + 3600;
    let checks = [
        ("count({job=\"node\"})".to_string(), data.series as f64),
        (
            format!("sum(count_over_time(node_boot_time_seconds[{window_s}s]))"),
            (spec.hosts * spec.scrapes) as f64,
        ),
    ];
    let at = spec.end_ms as f64 / 1000.0;
    let mut ok = true;
    let mut parts = Vec::new();
    for (q, want) in &checks {
        let mut path = format!("/api/v1/query?query={}&time={at:.3}", url_encode(q));
        if kind == Kind::VictoriaMetrics {
            path.push_str("&nocache=1");
        }
        let got = get(addr, &path).and_then(|r| {
            if r.is_success() {
                instant_value(&r.body).ok_or_else(|| r.summary())
            } else {
                Err(r.summary())
            }
        });
        match got {
            Ok(v) if v == *want => parts.push(format!("{q} = {v}")),
            Ok(v) => {
                ok = false;
                parts.push(format!("{q} = {v}, expected {want}"));
            }
            Err(e) => {
                ok = false;
                parts.push(format!("{q}: {e}"));
            }
        }
    }
    let counter = match kind {
        Kind::Hearth => ("hearth_tsdb_head_samples_appended_total", ""),
        Kind::Prometheus => ("prometheus_tsdb_head_samples_appended_total", ""),
        Kind::VictoriaMetrics => ("vm_rows_inserted_total", "type=\"promremotewrite\""),
    };
    if let Some(n) = metrics_text(addr)
        .ok()
        .and_then(|t| metric_sum(&t, counter.0, counter.1))
    {
        ok &= n == data.samples as f64;
        parts.push(format!("{} = {n}", counter.0));
    }
    let word = if ok { "yes" } else { "NO" };
    (format!("{word}: {}", parts.join("; ")), ok)
}

/// The value of the first sample of an instant-query answer.
fn instant_value(body: &[u8]) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

// ---------------------------------------------------------------------------------------
// The run

const MIB: f64 = 1024.0 * 1024.0;

/// Runs the whole benchmark and prints its report.
pub fn run(opts: &Options) -> Result<(), String> {
    let tmp = opts.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
    // The last full minute, less one: old enough that VictoriaMetrics's 30 s
    // -search.latencyOffset does not hide the end from the checks, recent enough for every
    // retention and for Prometheus's head.
    let end_ms = now_ms() / 60_000 * 60_000 - 60_000;
    let spec = DatasetSpec {
        hosts: opts.hosts,
        series_per_host: opts.series_per_host,
        scrapes: opts.scrapes(),
        end_ms,
        seed: opts.seed,
    };
    let t = Instant::now();
    let mut hosts = dataset::generate(&spec);
    dataset::check_dataset(&hosts, &spec)?;
    if !opts.raw_values {
        dataset::round_like_node_exporter(&mut hosts);
    }
    if opts.aligned_timestamps {
        dataset::align_timestamps(&mut hosts);
    }
    let data = dataset::encode_time_ordered(
        &hosts,
        opts.senders,
        SCRAPES_PER_SERIES,
        opts.samples_per_request,
    );
    drop(hosts);
    let prep_s = t.elapsed().as_secs_f64();

    println!("storage benchmark");
    println!(
        "  dataset: {} hosts x {} series x {} scrapes ({} h at 15 s, ending {} s Unix) = {} series, {} samples",
        opts.hosts, opts.series_per_host, spec.scrapes, opts.hours, end_ms / 1000, data.series, data.samples
    );
    println!(
        "  values: {}",
        if opts.raw_values {
            "full-precision random floats (--raw-values)"
        } else {
            "in node_exporter's units (CPU seconds in 0.01, disk times in 0.001, bytes in sectors/kB/blocks, counts whole)"
        }
    );
    println!(
        "  timestamps: {}",
        if opts.aligned_timestamps {
            "exactly 15 s apart per host (--aligned-timestamps)"
        } else {
            "15 s apart plus 0-4 ms of jitter per scrape"
        }
    );
    println!(
        "  ingest: remote_write 1.0 in time order, {} requests of ~{} samples ({} scrapes per series each), {:.0} MiB snappy; {} senders in step; prepared in {prep_s:.1} s",
        data.requests,
        opts.samples_per_request,
        SCRAPES_PER_SERIES,
        data.compressed_bytes as f64 / MIB,
        opts.senders
    );
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "  machine: {cores} CPUs visible; data dirs under {} ({}); one server at a time",
        tmp.display(),
        process::fs_type(&tmp)
    );
    for kind in &opts.servers {
        let v = match kind {
            Kind::Hearth => process::version(&opts.hearth, "--version"),
            Kind::Prometheus => process::version(&opts.prometheus, "--version"),
            Kind::VictoriaMetrics => process::version(&opts.vm, "-version"),
        };
        println!("  {}: {v}", kind.name());
    }
    println!();

    let mut results = Vec::new();
    let mut failed = Vec::new();
    for &kind in &opts.servers {
        print!("{} ... ", kind.name());
        let _ = std::io::Write::flush(&mut std::io::stdout());
        match run_one(kind, opts, &data, &spec, &tmp) {
            Ok(m) => {
                println!(
                    "ingest {:.1} s, persisted after {:.1} s more; verified: {}",
                    m.ingest_s, m.persist_s, m.verified
                );
                if !m.verified_ok {
                    failed.push(format!("{}: not verified: {}", kind.name(), m.verified));
                }
                results.push(m);
            }
            Err(e) => {
                println!("FAILED");
                failed.push(format!("{}: {e}", kind.name()));
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

fn verdict(ok: bool) -> &'static str {
    if ok {
        "MET"
    } else {
        "NOT MET"
    }
}

/// The table, where the bytes are, the ratios and the goal verdicts.
/// What is compared, hearth's point, and each peer's point.
type Comparison<'a> = (&'static str, &'a Point, Vec<(&'a Measurement, &'a Point)>);

pub fn report(results: &[Measurement]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<16} {:<21} {:>8} {:>10} {:>9} {:>10} {:>10} {:>9} {:>12} {:>9}",
        "server",
        "measured",
        "ingest s",
        "samples/s",
        "ingest CPU",
        "peak RSS",
        "disk MiB",
        "B/sample",
        "apparent MiB",
        "B/sample"
    );
    for m in results {
        for (i, p) in m.points.iter().enumerate() {
            let (ingest, rate, cpu, rss) = if i == 0 {
                (
                    format!("{:.1}", m.ingest_s),
                    format!("{:.0}", m.samples as f64 / m.ingest_s),
                    format!("{:.1}", m.ingest_cpu_s),
                    format!("{:.0}", m.peak_rss_ingest as f64 / MIB),
                )
            } else if i == m.points.len() - 1 {
                let rss = format!("({:.0})", m.peak_rss_end as f64 / MIB);
                (String::new(), String::new(), String::new(), rss)
            } else {
                Default::default()
            };
            let _ = writeln!(
                s,
                "{:<16} {:<21} {:>8} {:>10} {:>9} {:>10} {:>10.1} {:>9.3} {:>12.1} {:>9.3}",
                if i == 0 { m.kind.name() } else { "" },
                p.state,
                ingest,
                rate,
                cpu,
                rss,
                p.disk.total.allocated as f64 / MIB,
                m.bytes_per_sample(p),
                p.disk.total.apparent as f64 / MIB,
                p.disk.total.apparent as f64 / m.samples as f64,
            );
        }
    }
    let _ = writeln!(
        s,
        "(disk: allocated blocks, what du shows and the disk loses; apparent: file lengths, inflated by sparse pre-sized files;\n peak RSS MiB: VmHWM (anonymous + mapped-file pages) at the end of ingest, in brackets at the end of persisting; ingest CPU: server CPU-seconds over the ingest)"
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "where the bytes are (allocated MiB, files):");
    for m in results {
        for p in &m.points {
            let parts: Vec<String> = p
                .disk
                .parts
                .iter()
                .filter(|u| u.allocated >= 64 << 10)
                .map(|u| format!("{} {:.1} ({})", u.name, u.allocated as f64 / MIB, u.files))
                .collect();
            let _ = writeln!(
                s,
                "  {:<16} {:<21} {}",
                m.kind.name(),
                p.state,
                if parts.is_empty() {
                    "(all under 64 KiB)".into()
                } else {
                    parts.join(", ")
                }
            );
        }
    }
    for m in results {
        let _ = writeln!(s, "{}: verified: {}", m.kind.name(), m.verified);
        for n in &m.notes {
            let _ = writeln!(s, "{}: {n}", m.kind.name());
        }
    }
    let _ = writeln!(s);

    let find = |k: Kind| results.iter().find(|m| m.kind == k);
    let Some(h) = find(Kind::Hearth) else {
        let _ = writeln!(s, "hearth did not run: no ratios");
        return s;
    };
    // Two comparisons: everything compacted (snapshots with the head as blocks; VM's merged
    // data dir), and the data dir as a user sees it (blocks + the live head's WAL and chunks).
    let vm = find(Kind::VictoriaMetrics);
    let prom = find(Kind::Prometheus);
    let mut rows: Vec<Comparison<'_>> = Vec::new();
    if let Some(hp) = h.all_blocks() {
        let peers = [vm, prom]
            .into_iter()
            .flatten()
            .filter_map(|m| Some((m, m.all_blocks()?)))
            .collect();
        rows.push(("everything compacted", hp, peers));
    }
    let peers = [vm, prom]
        .into_iter()
        .flatten()
        .map(|m| (m, m.settled()))
        .collect();
    rows.push(("data dir incl. live head", h.settled(), peers));
    let _ = writeln!(s, "ratios hearth / peer, lower is better for hearth:");
    let _ = writeln!(
        s,
        "  {:<26} {:<48} {:>9} {:>14} {:>12}",
        "compared", "hearth vs peer", "B/sample", "peak RSS ingest", "ingest time"
    );
    for (what, hp, peers) in &rows {
        for (m, p) in peers {
            let _ = writeln!(
                s,
                "  {:<26} {:<48} {:>8.2}x {:>14.2}x {:>11.2}x",
                what,
                format!("{} vs {} {}", hp.state, m.kind.name(), p.state),
                h.bytes_per_sample(hp) / m.bytes_per_sample(p),
                h.peak_rss_ingest as f64 / m.peak_rss_ingest as f64,
                h.ingest_s / m.ingest_s,
            );
        }
    }
    let _ = writeln!(s, "goals (bytes on disk per sample, allocated):");
    for (what, hp, peers) in &rows {
        for (m, p) in peers {
            let goal = if m.kind == Kind::VictoriaMetrics {
                GOAL_VM_RATIO
            } else {
                GOAL_PROMETHEUS_RATIO
            };
            let (hb, b) = (h.bytes_per_sample(hp), m.bytes_per_sample(p));
            let r = hb / b;
            let _ = writeln!(
                s,
                "  {what}: hearth {hb:.3} B/sample vs {} ({}) {b:.3}: {r:.2}x (goal <= {goal}x: {})",
                m.kind.name(),
                p.state,
                verdict(r <= goal)
            );
        }
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
                "4",
                "--hours=2",
                "--servers",
                "hearth,vm",
                "--raw-values",
                "--aligned-timestamps",
                "--hearth-wait",
                "5",
            ]
            .map(String::from),
        )
        .unwrap();
        assert_eq!((o.hosts, o.hours, o.scrapes()), (4, 2, 480));
        assert_eq!(o.servers, vec![Kind::Hearth, Kind::VictoriaMetrics]);
        assert!(o.raw_values && o.aligned_timestamps);
        assert_eq!(o.hearth_wait, Duration::from_secs(5));
        assert!(Options::parse(["--hours".to_string(), "0".into()]).is_err());
        assert!(Options::parse(["--servers".to_string(), "x".into()]).is_err());
    }

    #[test]
    fn dataset_is_rounded_and_sent_in_step() {
        let spec = DatasetSpec {
            hosts: 3,
            series_per_host: 300,
            scrapes: 50,
            end_ms: 1_700_000_000_000,
            seed: 7,
        };
        let mut hosts = dataset::generate(&spec);
        dataset::round_like_node_exporter(&mut hosts);
        for s in hosts.iter().flat_map(|h| &h.series) {
            let name = String::from_utf8_lossy(&s.labels[0].value).into_owned();
            let res = dataset::exporter_resolution(&name).unwrap();
            for v in &s.values {
                let units = v / res;
                // Within float precision (disk counters reach 1e12).
                let tolerance = 1e-6 + units.abs() * 1e-12;
                assert!((units - units.round()).abs() <= tolerance, "{name} {v}");
            }
            if name.ends_with("_total") {
                assert!(s.values.windows(2).all(|w| w[0] <= w[1]), "{name}");
            }
        }
        let data = dataset::encode_time_ordered(&hosts, 2, 20, 1000);
        assert_eq!((data.samples, data.series), (3 * 300 * 50, 900));
        assert_eq!(data.per_sender.len(), 2);
        // 50 scrapes in slices of 20: 3 slices for every sender.
        assert!(data.per_sender.iter().all(|s| s.len() == 3));
        let mut last = std::collections::HashMap::new();
        let mut samples = 0;
        for slice in 0..3 {
            for sender in &data.per_sender {
                for body in &sender[slice] {
                    for ts in dataset::decode_request(body).unwrap().timeseries {
                        let key = dataset::show(&ts.labels);
                        for s in &ts.samples {
                            let k = (s.timestamp - hosts[0].timestamps[0]) / SCRAPE_INTERVAL_MS;
                            assert_eq!(k as usize / 20, slice, "sample outside its slice");
                            assert!(last
                                .insert(key.clone(), s.timestamp)
                                .is_none_or(|p| p < s.timestamp));
                            samples += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(samples, data.samples);
        assert_eq!(last.len(), 900);
    }

    #[test]
    fn reads_metrics() {
        let t = "# HELP vm_active_merges x\nvm_active_merges{type=\"storage/big\"} 0\nvm_active_merges{type=\"storage/small\"} 2\nvm_active_merges_total 9\nvm_rows_inserted_total{type=\"promremotewrite\"} 12\nvm_rows_inserted_total{type=\"influx\"} 3\nhearth_tsdb_blocks 4\nhearth_tsdb_compactions_pending{level=\"1\"} 1\n";
        assert_eq!(metric_sum(t, "vm_active_merges", ""), Some(2.0));
        assert_eq!(
            metric_sum(t, "vm_rows_inserted_total", "type=\"promremotewrite\""),
            Some(12.0)
        );
        assert_eq!(metric_sum(t, "hearth_tsdb_blocks", ""), Some(4.0));
        assert_eq!(metric_sum(t, "hearth_tsdb_head_series", ""), None);
        assert_eq!(pending(t), 1.0);
        assert_eq!(pending("hearth_tsdb_blocks 3\n"), 0.0);
    }

    #[test]
    fn measures_like_du() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("wal")).unwrap();
        std::fs::write(root.join("wal/00000000"), vec![1u8; 10_000]).unwrap();
        for ulid in ["01HZX3K4M5N6P7Q8R9S0T1V2W3", "01HZX3K4M5N6P7Q8R9S0T1V2W4"] {
            std::fs::create_dir(root.join(ulid)).unwrap();
            std::fs::write(root.join(ulid).join("index"), b"abc").unwrap();
            // A hard link is counted once.
            std::fs::hard_link(root.join(ulid).join("index"), root.join(ulid).join("link"))
                .unwrap();
        }
        // A sparse file: long, little allocated.
        let f = std::fs::File::create(root.join("sparse")).unwrap();
        f.set_len(64 << 20).unwrap();
        let u = disk_usage(root).unwrap();
        let names: Vec<&str> = u.parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["<ULID>/ x 2", "sparse", "wal/"]);
        assert_eq!(u.parts[0].files, 2);
        assert_eq!(u.total.files, 4);
        assert!(u.parts[1].apparent == 64 << 20 && u.parts[1].allocated < 1 << 20);
        assert!(u.parts[2].allocated >= 10_000);
        assert_eq!(
            u.total.allocated,
            u.parts.iter().map(|p| p.allocated).sum::<u64>()
        );
        assert!(!is_ulid("chunks_head") && !is_ulid("01HZX3K4M5N6P7Q8R9S0T1V2WU"));
    }
}
