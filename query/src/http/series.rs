//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values`, and the TSDB admin
//! endpoints `admin/tsdb/delete_series` and `admin/tsdb/snapshot`.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hearth_tsdb::{Labels, Matcher};

use super::params::{parse_match_sets, unescape_name, Params, MAX_TIME_MS, MIN_TIME_MS};
use super::{content_type, encode, run_blocking, success, ApiError, QueryApi, TRUNCATED};
use crate::value::Annotations;

/// What every one of these endpoints reads: `limit`, `start`, `end`, `match[]`.
struct Selection {
    limit: usize,
    start: i64,
    end: i64,
    sets: Vec<Vec<Matcher>>,
}

fn selection(p: &Params) -> Result<Selection, ApiError> {
    let limit = p.limit()?;
    let start = p.time_or("start", MIN_TIME_MS)?;
    let end = p.time_or("end", MAX_TIME_MS)?;
    let sets = parse_match_sets(&p.all("match[]")).map_err(ApiError::bad_data)?;
    Ok(Selection {
        limit,
        start,
        end,
        sets,
    })
}

/// Cuts `items` to `limit` (0: no limit), warning when it cut.
fn apply_limit<T>(items: &mut Vec<T>, limit: usize, ann: &mut Annotations) {
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        ann.warn(TRUNCATED.to_string());
    }
}

fn storage_error(e: hearth_tsdb::TsdbError) -> ApiError {
    ApiError {
        kind: super::ErrorKind::Execution,
        msg: e.to_string(),
    }
}

