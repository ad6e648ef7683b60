//! Numerics shared by aggregations and function kernels: Prometheus's quantile, Kahan
//! summation (`util/kahansum`), the Welford variance accumulator, and Go's float formatting
//! where it leaks into annotation texts and labels.

use std::cmp::Ordering;

/// `kahansum.Inc`: adds `inc` to the running `sum` with compensation `c` (Neumaier's
/// variant), returning the new `(sum, c)`. When the sum overflows to ±Inf the compensation is
/// reset to 0 so that `sum + c` stays ±Inf instead of becoming NaN. The final value is
/// `sum + c`.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Orders NaN before every number, as Go's `vectorByValueHeap.Less` intends (NaN sorts to
/// the bottom); numbers ascend. A total order, so sorting never panics.
pub(crate) fn nan_first_cmp(a: &f64, b: &f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

/// Prometheus's `quantile(q, values)`, used by the `quantile` aggregation,
/// `quantile_over_time` and `mad_over_time`. Sorts `values` (NaNs first) and interpolates
/// linearly between the two closest ranks (`rank = q * (n - 1)`).
///
/// Special cases, in Prometheus's order: no values or NaN `q` → NaN; `q < 0` → -Inf;
/// `q > 1` → +Inf. The caller raises the "quantile value should be between 0 and 1"
/// annotation.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_unstable_by(nan_first_cmp);
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Welford's online mean/variance with Kahan-compensated mean and sum of squares, exactly as
/// `stddev_over_time`/`stdvar_over_time` compute it (`varianceOverTime` in functions.go).
/// The `stddev`/`stdvar` aggregations can use it as well.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Variance {
    count: f64,
    mean: f64,
    c_mean: f64,
    aux: f64,
    c_aux: f64,
}

impl Variance {
    pub(crate) fn push(&mut self, v: f64) {
        self.count += 1.0;
        let delta = v - (self.mean + self.c_mean);
        (self.mean, self.c_mean) = kahan_inc(delta / self.count, self.mean, self.c_mean);
        let d2 = delta * (v - (self.mean + self.c_mean));
        (self.aux, self.c_aux) = kahan_inc(d2, self.aux, self.c_aux);
    }

    /// Population variance; NaN when nothing was pushed.
    pub(crate) fn variance(&self) -> f64 {
        (self.aux + self.c_aux) / self.count
    }

    pub(crate) fn stddev(&self) -> f64 {
        self.variance().sqrt()
    }
}

