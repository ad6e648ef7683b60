//! HTTP handlers of the ingest endpoints and the mapping of outcomes to status codes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hearth_tsdb::TsdbError;
use parking_lot::Mutex;
use serde_json::json;

use crate::metadata::{kind_name, Metadata};
use crate::remote_write::{self, Protocol};
use crate::writer::{write_series, WriteOutcome};
use crate::{Ingest, IngestError};

/// Seconds a client is told to wait after a limit refused its samples.
const RETRY_AFTER_SECS: &str = "30";

/// The ingest routes. Body limits are enforced by the handlers themselves (compressed and
/// decompressed), so axum's default limit is off.
pub fn router(ingest: Arc<Ingest>) -> Router {
    Router::new()
        .route("/api/v1/write", post(remote_write_handler))
        .route("/api/v1/metadata", get(metadata_handler))
        .route("/api/v1/otlp/v1/metrics", post(otlp_handler))
        .route("/api/v1/import/prometheus", post(import_handler))
        .layer(DefaultBodyLimit::disable())
        .with_state(ingest)
}

/// Requests by endpoint and status code, for `/metrics`.
static REQUESTS: Mutex<BTreeMap<(&'static str, u16), u64>> = Mutex::new(BTreeMap::new());

fn count(endpoint: &'static str, code: StatusCode) {
    *REQUESTS
        .lock()
        .entry((endpoint, code.as_u16()))
        .or_default() += 1;
}

pub(crate) fn write_request_metrics(out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP hearth_ingest_requests_total Ingest requests by endpoint and HTTP status.\n# TYPE hearth_ingest_requests_total counter"
    );
    for ((e, c), n) in REQUESTS.lock().iter() {
        let _ = writeln!(
            out,
            "hearth_ingest_requests_total{{endpoint=\"{e}\",code=\"{c}\"}} {n}"
        );
    }
}

fn plain(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut msg = msg.into();
    msg.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg,
    )
        .into_response()
}

/// Maps a request-level failure to the status the remote-write spec asks for.
pub(crate) fn error_response(e: &IngestError) -> Response {
    let status = match e {
        IngestError::BadRequest(_) => StatusCode::BAD_REQUEST,
        IngestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        IngestError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        IngestError::NotReady | IngestError::Storage(TsdbError::Closed) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        IngestError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        tracing::error!(error = %e, "ingest request failed");
    }
    plain(status, e.to_string())
}

/// 204 when everything was written, 429 when a limit refused samples, 400 when any other
/// sample was refused; the body names the refused series.
pub(crate) fn outcome_response(out: &WriteOutcome) -> Response {
    let mut resp = if out.series_errors.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else if out.limited() {
        let mut r = plain(StatusCode::TOO_MANY_REQUESTS, out.error_text());
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
        r
    } else {
        plain(StatusCode::BAD_REQUEST, out.error_text())
    };
    let h = resp.headers_mut();
    h.insert(
        "X-Prometheus-Remote-Write-Samples-Written",
        HeaderValue::from(out.samples_written),
    );
    h.insert(
        "X-Prometheus-Remote-Write-Histograms-Written",
        HeaderValue::from(0),
    );
    h.insert(
        "X-Prometheus-Remote-Write-Exemplars-Written",
        HeaderValue::from(0),
    );
    resp
}

/// Reads a body of at most `max` bytes (0: no limit).
pub(crate) async fn read_body(body: Body, max: usize) -> Result<axum::body::Bytes, IngestError> {
    let limit = if max == 0 { usize::MAX } else { max };
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // to_bytes fails only on a body over the limit or a broken connection.
        if max > 0
            && std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit"))
        {
            IngestError::TooLarge(format!("request body exceeds the limit of {max} bytes"))
        } else {
            IngestError::BadRequest(format!("reading request body: {e}"))
        }
    })
}

async fn remote_write_handler(
    State(ing): State<Arc<Ingest>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let resp = match remote_write(ing, headers, body).await {
        Ok(out) => outcome_response(&out),
        Err(e) => error_response(&e),
    };
    count("remote_write", resp.status());
    resp
}

