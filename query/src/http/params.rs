//! Request parameters as Prometheus reads them: the form body and the URL query merged (Go's
//! `r.FormValue`), times (RFC 3339 or float Unix seconds), durations (Prometheus syntax or
//! float seconds), `limit`, `match[]` selectors, and `U__`-escaped label names.

use std::time::Duration;

use hearth_tsdb::Matcher;
use promql_parser::parser::Expr;

use super::ApiError;

/// Default `start` of optional time ranges: Prometheus's `MinTime` in milliseconds
/// (`time.Unix(math.MinInt64/1000+62135596801, 0)`).
pub const MIN_TIME_MS: i64 = (i64::MIN / 1000 + 62_135_596_801) * 1000;
/// Default `end` of optional time ranges: Prometheus's `MaxTime` in milliseconds
/// (`time.Unix(math.MaxInt64/1000-62135596801, 999999999)`).
pub const MAX_TIME_MS: i64 = (i64::MAX / 1000 - 62_135_596_801) * 1000 + 999;

/// `MinTime` and `MaxTime` as Go's RFC 3339 formatting prints them; clients echo them back.
const MIN_TIME_FORMATTED: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_FORMATTED: &str = "292277026-12-04T15:30:07.999999999Z";

/// The parameters of one request: form body pairs first, then URL query pairs, in order.
#[derive(Debug, Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Merges a form body (only when `content_type` is `application/x-www-form-urlencoded`, as
    /// Go's `ParseForm` does) with the URL query. Body values come first, so they win in
    /// [`Params::get`].
    pub(crate) fn parse(query: Option<&str>, content_type: Option<&str>, body: &[u8]) -> Self {
        let mut pairs = Vec::new();
        let is_form = content_type.is_some_and(|ct| {
            ct.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
        if is_form {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        if let Some(q) = query {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Params { pairs }
    }

    /// The first value of `name`, `None` when absent or empty (Go's `FormValue` returns `""`
    /// for both).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `name`, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A time parameter in ms, `default` when absent.
    pub(crate) fn time_or(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_time(v).map_err(|e| {
                ApiError::invalid_param(name, format!("Invalid time value for '{name}': {e}"))
            }),
        }
    }

    /// `limit` (0 = no limit).
    pub(crate) fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(0),
            Some(v) => parse_limit(v).map_err(|e| ApiError::invalid_param("limit", e)),
        }
    }

    /// `timeout`, if given.
    pub(crate) fn timeout(&self) -> Result<Option<Duration>, ApiError> {
        match self.get("timeout") {
            None => Ok(None),
            Some(v) => match parse_duration(v) {
                Ok(d) if d > 0 => Ok(Some(Duration::from_nanos(d as u64))),
                // Go's context.WithTimeout with a non-positive duration is already expired.
                Ok(_) => Ok(Some(Duration::ZERO)),
                Err(e) => Err(ApiError::invalid_param("timeout", e)),
            },
        }
    }
}

/// Parses a time as Prometheus's API does: float Unix seconds (rounded to the millisecond) or
/// RFC 3339 with optional fractional seconds and offset. Returns milliseconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Some(secs) = parse_go_float(s) {
        if !secs.is_finite() {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        let whole = secs.trunc();
        let frac = ((secs - whole) * 1000.0).round();
        return Ok((whole as i64)
            .saturating_mul(1000)
            .saturating_add(frac as i64));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    match s {
        MIN_TIME_FORMATTED => Ok(MIN_TIME_MS),
        MAX_TIME_FORMATTED => Ok(MAX_TIME_MS),
        _ => Err(format!("cannot parse {s:?} to a valid timestamp")),
    }
}

