//! Series descriptions (`metric{a="b"} 1 2+3x4 _ stale {{...}}`), the number and duration
//! syntax of the scripts.
//!
//! Follows Prometheus's `ParseSeriesDesc` (the series-description mode of its PromQL lexer
//! and the `series_item` grammar rules): `_` is one missing sample, `_xN` is N missing
//! samples, `vxN` is N+1 copies of `v`, `a+bxN` / `a-bxN` are N+1 samples starting at `a`
//! with `b` added each time (accumulated in floating point, as Prometheus does), `stale` is
//! the stale marker, `Inf`/`NaN` (any case) are numbers, hexadecimal is not allowed. Native
//! histograms (`{{...}}`, optionally `{{...}}xN` or `{{...}}+{{...}}xN`) are not decoded:
//! they only count their positions so the samples after them keep their timestamps.

use promql_parser::util::unquote_string;

/// The Prometheus stale marker as a float.
pub(crate) fn stale_nan() -> f64 {
    f64::from_bits(hearth_tsdb::STALE_NAN_BITS)
}

/// One position of an expanded sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum SeqValue {
    Omitted,
    Float(f64),
    /// A native histogram sample (not decoded).
    Histogram,
}

/// A parsed series description line.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SeriesDesc {
    /// Label pairs as written (including `__name__`), in source order.
    pub(crate) labels: LabelPairs,
    pub(crate) values: Vec<SeqValue>,
}

impl SeriesDesc {
    pub(crate) fn has_histogram(&self) -> bool {
        self.values.contains(&SeqValue::Histogram)
    }
}

/// Parses `metric{labels} values...`.
pub(crate) fn parse_series_desc(line: &str) -> Result<SeriesDesc, String> {
    let (labels, rest) = parse_metric(line)?;
    let values = parse_values(rest)?;
    Ok(SeriesDesc { labels, values })
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

pub(crate) type LabelPairs = Vec<(String, String)>;

/// Parses the metric part; returns the labels and the text after it.
fn parse_metric(line: &str) -> Result<(LabelPairs, &str), String> {
    let s = line.trim_start();
    let mut labels = Vec::new();
    let mut rest = s;
    if s.starts_with(is_name_start) {
        let end = s.find(|c: char| !is_name_char(c)).unwrap_or(s.len());
        labels.push(("__name__".to_string(), s[..end].to_string()));
        rest = &s[end..];
    }
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let (name, quoted, r) = if rest.starts_with(['"', '\'', '`']) {
                let (n, r) = take_quoted(rest)?;
                (n, true, r)
            } else {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                if end == 0 {
                    return Err(format!("expected a label name at {rest:?}"));
                }
                (rest[..end].to_string(), false, &rest[end..])
            };
            rest = r.trim_start();
            if quoted && (rest.starts_with(',') || rest.starts_with('}')) {
                // `{"metric.name", ...}`: a bare quoted string is the metric name.
                labels.push(("__name__".to_string(), name));
            } else {
                rest = rest
                    .strip_prefix('=')
                    .ok_or_else(|| format!("expected '=' after label {name:?}"))?
                    .trim_start();
                let (value, r) = take_quoted(rest)?;
                labels.push((name, value));
                rest = r.trim_start();
            }
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if !rest.starts_with('}') {
                return Err(format!("expected ',' or '}}' at {rest:?}"));
            }
        }
    }
    if labels.is_empty() && !line.trim_start().starts_with('{') {
        return Err(format!("not a series description: {line:?}"));
    }
    Ok((labels, rest))
}

/// A quoted string at the start of `s` (double, single or back quotes, Go escapes), and the
/// text after it.
fn take_quoted(s: &str) -> Result<(String, &str), String> {
    let q = s.chars().next().ok_or("expected a quoted string")?;
    if !matches!(q, '"' | '\'' | '`') {
        return Err(format!("expected a quoted string at {s:?}"));
    }
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if c == '\\' && q != '`' {
            escaped = true;
        } else if c == q {
            let v = unquote_string(&s[..=i]).map_err(|e| format!("{e}: {:?}", &s[..=i]))?;
            return Ok((v, &s[i + 1..]));
        }
    }
    Err(format!("unterminated string {s:?}"))
}

/// Splits the value part into items: whitespace separated, except that `{{ ... }}` is kept
/// whole (histograms contain spaces).
fn split_items(s: &str) -> Result<Vec<&str>, String> {
    let mut items = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            if b[i] == b'{' && b.get(i + 1) == Some(&b'{') {
                let close = s[i..]
                    .find("}}")
                    .ok_or_else(|| format!("unterminated histogram in {s:?}"))?;
                i += close + 2;
            } else {
                i += 1;
            }
        }
        items.push(&s[start..i]);
    }
    Ok(items)
}

/// Expands the value part of a series description.
pub(crate) fn parse_values(s: &str) -> Result<Vec<SeqValue>, String> {
    let mut out = Vec::new();
    for item in split_items(s)? {
        expand_item(item, &mut out).map_err(|e| format!("bad series value {item:?}: {e}"))?;
    }
    Ok(out)
}