async fn remote_write(
    ing: Arc<Ingest>,
    headers: HeaderMap,
    body: Body,
) -> Result<WriteOutcome, IngestError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("<invalid>"));
    let proto = remote_write::negotiate(ct).ok_or_else(|| {
        IngestError::UnsupportedMediaType(format!(
            "unsupported Content-Type {:?}; expected application/x-protobuf with proto=prometheus.WriteRequest or proto=io.prometheus.write.v2.Request",
            ct.unwrap_or("")
        ))
    })?;
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        if !enc.as_bytes().eq_ignore_ascii_case(b"snappy") {
            return Err(IngestError::UnsupportedMediaType(format!(
                "unsupported Content-Encoding {:?}; remote write requires snappy",
                String::from_utf8_lossy(enc.as_bytes())
            )));
        }
    }
    let body = read_body(body, ing.cfg.max_request_body_bytes).await?;
    let Some(db) = ing.db.get().cloned() else {
        return Err(IngestError::NotReady);
    };
    tokio::task::spawn_blocking(move || {
        let raw = remote_write::decompress(&body, ing.cfg.max_decompressed_body_bytes)?;
        drop(body);
        let max_series = ing.cfg.max_series_per_request;
        let decoded = match proto {
            Protocol::V1 => remote_write::decode_v1(raw.into(), max_series)?,
            Protocol::V2 => remote_write::decode_v2(raw.into(), max_series)?,
        };
        for (family, t, help, unit) in decoded.metadata {
            ing.metadata.record(
                &family,
                Metadata {
                    kind: kind_name(t).to_string(),
                    help,
                    unit,
                },
            );
        }
        let require_sorted = true;
        Ok(write_series(
            &db,
            &ing.cfg,
            &ing.budget,
            &ing.stats,
            &decoded.series,
            require_sorted,
        )?)
    })
    .await
    .map_err(|e| {
        IngestError::Storage(TsdbError::Internal {
            detail: format!("remote write task failed: {e}"),
        })
    })?
}

fn api_error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({"status": "error", "errorType": "bad_data", "error": msg.to_string()})),
    )
        .into_response()
}

/// `GET /api/v1/metadata` with `metric`, `limit`, `limit_per_metric`, as Prometheus serves it.
async fn metadata_handler(State(ing): State<Arc<Ingest>>, RawQuery(q): RawQuery) -> Response {
    let mut metric = None;
    let mut limit = -1i64;
    let mut limit_per_metric = -1i64;
    let pairs: Vec<(String, String)> =
        match serde_urlencoded_pairs(q.as_deref().unwrap_or_default()) {
            Ok(p) => p,
            Err(e) => return api_error(StatusCode::BAD_REQUEST, e),
        };
    for (k, v) in pairs {
        match k.as_str() {
            "metric" => metric = Some(v),
            "limit" | "limit_per_metric" => {
                let Ok(n) = v.parse::<i64>() else {
                    return api_error(
                        StatusCode::BAD_REQUEST,
                        format!("invalid {k} value {v:?}: must be an integer"),
                    );
                };
                if k == "limit" {
                    limit = n
                } else {
                    limit_per_metric = n
                }
            }
            _ => {}
        }
    }
    let data = ing
        .metadata
        .query(metric.as_deref(), limit, limit_per_metric);
    let data: serde_json::Map<String, serde_json::Value> = data
        .into_iter()
        .map(|(k, v)| {
            let arr = v
                .into_iter()
                .map(|m| json!({"type": m.kind, "help": m.help, "unit": m.unit}))
                .collect();
            (k, serde_json::Value::Array(arr))
        })
        .collect();
    Json(json!({"status": "success", "data": data})).into_response()
}

/// Decodes `a=b&c=d` (repeated keys kept, `+` and percent escapes decoded).
pub(crate) fn serde_urlencoded_pairs(q: &str) -> Result<Vec<(String, String)>, String> {
    let uri: axum::http::Uri = format!("/?{q}")
        .parse()
        .map_err(|e| format!("invalid query string: {e}"))?;
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| format!("invalid query string: {e}"))
}

/// Gunzips `body`, refusing output over `max` bytes (0: no limit) without reading further.
pub(crate) fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, IngestError> {
    use std::io::Read as _;
    let limit = if max == 0 { u64::MAX } else { max as u64 + 1 };
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| IngestError::BadRequest(format!("invalid gzip body: {e}")))?;
    if max > 0 && out.len() > max {
        return Err(IngestError::TooLarge(format!(
            "decompressed body exceeds the limit of {max} bytes"
        )));
    }
    Ok(out)
}

/// Decodes `Content-Encoding` (gzip or none) with the decompressed-size limit.
pub(crate) fn decode_content(
    headers: &HeaderMap,
    body: axum::body::Bytes,
    max: usize,
) -> Result<Vec<u8>, IngestError> {
    match headers.get(header::CONTENT_ENCODING).map(|v| v.as_bytes()) {
        None => Ok(body.to_vec()),
        Some(e) if e.eq_ignore_ascii_case(b"identity") => Ok(body.to_vec()),
        Some(e) if e.eq_ignore_ascii_case(b"gzip") => gunzip(&body, max),
        Some(e) => Err(IngestError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding {:?}; use gzip or none",
            String::from_utf8_lossy(e)
        ))),
    }
}

async fn otlp_handler(State(ing): State<Arc<Ingest>>, headers: HeaderMap, body: Body) -> Response {
    let resp = match otlp(ing, headers, body).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    count("otlp", resp.status());
    resp
}

