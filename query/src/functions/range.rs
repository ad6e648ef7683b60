//! Range-vector functions (`rate`, `*_over_time`, `deriv`, ...) over one series' float
//! samples in one step's window `(start, end]`, following `promql/functions.go`.
//!
//! Kernels are only meaningful for a non-empty window; every kernel returns `None` for an
//! empty one (Prometheus never calls the function then). Native histograms, anchored/smoothed
//! selectors and start timestamps are out of scope here.

use super::stats::{self, kahan_inc, quantile_is_invalid, Variance};
use super::{Note, NoteKind, Window};
use crate::value::Point;

/// A range-vector function: the value for one series in one step's window, given the step's
/// scalar parameters (in call order, excluding the range-vector argument); None = no output.
pub(crate) type RangeKernel = fn(&Window<'_>, &[f64], &mut Vec<Note>) -> Option<f64>;

/// The kernel for `name`. `absent_over_time` is not here: it depends on all series at once.
///
/// Parameters: `quantile_over_time` gets `[q]`; `double_exponential_smoothing` gets
/// `[sf, tf]` (the evaluator must first fail the query when
/// [`double_exponential_smoothing_error`] says so); `predict_linear` gets `[seconds]` or
/// `[seconds, eval_ts_ms]` — Prometheus predicts relative to the *evaluation* timestamp of
/// the step, which differs from the window end under `offset` and `@`; without the second
/// parameter the window end is used.
pub(crate) fn kernel(name: &str) -> Option<RangeKernel> {
    let k: RangeKernel = match name {
        "rate" => |w, _, _| extrapolated_rate(w, true, true),
        "increase" => |w, _, _| extrapolated_rate(w, true, false),
        "delta" => |w, _, _| extrapolated_rate(w, false, false),
        "irate" => |w, _, _| instant_value(w.samples, true),
        "idelta" => |w, _, _| instant_value(w.samples, false),
        "deriv" => deriv,
        "predict_linear" => predict_linear,
        "double_exponential_smoothing" => double_exponential_smoothing,
        "changes" => |w, _, _| changes(w.samples),
        "resets" => |w, _, _| resets(w.samples),
        "avg_over_time" => |w, _, _| nonempty(w).map(avg),
        "sum_over_time" => |w, _, _| nonempty(w).map(sum),
        "count_over_time" => |w, _, _| nonempty(w).map(|s| s.len() as f64),
        "min_over_time" => |w, _, _| nonempty(w).map(|s| extreme(s, |cur, m| cur < m).1),
        "max_over_time" => |w, _, _| nonempty(w).map(|s| extreme(s, |cur, m| cur > m).1),
        "ts_of_min_over_time" => {
            |w, _, _| nonempty(w).map(|s| secs(extreme(s, |cur, m| cur <= m).0))
        }
        "ts_of_max_over_time" => {
            |w, _, _| nonempty(w).map(|s| secs(extreme(s, |cur, m| cur >= m).0))
        }
        "ts_of_first_over_time" => |w, _, _| w.samples.first().map(|p| secs(p.0)),
        "ts_of_last_over_time" => |w, _, _| w.samples.last().map(|p| secs(p.0)),
        "first_over_time" => |w, _, _| w.samples.first().map(|p| p.1),
        "last_over_time" => |w, _, _| w.samples.last().map(|p| p.1),
        "present_over_time" => |w, _, _| nonempty(w).map(|_| 1.0),
        "stddev_over_time" => |w, _, _| nonempty(w).map(|s| variance(s).stddev()),
        "stdvar_over_time" => |w, _, _| nonempty(w).map(|s| variance(s).variance()),
        "quantile_over_time" => quantile_over_time,
        "mad_over_time" => |w, _, _| nonempty(w).map(mad),
        _ => return None,
    };
    Some(k)
}

/// The query error Prometheus raises (by panicking inside the function) for
/// `double_exponential_smoothing` factors outside `(0, 1)`. NaN passes the check, as in Go.
pub(crate) fn double_exponential_smoothing_error(sf: f64, tf: f64) -> Option<String> {
    if sf <= 0.0 || sf >= 1.0 {
        return Some(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
        ));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Some(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
        ));
    }
    None
}

