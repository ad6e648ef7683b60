//! `/api/v1/targets`, `/api/v1/targets/metadata` (Prometheus's JSON), and a server-rendered
//! `/targets` page readable without JavaScript.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hearth_tsdb::{MatchOp, Matcher};
use serde_json::{json, Map, Value};

use crate::manager::{ActiveTarget, ScrapeManager};

pub fn router(m: Arc<ScrapeManager>) -> Router {
    Router::new()
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/targets/metadata", get(targets_metadata))
        .route("/targets", get(targets_page))
        .with_state(m)
}

fn bad(msg: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"status": "error", "errorType": "bad_data", "error": msg.to_string()})),
    )
        .into_response()
}

fn params(q: Option<String>) -> Vec<(String, String)> {
    let uri: axum::http::Uri = match format!("/?{}", q.unwrap_or_default()).parse() {
        Ok(u) => u,
        Err(_) => return Vec::new(),
    };
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

/// RFC 3339 with nanoseconds, UTC, as Go formats `time.Time` in JSON.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

fn labels_json<'a>(it: impl Iterator<Item = (&'a String, &'a String)>) -> Value {
    Value::Object(
        it.map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect::<Map<_, _>>(),
    )
}

fn active_json(t: &ActiveTarget) -> Value {
    let st = t.state.lock().clone();
    let dur = |d: std::time::Duration| hearth_tsdb::config::PromDuration(d).to_string();
    json!({
        "discoveredLabels": labels_json(t.target.discovered.iter()),
        "labels": labels_json(t.target.labels.iter().map(|(a, b)| (a, b))),
        "scrapePool": t.job,
        "scrapeUrl": t.target.url,
        "globalUrl": t.target.url,
        "lastError": st.last_error,
        "lastScrape": st.last_scrape.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        "lastScrapeDuration": st.last_duration.as_secs_f64(),
        "health": st.health.as_str(),
        "scrapeInterval": dur(t.target.interval),
        "scrapeTimeout": dur(t.target.timeout),
    })
}

async fn targets(State(m): State<Arc<ScrapeManager>>, RawQuery(q): RawQuery) -> Response {
    let mut state = "any".to_string();
    let mut pool = None;
    for (k, v) in params(q) {
        match k.as_str() {
            "state" => state = v.to_ascii_lowercase(),
            "scrapePool" => pool = Some(v),
            _ => {}
        }
    }
    if !matches!(state.as_str(), "any" | "active" | "dropped" | "") {
        return bad(format!(
            "invalid state {state:?}: must be active, dropped or any"
        ));
    }
    let v = m.view.read();
    let in_pool = |job: &String| pool.as_ref().is_none_or(|p| p == job);
    let mut data = Map::new();
    if state != "dropped" {
        let active: Vec<Value> = v
            .active
            .iter()
            .filter(|(j, _)| in_pool(j))
            .flat_map(|(_, ts)| ts.iter().map(active_json))
            .collect();
        data.insert("activeTargets".into(), Value::Array(active));
    } else {
        data.insert("activeTargets".into(), Value::Array(vec![]));
    }
    if state != "active" {
        let dropped: Vec<Value> = v
            .dropped
            .iter()
            .filter(|(j, _)| in_pool(j))
            .flat_map(|(_, ts)| {
                ts.iter()
                    .map(|d| json!({"discoveredLabels": labels_json(d.discovered.iter())}))
            })
            .collect();
        data.insert("droppedTargets".into(), Value::Array(dropped));
    } else {
        data.insert("droppedTargets".into(), Value::Array(vec![]));
    }
    Json(json!({"status": "success", "data": data})).into_response()
}

