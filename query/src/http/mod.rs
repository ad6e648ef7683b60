//! The read side of the Prometheus HTTP API (`/api/v1/...`), JSON-compatible with
//! Prometheus 3 so Grafana, promtool and scripts work unchanged. Described in
//! `docs/query.md`.
//!
//! - `query.rs`: `query`, `query_range`, `query_exemplars`, `format_query`, `parse_query`.
//! - `series.rs`: `series`, `labels`, `label/<name>/values`, and the admin endpoints
//!   `admin/tsdb/delete_series` and `admin/tsdb/snapshot` (POST and PUT only).
//! - `status.rs`: `status/{buildinfo,runtimeinfo,flags,config,tsdb}` and what the binary
//!   tells this crate about itself ([`StatusInfo`]).
//! - `params.rs`: parameters (form body merged with the URL query, times, durations),
//!   `encode.rs`: result JSON, `ast.rs`: the `parse_query` tree, `config.rs`: the `query:`
//!   config section.
//!
//! Every endpoint takes GET and POST (form body) like Prometheus, except `label/<name>/values`
//! and `status/*` (GET only). Queries run on the blocking pool; when the client disconnects,
//! axum drops the handler future and a drop guard sets the query's cancel flag.

mod ast;
mod config;
pub mod encode;
pub mod params;
mod query;
mod series;
mod status;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hearth_tsdb::http::DbSlot;
use hearth_tsdb::Db;

use crate::engine::{Engine, QueryError};
use crate::value::Annotations;

pub use config::QueryConfig;
pub use status::{BuildInfo, StatusInfo};

/// Status Prometheus answers when the client went away (nginx's 499).
const STATUS_CLIENT_CLOSED: u16 = 499;

/// Most warnings (and infos) a response carries; the rest are counted in one last line.
const MAX_ANNOTATIONS: usize = 10;

/// Shared state of the query API. Fixed after construction except what [`StatusInfo`]
/// guards itself.
pub struct QueryApi {
    db: DbSlot,
    engine: Engine,
    status: Arc<StatusInfo>,
    /// `--web.enable-admin-api`: the TSDB admin endpoints answer only when set.
    admin: bool,
}

impl QueryApi {
    pub fn new(db: DbSlot, engine: Engine, status: Arc<StatusInfo>) -> Arc<Self> {
        Arc::new(QueryApi {
            db,
            engine,
            status,
            admin: false,
        })
    }

    /// Like [`QueryApi::new`], with the admin endpoints (`delete_series`, `snapshot`) enabled
    /// or not.
    pub fn with_admin(
        db: DbSlot,
        engine: Engine,
        status: Arc<StatusInfo>,
        admin: bool,
    ) -> Arc<Self> {
        Arc::new(QueryApi {
            db,
            engine,
            status,
            admin,
        })
    }

    /// The open database, or `unavailable` while the WAL is replayed.
    fn db(&self) -> Result<Arc<Db>, ApiError> {
        self.db.get().cloned().ok_or_else(|| ApiError {
            kind: ErrorKind::Unavailable,
            msg: "hearth is replaying its WAL and not ready yet".into(),
        })
    }
}

/// The query API routes.
pub fn router(api: Arc<QueryApi>) -> Router {
    Router::new()
        .route("/api/v1/query", get(query::query).post(query::query))
        .route(
            "/api/v1/query_range",
            get(query::query_range).post(query::query_range),
        )
        .route(
            "/api/v1/query_exemplars",
            get(query::exemplars).post(query::exemplars),
        )
        .route(
            "/api/v1/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route(
            "/api/v1/parse_query",
            get(query::parse_query).post(query::parse_query),
        )
        .route("/api/v1/series", get(series::series).post(series::series))
        .route(
            "/api/v1/admin/tsdb/delete_series",
            post(series::delete_series).put(series::delete_series),
        )
        .route(
            "/api/v1/admin/tsdb/snapshot",
            post(series::snapshot).put(series::snapshot),
        )
        .route("/api/v1/labels", get(series::labels).post(series::labels))
        .route("/api/v1/label/{name}/values", get(series::label_values))
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .with_state(api)
}

