//! Comparing a query's output with an eval's expectations, as Prometheus's runner does
//! (`compareResult`, `checkAnnotations`, `checkExpectedFailure`, `almost.Equal`).

use std::collections::HashMap;
use std::fmt::Write as _;

use hearth_query::{Annotations, Metric, QueryValue, Series};

use super::script::{expected_floats, Eval, EvalKind, TextMatch};

/// Relative error allowed between expected and actual sample values (Prometheus's
/// `defaultEpsilon`).
pub(crate) const EPSILON: f64 = 0.000001;

/// Prometheus's `almost.Equal`: equal within `epsilon` relative error; the stale marker
/// equals only itself; any two (other) NaNs are equal.
pub(crate) fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    let stale = hearth_tsdb::is_stale_marker;
    if stale(a) || stale(b) {
        return stale(a) && stale(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE; // 2.2250738585072014e-308
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// The expected series of an eval keyed by their label set.
fn expected_by_metric(ev: &Eval) -> HashMap<Metric, (usize, Vec<Option<f64>>)> {
    ev.series
        .iter()
        .map(|(pos, d)| (Metric::new(d.labels.clone()), (*pos, expected_floats(d))))
        .collect()
}

fn fmt_points(points: &[(i64, f64)]) -> String {
    let mut s = String::new();
    for (i, (t, v)) in points.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{v}@{t}");
        if i >= 12 && points.len() > 14 {
            let _ = write!(s, " …(+{})", points.len() - i - 1);
            break;
        }
    }
    s
}

/// A compact rendering of a result for failure messages.
pub(crate) fn fmt_value(v: &QueryValue) -> String {
    match v {
        QueryValue::Scalar { v, .. } => format!("scalar {v}"),
        QueryValue::String { v, .. } => format!("string {v:?}"),
        QueryValue::Vector(all) | QueryValue::Matrix(all) => {
            let mut out = format!("{} [", v.type_name());
            for (i, s) in all.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                if i >= 8 {
                    let _ = write!(out, "…(+{} series)", all.len() - i);
                    break;
                }
                let _ = write!(out, "{} => {}", s.metric, fmt_points(&s.points));
            }
            out.push(']');
            out
        }
    }
}

