//! Reading and comparing `query_range` answers, so that the ratios compare equal work.

use std::collections::HashMap;

/// Relative difference between two servers' values above which a point counts as differing
/// (VictoriaMetrics's `rate` does not extrapolate to the window edges like Prometheus's, so
/// rates differ by a few percent on this data).
pub const VALUE_TOLERANCE: f64 = 0.1;

/// How two servers' answers to a query are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// Same series (by labels), values within [`VALUE_TOLERANCE`].
    Series,
    /// `topk`: which series win a step flips between engines when rates are nearly tied, so
    /// compare the sorted values per step instead of the label sets.
    SortedValues,
}

/// A matrix answer: series keyed by their labels (`{a="b",...}`, sorted), each with its
/// points (Unix ms, value).
pub type Matrix = Vec<(String, Vec<(i64, f64)>)>;

/// Parses the `data.result` of a `query_range` answer.
pub fn parse_matrix(body: &[u8]) -> Result<Matrix, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("answer is not JSON: {e}"))?;
    if v["status"] != "success" {
        let mut s = v.to_string();
        s.truncate(300);
        return Err(format!("not a success: {s}"));
    }
    let result = v["data"]["result"]
        .as_array()
        .ok_or("no data.result array")?;
    let mut out = Vec::with_capacity(result.len());
    for r in result {
        let mut labels: Vec<(&str, &str)> = r["metric"]
            .as_object()
            .ok_or("a series without metric")?
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
            .collect();
        labels.sort();
        let key = labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(",");
        let points = r["values"]
            .as_array()
            .ok_or("a series without values")?
            .iter()
            .filter_map(|p| {
                let t = p[0].as_f64()?;
                let v = p[1].as_str()?.parse::<f64>().ok()?;
                Some(((t * 1000.0).round() as i64, v))
            })
            .collect();
        out.push((format!("{{{key}}}"), points));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    (a - b).abs() <= VALUE_TOLERANCE * a.abs().max(b.abs()) + 1e-9
}

/// Compares `other` against `reference` at `at` (Unix ms): `None` if they agree, otherwise
/// what differs.
pub fn compare(reference: &Matrix, other: &Matrix, how: Compare, at: &[i64]) -> Option<String> {
    let mut problems = Vec::new();
    match how {
        Compare::Series => {
            if reference.len() != other.len() {
                problems.push(format!("{} series vs {}", other.len(), reference.len()));
            }
            let by_key: HashMap<&str, &Vec<(i64, f64)>> =
                other.iter().map(|(k, p)| (k.as_str(), p)).collect();
            let (mut checked, mut differ, mut missing) = (0, 0, 0);
            let mut example = None;
            for (key, points) in reference {
                let Some(theirs) = by_key.get(key.as_str()) else {
                    missing += 1;
                    continue;
                };
                for &t in at {
                    let (a, b) = (point(points, t), point(theirs, t));
                    match (a, b) {
                        (Some(a), Some(b)) => {
                            checked += 1;
                            if !close(a, b) {
                                differ += 1;
                                example.get_or_insert(format!("{key} at {t}: {b} vs {a}"));
                            }
                        }
                        (None, None) => {}
                        _ => {
                            differ += 1;
                            example.get_or_insert(format!("{key} at {t}: {b:?} vs {a:?}"));
                        }
                    }
                }
            }
            if missing > 0 {
                problems.push(format!("{missing} series missing"));
            }
            if differ > 0 {
                problems.push(format!(
                    "{differ} of {checked} points differ by more than {:.0}% (e.g. {})",
                    VALUE_TOLERANCE * 100.0,
                    example.unwrap_or_default()
                ));
            }
        }
        Compare::SortedValues => {
            for &t in at {
                let values = |m: &Matrix| {
                    let mut v: Vec<f64> = m.iter().filter_map(|(_, p)| point(p, t)).collect();
                    v.sort_by(|a, b| b.total_cmp(a));
                    v
                };
                let (a, b) = (values(reference), values(other));
                if a.len() != b.len() || a.iter().zip(&b).any(|(x, y)| !close(*x, *y)) {
                    problems.push(format!("values at {t}: {b:?} vs {a:?}"));
                    break;
                }
            }
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

fn point(points: &[(i64, f64)], t: i64) -> Option<f64> {
    points
        .binary_search_by_key(&t, |p| p.0)
        .ok()
        .map(|i| points[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_answers() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"mode":"idle","instance":"a"},"values":[[1700000000,"1.5"],[1700000015,"2"]]},
            {"metric":{"instance":"b"},"values":[[1700000000.5,"NaN"]]}]}}"#;
        let m = parse_matrix(body).unwrap();
        assert_eq!(m[0].0, r#"{instance="a",mode="idle"}"#);
        assert_eq!(
            m[0].1,
            vec![(1_700_000_000_000, 1.5), (1_700_000_015_000, 2.0)]
        );
        assert!(m[1].1[0].1.is_nan());
        let at = [1_700_000_000_000, 1_700_000_015_000];
        assert_eq!(compare(&m, &m, Compare::Series, &at), None);
        let mut off = m.clone();
        off[0].1[1].1 = 2.5;
        assert!(compare(&m, &off, Compare::Series, &at)
            .unwrap()
            .contains("1 of 2 points differ"));
        off[0].0 = "{other}".into();
        assert!(compare(&m, &off, Compare::Series, &at)
            .unwrap()
            .contains("1 series missing"));
        // Sorted values ignore which series holds them.
        let mut swapped = m.clone();
        swapped[0].0 = "{x}".into();
        assert_eq!(compare(&m, &swapped, Compare::SortedValues, &at), None);
        assert!(parse_matrix(br#"{"status":"error","error":"x"}"#).is_err());
    }
}
