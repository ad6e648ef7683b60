//! HTTP wiring, start-up order and graceful shutdown.
//!
//! Start-up: bind the listener first (so `/-/healthy` answers and a port clash fails fast),
//! then replay the WAL in the background; `/-/ready` answers 503 until the storage is open.
//! Once the storage is open the scrape jobs start. SIGHUP and `POST /-/reload` re-read the
//! config file and replace the scrape jobs; a bad new config is refused with its error and
//! the old jobs keep running (storage/server/ingest/query settings need a restart; the
//! config text `/api/v1/status/config` shows follows the reload).
//! Shutdown on SIGTERM/SIGINT: stop accepting connections, let in-flight requests finish,
//! stop scraping, then close the storage (refuse writes, write and fsync the WAL) and exit 0.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hearth_ingest::Ingest;
use hearth_query::http::{BuildInfo, QueryApi, StatusInfo};
use hearth_query::Engine;
use hearth_scrape::ScrapeManager;
use hearth_tsdb::http::DbSlot;
use hearth_tsdb::Db;

use crate::config::{Config, Loaded};

#[derive(Clone)]
struct AppState {
    db: DbSlot,
    ingest: Arc<Ingest>,
    start_time: f64,
    reload: Arc<Reloader>,
}

/// Re-reads the config file and replaces the scrape jobs.
struct Reloader {
    path: Option<std::path::PathBuf>,
    listen: String,
    scrape: Arc<ScrapeManager>,
    /// Told the new config text (or the failure) for `/api/v1/status/*`.
    status: Arc<StatusInfo>,
    /// Serializes reloads.
    lock: tokio::sync::Mutex<()>,
}

impl Reloader {
    fn apply(&self, loaded: &Loaded) -> anyhow::Result<()> {
        let jobs = hearth_scrape::setup::build_jobs(&loaded.scrape).map_err(anyhow::Error::msg)?;
        self.scrape.apply(jobs);
        Ok(())
    }

    async fn reload(&self) -> anyhow::Result<()> {
        let _g = self.lock.lock().await;
        let r = self.reload_locked();
        match &r {
            Ok(text) => self.status.config_loaded(text.clone()),
            Err(_) => self.status.config_reload_failed(),
        }
        r.map(drop)
    }

    /// Returns the new config's text.
    fn reload_locked(&self) -> anyhow::Result<String> {
        let mut loaded = Config::load(self.path.as_deref())?;
        loaded.point_self_scrape_at(&self.listen);
        for w in &loaded.warnings {
            tracing::warn!("config: {w}");
        }
        self.apply(&loaded)?;
        tracing::info!(jobs = loaded.scrape.len(), "configuration reloaded");
        Ok(loaded.text)
    }
}

/// What `/api/v1/status/buildinfo` reports. `HEARTH_REVISION`, `HEARTH_BRANCH`,
/// `HEARTH_BUILD_USER` and `HEARTH_BUILD_DATE` may be set in the build environment.
fn build_info() -> BuildInfo {
    let or_unknown = |v: Option<&str>| v.unwrap_or("unknown").to_string();
    BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        revision: or_unknown(option_env!("HEARTH_REVISION")),
        branch: or_unknown(option_env!("HEARTH_BRANCH")),
        build_user: or_unknown(option_env!("HEARTH_BUILD_USER")),
        build_date: or_unknown(option_env!("HEARTH_BUILD_DATE")),
        go_version: concat!("rust (MSRV ", env!("CARGO_PKG_RUST_VERSION"), ")").to_string(),
    }
}