/// Checks a result value; `Err` says what differs.
pub(crate) fn compare_result(ev: &Eval, value: &QueryValue) -> Result<(), String> {
    let expected = expected_by_metric(ev);
    let fmt_exp = |m: &Metric| -> String {
        let (_, vals) = &expected[m];
        let vs: Vec<String> = vals
            .iter()
            .map(|v| v.map_or("_".to_string(), |v| v.to_string()))
            .collect();
        format!("{m} {}", vs.join(" "))
    };
    match value {
        QueryValue::Matrix(series) => {
            if ev.ordered {
                return Err("expected ordered result, but query returned a matrix".into());
            }
            if let Some(s) = ev.scalar {
                return Err(format!("expected scalar {s}, got {}", fmt_value(value)));
            }
            assert_sorted(series)?;
            // Timestamps of the expected positions.
            let (start, end, step) = match (ev.kind(), ev.range_vector) {
                (_, Some(rv)) => (rv.0, Some(rv.1), rv.2),
                (EvalKind::Range { start, end, step }, None) => (start, Some(end), step),
                // An instant query with no `expect range vector` has no time range to place
                // expected points on (Prometheus compares with a zero end time).
                (EvalKind::Instant { at }, None) => (at, None, 0),
            };
            let mut seen = 0;
            let mut dup = HashMap::new();
            for s in series {
                let Some((_, vals)) = expected.get(&s.metric) else {
                    return Err(format!(
                        "unexpected series {} => {}",
                        s.metric,
                        fmt_points(&s.points)
                    ));
                };
                if dup.insert(&s.metric, ()).is_some() {
                    return Err(format!("series {} appears twice in the result", s.metric));
                }
                seen += 1;
                let mut exp = Vec::new();
                for (i, v) in vals.iter().enumerate() {
                    let t = start + i as i64 * step;
                    if end.is_none_or(|e| t > e) {
                        return Err(format!(
                            "expected {} points for {}, but the query time range cannot return this many",
                            vals.len(),
                            s.metric
                        ));
                    }
                    if let Some(v) = v {
                        exp.push((t, *v));
                    }
                }
                let same = exp.len() == s.points.len()
                    && exp
                        .iter()
                        .zip(&s.points)
                        .all(|(e, a)| e.0 == a.0 && almost_equal(a.1, e.1, EPSILON));
                if !same {
                    return Err(format!(
                        "series {}: expected {}, got {}",
                        s.metric,
                        fmt_points(&exp),
                        fmt_points(&s.points)
                    ));
                }
            }
            if seen != expected.len() {
                let missing: Vec<String> = expected
                    .keys()
                    .filter(|m| !dup.contains_key(m))
                    .map(fmt_exp)
                    .collect();
                return Err(format!("expected series not found: {}", missing.join("; ")));
            }
        }
        QueryValue::Vector(series) => {
            if let Some(s) = ev.scalar {
                return Err(format!("expected scalar {s}, got {}", fmt_value(value)));
            }
            let mut dup = HashMap::new();
            for (pos, s) in series.iter().enumerate() {
                let Some((exp_pos, vals)) = expected.get(&s.metric) else {
                    return Err(format!(
                        "unexpected series {} => {}",
                        s.metric,
                        fmt_points(&s.points)
                    ));
                };
                if dup.insert(&s.metric, ()).is_some() {
                    return Err(format!("series {} appears twice in the result", s.metric));
                }
                if ev.ordered && *exp_pos != pos + 1 {
                    return Err(format!(
                        "expected {} at position {exp_pos} but it was at {}",
                        s.metric,
                        pos + 1
                    ));
                }
                let [(_, got)] = s.points[..] else {
                    return Err(format!(
                        "instant vector series {} has {} points: {}",
                        s.metric,
                        s.points.len(),
                        fmt_points(&s.points)
                    ));
                };
                let want = vals.first().copied().flatten();
                if !want.is_some_and(|w| almost_equal(w, got, EPSILON)) {
                    return Err(format!(
                        "{}: expected {}, got {got}",
                        s.metric,
                        fmt_exp(&s.metric)
                    ));
                }
            }
            if dup.len() != expected.len() {
                let missing: Vec<String> = expected
                    .keys()
                    .filter(|m| !dup.contains_key(m))
                    .map(fmt_exp)
                    .collect();
                return Err(format!(
                    "expected series not found: {} (got {})",
                    missing.join("; "),
                    fmt_value(value)
                ));
            }
        }
        QueryValue::Scalar { v, .. } => {
            let Some(want) = ev.scalar else {
                return Err(format!("expected vector or matrix result, got scalar {v}"));
            };
            if !almost_equal(want, *v, EPSILON) {
                return Err(format!("expected scalar {want}, got {v}"));
            }
        }
        QueryValue::String { v, .. } => {
            let want = ev.string.as_deref().unwrap_or_default();
            if want != v {
                return Err(format!("expected string {want:?}, got {v:?}"));
            }
        }
    }
    Ok(())
}

/// Properties every result has whatever the data: an instant vector has one point per
/// series at the query time, a range query's series carry step timestamps inside the range
/// in increasing order, and no label set appears twice. A violation is an engine bug even
/// when the expected values cannot be judged (an eval skipped for native histograms).
pub(crate) fn check_invariants(kind: EvalKind, value: &QueryValue) -> Result<(), String> {
    let series = match value {
        QueryValue::Vector(s) | QueryValue::Matrix(s) => s,
        _ => return Ok(()),
    };
    let mut seen = HashMap::new();
    for s in series {
        if seen.insert(&s.metric, ()).is_some() {
            return Err(format!("series {} appears twice in the result", s.metric));
        }
        if s.points.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(format!(
                "series {} has points out of order or at the same time: {}",
                s.metric,
                fmt_points(&s.points)
            ));
        }
    }
    match (kind, value) {
        (EvalKind::Instant { at }, QueryValue::Vector(series)) => {
            for s in series {
                if s.points.len() != 1 || s.points[0].0 != at {
                    return Err(format!(
                        "instant vector series {} must have one point at {at}, has {}",
                        s.metric,
                        fmt_points(&s.points)
                    ));
                }
            }
        }
        (EvalKind::Range { start, end, step }, QueryValue::Matrix(series)) => {
            assert_sorted(series)?;
            for s in series {
                if let Some(p) = s
                    .points
                    .iter()
                    .find(|p| p.0 < start || p.0 > end || (p.0 - start) % step != 0)
                {
                    return Err(format!(
                        "series {} has a point off the query's steps: {}@{}",
                        s.metric, p.1, p.0
                    ));
                }
            }
        }
        (EvalKind::Range { .. }, v) => {
            return Err(format!("a range query returned a {}", v.type_name()));
        }
        _ => {}
    }
    Ok(())
}

