//! Classic-histogram functions: `histogram_quantile`, `histogram_quantiles` and
//! `histogram_fraction` over `_bucket` series, following `promql/quantile.go`
//! (`BucketQuantile`, `BucketFraction`, `ensureMonotonicAndIgnoreSmallDeltas`).
//!
//! Series are grouped by their labels without `le` (the name is dropped later, so two
//! histograms differing only in name collide as in Prometheus); each group is one
//! histogram per step. Output series carry the group's labels, have points only at steps
//! where the group had buckets, and are sorted by labels.

use std::collections::BTreeMap;

use super::labels::go_quote;
use super::math::rfc3339_utc;
use super::stats::{
    format_go_g, format_openmetrics_float, invalid_quantile_msg, quantile_is_invalid,
};
use super::{Note, NoteKind, Steps};
use crate::value::{Metric, Point, Series};

/// Relative differences between adjacent buckets below this are floating-point noise and
/// are ignored in either direction (`smallDeltaTolerance`).
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

const FORCED_MONOTONICITY: &str = "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)";

/// histogram_quantile(q, v) for all steps. `q[i]` is the parameter at step i; `input` series
/// have points on the step grid (at most one per step).
pub(crate) fn quantile(
    q: &[f64],
    input: &[Series],
    steps: Steps,
    notes: &mut Vec<Note>,
) -> Vec<Series> {
    warn_invalid_quantiles(q, 0, notes);
    let groups = group(input, steps, 1, notes);
    let mut fixes = Fixes::default();
    let out = groups
        .into_iter()
        .map(|(metric, g)| {
            let points = g
                .per_step
                .into_iter()
                .enumerate()
                .filter(|(_, b)| !b.is_empty())
                .map(|(i, mut b)| {
                    let qi = q.get(i).copied().unwrap_or(f64::NAN);
                    let (v, fix) = bucket_quantile(qi, &mut b);
                    fixes.record(&g.name, steps.ts(i), fix);
                    (steps.ts(i), v)
                })
                .collect();
            Series {
                metric,
                points,
                drop_name: true,
            }
        })
        .collect();
    fixes.emit(1, notes);
    out
}

/// histogram_quantiles(v, "label", q1, q2, ...): one output series per group and quantile,
/// labelled label=<q as Prometheus formats it>; qs[k][i] = k-th quantile at step i.
///
/// Setting `label` overwrites a label of the same name, which can produce duplicate label
/// sets; they are returned as separate series, and rejecting them ("vector cannot contain
/// metrics with the same labelset") is the caller's job. A quantile that changes between
/// steps gives one series per formatted value.
pub(crate) fn quantiles(
    label: &str,
    qs: &[Vec<f64>],
    input: &[Series],
    steps: Steps,
    notes: &mut Vec<Note>,
) -> Vec<Series> {
    for (k, q) in qs.iter().enumerate() {
        warn_invalid_quantiles(q, k + 2, notes);
    }
    let groups = group(input, steps, 0, notes);
    let mut fixes = Fixes::default();
    // Keyed by (labels, group, quantile index) so that label sets that collide (the label
    // overwrote an existing one, or two quantiles format alike) stay separate series for
    // the caller to reject, as Prometheus does.
    let mut out: BTreeMap<(Metric, usize, usize), Vec<Point>> = BTreeMap::new();
    for (k, q) in qs.iter().enumerate() {
        for (gi, (metric, g)) in groups.iter().enumerate() {
            for (i, b) in g.per_step.iter().enumerate() {
                if b.is_empty() {
                    continue;
                }
                let qi = q.get(i).copied().unwrap_or(f64::NAN);
                let (v, fix) = bucket_quantile(qi, &mut b.clone());
                fixes.record(&g.name, steps.ts(i), fix);
                let mut m = metric.clone();
                m.set(label, &format_openmetrics_float(qi));
                out.entry((m, gi, k)).or_default().push((steps.ts(i), v));
            }
        }
    }
    fixes.emit(0, notes);
    out.into_iter()
        .map(|((m, _, _), points)| Series {
            metric: m,
            points,
            drop_name: true,
        })
        .collect()
}