pub(crate) async fn run(
    loaded: Loaded,
    flags: BTreeMap<String, String>,
    test_endpoints: bool,
    admin_api: bool,
) -> anyhow::Result<()> {
    let cfg = loaded.cfg.clone();
    let mut signals = ShutdownSignals::install()?;
    // Registered now so a SIGHUP during start-up is queued instead of killing the process.
    let mut hup_signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing SIGHUP handler")?;
    let listener = tokio::net::TcpListener::bind(&cfg.server.listen_address)
        .await
        .with_context(|| format!("binding {}", cfg.server.listen_address))?;
    tracing::info!(address = %listener.local_addr()?, storage = %cfg.storage.path.display(), "hearth listening");
    let slot: DbSlot = Arc::new(OnceLock::new());
    let ingest = Ingest::new(slot.clone(), cfg.ingest.clone());
    let scrape = ScrapeManager::new(slot.clone(), ingest.clone());
    let retention = match cfg.storage.retention.size {
        Some(size) => format!("{} or {}B", cfg.storage.retention.time, size.0),
        None => cfg.storage.retention.time.to_string(),
    };
    let status = StatusInfo::new(build_info(), flags, retention, loaded.text.clone());
    let engine = Engine::new(
        cfg.query
            .engine_options(cfg.global.effective_evaluation_interval()),
    );
    let query_api = QueryApi::with_admin(slot.clone(), engine, status.clone(), admin_api);
    let reloader = Arc::new(Reloader {
        path: loaded.path.clone(),
        listen: cfg.server.listen_address.clone(),
        scrape: scrape.clone(),
        status,
        lock: tokio::sync::Mutex::new(()),
    });
    let state = AppState {
        db: slot.clone(),
        ingest: ingest.clone(),
        reload: reloader.clone(),
        start_time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
    };
    let mut app = Router::new()
        .route("/-/healthy", get(|| async { "Hearth is Healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/-/reload", post(reload).put(reload))
        .with_state(state)
        .merge(hearth_ingest::router(ingest))
        .merge(hearth_scrape::http::router(scrape.clone()))
        .merge(hearth_query::http::router(query_api));
    if test_endpoints {
        app = app.merge(hearth_tsdb::http::test_router(slot.clone()));
    }

    let storage = cfg.storage.clone();
    let opener = tokio::task::spawn_blocking(move || Db::open(&storage));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(wait_stop(stop_rx))
            .await
    });

    tokio::select! {
        opened = opener => {
            let db = opened.context("storage open task")?.context("opening storage")?;
            let db = Arc::new(db);
            let _ = slot.set(db.clone());
            tracing::info!("storage ready");
            spawn_maintenance(db);
            if let Err(e) = reloader.apply(&loaded) {
                // The config was validated at start; a failure here is e.g. an unreadable
                // CA file. Serve what works and say why the rest does not scrape.
                tracing::error!("starting scrape jobs: {e:#}");
            }
        }
        sig = signals.recv() => {
            tracing::info!(signal = sig, "shutdown requested during start-up");
            let _ = stop_tx.send(true);
            server.await??;
            return Ok(());
        }
    }
    let hup = {
        let reloader = reloader.clone();
        tokio::spawn(async move {
            while hup_signal.recv().await.is_some() {
                if let Err(e) = reloader.reload().await {
                    tracing::error!(
                        "reload on SIGHUP failed, keeping the running configuration: {e:#}"
                    );
                }
            }
        })
    };
    let sig = signals.recv().await;
    hup.abort();
    scrape.stop_all();
    tracing::info!(
        signal = sig,
        "shutting down: no new connections, finishing requests"
    );
    let _ = stop_tx.send(true);
    server.await??;
    if let Some(db) = slot.get() {
        let db = db.clone();
        tokio::task::spawn_blocking(move || db.close())
            .await?
            .context("closing storage")?;
    }
    tracing::info!("shutdown complete");
    Ok(())
}

async fn wait_stop(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// SIGTERM/SIGINT listeners, registered once at start-up: a signal that arrives while the
/// server is busy (e.g. starting scrape jobs) is queued, never lost.
struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(ShutdownSignals {
            term: signal(SignalKind::terminate()).context("installing SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing SIGINT handler")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Block maintenance (persisting head ranges, compaction, retention) every 15 s, one run at a
/// time, off the async runtime. Runs stop when storage closes (`maintain` returns `Closed`).
fn spawn_maintenance(db: Arc<Db>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let d = db.clone();
            match tokio::task::spawn_blocking(move || d.maintain()).await {
                Ok(Ok(_)) => {}
                Ok(Err(hearth_tsdb::TsdbError::Closed)) => return,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "block maintenance failed; retrying at the next run")
                }
                Err(e) => tracing::error!(error = %e, "block maintenance task failed"),
            }
        }
    });
}

async fn ready(State(st): State<AppState>) -> Response {
    if st.db.get().is_some() {
        (StatusCode::OK, "Hearth is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    let db = st.db.get().cloned();
    let ingest = st.ingest.clone();
    let start_time = st.start_time;
    let body = tokio::task::spawn_blocking(move || {
        let mut out = String::with_capacity(8192);
        write_process_metrics(&mut out, start_time);
        let _ = writeln!(
            out,
            "# HELP hearth_build_info Build information.\n# TYPE hearth_build_info gauge\nhearth_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(
            out,
            "# HELP hearth_ready Whether the storage is open (WAL replay done).\n# TYPE hearth_ready gauge\nhearth_ready {}",
            u8::from(db.is_some())
        );
        if let Some(db) = db {
            db.write_metrics(&mut out);
        }
        ingest.write_metrics(&mut out);
        out
    })
    .await
    .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The standard `process_*` metrics, read from /proc.
fn write_process_metrics(out: &mut String, start_time: f64) {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as f64;
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
        let f: Vec<f64> = statm
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() >= 2 {
            let _ = writeln!(out, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes {}", f[0] * page);
            let _ = writeln!(out, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}", f[1] * page);
        }
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        if let Some(rest) = stat.rsplit_once(')').map(|x| x.1) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.len() > 13 {
                let cpu = (f[11].parse::<f64>().unwrap_or(0.0)
                    + f[12].parse::<f64>().unwrap_or(0.0))
                    / ticks;
                let _ = writeln!(out, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}");
            }
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(out, "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {}", fds.count());
    }
    let _ = writeln!(out, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {start_time}");
}

/// `POST /-/reload`, as Prometheus answers it: 200 on success, 500 with the error otherwise.
async fn reload(State(st): State<AppState>) -> Response {
    match st.reload.reload().await {
        Ok(()) => (StatusCode::OK, "").into_response(),
        Err(e) => {
            tracing::error!("reload failed, keeping the running configuration: {e:#}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to reload config: {e:#}\n"),
            )
                .into_response()
        }
    }
}