/// The API's `errorType`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    BadData,
    Execution,
    Timeout,
    Canceled,
    Internal,
    Unavailable,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadData => "bad_data",
            ErrorKind::Execution => "execution",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Canceled => "canceled",
            ErrorKind::Internal => "internal",
            ErrorKind::Unavailable => "unavailable",
        }
    }

    /// Prometheus's `respondError` status codes.
    fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadData => StatusCode::BAD_REQUEST,
            ErrorKind::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Canceled => {
                StatusCode::from_u16(STATUS_CLIENT_CLOSED).expect("BUG: 499 is a valid status code")
            }
            ErrorKind::Timeout | ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An API error: `{"status":"error","errorType":...,"error":...}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) kind: ErrorKind,
    pub(crate) msg: String,
}

impl ApiError {
    pub(crate) fn bad_data(msg: impl std::fmt::Display) -> Self {
        ApiError {
            kind: ErrorKind::BadData,
            msg: msg.to_string(),
        }
    }

    /// Prometheus's `invalidParamError`: `invalid parameter "<name>": <err>`.
    pub(crate) fn invalid_param(name: &str, err: impl std::fmt::Display) -> Self {
        Self::bad_data(format!("invalid parameter \"{name}\": {err}"))
    }

    pub(crate) fn internal(msg: impl std::fmt::Display) -> Self {
        ApiError {
            kind: ErrorKind::Internal,
            msg: msg.to_string(),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let kind = match e {
            QueryError::BadData(_) => ErrorKind::BadData,
            QueryError::Execution(_) => ErrorKind::Execution,
            QueryError::Timeout(_) => ErrorKind::Timeout,
            QueryError::Canceled(_) => ErrorKind::Canceled,
            QueryError::Internal(_) => ErrorKind::Internal,
        };
        ApiError {
            kind,
            msg: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = String::with_capacity(64 + self.msg.len());
        body.push_str("{\"status\":\"error\",\"errorType\":\"");
        body.push_str(self.kind.as_str());
        body.push_str("\",\"error\":");
        encode::push_str(&mut body, &self.msg);
        body.push('}');
        json_response(self.kind.status(), body)
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A success response around `data` (already JSON), with warnings and infos as Prometheus
/// writes them (omitted when empty, at most [`MAX_ANNOTATIONS`] each plus a count of the
/// rest).
pub(crate) fn success(data: &str, annotations: &Annotations) -> Response {
    let mut body = String::with_capacity(data.len() + 64);
    body.push_str("{\"status\":\"success\",\"data\":");
    body.push_str(data);
    push_annotations(&mut body, "warnings", &annotations.warnings, "warning");
    push_annotations(&mut body, "infos", &annotations.infos, "info");
    body.push('}');
    json_response(StatusCode::OK, body)
}

fn push_annotations(out: &mut String, key: &str, items: &[String], what: &str) {
    if items.is_empty() {
        return;
    }
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    let mut shown: Vec<String> = items.iter().take(MAX_ANNOTATIONS).cloned().collect();
    if items.len() > MAX_ANNOTATIONS {
        shown.push(format!(
            "{} more {what} annotations omitted",
            items.len() - MAX_ANNOTATIONS
        ));
    }
    encode::push_str_array(out, &shown);
}

/// The `warnings` entry Prometheus adds when `limit` cut a result.
pub(crate) const TRUNCATED: &str = "results truncated due to limit";

/// Runs `f` on the blocking pool. If the handler future is dropped first (the client went
/// away), `cancel` is set so the query stops at its next check.
pub(crate) async fn run_blocking<T: Send + 'static>(
    cancel: Arc<AtomicBool>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    struct CancelOnDrop(Option<Arc<AtomicBool>>);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            if let Some(c) = self.0.take() {
                c.store(true, Ordering::Relaxed);
            }
        }
    }
    let mut guard = CancelOnDrop(Some(cancel));
    let r = tokio::task::spawn_blocking(f).await;
    guard.0 = None;
    r.map_err(|e| ApiError::internal(format!("query task failed: {e}")))
}

/// The request's `Content-Type`, for [`params::Params::parse`].
pub(crate) fn content_type(h: &HeaderMap) -> Option<&str> {
    h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