/// Parses a duration as Prometheus's API does: float seconds (may be negative) or Prometheus
/// duration syntax (`1h30m`, `5m`, `1d`, `250ms`). Returns nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Some(secs) = parse_go_float(s) {
        let ns = secs * 1e9;
        if !ns.is_finite() || ns >= i64::MAX as f64 || ns <= i64::MIN as f64 {
            return Err(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok(ns as i64);
    }
    match hearth_tsdb::config::parse_duration(s) {
        Ok(d) => i64::try_from(d.as_nanos())
            .map_err(|_| format!("cannot parse {s:?} to a valid duration")),
        Err(_) => Err(format!("cannot parse {s:?} to a valid duration")),
    }
}

/// A float as Go's `strconv.ParseFloat` reads one (decimal and exponent forms; also `inf`
/// and `nan`, which callers reject where Prometheus would misbehave).
fn parse_go_float(s: &str) -> Option<f64> {
    // Rust accepts a few spellings Go does not ("infinity" is accepted by both); a leading
    // '+' and exponents work in both.
    s.parse::<f64>().ok()
}

/// `limit`: a non-negative integer, 0 meaning no limit.
pub fn parse_limit(s: &str) -> Result<usize, String> {
    let n: i64 = s
        .parse()
        .map_err(|_| format!("strconv.Atoi: parsing {s:?}: invalid syntax"))?;
    if n < 0 {
        return Err("limit must be non-negative".into());
    }
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Undoes Prometheus 3's `U__` value-encoding escape of a label name (`model.UnescapeName`
/// with `ValueEncodingEscaping`): `__` is `_`, `_<hex>_` is that code point. A name without
/// the prefix, or one that does not decode, is returned as is.
pub fn unescape_name(name: &str) -> String {
    let Some(esc) = name.strip_prefix("U__") else {
        return name.to_string();
    };
    let b = esc.as_bytes();
    let mut out = String::with_capacity(esc.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'_' {
            // Copy one whole UTF-8 character.
            let ch = esc[i..]
                .chars()
                .next()
                .expect("BUG: index on a char boundary");
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        i += 1;
        if i >= b.len() {
            return name.to_string();
        }
        if b[i] == b'_' {
            out.push('_');
            i += 1;
            continue;
        }
        let mut val: u32 = 0;
        let mut digits = 0;
        loop {
            if i >= b.len() || digits >= 6 {
                return name.to_string();
            }
            if b[i] == b'_' {
                i += 1;
                break;
            }
            let d = match b[i].to_ascii_lowercase() {
                c @ b'0'..=b'9' => c - b'0',
                c @ b'a'..=b'f' => c - b'a' + 10,
                _ => return name.to_string(),
            };
            val = val * 16 + u32::from(d);
            digits += 1;
            i += 1;
        }
        match char::from_u32(val) {
            Some(c) => out.push(c),
            None => return name.to_string(),
        }
    }
    out
}

/// Parses `match[]` selectors into matcher sets (one per selector, and one per `or` branch
/// of a selector), refusing a set whose matchers all match the empty string.
pub(crate) fn parse_match_sets(selectors: &[&str]) -> Result<Vec<Vec<Matcher>>, String> {
    let mut sets = Vec::with_capacity(selectors.len());
    for s in selectors {
        let expr = promql_parser::parser::parse(s)?;
        let Expr::VectorSelector(vs) = expr else {
            return Err(format!(
                "invalid metric selector {s:?}: not a vector selector"
            ));
        };
        for set in crate::eval::selector_matchers(&vs).map_err(|e| e.to_string())? {
            if set.iter().all(Matcher::matches_empty) {
                return Err("match[] must contain at least one non-empty matcher".into());
            }
            sets.push(set);
        }
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1435781451.781"), Ok(1_435_781_451_781));
        assert_eq!(parse_time("1435781451"), Ok(1_435_781_451_000));
        assert_eq!(parse_time("1.0006"), Ok(1001), "rounded to the millisecond");
        assert_eq!(parse_time("1.0004"), Ok(1000));
        assert_eq!(parse_time("-1.5"), Ok(-1500));
        assert_eq!(parse_time("1e3"), Ok(1_000_000));
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(parse_time("2015-07-01T20:10:51Z"), Ok(1_435_781_451_000));
        assert_eq!(
            parse_time("2015-07-01T22:10:51.781123+02:00"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(parse_time(MIN_TIME_FORMATTED), Ok(MIN_TIME_MS));
        assert_eq!(parse_time(MAX_TIME_FORMATTED), Ok(MAX_TIME_MS));
        assert_eq!(MIN_TIME_MS, -9_223_309_901_257_974_000);
        assert_eq!(MAX_TIME_MS, 9_223_309_901_257_974_999);
        for bad in ["", "abc", "2015-07-01", "NaN", "Inf", "12:00:00"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        let s = 1_000_000_000i64;
        assert_eq!(parse_duration("15"), Ok(15 * s));
        assert_eq!(parse_duration("0.5"), Ok(s / 2));
        assert_eq!(parse_duration("-1"), Ok(-s));
        assert_eq!(parse_duration("1h30m"), Ok(5400 * s));
        assert_eq!(parse_duration("5m"), Ok(300 * s));
        assert_eq!(parse_duration("1d"), Ok(86_400 * s));
        assert_eq!(parse_duration("250ms"), Ok(s / 4));
        assert_eq!(parse_duration("0"), Ok(0));
        assert!(parse_duration("1e30").unwrap_err().contains("overflows"));
        for bad in ["", "5x", "m5", "1m1h", "1.5m", "-5m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit("0"), Ok(0));
        assert_eq!(parse_limit("25"), Ok(25));
        assert_eq!(parse_limit("-1").unwrap_err(), "limit must be non-negative");
        assert!(parse_limit("x").is_err());
    }

    #[test]
    fn utf8_escaped_names() {
        assert_eq!(unescape_name("job"), "job");
        assert_eq!(unescape_name("U__http_2e_status"), "http.status");
        assert_eq!(unescape_name("U__a__b"), "a_b");
        assert_eq!(unescape_name("U__caf_e9_"), "café");
        assert_eq!(unescape_name("U___1f525_"), "🔥");
        assert_eq!(
            unescape_name("U__http_2E_status"),
            "http.status",
            "upper-case hex"
        );
        // Undecodable: returned unchanged.
        assert_eq!(unescape_name("U__a_"), "U__a_");
        assert_eq!(unescape_name("U__a_zz_"), "U__a_zz_");
        assert_eq!(unescape_name("U__a_1234567_"), "U__a_1234567_");
        assert_eq!(unescape_name("U__a_d800_"), "U__a_d800_", "surrogate");
    }

    #[test]
    fn form_body_and_query_merge() {
        let p = Params::parse(
            Some("query=up&match[]=a&time=2"),
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            b"time=1&match%5B%5D=b&query=",
        );
        assert_eq!(p.get("time"), Some("1"), "body wins");
        assert_eq!(p.all("match[]"), vec!["b", "a"]);
        assert_eq!(p.get("query"), None, "an empty first value reads as absent");
        let p = Params::parse(Some("a=1"), Some("application/json"), b"a=2");
        assert_eq!(p.get("a"), Some("1"), "non-form bodies are ignored");
        let p = Params::parse(Some("q=rate(x%5B5m%5D)+%2B+1"), None, b"");
        assert_eq!(p.get("q"), Some("rate(x[5m]) + 1"));
    }

    #[test]
    fn match_sets() {
        let sets = parse_match_sets(&["up{job=\"a\"}", "{__name__=~\"x.*\"}"]).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0].len(), 2);
        assert!(parse_match_sets(&["{job=~\".*\"}"]).is_err());
        assert!(parse_match_sets(&["rate(x[5m])"]).is_err());
        assert!(parse_match_sets(&["up{"]).is_err());
        assert!(parse_match_sets(&["{a=~\"(\"}"]).is_err());
    }
}
