//! The `hearth` binary: parses flags and config, opens the storage, serves HTTP.
//!
//! It only wires crates together; every handler that serves stored data lives in the crate
//! that owns the data.

mod config;
mod server;

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
    /// YAML config file (Prometheus-style `global:` plus hearth's `storage:` and `server:`).
    /// Without it hearth runs on its embedded default config.
    #[arg(long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory [default: ./data, or `storage.path` from the config].
    #[arg(long = "storage.path", value_name = "DIR")]
    storage_path: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:9090, or `server.listen_address`].
    #[arg(long = "web.listen-address", value_name = "ADDR")]
    listen_address: Option<String>,
    /// Mount the storage test endpoints (/api/v1/tsdb/test/*). For tests only.
    #[arg(long = "web.enable-test-endpoints", hide = true)]
    enable_test_endpoints: bool,
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
    let mut cfg = match config::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hearth: invalid configuration: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Some(p) = args.storage_path {
        cfg.storage.path = p;
    }
    if let Some(a) = args.listen_address {
        cfg.server.listen_address = a;
    }
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
    match rt.block_on(server::run(cfg, args.enable_test_endpoints)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("hearth: {e:#}");
            ExitCode::FAILURE
        }
    }
}