/// histogram_fraction(lower, upper, v) on classic buckets.
pub(crate) fn fraction(
    lower: &[f64],
    upper: &[f64],
    input: &[Series],
    steps: Steps,
    notes: &mut Vec<Note>,
) -> Vec<Series> {
    group(input, steps, 2, notes)
        .into_iter()
        .map(|(metric, g)| {
            let points = g
                .per_step
                .into_iter()
                .enumerate()
                .filter(|(_, b)| !b.is_empty())
                .map(|(i, mut b)| {
                    let lo = lower.get(i).copied().unwrap_or(f64::NAN);
                    let hi = upper.get(i).copied().unwrap_or(f64::NAN);
                    (steps.ts(i), bucket_fraction(lo, hi, &mut b))
                })
                .collect();
            Series {
                metric,
                points,
                drop_name: true,
            }
        })
        .collect()
}

fn warn_invalid_quantiles(q: &[f64], arg: usize, notes: &mut Vec<Note>) {
    let mut seen: Vec<String> = Vec::new();
    for &qi in q {
        if quantile_is_invalid(qi) {
            let msg = invalid_quantile_msg(qi);
            if !seen.contains(&msg) {
                seen.push(msg.clone());
                notes.push(Note {
                    kind: NoteKind::Warn,
                    msg,
                    arg,
                });
            }
        }
    }
}

/// One classic histogram over all steps.
struct Group {
    /// The metric name of the group's first series, for annotations.
    name: String,
    /// `(upper bound, cumulative count)` per step.
    per_step: Vec<Vec<(f64, f64)>>,
}

/// Groups `_bucket` series by their labels without `le`. Series whose `le` is
/// missing or not a float are dropped with a warning about argument `arg`.
fn group(
    input: &[Series],
    steps: Steps,
    arg: usize,
    notes: &mut Vec<Note>,
) -> BTreeMap<Metric, Group> {
    let mut groups: BTreeMap<Metric, Group> = BTreeMap::new();
    let n = steps.len();
    for s in input {
        if s.points.is_empty() {
            continue;
        }
        let le = s.metric.get("le").unwrap_or("");
        let Some(upper) = parse_go_float(le) else {
            let name = s.metric.name().unwrap_or("");
            let mut msg = format!(
                "bucket label \"le\" is missing or has a malformed value of {}",
                go_quote(le)
            );
            if !name.is_empty() {
                msg.push_str(&format!(" for metric name {}", go_quote(name)));
            }
            let note = Note {
                kind: NoteKind::Warn,
                msg,
                arg,
            };
            if !notes.contains(&note) {
                notes.push(note);
            }
            continue;
        };
        let mut key = s.metric.clone();
        key.remove("le");
        let g = groups.entry(key).or_insert_with(|| Group {
            name: s.metric.name().unwrap_or("").to_string(),
            per_step: vec![Vec::new(); n],
        });
        for &(t, v) in &s.points {
            if t < steps.start || t > steps.end {
                continue;
            }
            g.per_step[steps.index(t)].push((upper, v));
        }
    }
    groups
}

/// `strconv.ParseFloat` for `le` values: decimal floats, `Inf`/`+Inf`/`-Inf`/`Infinity`
/// and `NaN` in any case. (Go also accepts hex floats and `_` separators after a base
/// prefix; those never occur in exposition-format `le` labels.)
fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim_start_matches(['+', '-']);
    if t.len() + 1 < s.len() {
        return None; // More than one sign.
    }
    if t.chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        || ["inf", "infinity", "nan"].contains(&t.to_ascii_lowercase().as_str())
    {
        s.parse().ok()
    } else {
        None
    }
}

/// What `ensureMonotonicAndIgnoreSmallDeltas` reports when it had to remove a decrease.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fix {
    min_bucket: f64,
    max_bucket: f64,
    max_diff: f64,
}

/// `BucketQuantile`: the `q`-quantile of one classic histogram, interpolating linearly in
/// the bucket holding the rank. Sorts and coalesces `buckets` in place.
///
/// NaN `q` → NaN, `q < 0` → -Inf, `q > 1` → +Inf; no `+Inf` bucket, fewer than two
/// buckets, or zero observations → NaN. A rank in the `+Inf` bucket gives the second-highest
/// bound; in the lowest bucket the lower bound is 0 unless that bucket's bound is <= 0, which
/// is then returned.
fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> (f64, Option<Fix>) {
    if q.is_nan() {
        return (f64::NAN, None);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, None);
    }
    if q > 1.0 {
        return (f64::INFINITY, None);
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
        return (f64::NAN, None);
    }
    coalesce(buckets);
    let fix = ensure_monotonic(buckets);
    if buckets.len() < 2 {
        return (f64::NAN, fix);
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return (f64::NAN, fix);
    }
    let mut rank = q * observations;
    // sort.Search over all but the +Inf bucket.
    let b = buckets[..buckets.len() - 1].partition_point(|bk| bk.1 < rank);
    if b == buckets.len() - 1 {
        return (buckets[buckets.len() - 2].0, fix);
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return (buckets[0].0, fix);
    }
    let mut start = 0.0;
    let end = buckets[b].0;
    let mut count = buckets[b].1;
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    (start + (end - start) * (rank / count), fix)
}

