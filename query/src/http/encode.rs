//! JSON encoding of query results, written by hand into one `String` (a range query may return
//! millions of points; building a `serde_json::Value` per point would triple the memory).
//!
//! Numbers follow Prometheus's `jsonutil`: sample values are strings formatted like Go's
//! `strconv.FormatFloat(v, 'f', -1, 64)` (`'e'` below 1e-6 and from 1e21, as Prometheus does),
//! timestamps are seconds with up to three decimals. Strings are escaped like Go's
//! `encoding/json` (including `<`, `>`, `&`).

use std::fmt::Write as _;

use crate::value::{Metric, QueryValue, Series, NAME};

/// Appends `v` as Prometheus renders a sample value (without quotes).
pub fn push_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust's `{:e}` is shortest round-trip like Go's, but writes `1.5e21` / `1e-7` where
        // Go writes `1.5e+21` / `1e-07`.
        let s = format!("{v:e}");
        let (mant, exp) = s.split_once('e').expect("BUG: {:e} has an exponent");
        out.push_str(mant);
        out.push('e');
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        out.push(sign);
        if digits.len() < 2 {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        // Display is the shortest round-trip decimal without exponent, like Go's 'f', -1.
        let _ = write!(out, "{v}");
    }
}

/// A sample value as Prometheus renders it.
pub fn format_float(v: f64) -> String {
    let mut s = String::new();
    push_float(&mut s, v);
    s
}

/// Appends a millisecond timestamp as seconds: `1435781451.781`, `1435781451.5` is written
/// `1435781451.500` like Prometheus's `jsonutil.MarshalTimestamp`, whole seconds without dot.
pub fn push_timestamp(out: &mut String, t: i64) {
    let mut t = i128::from(t);
    if t < 0 {
        out.push('-');
        t = -t;
    }
    let _ = write!(out, "{}", t / 1000);
    let frac = t % 1000;
    if frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
}

/// Appends `s` as a JSON string, escaped like Go's `encoding/json`.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '<' => Some("\\u003c"),
            '>' => Some("\\u003e"),
            '&' => Some("\\u0026"),
            '\u{2028}' => Some("\\u2028"),
            '\u{2029}' => Some("\\u2029"),
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends a label set as a JSON object; `drop_name` leaves out `__name__`.
pub fn push_metric(out: &mut String, m: &Metric, drop_name: bool) {
    out.push('{');
    let mut first = true;
    for (n, v) in m.iter() {
        if drop_name && n == NAME {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        push_str(out, n);
        out.push(':');
        push_str(out, v);
    }
    out.push('}');
}

/// Appends `[<seconds>,"<value>"]`.
pub fn push_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    push_timestamp(out, t);
    out.push_str(",\"");
    push_float(out, v);
    out.push_str("\"]");
}

/// Appends `{"resultType":...,"result":...}` (the `data` of a query response) without the
/// closing brace, so the caller can add `stats`.
pub fn push_query_data_open(out: &mut String, v: &QueryValue) {
    out.push_str("{\"resultType\":\"");
    out.push_str(v.type_name());
    out.push_str("\",\"result\":");
    match v {
        QueryValue::Scalar { t, v } => push_point(out, *t, *v),
        QueryValue::String { t, v } => {
            out.push('[');
            push_timestamp(out, *t);
            out.push(',');
            push_str(out, v);
            out.push(']');
        }
        QueryValue::Vector(series) => {
            out.push('[');
            let mut first = true;
            for s in series {
                // An instant vector has one point per series at the query time.
                let Some(&(t, v)) = s.points.last() else {
                    continue;
                };
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str("{\"metric\":");
                push_metric(out, &s.metric, s.drop_name);
                out.push_str(",\"value\":");
                push_point(out, t, v);
                out.push('}');
            }
            out.push(']');
        }
        QueryValue::Matrix(series) => push_matrix(out, series),
    }
}

fn push_matrix(out: &mut String, series: &[Series]) {
    out.push('[');
    for (i, s) in series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        push_metric(out, &s.metric, s.drop_name);
        out.push_str(",\"values\":[");
        for (j, &(t, v)) in s.points.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            push_point(out, t, v);
        }
        out.push_str("]}");
    }
    out.push(']');
}

/// Appends a JSON array of strings.
pub fn push_str_array<S: AsRef<str>>(out: &mut String, items: &[S]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, s.as_ref());
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_go() {
        for (v, want) in [
            (1.0, "1"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (0.0, "0"),
            (-0.0, "-0"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e300, "1.5e+300"),
            (1e-6, "0.000001"),
            (1e-7, "1e-07"),
            (-2.5e-10, "-2.5e-10"),
            (123456789.125, "123456789.125"),
            (f64::NAN, "NaN"),
            (f64::from_bits(hearth_tsdb::STALE_NAN_BITS), "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (1.0 / 3.0, "0.3333333333333333"),
        ] {
            assert_eq!(format_float(v), want, "{v:?}");
        }
    }

    #[test]
    fn timestamps() {
        let t = |ms| {
            let mut s = String::new();
            push_timestamp(&mut s, ms);
            s
        };
        assert_eq!(t(1_435_781_451_781), "1435781451.781");
        assert_eq!(t(1_435_781_451_000), "1435781451");
        assert_eq!(t(1_500), "1.500");
        assert_eq!(t(1_005), "1.005");
        assert_eq!(t(-1_500), "-1.500");
        assert_eq!(t(0), "0");
        assert_eq!(t(i64::MIN), "-9223372036854775.808");
    }

    #[test]
    fn strings_escaped_like_go() {
        let mut s = String::new();
        push_str(&mut s, "a\"b\\c\n<&>\u{1}é\u{2028}");
        assert_eq!(s, r#""a\"b\\c\n\u003c\u0026\u003e\u0001é\u2028""#);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a\"b\\c\n<&>\u{1}é\u{2028}");
    }

    #[test]
    fn results() {
        let m = Metric::new([(NAME, "up"), ("job", "a<b")]);
        let mut s = String::new();
        push_query_data_open(
            &mut s,
            &QueryValue::Vector(vec![Series::new(m.clone(), vec![(1000, 1.0)])]),
        );
        assert_eq!(
            s,
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\u003cb"},"value":[1,"1"]}]"#
        );
        let mut s = String::new();
        let mut dropped = Series::new(m, vec![(1000, f64::NAN), (2001, 2.5)]);
        dropped.drop_name = true;
        push_query_data_open(&mut s, &QueryValue::Matrix(vec![dropped]));
        assert_eq!(
            s,
            r#"{"resultType":"matrix","result":[{"metric":{"job":"a\u003cb"},"values":[[1,"NaN"],[2.001,"2.5"]]}]"#
        );
        let mut s = String::new();
        push_query_data_open(&mut s, &QueryValue::Scalar { t: 5, v: -1.0 });
        assert_eq!(s, r#"{"resultType":"scalar","result":[0.005,"-1"]"#);
        let mut s = String::new();
        push_query_data_open(
            &mut s,
            &QueryValue::String {
                t: 0,
                v: "x".into(),
            },
        );
        assert_eq!(s, r#"{"resultType":"string","result":[0,"x"]"#);
    }
}