fn nonempty<'a>(w: &Window<'a>) -> Option<&'a [Point]> {
    (!w.samples.is_empty()).then_some(w.samples)
}

fn secs(t_ms: i64) -> f64 {
    t_ms as f64 / 1000.0
}

/// Go's `time.Duration.Seconds()` for a millisecond duration: whole seconds plus the
/// nanosecond remainder divided by 1e9 (not always bit-identical to `ms / 1000`).
fn duration_seconds(ms: i64) -> f64 {
    let sec = ms / 1000;
    let nsec = (ms % 1000) * 1_000_000;
    sec as f64 + nsec as f64 / 1e9
}

/// `extrapolatedRate` for float samples: the increase between the first and the last sample
/// (plus counter resets), extrapolated towards the window boundaries when the samples come
/// within 1.1 average intervals of them (else by half an interval), never extrapolating a
/// counter below zero.
fn extrapolated_rate(w: &Window<'_>, is_counter: bool, is_rate: bool) -> Option<f64> {
    let s = w.samples;
    if s.len() < 2 {
        return None;
    }
    let (first, last) = (s[0], s[s.len() - 1]);
    let mut result = last.1 - first.1;
    if is_counter {
        for p in s.windows(2) {
            if p[1].1 < p[0].1 {
                result += p[0].1;
            }
        }
    }
    let mut to_start = (first.0 - w.start) as f64 / 1000.0;
    let mut to_end = (w.end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let avg = sampled / (s.len() - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if is_counter {
        // Counters cannot go below zero: stop extrapolating where the slope reaches zero.
        let mut to_zero = to_start;
        if result > 0.0 && first.1 >= 0.0 {
            to_zero = sampled * (first.1 / result);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = 1.0;
    if sampled != 0.0 {
        factor = (sampled + to_start + to_end) / sampled;
    }
    if is_rate {
        factor /= duration_seconds(w.end - w.start);
    }
    Some(result * factor)
}

/// `irate`/`idelta`: the last two samples only. `irate` treats a decrease as a counter reset
/// (the result is the last value); samples at the same timestamp give no result.
fn instant_value(s: &[Point], is_rate: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (prev, last) = (s[s.len() - 2], s[s.len() - 1]);
    let interval = last.0 - prev.0;
    if interval == 0 {
        return None;
    }
    let mut result = last.1;
    // A NaN counter value is not a reset.
    let reset = last.1 < prev.1;
    if !is_rate || !reset {
        result = last.1 - prev.1;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// `linearRegression`: least squares over `(t - intercept_time in s, v)` with Kahan sums.
/// A constant series has slope 0 (NaN for a constant ±Inf).
fn linear_regression(s: &[Point], intercept_time: i64) -> (f64, f64) {
    let mut n = 0.0;
    let (mut sum_x, mut c_x) = (0.0, 0.0);
    let (mut sum_y, mut c_y) = (0.0, 0.0);
    let (mut sum_xy, mut c_xy) = (0.0, 0.0);
    let (mut sum_x2, mut c_x2) = (0.0, 0.0);
    let init_y = s[0].1;
    let mut const_y = true;
    for (i, &(t, v)) in s.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        // Go's int64 subtraction wraps; so does ours (only reachable with absurd parameters).
        let x = t.wrapping_sub(intercept_time) as f64 / 1e3;
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

fn deriv(w: &Window<'_>, _: &[f64], _: &mut Vec<Note>) -> Option<f64> {
    if w.samples.len() < 2 {
        return None;
    }
    // Relative to the first sample to keep the x values small (prometheus#2674).
    Some(linear_regression(w.samples, w.samples[0].0).0)
}

fn predict_linear(w: &Window<'_>, p: &[f64], _: &mut Vec<Note>) -> Option<f64> {
    if w.samples.len() < 2 {
        return None;
    }
    let duration = p.first().copied().unwrap_or(f64::NAN);
    let at = p.get(1).map_or(w.end, |t| *t as i64);
    let (slope, intercept) = linear_regression(w.samples, at);
    Some(slope * duration + intercept)
}

/// Holt's linear (double exponential) smoothing; the factors are checked by the caller.
fn double_exponential_smoothing(w: &Window<'_>, p: &[f64], _: &mut Vec<Note>) -> Option<f64> {
    let s = w.samples;
    if s.len() < 2 || p.len() < 2 {
        return None;
    }
    let (sf, tf) = (p[0], p[1]);
    let (mut s0, mut s1) = (0.0, s[0].1);
    let mut b = s[1].1 - s[0].1;
    for (i, &(_, v)) in s.iter().enumerate().skip(1) {
        let x = sf * v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        (s0, s1) = (s1, x + y);
    }
    Some(s1)
}

fn changes(s: &[Point]) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    let n = s
        .windows(2)
        .filter(|p| p[1].1 != p[0].1 && !(p[1].1.is_nan() && p[0].1.is_nan()))
        .count();
    Some(n as f64)
}

fn resets(s: &[Point]) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    Some(s.windows(2).filter(|p| p[1].1 < p[0].1).count() as f64)
}

/// `avg_over_time`: the direct mean with Kahan summation while the running sum stays finite,
/// switching to an incremental (Kahan-compensated) mean once it would overflow.
fn avg(s: &[Point]) -> f64 {
    let (mut sum, mut count) = (s[0].1, 1.0);
    let (mut mean, mut c) = (0.0, 0.0);
    let mut incremental = false;
    for (i, &(_, v)) in s.iter().enumerate().skip(1) {
        count = (i + 1) as f64;
        if !incremental {
            let (new_sum, new_c) = kahan_inc(v, sum, c);
            if !new_sum.is_infinite() {
                (sum, c) = (new_sum, new_c);
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(v / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

/// `sum_over_time` with Kahan summation; an infinite sum is returned as is.
fn sum(s: &[Point]) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for &(_, v) in s {
        (sum, c) = kahan_inc(v, sum, c);
    }
    if sum.is_infinite() {
        sum
    } else {
        sum + c
    }
}

/// `compareOverTime`: the first sample wins ties unless `better` says otherwise; a NaN
/// current extreme is always replaced. Returns `(timestamp, value)` of the extreme.
fn extreme(s: &[Point], better: fn(f64, f64) -> bool) -> (i64, f64) {
    let (mut ts, mut best) = s[0];
    for &(t, v) in s {
        if better(v, best) || best.is_nan() {
            (ts, best) = (t, v);
        }
    }
    (ts, best)
}

fn variance(s: &[Point]) -> Variance {
    let mut var = Variance::default();
    for &(_, v) in s {
        var.push(v);
    }
    var
}

fn quantile_over_time(w: &Window<'_>, p: &[f64], notes: &mut Vec<Note>) -> Option<f64> {
    let s = nonempty(w)?;
    let q = p.first().copied().unwrap_or(f64::NAN);
    if quantile_is_invalid(q) {
        notes.push(Note {
            kind: NoteKind::Warn,
            msg: stats::invalid_quantile_msg(q),
            arg: 0,
        });
    }
    let mut values: Vec<f64> = s.iter().map(|p| p.1).collect();
    Some(stats::quantile(q, &mut values))
}

/// Median absolute deviation; any NaN sample makes it NaN.
fn mad(s: &[Point]) -> f64 {
    if s.iter().any(|p| p.1.is_nan()) {
        return f64::NAN;
    }
    let mut values: Vec<f64> = s.iter().map(|p| p.1).collect();
    let median = stats::quantile(0.5, &mut values);
    for v in &mut values {
        *v = (*v - median).abs();
    }
    stats::quantile(0.5, &mut values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const M: i64 = 60_000;

    /// Samples of a `load <interval>` series, `vals[i]` at `i * interval` (None = gap).
    fn load(interval: i64, vals: &[Option<f64>]) -> Vec<Point> {
        vals.iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i as i64 * interval, v)))
            .collect()
    }

    /// `a+bxN` expansion.
    fn series(start: f64, step: f64, n: usize) -> Vec<Option<f64>> {
        (0..=n).map(|i| Some(start + step * i as f64)).collect()
    }

    /// Evaluates `name(series[range])` at `at` the way the evaluator slices windows.
    fn eval(name: &str, s: &[Point], at: i64, range: i64, params: &[f64]) -> Option<f64> {
        let (start, end) = (at - range, at);
        let samples: Vec<Point> = s
            .iter()
            .copied()
            .filter(|p| p.0 > start && p.0 <= end)
            .collect();
        let w = Window {
            samples: &samples,
            start,
            end,
        };
        let mut notes = Vec::new();
        kernel(name).expect("kernel")(&w, params, &mut notes)
    }

    fn close(a: f64, b: f64) -> bool {
        a == b || (a - b).abs() <= 1e-6 * b.abs().max(1e-12)
    }

    #[test]
    fn increase_extrapolation_from_functions_test() {
        let foo = load(5 * M, &series(0.0, 10.0, 10));
        let mut bar = series(0.0, 18.0, 5);
        bar.extend(series(0.0, 18.0, 5));
        let bar = load(5 * M, &bar);
        let dings = load(5 * M, &series(10.0, 10.0, 10));
        let bumms = load(5 * M, &series(1.0, 10.0, 10));
        let at = 50 * M;
        assert_eq!(eval("increase", &foo, at, 50 * M, &[]), Some(100.0));
        assert_eq!(eval("increase", &bar, at, 50 * M, &[]), Some(160.0));
        assert_eq!(eval("increase", &dings, at, 50 * M, &[]), Some(100.0));
        assert_eq!(eval("increase", &bumms, at, 50 * M, &[]), Some(100.0));
        assert!(close(
            eval("increase", &foo, at, 100 * M, &[]).unwrap(),
            100.0
        ));
        assert!(close(
            eval("increase", &bar, at, 100 * M, &[]).unwrap(),
            162.0
        ));
        assert!(close(
            eval("increase", &dings, at, 100 * M, &[]).unwrap(),
            105.0
        ));
        assert!(close(
            eval("increase", &bumms, at, 100 * M, &[]).unwrap(),
            101.0
        ));
        // Counter reset 3 -> 2 counts as 3 0 1 2.
        let r = load(5 * M, &[0., 1., 2., 3., 2., 3., 4.].map(Some));
        assert_eq!(eval("increase", &r, 30 * M, 30 * M, &[]), Some(7.0));
    }

    #[test]
    fn rate_from_functions_test() {
        let mut mid = series(0.0, 27.0, 4);
        mid.extend(series(0.0, 27.0, 5));
        let mid = load(5 * M, &mid);
        assert!(close(
            eval("rate", &mid, 50 * M, 50 * M, &[]).unwrap(),
            0.08
        ));
        let mut end = series(0.0, 10.0, 9);
        end.extend([Some(0.0), Some(10.0)]);
        let end = load(5 * M, &end);
        assert_eq!(eval("rate", &end, 50 * M, 5 * M, &[]), None);
        assert_eq!(eval("rate", &end, 50 * M, 6 * M, &[]), Some(0.0));
        let win = load(5 * M, &series(0.0, 80.0, 10));
        // Prometheus multiplies by (1/range) rather than dividing, so the last bit differs
        // from the test file's 0.26666666666666666 (within promqltest's tolerance).
        assert_eq!(
            eval("rate", &win, 50 * M, 50 * M, &[]),
            Some(0.2666666666666667)
        );
        // offset 5m: the window ends at 45m.
        let a = load(5 * M, &series(0.0, 10.0, 10));
        assert!(close(
            eval("rate", &a, 45 * M, 10 * M, &[]).unwrap(),
            0.03333333333333333
        ));
        // Zero cutoff: load 4m, start values 0, 60, ..., 300, rate[20m] at 10m.
        for (start, want) in [
            (0.0, 0.5),
            (60.0, 0.55),
            (120.0, 0.6),
            (180.0, 0.6),
            (300.0, 0.6),
        ] {
            let s = load(4 * M, &series(start, 240.0, 10));
            assert!(close(eval("rate", &s, 10 * M, 20 * M, &[]).unwrap(), want));
            assert!(close(eval("rate", &s, 50 * M, 20 * M, &[]).unwrap(), 0.6));
        }
    }

    #[test]
    fn delta_irate_idelta() {
        let foo = load(5 * M, &[0., 50., 100., 150., 200.].map(Some));
        let bar = load(5 * M, &[200., 150., 100., 50., 0.].map(Some));
        assert_eq!(eval("delta", &foo, 20 * M, 20 * M, &[]), Some(200.0));
        assert_eq!(eval("delta", &bar, 20 * M, 20 * M, &[]), Some(-200.0));
        let f = load(5 * M, &series(0.0, 10.0, 10));
        assert!(close(
            eval("irate", &f, 50 * M, 50 * M, &[]).unwrap(),
            0.03333333333333333
        ));
        let mut b = series(0.0, 10.0, 5);
        b.extend(series(0.0, 10.0, 5));
        let b = load(5 * M, &b);
        assert_eq!(eval("irate", &b, 30 * M, 50 * M, &[]), Some(0.0));
        // http_requests_nan 1 NaN NaN 5 11, irate[15m1s] at 0..20m.
        let nan = load(5 * M, &[1., f64::NAN, f64::NAN, 5., 11.].map(Some));
        assert_eq!(eval("irate", &nan, 0, 15 * M + 1000, &[]), None);
        for t in [5, 10, 15] {
            assert!(eval("irate", &nan, t * M, 15 * M + 1000, &[])
                .unwrap()
                .is_nan());
            assert!(eval("idelta", &nan, t * M, 15 * M + 1000, &[])
                .unwrap()
                .is_nan());
        }
        assert!(close(
            eval("irate", &nan, 20 * M, 15 * M + 1000, &[]).unwrap(),
            0.02
        ));
        assert_eq!(eval("idelta", &nan, 20 * M, 15 * M + 1000, &[]), Some(6.0));
        let g = load(5 * M, &[0., 50., 100., 50.].map(Some));
        assert_eq!(eval("idelta", &g, 20 * M, 20 * M, &[]), Some(-50.0));
    }

    #[test]
    fn deriv_and_predict_linear() {
        let mut mid = series(0.0, 10.0, 4);
        mid.extend(series(0.0, 10.0, 5));
        let mid = load(5 * M, &mid);
        assert_eq!(
            eval("deriv", &mid, 50 * M, 100 * M, &[]),
            Some(0.010606060606060607)
        );
        let total = load(5 * M, &series(0.0, 80.0, 10));
        assert!(close(
            eval("deriv", &total, 50 * M, 50 * M, &[]).unwrap(),
            0.26666666666666666
        ));
        assert!(close(
            eval("predict_linear", &mid, 50 * M, 50 * M, &[3600.0]).unwrap(),
            70.0
        ));
        // `[55m] @ 3000` evaluated at 10m: window ends at 3000s, prediction relative to 600s.
        let w = |at_eval: i64| {
            let samples: Vec<Point> = mid
                .iter()
                .copied()
                .filter(|p| p.0 > 3_000_000 - 55 * M && p.0 <= 3_000_000)
                .collect();
            let win = Window {
                samples: &samples,
                start: 3_000_000 - 55 * M,
                end: 3_000_000,
            };
            predict_linear(&win, &[3600.0, at_eval as f64], &mut Vec::new()).unwrap()
        };
        assert!(close(w(50 * M), 76.81818181818181));
        assert!(close(w(10 * M), 51.36363636363637));
        assert!(close(w(70 * M), 89.54545454545455));
        let mut inf = vec![Some(f64::NEG_INFINITY)];
        inf.extend(series(0.0, 80.0, 10));
        inf.push(Some(f64::INFINITY));
        let inf = load(5 * M, &inf);
        assert!(eval("deriv", &inf, 100 * M, 100 * M, &[]).unwrap().is_nan());
        assert!(eval("predict_linear", &inf, 100 * M, 100 * M, &[6000.0])
            .unwrap()
            .is_nan());
        let one = load(5 * M, &[Some(1.0)]);
        assert_eq!(eval("deriv", &one, 0, 5 * M, &[]), None);
    }

    #[test]
    fn double_exponential_smoothing_from_functions_test() {
        let s = 10_000;
        let mut a = series(0.0, 10.0, 1000);
        a.extend(series(100.0, 30.0, 1000));
        let a = load(s, &a);
        let r = eval(
            "double_exponential_smoothing",
            &a,
            8000 * 1000,
            M,
            &[0.01, 0.1],
        );
        assert!(close(r.unwrap(), 8000.0));
        let neg = load(s, &series(0.0, -20.0, 1000));
        let r = eval(
            "double_exponential_smoothing",
            &neg,
            8000 * 1000,
            M,
            &[0.01, 0.1],
        );
        assert!(close(r.unwrap(), -16000.0));
        assert_eq!(
            double_exponential_smoothing_error(1.0, 0.5).unwrap(),
            "invalid smoothing factor. Expected: 0 < sf < 1, got: 1.000000"
        );
        assert!(double_exponential_smoothing_error(0.5, 0.0).is_some());
        assert!(double_exponential_smoothing_error(0.5, 0.5).is_none());
    }

    #[test]
    fn changes_and_resets_from_functions_test() {
        let foo = load(5 * M, &[1., 2., 3., 0., 1., 0., 0., 1., 2., 0.].map(Some));
        let bar = load(5 * M, &[1., 2., 3., 4., 5., 1., 2., 3., 4., 5.].map(Some));
        let at = 50 * M;
        assert_eq!(eval("resets", &foo, at, 5 * M, &[]), None);
        assert_eq!(eval("resets", &foo, at, 10 * M, &[]), Some(0.0));
        assert_eq!(eval("resets", &foo, at, 20 * M, &[]), Some(1.0));
        assert_eq!(eval("resets", &foo, at, 32 * M, &[]), Some(2.0));
        assert_eq!(eval("resets", &bar, at, 32 * M, &[]), Some(1.0));
        assert_eq!(eval("resets", &foo, at, 50 * M, &[]), Some(3.0));
        assert_eq!(eval("changes", &foo, at, 6 * M, &[]), Some(0.0));
        assert_eq!(eval("changes", &foo, at, 20 * M, &[]), Some(2.0));
        assert_eq!(eval("changes", &bar, at, 30 * M, &[]), Some(4.0));
        assert_eq!(eval("changes", &foo, at, 50 * M, &[]), Some(7.0));
        assert_eq!(eval("changes", &bar, at, 50 * M, &[]), Some(8.0));
        let nan = load(5 * M, &[f64::NAN; 3].map(Some));
        let c = load(5 * M, &[0.0, f64::NAN, 0.0].map(Some));
        assert_eq!(eval("changes", &nan, 15 * M, 20 * M, &[]), Some(0.0));
        assert_eq!(eval("changes", &c, 15 * M, 20 * M, &[]), Some(2.0));
    }

    fn avg_of(v: &[f64]) -> f64 {
        let s: Vec<Point> = v.iter().enumerate().map(|(i, v)| (i as i64, *v)).collect();
        avg(&s)
    }

    fn sum_of(v: &[f64]) -> f64 {
        let s: Vec<Point> = v.iter().enumerate().map(|(i, v)| (i as i64, *v)).collect();
        sum(&s)
    }

    #[test]
    #[allow(clippy::excessive_precision)] // Literals copied from functions.test.
    fn avg_and_sum_over_time_from_functions_test() {
        let (inf, ninf, nan) = (f64::INFINITY, f64::NEG_INFINITY, f64::NAN);
        assert_eq!(avg_of(&[1., 2., 3., 4., 5.]), 3.0);
        assert_eq!(avg_of(&[1., 2., 3., 4., inf]), inf);
        assert_eq!(avg_of(&[1., 2., 3., 4., ninf]), ninf);
        assert!(avg_of(&[1., 2., 3., inf, ninf]).is_nan());
        assert_eq!(avg_of(&[inf, 0., inf]), inf);
        assert!(avg_of(&[inf, inf, inf, ninf]).is_nan());
        assert_eq!(avg_of(&[1., 2., 3., ninf, ninf]), ninf);
        assert_eq!(avg_of(&[ninf, 0., ninf]), ninf);
        assert!(avg_of(&[ninf, ninf, ninf, inf]).is_nan());
        assert!(avg_of(&[1., 2., ninf, ninf, inf]).is_nan());
        let big = 9.988465674311579e307;
        assert_eq!(avg_of(&[big, big]), big);
        assert_eq!(avg_of(&[-big, -big, -big]), -big);
        assert_eq!(avg_of(&[-big, big]), 0.0);
        assert_eq!(sum_of(&[big, big]) / 2.0, inf);
        assert!(avg_of(&[1., 2., 3., nan]).is_nan());
        assert_eq!(avg_of(&[1., 2., 3.]), 2.0);
        assert_eq!(sum_of(&[1., 1e100, 1., -1e100]), 2.0);
        assert_eq!(avg_of(&[1., 1e100, 1., -1e100]), 0.5);
        assert!(close(
            avg_of(&[1e10, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6]),
            1.6666666666666675e9
        ));
        assert!(close(
            avg_of(&[1.78264e50, 0.76342771, 1.9592258, 2.258E+220, 7.69805412, 458.90154]),
            3.76333333333333E+219
        ));
        assert!(close(
            avg_of(&[
                -1.78264E+215,
                0.76342771,
                1.9592258,
                2.258E+220,
                7.69805412,
                1.78264E+215,
                -458.90154
            ]),
            3.225714285714286e+219
        ));
        assert!(close(
            avg_of(&[
                -1.78264E+219,
                0.76342771,
                1.9592258,
                2.3757689E+217,
                -2.3757689E+217,
                2.258E+220,
                7.69805412,
                1.78264E+219,
                -458.90154
            ]),
            2.5088888888888888e+219
        ));
        assert_eq!(
            avg_of(&[
                -2.258E+220,
                -1.78264E+219,
                0.76342771,
                1.9592258,
                2.3757689E+217,
                -2.3757689E+217,
                2.258E+220,
                7.69805412,
                1.78264E+219,
                -458.90154
            ]),
            0.0
        );
        // Exact equality the test relies on: avg_over_time(52 x 13) == 52.
        for n in [10, 11, 12, 13] {
            assert_eq!(avg_of(&vec![52.0; n]), 52.0);
        }
        // Dense samples: sum_over_time(1 x 1001) == 1001.
        assert_eq!(sum_of(&vec![1.0; 1001]), 1001.0);
    }

    #[test]
    fn variance_mad_extremes_quantile() {
        let m = load(10_000, &[0., 8., 8., 2., 3.].map(Some));
        let r = eval("stdvar_over_time", &m, M, 2 * M, &[]).unwrap();
        assert!(close(r, 10.56));
        let r = eval("stddev_over_time", &m, M, 2 * M, &[]).unwrap();
        assert!((r - 3.249615).abs() < 1e-6);
        let c = load(10_000, &[1.5990505637277868; 3].map(Some));
        assert_eq!(eval("stdvar_over_time", &c, 55_000, M, &[]), Some(0.0));
        let mad_s = load(10_000, &[4., 6., 2., 1., 999., 1., 2.].map(Some));
        assert_eq!(
            eval("mad_over_time", &mad_s, 70_000, 70_000, &[]),
            Some(1.0)
        );
        let odd = load(10_000, &[1., 2., 3., 4., 5.].map(Some));
        assert_eq!(eval("mad_over_time", &odd, 40_000, 50_000, &[]), Some(1.0));
        let nan = load(10_000, &[1., 2., f64::NAN, 4.].map(Some));
        assert!(eval("mad_over_time", &nan, 30_000, 40_000, &[])
            .unwrap()
            .is_nan());
        // load 10s53ms: metric 1 2 3 0 5 6 2 1 4
        let m = load(10_053, &[1., 2., 3., 0., 5., 6., 2., 1., 4.].map(Some));
        assert_eq!(
            eval("ts_of_min_over_time", &m, 90_000, 90_000, &[]),
            Some(30.159)
        );
        assert_eq!(
            eval("ts_of_max_over_time", &m, 90_000, 90_000, &[]),
            Some(50.265)
        );
        assert_eq!(eval("min_over_time", &m, 90_000, 90_000, &[]), Some(0.0));
        assert_eq!(eval("max_over_time", &m, 90_000, 90_000, &[]), Some(6.0));
        let l = load(10_053, &[Some(1.), Some(2.), Some(3.), None, None]);
        assert_eq!(
            eval("ts_of_last_over_time", &l, 95_000, 90_000, &[]),
            Some(20.106)
        );
        let f = load(10_053, &[None, None, Some(1.), Some(2.), Some(3.)]);
        assert_eq!(
            eval("ts_of_first_over_time", &f, 95_000, 90_000, &[]),
            Some(20.106)
        );
        assert_eq!(eval("ts_of_first_over_time", &f, 15_000, 90_000, &[]), None);
        // NaN handling of min/max: a NaN start is replaced, a later NaN is not taken.
        let n = load(1000, &[f64::NAN, 1.0, f64::NAN].map(Some));
        assert_eq!(eval("max_over_time", &n, 3000, 5000, &[]), Some(1.0));
        let uneven = load(10_000, &[0., 1., 4.].map(Some));
        assert!(close(
            eval("quantile_over_time", &uneven, M, 2 * M, &[0.8]).unwrap(),
            2.8
        ));
        let mut notes = Vec::new();
        let w = Window {
            samples: &uneven,
            start: 0,
            end: M,
        };
        let r = quantile_over_time(&w, &[2.0], &mut notes);
        assert_eq!(r, Some(f64::INFINITY));
        assert_eq!(
            notes,
            vec![Note {
                kind: NoteKind::Warn,
                msg: "quantile value should be between 0 and 1, got 2".into(),
                arg: 0
            }]
        );
    }

    #[test]
    fn empty_windows_give_nothing() {
        let w = Window {
            samples: &[],
            start: 0,
            end: 1000,
        };
        for name in [
            "rate",
            "avg_over_time",
            "sum_over_time",
            "count_over_time",
            "min_over_time",
            "last_over_time",
            "stddev_over_time",
            "mad_over_time",
            "changes",
            "resets",
            "present_over_time",
            "quantile_over_time",
            "ts_of_max_over_time",
        ] {
            assert_eq!(
                kernel(name).unwrap()(&w, &[0.5], &mut Vec::new()),
                None,
                "{name}"
            );
        }
    }

    fn adversarial() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::from_bits(0x7ff0_0000_0000_0002)),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(f64::MIN_POSITIVE / 2.0),
            Just(f64::MAX),
        ]
    }

    proptest! {
        #[test]
        fn kernels_never_panic(
            vals in proptest::collection::vec(adversarial(), 0..12),
            gaps in proptest::collection::vec(0i64..5000, 12),
            params in proptest::collection::vec(adversarial(), 0..3),
        ) {
            let mut t = 1;
            let samples: Vec<Point> = vals
                .iter()
                .zip(&gaps)
                .map(|(v, g)| { t += g; (t, *v) })
                .collect();
            let w = Window { samples: &samples, start: 0, end: t + 1 };
            for name in [
                "rate", "increase", "delta", "irate", "idelta", "deriv", "predict_linear",
                "double_exponential_smoothing", "changes", "resets", "avg_over_time",
                "sum_over_time", "count_over_time", "min_over_time", "max_over_time",
                "ts_of_min_over_time", "ts_of_max_over_time", "ts_of_first_over_time",
                "ts_of_last_over_time", "first_over_time", "last_over_time",
                "present_over_time", "stddev_over_time", "stdvar_over_time",
                "quantile_over_time", "mad_over_time",
            ] {
                let r = kernel(name).unwrap()(&w, &params, &mut Vec::new());
                if samples.is_empty() {
                    prop_assert!(r.is_none(), "{} gave a value for no samples", name);
                }
            }
        }

        #[test]
        fn avg_of_finite_is_within_bounds(vals in proptest::collection::vec(-1e300f64..1e300, 1..30)) {
            let a = avg_of(&vals);
            let min = vals.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let slack = (max.abs().max(min.abs())) * 1e-12;
            prop_assert!(a >= min - slack && a <= max + slack, "{} not in [{}, {}]", a, min, max);
        }
    }
}