/// OTLP/HTTP metrics, protobuf encoding. Success is 200 with an
/// `ExportMetricsServiceResponse` whose `partial_success` counts refused data points, as the
/// OTLP spec asks; 429 when a series limit refused data; 400 when the body does not decode.
async fn otlp(ing: Arc<Ingest>, headers: HeaderMap, body: Body) -> Result<Response, IngestError> {
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
    };
    use prost::Message as _;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/x-protobuf")
    {
        return Err(IngestError::UnsupportedMediaType(format!(
            "unsupported Content-Type {ct:?}; OTLP/HTTP metrics must be application/x-protobuf (JSON encoding is not supported)"
        )));
    }
    let body = read_body(body, ing.cfg.max_request_body_bytes).await?;
    let Some(db) = ing.db.get().cloned() else {
        return Err(IngestError::NotReady);
    };
    tokio::task::spawn_blocking(move || {
        let raw = decode_content(&headers, body, ing.cfg.max_decompressed_body_bytes)?;
        let batch = crate::otlp::translate(&raw).map_err(|e| IngestError::BadRequest(e.to_string()))?;
        drop(raw);
        if ing.cfg.max_series_per_request > 0 && batch.series.len() > ing.cfg.max_series_per_request {
            return Err(IngestError::BadRequest(format!(
                "request has {} series, limit is {}",
                batch.series.len(),
                ing.cfg.max_series_per_request
            )));
        }
        for m in batch.metadata {
            ing.metadata.record(
                &m.family,
                Metadata {
                    kind: m.kind.to_string(),
                    help: m.help,
                    unit: m.unit,
                },
            );
        }
        let series: Vec<_> = batch
            .series
            .into_iter()
            .map(|s| crate::writer::SeriesInput {
                labels: crate::writer::owned_labels(s.labels),
                samples: crate::writer::samples(s.samples),
                histograms: 0,
            })
            .collect();
        let out = write_series(&db, &ing.cfg, &ing.budget, &ing.stats, &series, false)?;
        if out.limited() {
            return Ok(outcome_response(&out));
        }
        let mut messages: Vec<String> = batch.errors.iter().map(|e| e.to_string()).collect();
        if !out.series_errors.is_empty() {
            messages.push(out.error_text());
        }
        let partial = (!messages.is_empty()).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: out.samples_refused as i64,
            error_message: messages.join("; "),
        });
        if let Some(p) = &partial {
            tracing::warn!(rejected = p.rejected_data_points, message = %p.error_message, "OTLP data partly refused");
        }
        let body = ExportMetricsServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec();
        Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            body,
        )
            .into_response())
    })
    .await
    .map_err(|e| {
        IngestError::Storage(TsdbError::Internal {
            detail: format!("OTLP task failed: {e}"),
        })
    })?
}

async fn import_handler(
    State(ing): State<Arc<Ingest>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let resp = match import(ing, q, headers, body).await {
        Ok(out) => {
            let mut r = outcome_response(&out);
            // Not a remote-write endpoint: drop its headers.
            for h in [
                "X-Prometheus-Remote-Write-Samples-Written",
                "X-Prometheus-Remote-Write-Histograms-Written",
                "X-Prometheus-Remote-Write-Exemplars-Written",
            ] {
                r.headers_mut().remove(h);
            }
            r
        }
        Err(e) => error_response(&e),
    };
    count("import_prometheus", resp.status());
    resp
}

async fn import(
    ing: Arc<Ingest>,
    q: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<WriteOutcome, IngestError> {
    let params = crate::import::parse_params(
        serde_urlencoded_pairs(q.as_deref().unwrap_or_default())
            .map_err(IngestError::BadRequest)?,
    )?;
    let format = crate::exposition::Format::from_content_type(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let body = read_body(body, ing.cfg.max_request_body_bytes).await?;
    let Some(db) = ing.db.get().cloned() else {
        return Err(IngestError::NotReady);
    };
    tokio::task::spawn_blocking(move || {
        let raw = decode_content(&headers, body, ing.cfg.max_decompressed_body_bytes)?;
        let text = std::str::from_utf8(&raw)
            .map_err(|e| IngestError::BadRequest(format!("body is not valid UTF-8: {e}")))?;
        let parsed = crate::import::parse_body(text, format, &params)?;
        if ing.cfg.max_series_per_request > 0
            && parsed.series.len() > ing.cfg.max_series_per_request
        {
            return Err(IngestError::BadRequest(format!(
                "request has {} series, limit is {}",
                parsed.series.len(),
                ing.cfg.max_series_per_request
            )));
        }
        for (family, m) in parsed.metadata {
            ing.metadata.record(&family, m);
        }
        Ok(write_series(
            &db,
            &ing.cfg,
            &ing.budget,
            &ing.stats,
            &parsed.series,
            false,
        )?)
    })
    .await
    .map_err(|e| {
        IngestError::Storage(TsdbError::Internal {
            detail: format!("import task failed: {e}"),
        })
    })?
}
