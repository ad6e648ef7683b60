//! HTTP endpoints the storage engine owns.
//!
//! For now these are the test endpoints the crash and corruption tests drive the real binary
//! with, until the ingest and query crates serve the real APIs. They are only mounted when
//! hearth runs with `--web.enable-test-endpoints`:
//!
//! - `POST /api/v1/tsdb/test/append` — body `{"series":[{"labels":{...},"samples":[[ms,"v"],..]}]}`,
//!   values as strings: a float (`"1.5"`, `"NaN"`, `"+Inf"`) or exact bits (`"0x7ff0000000000002"`).
//!   Answers once the batch is durable.
//! - `GET /api/v1/tsdb/test/export?match=<name><op><value>&start=<ms>&end=<ms>` — every
//!   matching series with its samples, values as exact bits (`"0x..."`).
//!
//! Errors use Prometheus's JSON error shape.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{Db, Labels, MatchOp, Matcher, TsdbError};

/// The database, set once WAL replay is done. Handlers answer 503 until then.
pub type DbSlot = Arc<OnceLock<Arc<Db>>>;

/// A Prometheus-style API error.
pub fn api_error(status: StatusCode, error_type: &str, msg: impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({"status": "error", "errorType": error_type, "error": msg.to_string()})),
    )
        .into_response()
}

fn not_ready() -> Response {
    api_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "hearth is replaying its WAL and not ready yet",
    )
}

/// Routes of the test endpoints.
pub fn test_router(slot: DbSlot) -> Router {
    Router::new()
        .route("/api/v1/tsdb/test/append", post(append))
        .route("/api/v1/tsdb/test/export", get(export))
        .with_state(slot)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendBody {
    series: Vec<AppendSeries>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendSeries {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    samples: Vec<(i64, String)>,
    /// Present only to give native histograms a clear error instead of a generic one.
    #[serde(default)]
    histograms: Option<Value>,
}

/// Parses a sample value: a float as Prometheus prints it, or `0x` + 16 hex digits of bits.
pub fn parse_value(s: &str) -> Option<f64> {
    if let Some(hex) = s.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().map(f64::from_bits);
    }
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

async fn append(State(slot): State<DbSlot>, body: axum::body::Bytes) -> Response {
    let Some(db) = slot.get().cloned() else {
        return not_ready();
    };
    let body: AppendBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, "bad_data", e),
    };
    let mut batch = Vec::with_capacity(body.series.len());
    for s in body.series {
        if s.histograms.is_some() {
            return api_error(
                StatusCode::BAD_REQUEST,
                "bad_data",
                TsdbError::NotSupported {
                    what: "native histograms",
                },
            );
        }
        let labels = match Labels::new(s.labels) {
            Ok(l) => l,
            Err(e) => return api_error(StatusCode::BAD_REQUEST, "bad_data", e),
        };
        let mut samples = Vec::with_capacity(s.samples.len());
        for (t, v) in s.samples {
            match parse_value(&v) {
                Some(v) => samples.push((t, v)),
                None => {
                    return api_error(
                        StatusCode::BAD_REQUEST,
                        "bad_data",
                        format!("invalid sample value {v:?} for {labels}"),
                    )
                }
            }
        }
        batch.push((labels, samples));
    }
    let res = tokio::task::spawn_blocking(move || {
        let mut app = db.appender();
        for (labels, samples) in &batch {
            let s = app.series(labels)?;
            for &(t, v) in samples {
                app.append(&s, t, v);
            }
        }
        app.commit()
    })
    .await;
    match res {
        Ok(Ok(r)) => {
            let rejected: Vec<Value> = r
                .rejections
                .iter()
                .map(|x| json!({"series": x.labels.to_string(), "t": x.t, "reason": x.reason.as_str()}))
                .collect();
            Json(json!({"status": "success", "data": {
                "appended": r.appended, "duplicates": r.duplicates,
                "too_old": r.too_old, "duplicate_conflicts": r.duplicate_conflicts,
                "rejected": rejected,
            }}))
            .into_response()
        }
        Ok(Err(TsdbError::Closed)) => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            TsdbError::Closed,
        ),
        Ok(Err(e)) => api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e),
    }
}

#[derive(Deserialize)]
struct ExportParams {
    #[serde(default)]
    r#match: Vec<String>,
    start: Option<i64>,
    end: Option<i64>,
}

/// Parses `name<op>value` with op one of `=~ !~ != =`.
pub fn parse_simple_matcher(s: &str) -> Result<Matcher, String> {
    let pos = s
        .find(['=', '!'])
        .ok_or_else(|| format!("matcher {s:?} has no operator"))?;
    let (name, rest) = s.split_at(pos);
    let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
        (MatchOp::Regex, v)
    } else if let Some(v) = rest.strip_prefix("!~") {
        (MatchOp::NotRegex, v)
    } else if let Some(v) = rest.strip_prefix("!=") {
        (MatchOp::NotEqual, v)
    } else if let Some(v) = rest.strip_prefix('=') {
        (MatchOp::Equal, v)
    } else {
        return Err(format!("matcher {s:?} has no operator"));
    };
    Matcher::new(op, name, value).map_err(|e| e.to_string())
}

async fn export(State(slot): State<DbSlot>, q: axum::extract::RawQuery) -> Response {
    let Some(db) = slot.get().cloned() else {
        return not_ready();
    };
    let params: ExportParams = match serde_urlencoded_multi(q.0.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, "bad_data", e),
    };
    let mut matchers = Vec::new();
    for m in &params.r#match {
        match parse_simple_matcher(m) {
            Ok(m) => matchers.push(m),
            Err(e) => return api_error(StatusCode::BAD_REQUEST, "bad_data", e),
        }
    }
    let (start, end) = (
        params.start.unwrap_or(i64::MIN),
        params.end.unwrap_or(i64::MAX),
    );
    let res = tokio::task::spawn_blocking(move || -> Result<Value, TsdbError> {
        let series = db.querier(start, end).select(&matchers)?;
        let mut out = Vec::with_capacity(series.len());
        for s in &series {
            let samples: Vec<Value> = s
                .samples()?
                .into_iter()
                .map(|(t, v)| json!([t, format!("0x{:016x}", v.to_bits())]))
                .collect();
            let labels: BTreeMap<&str, &str> = s.labels.iter().collect();
            out.push(json!({"labels": labels, "samples": samples}));
        }
        Ok(json!({"status": "success", "data": out}))
    })
    .await;
    match res {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e),
    }
}

/// Decodes a query string where `match` may repeat (axum's `Query` keeps only one).
fn serde_urlencoded_multi(q: &str) -> Result<ExportParams, String> {
    let mut p = ExportParams {
        r#match: Vec::new(),
        start: None,
        end: None,
    };
    let pairs: Vec<(String, String)> = Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{q}").parse().map_err(|e| format!("{e}"))?,
    )
    .map_err(|e| e.to_string())?
    .0;
    for (k, v) in pairs {
        match k.as_str() {
            "match" | "match[]" => p.r#match.push(v),
            "start" => p.start = Some(v.parse().map_err(|_| format!("bad start {v:?}"))?),
            "end" => p.end = Some(v.parse().map_err(|_| format!("bad end {v:?}"))?),
            _ => return Err(format!("unknown parameter {k:?}")),
        }
    }
    Ok(p)
}