/// Prometheus's `assertMatrixSorted`: series ordered by label set.
fn assert_sorted(series: &[Series]) -> Result<(), String> {
    for w in series.windows(2) {
        if w[0].metric > w[1].metric {
            return Err(format!(
                "matrix not sorted by labels: {} before {}",
                w[0].metric, w[1].metric
            ));
        }
    }
    Ok(())
}

/// Prometheus's `checkAnnotations`.
pub(crate) fn check_annotations(ev: &Eval, a: &Annotations) -> Result<(), String> {
    if ev.legacy_warn && a.warnings.is_empty() {
        return Err("expected warnings but got none".into());
    }
    if ev.legacy_info && a.infos.is_empty() {
        return Err("expected info annotations but got none".into());
    }
    check_kind("warn", &ev.warn, &a.warnings, a)?;
    check_kind("info", &ev.info, &a.infos, a)?;
    if ev.no_warn && !a.warnings.is_empty() {
        return Err(format!("unexpected warnings: {:?}", a.warnings));
    }
    if ev.no_info && !a.infos.is_empty() {
        return Err(format!("unexpected infos: {:?}", a.infos));
    }
    Ok(())
}

fn check_kind(
    kind: &str,
    expected: &[TextMatch],
    actual: &[String],
    all: &Annotations,
) -> Result<(), String> {
    if expected.is_empty() {
        return Ok(());
    }
    if actual.is_empty() {
        return Err(format!("expected {kind} annotations but none were found"));
    }
    for e in expected {
        if !actual.iter().any(|a| e.matches(a)) {
            return Err(format!(
                "expected {kind} annotation matching {e}, found: warnings {:?} infos {:?}",
                all.warnings, all.infos
            ));
        }
    }
    for a in actual {
        if !expected.iter().any(|e| e.matches(a)) {
            return Err(format!("unexpected {kind} annotation {a:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::script::{parse_script, Command};
    use super::*;

    #[test]
    fn almost_equal_like_prometheus() {
        let stale = super::super::series::stale_nan();
        assert!(almost_equal(1.0, 1.0 + 1e-9, EPSILON));
        assert!(!almost_equal(1.0, 1.0001, EPSILON));
        assert!(almost_equal(f64::NAN, -f64::NAN, EPSILON));
        assert!(!almost_equal(f64::NAN, stale, EPSILON));
        assert!(almost_equal(stale, stale, EPSILON));
        assert!(!almost_equal(f64::NAN, 1.0, EPSILON));
        assert!(almost_equal(f64::INFINITY, f64::INFINITY, EPSILON));
        assert!(!almost_equal(f64::INFINITY, -f64::INFINITY, EPSILON));
        assert!(!almost_equal(0.0, 1e-300, EPSILON));
        assert!(almost_equal(0.0, -0.0, EPSILON));
        assert!(almost_equal(1e300, 1e300 * (1.0 + 1e-8), EPSILON));
    }

    fn eval(script: &str) -> Eval {
        match parse_script(script).unwrap().pop() {
            Some(Command::Eval(e)) => *e,
            _ => panic!("no eval"),
        }
    }

    fn series(labels: &[(&str, &str)], points: &[(i64, f64)]) -> Series {
        Series::new(Metric::new(labels.iter().copied()), points.to_vec())
    }

    #[test]
    fn vectors_match_unordered_by_labels() {
        let ev = eval("eval instant at 1m x\n  x{a=\"1\"} 1\n  x{a=\"2\"} NaN");
        let a = series(&[("__name__", "x"), ("a", "1")], &[(60_000, 1.0)]);
        let b = series(&[("__name__", "x"), ("a", "2")], &[(60_000, f64::NAN)]);
        assert!(compare_result(&ev, &QueryValue::Vector(vec![b.clone(), a.clone()])).is_ok());
        assert!(compare_result(&ev, &QueryValue::Vector(vec![a.clone()])).is_err());
        let mut wrong = a.clone();
        wrong.points[0].1 = 1.1;
        assert!(compare_result(&ev, &QueryValue::Vector(vec![wrong, b.clone()])).is_err());
        assert!(compare_result(&ev, &QueryValue::Vector(vec![a.clone(), b.clone(), a])).is_err());
        assert!(compare_result(&ev, &QueryValue::Scalar { t: 0, v: 1.0 }).is_err());

        let ord = eval("eval_ordered instant at 1m x\n  x{a=\"1\"} 1\n  x{a=\"2\"} 2");
        let a = series(&[("__name__", "x"), ("a", "1")], &[(60_000, 1.0)]);
        let b = series(&[("__name__", "x"), ("a", "2")], &[(60_000, 2.0)]);
        assert!(compare_result(&ord, &QueryValue::Vector(vec![a.clone(), b.clone()])).is_ok());
        assert!(compare_result(&ord, &QueryValue::Vector(vec![b, a])).is_err());
    }

    #[test]
    fn matrices_place_points_on_steps() {
        let ev = eval("eval range from 0 to 2m step 1m x\n  x 1 _ 3");
        let ok = series(&[("__name__", "x")], &[(0, 1.0), (120_000, 3.0)]);
        assert!(compare_result(&ev, &QueryValue::Matrix(vec![ok])).is_ok());
        let shifted = series(&[("__name__", "x")], &[(0, 1.0), (60_000, 3.0)]);
        assert!(compare_result(&ev, &QueryValue::Matrix(vec![shifted])).is_err());
        assert!(compare_result(&ev, &QueryValue::Matrix(vec![])).is_err());
        let empty = eval("eval range from 0 to 2m step 1m x");
        assert!(compare_result(&empty, &QueryValue::Matrix(vec![])).is_ok());
        let unsorted = vec![
            series(&[("__name__", "b")], &[(0, 1.0)]),
            series(&[("__name__", "a")], &[(0, 1.0)]),
        ];
        let ev2 = eval("eval range from 0 to 2m step 1m x\n  a 1\n  b 1");
        assert!(compare_result(&ev2, &QueryValue::Matrix(unsorted)).is_err());
        let too_many = eval("eval range from 0 to 1m step 1m x\n  x 1 2 3");
        let s = series(&[("__name__", "x")], &[(0, 1.0), (60_000, 2.0)]);
        assert!(compare_result(&too_many, &QueryValue::Matrix(vec![s])).is_err());
    }

    #[test]
    fn scalars_strings_annotations() {
        let ev = eval("eval instant at 0 1\n  1.0000000001");
        assert!(compare_result(&ev, &QueryValue::Scalar { t: 0, v: 1.0 }).is_ok());
        assert!(compare_result(&ev, &QueryValue::Vector(vec![])).is_err());
        let ev = eval("eval instant at 0 \"a\"\n  expect string \"a\"");
        let s = |v: &str| QueryValue::String {
            t: 0,
            v: v.to_string(),
        };
        assert!(compare_result(&ev, &s("a")).is_ok());
        assert!(compare_result(&ev, &s("b")).is_err());

        let ev = eval("eval instant at 0 x\n  expect warn msg: W (1:1)\n  expect no_info");
        let mut a = Annotations::default();
        assert!(check_annotations(&ev, &a).is_err());
        a.warn("W (1:1)".into());
        assert!(check_annotations(&ev, &a).is_ok());
        a.warn("other".into());
        assert!(check_annotations(&ev, &a).is_err());
        let mut i = Annotations::default();
        i.info("I".into());
        let ev = eval("eval instant at 0 x\n  expect no_info");
        assert!(check_annotations(&ev, &i).is_err());
        // No expectation: annotations are not checked.
        let ev = eval("eval instant at 0 x");
        assert!(check_annotations(&ev, &i).is_ok());
        let ev = eval("eval_info instant at 0 x");
        assert!(check_annotations(&ev, &Annotations::default()).is_err());
    }
}