/// Parses a label selector like `{job="node", instance=~"a.*"}` (the form
/// `match_target` takes).
pub fn parse_selector(s: &str) -> Result<Vec<Matcher>, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .ok_or_else(|| format!("invalid selector {s:?}: expected {{name=\"value\", ...}}"))?;
    let mut out = Vec::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| format!("invalid selector {s:?}"))?;
        let name = &rest[..name_end];
        rest = rest[name_end..].trim_start();
        let (op, r) = if let Some(r) = rest.strip_prefix("=~") {
            (MatchOp::Regex, r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (MatchOp::Equal, r)
        } else {
            return Err(format!(
                "invalid selector {s:?}: expected a matcher operator after {name:?}"
            ));
        };
        let r = r.trim_start();
        let quote = r
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
            .ok_or_else(|| format!("invalid selector {s:?}: expected a quoted value"))?;
        let mut value = String::new();
        let mut chars = r[1..].char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(match n {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    }
                }
                c if c == quote => {
                    end = Some(i + 2);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or_else(|| format!("invalid selector {s:?}: unterminated string"))?;
        out.push(Matcher::new(op, name, value).map_err(|e| e.to_string())?);
        rest = r[end..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(out)
}

async fn targets_metadata(State(m): State<Arc<ScrapeManager>>, RawQuery(q): RawQuery) -> Response {
    let mut matchers = Vec::new();
    let mut metric = None;
    let mut limit = usize::MAX;
    for (k, v) in params(q) {
        match k.as_str() {
            "match_target" => match parse_selector(&v) {
                Ok(ms) => matchers = ms,
                Err(e) => return bad(e),
            },
            "metric" => metric = Some(v),
            "limit" => match v.parse::<i64>() {
                Ok(n) if n > 0 => limit = n as usize,
                Ok(_) => {}
                Err(_) => return bad(format!("invalid limit {v:?}")),
            },
            _ => {}
        }
    }
    let v = m.view.read();
    let mut out = Vec::new();
    'targets: for t in v.active.values().flatten() {
        for mt in &matchers {
            let val = t
                .target
                .labels
                .iter()
                .find(|(n, _)| n == mt.name())
                .map_or("", |(_, v)| v.as_str());
            if !mt.matches(val) {
                continue 'targets;
            }
        }
        let st = t.state.lock();
        let mut fams: Vec<_> = st.metadata.iter().collect();
        fams.sort_by(|a, b| a.0.cmp(b.0));
        for (fam, md) in fams {
            if metric.as_ref().is_some_and(|m| m != fam) {
                continue;
            }
            if out.len() >= limit {
                break 'targets;
            }
            out.push(json!({
                "target": labels_json(t.target.labels.iter().map(|(a, b)| (a, b))),
                "metric": fam, "type": md.kind, "help": md.help, "unit": md.unit,
            }));
        }
    }
    Json(json!({"status": "success", "data": out})).into_response()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn targets_page(State(m): State<Arc<ScrapeManager>>) -> Response {
    let v = m.view.read();
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>hearth targets</title>\
         <style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:2em;width:100%}\
         td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}\
         .up{color:#fff;background:#2a7d2a}.down{color:#fff;background:#b22}.unknown{background:#ddd}\
         code{font-size:.9em}</style></head><body><h1>Targets</h1>",
    );
    if v.active.is_empty() {
        h.push_str("<p>No scrape jobs configured.</p>");
    }
    for (job, ts) in &v.active {
        let up = ts
            .iter()
            .filter(|t| t.state.lock().health.as_str() == "up")
            .count();
        let _ = write!(
            h,
            "<h2 id=\"job-{0}\">{0} ({up}/{1} up)</h2>",
            esc(job),
            ts.len()
        );
        if let Some(e) = v.errors.get(job) {
            let _ = write!(h, "<p class=\"down\">{}</p>", esc(e));
        }
        h.push_str("<table><tr><th>Endpoint</th><th>State</th><th>Labels</th><th>Last scrape</th><th>Scrape duration</th><th>Error</th></tr>");
        for t in ts {
            let st = t.state.lock().clone();
            let labels: Vec<String> = t
                .target
                .labels
                .iter()
                .map(|(k, v)| format!("{}=\"{}\"", esc(k), esc(v)))
                .collect();
            let ago = st
                .last_scrape
                .and_then(|s| s.elapsed().ok())
                .map(|d| format!("{:.1}s ago", d.as_secs_f64()))
                .unwrap_or_else(|| "never".into());
            let _ = write!(
                h,
                "<tr><td><a href=\"{url}\">{url}</a></td><td class=\"{health}\">{health}</td><td><code>{labels}</code></td><td>{ago}</td><td>{dur:.3}s</td><td>{err}</td></tr>",
                url = esc(&t.target.url),
                health = st.health.as_str(),
                labels = labels.join(", "),
                dur = st.last_duration.as_secs_f64(),
                err = esc(&st.last_error),
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>");
    ([(header::CACHE_CONTROL, "no-store")], Html(h)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        let t = UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn selectors() {
        let m = parse_selector(r#"{job="node", instance=~"a.*",x!='y'}"#).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].name(), "instance");
        assert!(m[1].matches("abc") && !m[1].matches("b"));
        assert!(parse_selector("job=\"x\"").is_err());
        assert!(parse_selector("{job=\"x}").is_err());
        assert!(parse_selector("{}").unwrap().is_empty());
    }
}