/// `BucketFraction`: the fraction of observations in `(lower, upper]`, interpolating
/// linearly inside buckets. No `+Inf` bucket, zero observations or a NaN bound → NaN;
/// `lower >= upper` → 0.
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
        return f64::NAN;
    }
    coalesce(buckets);
    let count = buckets[buckets.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    // Positive-only buckets start at 0, otherwise the first bucket starts at -Inf.
    let mut lower_bound = if buckets[0].0 <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for (i, &(upper_bound, bcount)) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].0;
        }
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                bcount
            } else {
                rank + (bcount - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = bcount;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// Merges adjacent buckets with the same upper bound (summing counts); input sorted.
fn coalesce(buckets: &mut Vec<(f64, f64)>) {
    buckets.dedup_by(|b, a| {
        if a.0 == b.0 {
            a.1 += b.1;
            true
        } else {
            false
        }
    });
}

/// Absorbs relative differences below [`SMALL_DELTA_TOLERANCE`] between adjacent buckets
/// and raises any remaining decrease to the previous count (the accepted count is not
/// advanced by a correction). Returns the forced range when a decrease was removed.
fn ensure_monotonic(buckets: &mut [(f64, f64)]) -> Option<Fix> {
    let mut fix = Fix {
        min_bucket: f64::INFINITY,
        max_bucket: f64::NEG_INFINITY,
        max_diff: 0.0,
    };
    let mut forced = false;
    let mut prev = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, SMALL_DELTA_TOLERANCE) {
            b.1 = prev;
            continue;
        }
        if curr < prev {
            b.1 = prev;
            forced = true;
            fix.min_bucket = fix.min_bucket.min(b.0);
            fix.max_bucket = fix.max_bucket.max(b.0);
            if prev - curr > fix.max_diff {
                fix.max_diff = prev - curr;
            }
            continue;
        }
        prev = curr;
    }
    forced.then_some(fix)
}

/// `util/almost.Equal`: relative comparison, absolute near zero; two NaNs are equal.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// The forced-monotonicity infos of one call, merged per metric name the way Prometheus's
/// annotation merging widens them across groups and steps.
#[derive(Default)]
struct Fixes {
    by_name: Vec<(String, FixSummary)>,
}

struct FixSummary {
    count: usize,
    min_ts: i64,
    max_ts: i64,
    fix: Fix,
}

impl Fixes {
    fn record(&mut self, name: &str, ts: i64, fix: Option<Fix>) {
        let Some(fix) = fix else { return };
        match self.by_name.iter_mut().find(|(n, _)| n == name) {
            Some((_, s)) => {
                s.count += 1;
                s.min_ts = s.min_ts.min(ts);
                s.max_ts = s.max_ts.max(ts);
                s.fix.min_bucket = s.fix.min_bucket.min(fix.min_bucket);
                s.fix.max_bucket = s.fix.max_bucket.max(fix.max_bucket);
                s.fix.max_diff = s.fix.max_diff.max(fix.max_diff);
            }
            None => self.by_name.push((
                name.to_string(),
                FixSummary {
                    count: 1,
                    min_ts: ts,
                    max_ts: ts,
                    fix,
                },
            )),
        }
    }

    fn emit(self, arg: usize, notes: &mut Vec<Note>) {
        for (name, s) in self.by_name {
            let mut msg = FORCED_MONOTONICITY.to_string();
            if !name.is_empty() {
                msg.push_str(&format!(" for metric name {}", go_quote(&name)));
            }
            msg.push_str(&format!(
                ", from buckets {} to {}, with a max diff of {}, over {} samples from {} to {}",
                format_go_g(s.fix.min_bucket),
                format_go_g(s.fix.max_bucket),
                format_go_g_prec2(s.fix.max_diff),
                s.count,
                rfc3339_utc(s.min_ts / 1000),
                rfc3339_utc(s.max_ts / 1000),
            ));
            notes.push(Note {
                kind: NoteKind::Info,
                msg,
                arg,
            });
        }
    }
}