fn parse_uint(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("expected a repetition count, got {s:?}"));
    }
    s.parse().map_err(|e| format!("{e}"))
}

fn expand_item(item: &str, out: &mut Vec<SeqValue>) -> Result<(), String> {
    if item.contains("{{") {
        // Only the position count matters: `{{..}}` is one, `...xN` is N+1.
        let tail = &item[item.rfind("}}").map_or(0, |i| i + 2)..];
        let n = match tail.strip_prefix('x') {
            Some(n) => parse_uint(n)? + 1,
            None if tail.is_empty() => 1,
            None => return Err(format!("unexpected {tail:?} after histogram")),
        };
        out.extend((0..n).map(|_| SeqValue::Histogram));
        return Ok(());
    }
    if item == "_" {
        out.push(SeqValue::Omitted);
        return Ok(());
    }
    if let Some(n) = item.strip_prefix("_x") {
        out.extend((0..parse_uint(n)?).map(|_| SeqValue::Omitted));
        return Ok(());
    }
    if item == "stale" {
        out.push(SeqValue::Float(stale_nan()));
        return Ok(());
    }
    let (base, rest) = take_number(item, true)?;
    if rest.is_empty() {
        out.push(SeqValue::Float(base));
        return Ok(());
    }
    if let Some(n) = rest.strip_prefix('x') {
        let n = parse_uint(n)?;
        out.extend((0..=n).map(|_| SeqValue::Float(base)));
        return Ok(());
    }
    let negative = match rest.as_bytes()[0] {
        b'+' => false,
        b'-' => true,
        _ => return Err(format!("unexpected {rest:?}")),
    };
    let (delta, rest) = take_number(&rest[1..], false)?;
    let delta = if negative { -delta } else { delta };
    let n = parse_uint(
        rest.strip_prefix('x')
            .ok_or("expected 'x' after the increment")?,
    )?;
    let mut v = base;
    for _ in 0..=n {
        out.push(SeqValue::Float(v));
        v += delta;
    }
    Ok(())
}

/// A number at the start of `s` (decimal with optional fraction and exponent, or
/// `Inf`/`NaN`), optionally signed, and the rest of `s`.
fn take_number(s: &str, allow_sign: bool) -> Result<(f64, &str), String> {
    let (sign, body) = match s.as_bytes().first() {
        Some(b'+') if allow_sign => (1.0, &s[1..]),
        Some(b'-') if allow_sign => (-1.0, &s[1..]),
        _ => (1.0, s),
    };
    let b = body.as_bytes();
    if b.first().is_some_and(|c| c.is_ascii_alphabetic()) {
        // An identifier runs over letters and digits, so `Infx3` is not `Inf` repeated.
        let end = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(body.len());
        let v = match body[..end].to_ascii_lowercase().as_str() {
            "inf" => f64::INFINITY,
            "nan" => f64::NAN,
            w => return Err(format!("expected a number, got {w:?}")),
        };
        return Ok((sign * v, &body[end..]));
    }
    let mut i = 0;
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > s
    };
    let mut any = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        any |= digits(&mut i);
    }
    if !any {
        return Err(format!("expected a number at {body:?}"));
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let save = i;
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if !digits(&mut i) {
            i = save;
        }
    }
    let v: f64 = body[..i]
        .parse()
        .map_err(|e| format!("{e}: {:?}", &body[..i]))?;
    Ok((sign * v, &body[i..]))
}

