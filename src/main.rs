//! The `hearth` binary: parses flags and config, opens the storage, serves HTTP.
//!
//! It only wires crates together; every handler that serves stored data lives in the crate
//! that owns the data.

mod config;
mod server;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc malloc: the ingest path allocates many small, short-lived
/// buffers per request, where glibc spent ~12% of hearth's CPU (perf, remote_write bench)
/// in malloc/free/consolidate.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One binary that replaces Prometheus + Loki for people who run their own fleet.
#[derive(Parser, Debug)]
#[command(name = "hearth", version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// YAML config file (Prometheus-style `global:` plus hearth's `storage:`, `server:`,
    /// `ingest:` and `query:`).
    /// Without it hearth runs on its embedded default config.
    #[arg(long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory [default: ./data, or `storage.path` from the config].
    #[arg(long = "storage.path", value_name = "DIR")]
    storage_path: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:9090, or `server.listen_address`].
    #[arg(long = "web.listen-address", value_name = "ADDR")]
    listen_address: Option<String>,
    /// How far back an instant selector looks for a sample [default: 5m, or
    /// `query.lookback_delta`].
    #[arg(long = "query.lookback-delta", value_name = "DURATION", value_parser = parse_duration)]
    query_lookback_delta: Option<std::time::Duration>,
    /// Most samples one query may hold in memory [default: 50000000, or `query.max_samples`].
    #[arg(long = "query.max-samples", value_name = "N")]
    query_max_samples: Option<usize>,
    /// Longest a query may run [default: 2m, or `query.timeout`].
    #[arg(long = "query.timeout", value_name = "DURATION", value_parser = parse_duration)]
    query_timeout: Option<std::time::Duration>,
    /// Enable the admin endpoints (/api/v1/admin/tsdb/{delete_series,snapshot}), as
    /// Prometheus's flag.
    #[arg(long = "web.enable-admin-api")]
    enable_admin_api: bool,
    /// Mount the storage test endpoints (/api/v1/tsdb/test/*). For tests only.
    #[arg(long = "web.enable-test-endpoints", hide = true)]
    enable_test_endpoints: bool,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Check files, like `promtool check`.
    Check {
        #[command(subcommand)]
        what: CheckWhat,
    },
}

#[derive(clap::Subcommand, Debug)]
enum CheckWhat {
    /// Validate configuration files (exit 0 if all are valid, 1 otherwise).
    Config {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// A duration flag in Prometheus syntax (`5m`, `1h30m`), greater than zero.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    match hearth_tsdb::config::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be greater than 0".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// The effective settings by Prometheus-style flag name, for `/api/v1/status/flags`.
fn flag_values(args: &Args, loaded: &config::Loaded) -> BTreeMap<String, String> {
    let cfg = &loaded.cfg;
    let dur = |d: std::time::Duration| hearth_tsdb::config::PromDuration(d).to_string();
    BTreeMap::from([
        (
            "config.file".to_string(),
            args.config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        (
            "storage.path".to_string(),
            cfg.storage.path.display().to_string(),
        ),
        (
            "web.listen-address".to_string(),
            cfg.server.listen_address.clone(),
        ),
        (
            "web.enable-admin-api".to_string(),
            args.enable_admin_api.to_string(),
        ),
        (
            "storage.tsdb.retention.time".to_string(),
            cfg.storage.retention.time.to_string(),
        ),
        (
            "query.lookback-delta".to_string(),
            dur(cfg.query.lookback_delta.0),
        ),
        (
            "query.max-samples".to_string(),
            cfg.query.max_samples.to_string(),
        ),
        ("query.timeout".to_string(), dur(cfg.query.timeout.0)),
    ])
}

/// `hearth check config FILE...`, printing what `promtool check config` prints.
fn check_config(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for f in files {
        println!("Checking {}", f.display());
        match config::Config::load(Some(f)) {
            Ok(l) => {
                for w in &l.warnings {
                    println!("  WARNING: {w}");
                }
                println!(
                    " SUCCESS: {} is valid configuration ({} scrape configs found)",
                    f.display(),
                    l.scrape.len()
                );
            }
            Err(e) => {
                ok = false;
                println!("  FAILED: {e:#}");
            }
        }
        println!();
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    if let Some(Command::Check {
        what: CheckWhat::Config { files },
    }) = &args.command
    {
        return check_config(files);
    }
    let mut loaded = match config::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hearth: invalid configuration: {e:#}");
            return ExitCode::from(2);
        }
    };
    for w in &loaded.warnings {
        tracing::warn!("config: {w}");
    }
    if let Some(p) = args.storage_path.clone() {
        loaded.cfg.storage.path = p;
    }
    if let Some(a) = args.listen_address.clone() {
        loaded.cfg.server.listen_address = a;
    }
    if let Some(d) = args.query_lookback_delta {
        loaded.cfg.query.lookback_delta.0 = d;
    }
    if let Some(n) = args.query_max_samples {
        loaded.cfg.query.max_samples = n;
    }
    if let Some(d) = args.query_timeout {
        loaded.cfg.query.timeout.0 = d;
    }
    if let Err(e) = loaded.cfg.query.validate() {
        eprintln!("hearth: invalid flags: {e}");
        return ExitCode::from(2);
    }
    let flags = flag_values(&args, &loaded);
    let listen = loaded.cfg.server.listen_address.clone();
    loaded.point_self_scrape_at(&listen);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hearth")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hearth: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(server::run(
        loaded,
        flags,
        args.enable_test_endpoints,
        args.enable_admin_api,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("hearth: {e:#}");
            ExitCode::FAILURE
        }
    }
}