/// Go's `%.2g`: two significant digits, exponent form when the exponent is < -4 or >= 2,
/// trailing zeros removed.
fn format_go_g_prec2(f: f64) -> String {
    if !f.is_finite() {
        return format_go_g(f);
    }
    let s = format!("{f:.1e}");
    let (mant, exp) = s.split_once('e').expect("BUG: {:e} has an exponent");
    let exp: i32 = exp.parse().expect("BUG: integer exponent");
    let mant = mant.trim_end_matches('0').trim_end_matches('.');
    if !(-4..2).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    let v: f64 = format!("{mant}e{exp}").parse().expect("BUG: valid float");
    format_go_g(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::NAME;
    use proptest::prelude::*;

    fn instant(at: i64) -> Steps {
        Steps {
            start: at,
            end: at,
            step: 1,
        }
    }

    fn bucket(name: &str, le: &str, extra: &[(&str, &str)], v: f64) -> Series {
        let mut m = Metric::new(extra.iter().copied());
        m.set(NAME, name);
        m.set("le", le);
        Series::new(m, vec![(0, v)])
    }

    fn hist(name: &str, extra: &[(&str, &str)], b: &[(&str, f64)]) -> Vec<Series> {
        b.iter()
            .map(|(le, v)| bucket(name, le, extra, *v))
            .collect()
    }

    /// histograms.test: testhistogram_bucket at 50m.
    fn testhistogram() -> Vec<Series> {
        let mut v = hist(
            "testhistogram_bucket",
            &[("start", "positive")],
            &[("0.1", 50.0), (".2", 70.0), ("1e0", 110.0), ("+Inf", 120.0)],
        );
        v.extend(hist(
            "testhistogram_bucket",
            &[("start", "negative")],
            &[("-.2", 10.0), ("-0.1", 20.0), ("0.3", 20.0), ("+Inf", 30.0)],
        ));
        v
    }

    /// Output as the query returns it (names flagged for removal dropped).
    fn values(out: &[Series]) -> Vec<(String, f64)> {
        out.iter()
            .map(|s| (s.metric.without_name().to_string(), s.points[0].1))
            .collect()
    }

    #[test]
    fn quantile_from_histograms_test() {
        let input = testhistogram();
        let mut notes = Vec::new();
        for (q, pos, neg) in [
            (0.0, 0.0, -0.2),
            (0.2, 0.048, -0.2),
            (0.5, 0.15, -0.15),
            (0.8, 0.72, 0.3),
            (1.0, 1.0, 0.3),
        ] {
            let out = quantile(&[q], &input, instant(0), &mut notes);
            let v = values(&out);
            assert_eq!(v[0].0, r#"{start="negative"}"#);
            assert!((v[0].1 - neg).abs() < 1e-9, "q={q} neg {}", v[0].1);
            assert!((v[1].1 - pos).abs() < 1e-9, "q={q} pos {}", v[1].1);
            assert!(out[0].drop_name);
        }
        assert!(notes.is_empty());
        let out = quantile(&[-0.1], &input, instant(0), &mut notes);
        assert!(values(&out).iter().all(|v| v.1 == f64::NEG_INFINITY));
        assert_eq!(
            notes[0].msg,
            "quantile value should be between 0 and 1, got -0.1"
        );
        assert_eq!((notes[0].arg, notes[0].kind), (0, NoteKind::Warn));
        notes.clear();
        let out = quantile(&[f64::NAN], &[], instant(0), &mut notes);
        assert!(out.is_empty());
        assert_eq!(
            notes[0].msg,
            "quantile value should be between 0 and 1, got NaN"
        );
    }

    #[test]
    fn quantile_special_cases() {
        let mut b = vec![(1.0, 1.0)];
        assert!(bucket_quantile(0.5, &mut b).0.is_nan()); // No +Inf bucket.
        let mut b = vec![(f64::INFINITY, 3.0)];
        assert!(bucket_quantile(0.5, &mut b).0.is_nan()); // Only one bucket.
        let mut b = vec![(1.0, 0.0), (f64::INFINITY, 0.0)];
        assert!(bucket_quantile(0.5, &mut b).0.is_nan()); // No observations.
        let mut b = vec![(1.0, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(bucket_quantile(0.9, &mut b).0, 1.0); // Rank in +Inf bucket.
                                                         // Same bound written twice is coalesced (histograms.test "mixed" buckets).
        let mut b = vec![(0.1, 1.0), (0.1, 1.0), (0.2, 4.0), (f64::INFINITY, 4.0)];
        assert!((bucket_quantile(0.5, &mut b).0 - 0.1).abs() < 1e-12);
    }

    #[test]
    fn forced_monotonicity_from_histograms_test() {
        // nonmonotonic_bucket at 50m: le 0.1:20 1:10 10:50 100:40 1000:90 +Inf:80.
        let input = hist(
            "nonmonotonic_bucket",
            &[],
            &[
                ("0.1", 20.0),
                ("1", 10.0),
                ("10", 50.0),
                ("100", 40.0),
                ("1000", 90.0),
                ("+Inf", 80.0),
            ],
        );
        let mut notes = Vec::new();
        for (q, want) in [(0.01, 0.0045), (0.5, 8.5), (0.99, 979.75)] {
            notes.clear();
            let input: Vec<Series> = input
                .iter()
                .map(|s| Series::new(s.metric.clone(), vec![(3_000_000, s.points[0].1)]))
                .collect();
            let out = quantile(&[q], &input, instant(3_000_000), &mut notes);
            assert!((out[0].points[0].1 - want).abs() < 1e-9, "q={q}");
            assert_eq!(out[0].points[0].0, 3_000_000);
            assert_eq!(notes.len(), 1);
            assert_eq!((notes[0].kind, notes[0].arg), (NoteKind::Info, 1));
            assert_eq!(
                notes[0].msg,
                format!("{FORCED_MONOTONICITY} for metric name \"nonmonotonic_bucket\", from buckets 1 to +Inf, with a max diff of 10, over 1 samples from 1970-01-01T00:50:00Z to 1970-01-01T00:50:00Z")
            );
        }
        notes.clear();
        let qs = vec![vec![0.01], vec![0.5], vec![0.99]];
        let out = quantiles("q", &qs, &input, instant(0), &mut notes);
        assert_eq!(
            values(&out),
            vec![
                // The test file's 979.75 is matched within promqltest's tolerance.
                (r#"{q="0.01"}"#.to_string(), 0.0045),
                (r#"{q="0.5"}"#.to_string(), 8.5),
                (r#"{q="0.99"}"#.to_string(), 979.7499999999999),
            ]
        );
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].arg, 0);
        assert!(notes[0].msg.contains("over 3 samples"));
    }

    #[test]
    fn small_deltas_are_absorbed_silently() {
        let mut b = vec![(1.0, 10.0), (2.0, 10.0 - 1e-13), (f64::INFINITY, 10.0)];
        let (_, fix) = bucket_quantile(0.5, &mut b);
        assert_eq!(fix, None);
    }

    #[test]
    fn quantiles_labels_and_arg_positions() {
        let input = testhistogram();
        let mut notes = Vec::new();
        let qs = vec![vec![0.0], vec![1.01], vec![f64::NAN]];
        let out = quantiles("q", &qs, &input, instant(0), &mut notes);
        let v = values(&out);
        assert_eq!(v.len(), 6);
        assert!(v.contains(&(r#"{q="0.0", start="negative"}"#.to_string(), -0.2)));
        assert!(v.contains(&(r#"{q="1.01", start="positive"}"#.to_string(), f64::INFINITY)));
        assert!(v
            .iter()
            .any(|(m, x)| m == r#"{q="NaN", start="positive"}"# && x.is_nan()));
        let args: Vec<usize> = notes.iter().map(|n| n.arg).collect();
        assert_eq!(args, vec![3, 4]);
    }

    #[test]
    fn quantiles_keep_colliding_label_sets_apart() {
        // histograms.test "Break label set uniqueness": label "start" overwritten.
        let out = quantiles(
            "start",
            &[vec![0.5]],
            &testhistogram(),
            instant(0),
            &mut Vec::new(),
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].metric, out[1].metric);
    }

    #[test]
    fn bad_le_warns_and_is_ignored() {
        let mut m = Metric::new([("ale", "0.1")]);
        m.set(NAME, "series");
        let input = vec![Series::new(m, vec![(0, 2.0)])];
        let mut notes = Vec::new();
        assert!(quantile(&[0.8], &input, instant(0), &mut notes).is_empty());
        assert_eq!(
            notes,
            vec![Note {
                kind: NoteKind::Warn,
                msg: r#"bucket label "le" is missing or has a malformed value of "" for metric name "series""#.into(),
                arg: 1
            }]
        );
        notes.clear();
        let input = vec![bucket("series", "Hello World", &[], 2.0)];
        assert!(fraction(&[f64::NEG_INFINITY], &[1.0], &input, instant(0), &mut notes).is_empty());
        assert_eq!(notes[0].arg, 2);
        assert!(notes[0].msg.contains(r#"of "Hello World" for"#));
        notes.clear();
        assert!(quantiles("q", &[vec![0.1]], &input, instant(0), &mut notes).is_empty());
        assert_eq!(notes[0].arg, 0);
    }

    #[test]
    fn fraction_from_histograms_test() {
        // testhistogram2_bucket at 50m: le 0:0 2:10 4:20 6:30 +Inf:30.
        let h2 = hist(
            "testhistogram2_bucket",
            &[],
            &[
                ("0", 0.0),
                ("2", 10.0),
                ("4", 20.0),
                ("6", 30.0),
                ("+Inf", 30.0),
            ],
        );
        let mut notes = Vec::new();
        for (lo, hi, want) in [
            (0.0, 4.0, 0.6666666666666666),
            (0.0, 6.0, 1.0),
            (0.0, 3.5, 0.5833333333333334),
        ] {
            let out = fraction(&[lo], &[hi], &h2, instant(0), &mut notes);
            assert!((out[0].points[0].1 - want).abs() < 1e-12, "({lo}, {hi})");
        }
        let out = fraction(&[2.0], &[2.0], &h2, instant(0), &mut notes);
        assert_eq!(out[0].points[0].1, 0.0);
        let out = fraction(&[f64::NAN], &[2.0], &h2, instant(0), &mut notes);
        assert!(out[0].points[0].1.is_nan());
        // testhistogram_bucket (start="negative"): fraction below -0.15 from -Inf.
        let mut b = vec![
            (-0.2, 10.0),
            (-0.1, 20.0),
            (0.3, 20.0),
            (f64::INFINITY, 30.0),
        ];
        let f = bucket_fraction(f64::NEG_INFINITY, -0.15, &mut b);
        assert!((f - 0.5).abs() < 1e-12, "{f}");
        let f = bucket_fraction(f64::NEG_INFINITY, f64::INFINITY, &mut b);
        assert_eq!(f, 1.0);
        assert!(notes.is_empty());
    }

    #[test]
    fn range_steps_only_where_buckets_exist() {
        let steps = Steps {
            start: 0,
            end: 20,
            step: 10,
        };
        let mut a = bucket("h_bucket", "1", &[], 1.0);
        a.points = vec![(0, 1.0), (20, 2.0)];
        let mut b = bucket("h_bucket", "+Inf", &[], 2.0);
        b.points = vec![(0, 2.0), (20, 4.0)];
        let out = quantile(&[0.5, 0.5, 0.5], &[a, b], steps, &mut Vec::new());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].points, vec![(0, 1.0), (20, 1.0)]);
    }

    #[test]
    fn prec2_format() {
        for (f, s) in [
            (10.0, "10"),
            (100.0, "1e+02"),
            (0.5, "0.5"),
            (0.123, "0.12"),
            (1e-5, "1e-05"),
        ] {
            assert_eq!(format_go_g_prec2(f), s);
        }
    }

    proptest! {
        #[test]
        fn bucket_quantile_is_monotone_and_bounded(
            counts in proptest::collection::vec(0.0f64..1000.0, 1..8),
            a in 0.0f64..=1.0,
            b in 0.0f64..=1.0,
        ) {
            let mut acc = 0.0;
            let mut buckets: Vec<(f64, f64)> = counts
                .iter()
                .enumerate()
                .map(|(i, c)| { acc += c; ((i + 1) as f64, acc) })
                .collect();
            buckets.push((f64::INFINITY, acc + 1.0));
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let (ql, _) = bucket_quantile(lo, &mut buckets.clone());
            let (qh, _) = bucket_quantile(hi, &mut buckets.clone());
            prop_assert!(ql <= qh + 1e-9, "{} > {}", ql, qh);
            prop_assert!((0.0..=counts.len() as f64).contains(&ql));
        }

        #[test]
        fn never_panics_on_adversarial_buckets(
            b in proptest::collection::vec((any::<f64>(), any::<f64>()), 1..6),
            q in any::<f64>(),
        ) {
            let mut with_inf = b.clone();
            with_inf.push((f64::INFINITY, 1.0));
            let _ = bucket_quantile(q, &mut with_inf.clone());
            let _ = bucket_fraction(q, q + 1.0, &mut with_inf);
        }
    }
}