/// A bare number line of an eval (an expected scalar), as Go's `strconv.ParseInt(s, 0, 64)`
/// then `strconv.ParseFloat(s, 64)`.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let radix = |p: &str, r| {
        body.strip_prefix(p)
            .and_then(|d| i64::from_str_radix(d, r).ok())
    };
    let int = radix("0x", 16)
        .or_else(|| radix("0X", 16))
        .or_else(|| radix("0o", 8))
        .or_else(|| radix("0b", 2))
        .or_else(|| {
            (body.len() > 1 && body.starts_with('0'))
                .then(|| i64::from_str_radix(&body[1..], 8).ok())
                .flatten()
        })
        .or_else(|| {
            body.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| body.parse::<i64>().ok())
                .flatten()
        });
    if let Some(i) = int {
        let v = i as f64;
        return Some(if neg { -v } else { v });
    }
    // Rust accepts what Go's ParseFloat accepts for decimal, inf/infinity and nan (any
    // case); Go's hex floats and underscores do not occur in the scripts.
    let lower = body.to_ascii_lowercase();
    let ok = lower == "inf"
        || lower == "infinity"
        || lower == "nan"
        || (!body.is_empty()
            && body
                .bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-')));
    if !ok {
        return None;
    }
    let v: f64 = body.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// A Prometheus duration (`0`, `1m30s`, `10s53ms`) in milliseconds.
pub(crate) fn parse_duration_ms(s: &str) -> Result<i64, String> {
    hearth_tsdb::config::parse_duration(s)
        .map(|d| d.as_millis() as i64)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use SeqValue::{Float as F, Histogram as H, Omitted as O};

    fn vals(s: &str) -> Vec<SeqValue> {
        parse_values(s).unwrap()
    }

    #[test]
    fn expanding_notation() {
        assert_eq!(vals("1 2 3"), [F(1.0), F(2.0), F(3.0)]);
        assert_eq!(vals("0+10x3"), [F(0.0), F(10.0), F(20.0), F(30.0)]);
        assert_eq!(vals("10-2x2"), [F(10.0), F(8.0), F(6.0)]);
        assert_eq!(vals("-2+1x2"), [F(-2.0), F(-1.0), F(0.0)]);
        assert_eq!(vals("5x2"), [F(5.0), F(5.0), F(5.0)]);
        assert_eq!(vals("_ _x3 1"), [O, O, O, O, F(1.0)]);
        assert_eq!(vals("1e3 .5 1.5e-1"), [F(1000.0), F(0.5), F(0.15)]);
        assert_eq!(
            vals("Inf -Inf +inf"),
            [F(f64::INFINITY), F(-f64::INFINITY), F(f64::INFINITY)]
        );
        assert_eq!(
            vals("1 stale")[1].as_bits(),
            Some(hearth_tsdb::STALE_NAN_BITS)
        );
        // `NaNx1` lexes as one identifier in Prometheus, so it is an error, not a repeat.
        let nan = vals("NaN nan -NaN");
        assert_eq!(nan.len(), 3);
        assert!(nan.iter().all(|v| matches!(v, F(x) if x.is_nan())));
        assert_eq!(vals("1e3x1"), [F(1000.0), F(1000.0)]);
        // No hexadecimal in series descriptions: `0x2` is 0 repeated.
        assert_eq!(vals("0x2"), [F(0.0), F(0.0), F(0.0)]);
        assert_eq!(vals("0.1+0.1x2")[2], F(0.1 + 0.1 + 0.1));
        assert_eq!(vals(""), []);
        for bad in [
            "1+", "1x", "1+2", "foo", "Infx3", "NaNx1", "_x", "1+-1x2", "stalex2",
        ] {
            assert!(parse_values(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn histogram_items_keep_positions() {
        assert_eq!(
            vals("1 {{schema:1 sum:3 count:22 buckets:[5 10 7]}} 2"),
            [F(1.0), H, F(2.0)]
        );
        assert_eq!(vals("{{sum:1 count:1}}x2 _"), [H, H, H, O]);
        assert_eq!(vals("{{count:0}}+{{count:1}}x4").len(), 5);
    }

    #[test]
    fn metrics() {
        let d = parse_series_desc(r#"http_requests{job="api-server", instance="0",} 1"#).unwrap();
        assert_eq!(
            d.labels,
            [
                ("__name__".into(), "http_requests".into()),
                ("job".into(), "api-server".into()),
                ("instance".into(), "0".into())
            ]
        );
        let d = parse_series_desc(r#"{} 3"#).unwrap();
        assert!(d.labels.is_empty());
        assert_eq!(d.values, [F(3.0)]);
        let d = parse_series_desc(r#"{"my.metric", 'a'="x\"y", b=`z\`} 1"#).unwrap();
        assert_eq!(
            d.labels,
            [
                ("__name__".into(), "my.metric".into()),
                ("a".into(), "x\"y".into()),
                ("b".into(), "z\\".into())
            ]
        );
        let d = parse_series_desc(r#"m{job="{count:20, sum:10}"} 2"#).unwrap();
        assert!(!d.has_histogram());
        let d = parse_series_desc("ns:metric_1 1").unwrap();
        assert_eq!(d.labels[0].1, "ns:metric_1");
        assert!(parse_series_desc("1").is_err());
    }

    #[test]
    fn numbers_and_durations() {
        assert_eq!(parse_number("1"), Some(1.0));
        assert_eq!(parse_number("-1.5"), Some(-1.5));
        assert_eq!(parse_number("0x10"), Some(16.0));
        assert_eq!(parse_number("1e3"), Some(1000.0));
        assert_eq!(parse_number("+Inf"), Some(f64::INFINITY));
        assert!(parse_number("NaN").unwrap().is_nan());
        assert_eq!(parse_number("foo 1"), None);
        assert_eq!(parse_number("{} 1"), None);
        assert_eq!(parse_duration_ms("0").unwrap(), 0);
        assert_eq!(parse_duration_ms("1m30s").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("10s53ms").unwrap(), 10_053);
        assert_eq!(parse_duration_ms("0h").unwrap(), 0);
    }

    trait Bits {
        fn as_bits(&self) -> Option<u64>;
    }
    impl Bits for SeqValue {
        fn as_bits(&self) -> Option<u64> {
            match self {
                F(v) => Some(v.to_bits()),
                _ => None,
            }
        }
    }
}