/// `GET|POST /api/v1/series`: label sets of the series matching any `match[]` selector with
/// samples in `[start, end]`, sorted, each once.
pub(super) async fn series(
    State(api): State<Arc<QueryApi>>,
    q: RawQuery,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::parse(q.0.as_deref(), content_type(&h), &body);
    let r: Result<Response, ApiError> = async {
        if p.all("match[]").is_empty() {
            return Err(ApiError::bad_data("no match[] parameter provided"));
        }
        let sel = selection(&p)?;
        let db = api.db()?;
        let found = run_blocking(Arc::new(AtomicBool::new(false)), move || {
            let querier = db.querier(sel.start, sel.end);
            let mut all: BTreeSet<Labels> = BTreeSet::new();
            for set in &sel.sets {
                for s in querier.select(set)? {
                    all.insert(s.labels);
                }
            }
            Ok::<_, hearth_tsdb::TsdbError>((
                all.into_iter().collect::<Vec<_>>(),
                sel.limit,
                querier.warnings(),
            ))
        })
        .await?;
        let (mut found, limit, warnings) = found.map_err(storage_error)?;
        let mut ann = storage_warnings(warnings);
        apply_limit(&mut found, limit, &mut ann);
        let mut data = String::with_capacity(64 * found.len() + 2);
        data.push('[');
        for (i, l) in found.iter().enumerate() {
            if i > 0 {
                data.push(',');
            }
            data.push('{');
            for (j, (n, v)) in l.iter().enumerate() {
                if j > 0 {
                    data.push(',');
                }
                encode::push_str(&mut data, n);
                data.push(':');
                encode::push_str(&mut data, v);
            }
            data.push('}');
        }
        data.push(']');
        Ok(success(&data, &ann))
    }
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

/// `POST|PUT /api/v1/admin/tsdb/delete_series` (with `--web.enable-admin-api`): deletes the
/// samples in `[start, end]` of the series matching any `match[]` selector. 204 on success.
pub(super) async fn delete_series(
    State(api): State<Arc<QueryApi>>,
    q: RawQuery,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::parse(q.0.as_deref(), content_type(&h), &body);
    let r: Result<Response, ApiError> = async {
        if !api.admin {
            return Err(admin_disabled());
        }
        if p.all("match[]").is_empty() {
            return Err(ApiError::bad_data("no match[] parameter provided"));
        }
        let sel = selection(&p)?;
        let db = api.db()?;
        let n = run_blocking(Arc::new(AtomicBool::new(false)), move || {
            db.delete_series(&sel.sets, sel.start, sel.end)
        })
        .await?
        .map_err(storage_error)?;
        tracing::info!(series = n, "series deleted through the admin API");
        Ok(axum::http::StatusCode::NO_CONTENT.into_response())
    }
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

/// The error of an admin endpoint while `--web.enable-admin-api` is off.
fn admin_disabled() -> ApiError {
    ApiError {
        kind: super::ErrorKind::Unavailable,
        msg: "admin APIs disabled".into(),
    }
}

/// `POST|PUT /api/v1/admin/tsdb/snapshot` (with `--web.enable-admin-api`): writes a snapshot
/// to `<storage.path>/snapshots/<name>` (blocks hard-linked, the head written as blocks unless
/// `skip_head` is true) and answers `{"name":"<name>"}`, as Prometheus does.
pub(super) async fn snapshot(
    State(api): State<Arc<QueryApi>>,
    q: RawQuery,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::parse(q.0.as_deref(), content_type(&h), &body);
    let r: Result<Response, ApiError> = async {
        if !api.admin {
            return Err(admin_disabled());
        }
        let skip_head = match p.get("skip_head") {
            None | Some("") => false,
            Some(v) => parse_go_bool(v).ok_or_else(|| {
                ApiError::invalid_param(
                    "skip_head",
                    format!(
                        "unable to parse boolean: strconv.ParseBool: parsing {v:?}: invalid syntax"
                    ),
                )
            })?,
        };
        let db = api.db()?;
        let name = snapshot_name(super::now_ms());
        let report = run_blocking(Arc::new(AtomicBool::new(false)), {
            let name = name.clone();
            move || db.snapshot(&name, !skip_head)
        })
        .await?
        .map_err(|e| ApiError::internal(format!("create snapshot: {e}")))?;
        tracing::info!(snapshot = %name, blocks = report.blocks_linked,
            head_blocks = report.head_blocks, "snapshot taken through the admin API");
        let mut data = String::from("{\"name\":");
        encode::push_str(&mut data, &name);
        data.push('}');
        Ok(success(&data, &Annotations::default()))
    }
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

/// Go's `strconv.ParseBool`, which Prometheus uses for `skip_head`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Prometheus's snapshot name: the UTC time as `20060102T150405Z0700` (Go layout; `Z` in
/// UTC), a dash and 16 hex digits of a random 63-bit number.
fn snapshot_name(now_ms: i64) -> String {
    use std::hash::{BuildHasher, Hasher};
    let time = chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ");
    // std's randomly keyed SipHash: not cryptographic; the suffix only keeps two snapshots
    // taken in one second apart.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(now_ms);
    h.write_u32(std::process::id());
    format!("{time}-{:016x}", h.finish() >> 1)
}

/// `GET|POST /api/v1/labels`: label names, optionally of the series matching `match[]`.
pub(super) async fn labels(
    State(api): State<Arc<QueryApi>>,
    q: RawQuery,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::parse(q.0.as_deref(), content_type(&h), &body);
    let r: Result<Response, ApiError> = async {
        let sel = selection(&p)?;
        let db = api.db()?;
        let limit = sel.limit;
        let (mut names, warnings) = run_blocking(Arc::new(AtomicBool::new(false)), move || {
            let querier = db.querier(sel.start, sel.end);
            let names = if sel.sets.is_empty() {
                querier.label_names(&[])
            } else {
                let mut all = BTreeSet::new();
                for set in &sel.sets {
                    all.extend(querier.label_names(set));
                }
                all.into_iter().collect()
            };
            (names, querier.warnings())
        })
        .await?;
        let mut ann = storage_warnings(warnings);
        apply_limit(&mut names, limit, &mut ann);
        let mut data = String::new();
        encode::push_str_array(&mut data, &names);
        Ok(success(&data, &ann))
    }
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/v1/label/<name>/values`: values of one label (the name may be `U__`-escaped).
pub(super) async fn label_values(
    State(api): State<Arc<QueryApi>>,
    Path(name): Path<String>,
    q: RawQuery,
) -> Response {
    let p = Params::parse(q.0.as_deref(), None, &[]);
    let r: Result<Response, ApiError> = async {
        let name = unescape_name(&name);
        if name.is_empty() {
            return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
        }
        let sel = selection(&p)?;
        let db = api.db()?;
        let limit = sel.limit;
        let (mut values, warnings) = run_blocking(Arc::new(AtomicBool::new(false)), move || {
            let querier = db.querier(sel.start, sel.end);
            let values = if sel.sets.is_empty() {
                querier.label_values(&name, &[])
            } else {
                let mut all = BTreeSet::new();
                for set in &sel.sets {
                    all.extend(querier.label_values(&name, set));
                }
                all.into_iter().collect()
            };
            (values, querier.warnings())
        })
        .await?;
        let mut ann = storage_warnings(warnings);
        apply_limit(&mut values, limit, &mut ann);
        let mut data = String::new();
        encode::push_str_array(&mut data, &values);
        Ok(success(&data, &ann))
    }
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

/// The storage's warnings (blocks left out of the answer) as response annotations.
fn storage_warnings(warnings: Vec<String>) -> Annotations {
    let mut ann = Annotations::default();
    for w in warnings {
        ann.warn(w);
    }
    ann
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_follow_prometheus() {
        // 2023-11-16T00:00:00.123Z
        let n = snapshot_name(1_700_092_800_123);
        let (time, rand) = n.split_once('-').unwrap();
        assert_eq!(time, "20231116T000000Z");
        assert_eq!(rand.len(), 16, "{n}");
        assert!(rand
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(
            rand.as_bytes()[0] <= b'7',
            "63-bit, as Go's rand.Int63: {n}"
        );
        assert_ne!(snapshot_name(1_700_092_800_123), n, "random suffix");
    }

    #[test]
    fn skip_head_parses_like_go() {
        for s in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(s), Some(true), "{s}");
        }
        for s in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(s), Some(false), "{s}");
        }
        for s in ["yes", "tRUE", " true", "2"] {
            assert_eq!(parse_go_bool(s), None, "{s}");
        }
    }
}