/// Go's `fmt` `%g` for a float64: the shortest representation that round-trips, in
/// exponent form when the decimal exponent is < -4 or >= 6 (`1e+06`, `1.5e-05`, `123456`,
/// `NaN`, `+Inf`, `-Inf`). Used in annotation texts.
pub(crate) fn format_go_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    format_shortest(f, 6)
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` with the exponent threshold `eprec`
/// (6 for `%g` and `'g'`).
fn format_shortest(f: f64, eprec: i32) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rust's `{:e}` gives the shortest round-tripping digits: "-1.2345e-7".
    let s = format!("{f:e}");
    let (mant, exp) = s.split_once('e').expect("BUG: {:e} always has an exponent");
    let exp: i32 = exp.parse().expect("BUG: {:e} exponent is an integer");
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// `labels.FormatOpenMetricsFloat`: how `histogram_quantiles` writes a quantile into its
/// label: `0.0`, `1.0`, `-1.0`, `NaN`, `+Inf`, `-Inf`, otherwise Go's `'g'` format with
/// `.0` appended when it has neither a dot nor an exponent (`2.0`, `0.25`, `1e+06`).
pub(crate) fn format_openmetrics_float(f: f64) -> String {
    if f == 1.0 {
        return "1.0".to_string();
    }
    if f == 0.0 {
        return "0.0".to_string();
    }
    if f == -1.0 {
        return "-1.0".to_string();
    }
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let mut s = format_shortest(f, 6);
    if !s.contains(['e', '.']) {
        s.push_str(".0");
    }
    s
}

/// The annotation Prometheus raises for a quantile outside `[0, 1]` (or NaN).
pub(crate) fn invalid_quantile_msg(q: f64) -> String {
    format!(
        "quantile value should be between 0 and 1, got {}",
        format_go_g(q)
    )
}

/// Whether `q` triggers [`invalid_quantile_msg`].
pub(crate) fn quantile_is_invalid(q: f64) -> bool {
    q.is_nan() || !(0.0..=1.0).contains(&q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kahan_recovers_lost_low_bits() {
        // 1e100 + 1 - 1e100 is 0 in naive summation.
        let (mut s, mut c) = (0.0, 0.0);
        for v in [1e100, 1.0, -1e100] {
            (s, c) = kahan_inc(v, s, c);
        }
        assert_eq!(s + c, 1.0);
    }

    #[test]
    fn kahan_overflow_resets_compensation() {
        let (s, c) = kahan_inc(f64::MAX, f64::MAX, 3.0);
        assert_eq!(s, f64::INFINITY);
        assert_eq!(c, 0.0);
        assert_eq!(s + c, f64::INFINITY);
    }

    #[test]
    fn quantile_matches_quantile_over_time_tests() {
        // functions.test "Tests for quantile_over_time": data 0 1 2 3 (and 0 1 2 ...).
        let data = [0.0, 8.0, 1.0, 8.0, 2.0];
        let cases = [
            (0.0, 0.0),
            (0.5, 2.0),
            (0.75, 8.0),
            (1.0, 8.0),
            (0.8, 8.0),
            (-1.0, f64::NEG_INFINITY),
            (2.0, f64::INFINITY),
        ];
        for (q, want) in cases {
            let mut v = data.to_vec();
            assert_eq!(quantile(q, &mut v), want, "q={q}");
        }
        let mut v = vec![0.0, 1.0, 2.0, 3.0];
        assert_eq!(quantile(0.5, &mut v), 1.5);
        assert_eq!(quantile(0.8, &mut v), 2.4000000000000004);
        assert!(quantile(f64::NAN, &mut v).is_nan());
        assert!(quantile(0.5, &mut []).is_nan());
    }

    #[test]
    fn quantile_sorts_nan_first() {
        let mut v = vec![3.0, f64::NAN, 1.0];
        assert!(quantile(0.0, &mut v).is_nan());
        assert_eq!(quantile(1.0, &mut v), 3.0);
    }

    #[test]
    fn variance_of_constant_and_simple() {
        let mut v = Variance::default();
        for x in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            v.push(x);
        }
        assert_eq!(v.variance(), 4.0);
        assert_eq!(v.stddev(), 2.0);
        assert!(Variance::default().variance().is_nan());
    }

    #[test]
    fn go_g_format() {
        for (f, s) in [
            (0.0, "0"),
            (-0.1, "-0.1"),
            (1.01, "1.01"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-300, "1.5e-300"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(format_go_g(f), s, "{f}");
        }
        assert_eq!(
            invalid_quantile_msg(-0.1),
            "quantile value should be between 0 and 1, got -0.1"
        );
    }

    #[test]
    fn openmetrics_float_format() {
        for (f, s) in [
            (0.0, "0.0"),
            (1.0, "1.0"),
            (-1.0, "-1.0"),
            (0.25, "0.25"),
            (2.0, "2.0"),
            (-0.1, "-0.1"),
            (1e6, "1e+06"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(format_openmetrics_float(f), s);
        }
    }

    proptest! {
        #[test]
        fn quantile_is_monotone_in_q(
            mut vals in proptest::collection::vec(-1e6f64..1e6, 1..40),
            a in 0.0f64..=1.0,
            b in 0.0f64..=1.0,
        ) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let ql = quantile(lo, &mut vals);
            let qh = quantile(hi, &mut vals);
            // Allow one rounding step of the interpolation.
            prop_assert!(ql <= qh + qh.abs() * 1e-12 + 1e-9, "{ql} > {qh}");
            let min = vals.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(ql >= min - 1e-9 && qh <= max + 1e-9);
        }

        #[test]
        fn go_g_round_trips(f in any::<f64>()) {
            let s = format_go_g(f);
            if f.is_finite() {
                prop_assert_eq!(s.parse::<f64>().unwrap(), f);
            }
        }
    }
}
