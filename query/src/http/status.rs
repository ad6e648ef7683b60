//! `/api/v1/status/{buildinfo,runtimeinfo,flags,config,tsdb}` and [`StatusInfo`], what the
//! binary tells the API about itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use parking_lot::RwLock;
use serde_json::{json, Value};

use super::params::Params;
use super::{now_ms, success, ApiError, QueryApi};
use crate::value::Annotations;

/// Build facts for `status/buildinfo`, in Prometheus's field names.
#[derive(Debug, Clone, Default)]
pub struct BuildInfo {
    pub version: String,
    pub revision: String,
    pub branch: String,
    pub build_user: String,
    pub build_date: String,
    /// Prometheus's `goVersion`; hearth reports its toolchain here.
    pub go_version: String,
}

/// What the status endpoints report. The flags and start time are fixed at construction;
/// the config text and reload outcome change on reload, under `config`'s lock.
pub struct StatusInfo {
    build: BuildInfo,
    flags: BTreeMap<String, String>,
    start_time_ms: i64,
    storage_retention: String,
    config: RwLock<ConfigState>,
}

struct ConfigState {
    yaml: String,
    reload_success: bool,
    last_config_time_ms: i64,
}

impl StatusInfo {
    /// `yaml` is the loaded config file's text (or the embedded default).
    pub fn new(
        build: BuildInfo,
        flags: BTreeMap<String, String>,
        storage_retention: String,
        yaml: String,
    ) -> Arc<Self> {
        let now = now_ms();
        Arc::new(StatusInfo {
            build,
            flags,
            start_time_ms: now,
            storage_retention,
            config: RwLock::new(ConfigState {
                yaml,
                reload_success: true,
                last_config_time_ms: now,
            }),
        })
    }

    /// A reload succeeded with this config text.
    pub fn config_loaded(&self, yaml: String) {
        let mut c = self.config.write();
        c.yaml = yaml;
        c.reload_success = true;
        c.last_config_time_ms = now_ms();
    }

    /// A reload failed; the old config stays.
    pub fn config_reload_failed(&self) {
        self.config.write().reload_success = false;
    }
}

fn respond(data: &Value) -> Response {
    success(&data.to_string(), &Annotations::default())
}

/// Go's `time.Time` JSON (RFC 3339 with fractional seconds when non-zero, UTC).
fn go_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

/// `GET /api/v1/status/buildinfo`. `features` is present and empty: Grafana reads a missing
/// `features` object as a sign of a Mimir/Cortex ruler.
pub(super) async fn buildinfo(State(api): State<Arc<QueryApi>>) -> Response {
    let b = &api.status.build;
    respond(&json!({
        "version": b.version,
        "revision": b.revision,
        "branch": b.branch,
        "buildUser": b.build_user,
        "buildDate": b.build_date,
        "goVersion": b.go_version,
        "features": {},
    }))
}

/// `GET /api/v1/status/runtimeinfo`, with Prometheus 3's fields (Go runtime fields filled
/// with their nearest equivalent: threads for goroutines, CPUs for GOMAXPROCS).
pub(super) async fn runtimeinfo(State(api): State<Arc<QueryApi>>) -> Response {
    let st = &api.status;
    let (reload_success, last_config) = {
        let c = st.config.read();
        (c.reload_success, c.last_config_time_ms)
    };
    let corruptions = api.db.get().map_or(0, |db| {
        let r = db.replay_stats();
        r.corruptions + r.torn_tails + r.bad_records
    });
    let threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:")?.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    respond(&json!({
        "startTime": go_time(st.start_time_ms),
        "CWD": std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default(),
        "hostname": hostname,
        "serverTime": go_time(now_ms()),
        "reloadConfigSuccess": reload_success,
        "lastConfigTime": go_time(last_config),
        "corruptionCount": corruptions,
        "goroutineCount": threads,
        "GOMAXPROCS": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "GOMEMLIMIT": i64::MAX,
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": st.storage_retention,
    }))
}

/// `GET /api/v1/status/flags`: the effective command-line settings, by flag name.
pub(super) async fn flags(State(api): State<Arc<QueryApi>>) -> Response {
    respond(&json!(api.status.flags))
}

/// `GET /api/v1/status/config`: `{"yaml": <the loaded config text>}`.
pub(super) async fn config(State(api): State<Arc<QueryApi>>) -> Response {
    let yaml = api.status.config.read().yaml.clone();
    respond(&json!({ "yaml": yaml }))
}

/// `GET /api/v1/status/tsdb?limit=N` (default 10): head stats and cardinality lists.
pub(super) async fn tsdb(State(api): State<Arc<QueryApi>>, q: RawQuery) -> Response {
    let p = Params::parse(q.0.as_deref(), None, &[]);
    let r: Result<Response, ApiError> = async {
        let limit = match p.get("limit") {
            None => 10,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
                _ => return Err(ApiError::bad_data("limit must be a positive number")),
            },
        };
        let db = api.db()?;
        let st = super::run_blocking(Default::default(), move || db.head_status(limit)).await?;
        let c = &st.cardinality;
        let list = |rows: &[hearth_tsdb::index::Stat]| -> Value {
            rows.iter()
                .map(|r| json!({"name": r.name, "value": r.count}))
                .collect()
        };
        // Prometheus reports an empty head as minTime = MaxInt64, maxTime = MinInt64.
        let (min_t, max_t) = st.time_range.unwrap_or((i64::MAX, i64::MIN));
        Ok(respond(&json!({
            "headStats": {
                "numSeries": c.num_series,
                "numLabelPairs": c.num_label_pairs,
                "chunkCount": st.chunk_count,
                "minTime": min_t,
                "maxTime": max_t,
            },
            "seriesCountByMetricName": list(&c.series_count_by_metric_name),
            "labelValueCountByLabelName": list(&c.label_value_count_by_label_name),
            "memoryInBytesByLabelName": list(&c.memory_in_bytes_by_label_name),
            "seriesCountByLabelValuePair": list(&c.series_count_by_label_pair),
        })))
    }
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}
