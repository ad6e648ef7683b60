//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/query_exemplars`,
//! `/api/v1/format_query`, `/api/v1/parse_query`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::params::{parse_duration, Params, MAX_TIME_MS, MIN_TIME_MS};
use super::{content_type, encode, now_ms, run_blocking, success, ApiError, QueryApi, TRUNCATED};
use crate::engine::{Engine, QueryContext};
use crate::value::{Annotations, QueryOutput, QueryValue};

fn params(q: &RawQuery, h: &HeaderMap, body: &Bytes) -> Params {
    Params::parse(q.0.as_deref(), content_type(h), body)
}

fn respond(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// The engine for this request: the configured one, with `lookback_delta` overridden when
/// the request sets it (Prometheus 3's per-query lookback).
fn engine_for(api: &QueryApi, p: &Params) -> Result<Engine, ApiError> {
    let mut engine = api.engine.clone();
    if let Some(v) = p.get("lookback_delta") {
        let ns = parse_duration(v).map_err(|e| {
            ApiError::bad_data(format!("error parsing lookback delta duration: {e}"))
        })?;
        if ns > 0 {
            engine.opts.lookback_delta_ms = (ns / 1_000_000).max(1);
        }
    }
    Ok(engine)
}

/// The query's time limit: the request's `timeout`, capped by the configured one.
fn timeout_for(api: &QueryApi, p: &Params) -> Result<Duration, ApiError> {
    Ok(match p.timeout()? {
        Some(t) => t.min(api.engine.opts.timeout),
        None => api.engine.opts.timeout,
    })
}

/// Runs a query on the blocking pool and renders the response.
async fn execute(
    api: &QueryApi,
    p: &Params,
    timeout: Duration,
    run: impl FnOnce(&Engine, &hearth_tsdb::Db, &QueryContext) -> Result<QueryOutput, crate::QueryError>
        + Send
        + 'static,
) -> Result<Response, ApiError> {
    let limit = p.limit()?;
    let engine = engine_for(api, p)?;
    let db = api.db()?;
    let ctx = QueryContext::new(timeout);
    let started = Instant::now();
    let out = run_blocking(ctx.cancel_flag(), move || {
        let queued = started.elapsed();
        let r = run(&engine, &db, &ctx);
        (r, queued)
    })
    .await?;
    let (out, queued) = out;
    let mut out = out?;
    let total = started.elapsed();
    if limit > 0 && truncate(&mut out.value, limit) {
        out.annotations.warn(TRUNCATED.to_string());
    }
    let mut data = String::with_capacity(256);
    encode::push_query_data_open(&mut data, &out.value);
    if let Some(s) = p.get("stats") {
        push_stats(&mut data, &out, queued, total, s == "all");
    }
    data.push('}');
    Ok(success(&data, &out.annotations))
}

/// Cuts a vector or matrix to `limit` series; true if something was cut.
fn truncate(v: &mut QueryValue, limit: usize) -> bool {
    match v {
        QueryValue::Vector(s) | QueryValue::Matrix(s) if s.len() > limit => {
            s.truncate(limit);
            true
        }
        _ => false,
    }
}

/// Prometheus's `stats` object: timings in seconds and sample counts. hearth counts samples
/// loaded from storage; that is both its total and its peak.
fn push_stats(
    out: &mut String,
    q: &QueryOutput,
    queued: Duration,
    total: Duration,
    _per_step: bool,
) {
    let eval = total.saturating_sub(queued).as_secs_f64();
    let v = serde_json::json!({
        "timings": {
            "evalTotalTime": eval,
            "resultSortTime": 0.0,
            "queryPreparationTime": 0.0,
            "innerEvalTime": eval,
            "execQueueTime": queued.as_secs_f64(),
            "execTotalTime": total.as_secs_f64(),
        },
        "samples": {
            "totalQueryableSamples": q.samples_loaded,
            "peakSamples": q.samples_loaded,
        }
    });
    out.push_str(",\"stats\":");
    out.push_str(&v.to_string());
}

/// `GET|POST /api/v1/query`: `query`, `time` (default now), `timeout`, `limit`,
/// `lookback_delta`, `stats`.
pub(super) async fn query(
    State(api): State<Arc<QueryApi>>,
    q: RawQuery,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(&q, &h, &body);
    respond(
        async {
            let t = p.time_or("time", now_ms())?;
            let timeout = timeout_for(&api, &p)?;
            let text = p.get("query").unwrap_or("").to_string();
            execute(&api, &p, timeout, move |e, db, ctx| {
                // Prometheus reports every error of preparing an instant query (parse and
                // validation) as an invalid "query" parameter.
                e.instant(db, &text, t, ctx).map_err(|err| match err {
                    crate::QueryError::BadData(m) => {
                        crate::QueryError::BadData(format!("invalid parameter \"query\": {m}"))
                    }
                    other => other,
                })
            })
            .await
        }
        .await,
    )
}

/// `GET|POST /api/v1/query_range`: `query`, `start`, `end`, `step`, `timeout`, `limit`,
/// `lookback_delta`, `stats`. Checks in Prometheus's order and with its messages.
pub(super) async fn query_range(
    State(api): State<Arc<QueryApi>>,
    q: RawQuery,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(&q, &h, &body);
    respond(
        async {
            let start = required_time(&p, "start")?;
            let end = required_time(&p, "end")?;
            if end < start {
                return Err(ApiError::invalid_param(
                    "end",
                    "end timestamp must not be before start time",
                ));
            }
            let step_ns = parse_duration(p.get("step").unwrap_or(""))
                .map_err(|e| ApiError::invalid_param("step", e))?;
            if step_ns <= 0 {
                return Err(ApiError::invalid_param(
                    "step",
                    "zero or negative query resolution step widths are not accepted. Try a positive integer",
                ));
            }
            // Prometheus compares durations in nanoseconds: at most 11,000 intervals.
            let span_ns = i128::from(end - start) * 1_000_000;
            if span_ns / i128::from(step_ns) > 11_000 {
                return Err(ApiError::bad_data(
                    "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
                ));
            }
            let step = (step_ns / 1_000_000).max(1);
            let timeout = timeout_for(&api, &p)?;
            let text = p.get("query").unwrap_or("").to_string();
            execute(&api, &p, timeout, move |e, db, ctx| {
                e.range(db, &text, start, end, step, ctx)
            })
            .await
        }
        .await,
    )
}

/// A required time parameter (`start`/`end` of a range query): missing is an error, as
/// Prometheus's `parseTime("")` is.
fn required_time(p: &Params, name: &str) -> Result<i64, ApiError> {
    let v = p.get(name).unwrap_or("");
    super::params::parse_time(v).map_err(|e| ApiError::invalid_param(name, e))
}

/// `GET|POST /api/v1/query_exemplars`: validates like Prometheus and answers an empty list
/// (hearth does not store exemplars).
pub(super) async fn exemplars(
    State(_api): State<Arc<QueryApi>>,
    q: RawQuery,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let p = params(&q, &h, &body);
    respond((|| {
        let start = p.time_or("start", MIN_TIME_MS)?;
        let end = p.time_or("end", MAX_TIME_MS)?;
        if end < start {
            return Err(ApiError::bad_data(
                "end timestamp must not be before start timestamp",
            ));
        }
        Engine::parse(p.get("query").unwrap_or("")).map_err(ApiError::bad_data)?;
        Ok(success("[]", &Annotations::default()))
    })())
}

/// `GET|POST /api/v1/format_query`: the query pretty-printed.
pub(super) async fn format_query(q: RawQuery, h: HeaderMap, body: Bytes) -> Response {
    let p = params(&q, &h, &body);
    respond((|| {
        let expr = Engine::parse(p.get("query").unwrap_or(""))
            .map_err(|e| ApiError::invalid_param("query", e))?;
        let mut data = String::new();
        encode::push_str(&mut data, &expr.prettify());
        Ok(success(&data, &Annotations::default()))
    })())
}

/// `GET|POST /api/v1/parse_query`: the syntax tree as Prometheus 3's UI consumes it.
pub(super) async fn parse_query(q: RawQuery, h: HeaderMap, body: Bytes) -> Response {
    let p = params(&q, &h, &body);
    respond((|| {
        let expr = Engine::parse(p.get("query").unwrap_or(""))
            .map_err(|e| ApiError::invalid_param("query", e))?;
        let data = super::ast::translate(&expr).to_string();
        Ok(success(&data, &Annotations::default()))
    })())
}
