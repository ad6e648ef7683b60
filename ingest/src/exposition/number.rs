//! Sample values and timestamps as the exposition formats spell them.
//!
//! Values follow Go's `strconv.ParseFloat` as Prometheus calls it (no hex
//! floats, no `_`), so a body Prometheus accepts parses to the same bits here.
//! The common case (a short decimal, optionally with an exponent) takes an exact
//! fast path; everything else goes through `str::parse::<f64>`.

/// Powers of ten that `f64` represents exactly (10^22 is the largest).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Largest integer below which every integer is exactly representable in an `f64`.
const MAX_EXACT_MANTISSA: u64 = 1 << 53;

/// Parses a sample or exemplar value. `NaN` in any spelling becomes `f64::NAN`,
/// so input can never forge the stale-marker bit pattern.
pub(super) fn parse_value(s: &str) -> Option<f64> {
    if let Some(v) = fast_decimal(s.as_bytes()) {
        return Some(v);
    }
    slow_value(s)
}

/// Clinger's fast path: when the decimal mantissa fits in 53 bits and the power
/// of ten is at most 22, both are exact `f64`s and one IEEE multiply or divide
/// gives the correctly rounded result. Returns `None` for anything else.
fn fast_decimal(b: &[u8]) -> Option<f64> {
    let (neg, mut i) = match b.first()? {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        // Wrapping is fine: more than 19 digits is rejected below before use.
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        digits += 1;
        i += 1;
    }
    let mut exp: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            i += 1;
        }
        let frac = i - frac_start;
        digits += frac;
        exp -= frac as i64;
    }
    if digits == 0 || digits > 19 {
        return None;
    }
    if let Some(&c) = b.get(i) {
        if c | 0x20 != b'e' {
            return None;
        }
        i += 1;
        let neg_exp = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let exp_start = i;
        let mut e: i64 = 0;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() {
                return None;
            }
            // Saturate: anything this large leaves the fast path anyway.
            e = (e * 10 + i64::from(c - b'0')).min(100_000);
            i += 1;
        }
        if i == exp_start {
            return None;
        }
        exp += if neg_exp { -e } else { e };
    }
    if mantissa > MAX_EXACT_MANTISSA {
        return None;
    }
    let m = mantissa as f64;
    let v = if mantissa == 0 {
        0.0
    } else if exp == 0 {
        m
    } else if (1..=22).contains(&exp) {
        m * POW10[exp as usize]
    } else if (-22..0).contains(&exp) {
        m / POW10[(-exp) as usize]
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

fn slow_value(s: &str) -> Option<f64> {
    let unsigned = s.strip_prefix(['+', '-']);
    // Go accepts only an unsigned NaN; Rust would also take "+NaN" and "-nan".
    if unsigned.is_some_and(|u| u.eq_ignore_ascii_case("nan")) {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    if v.is_nan() {
        return Some(f64::NAN);
    }
    if v.is_infinite() {
        // Go reports overflow ("1e400") as a range error, and Prometheus rejects
        // the sample; only the spelled-out infinities are values.
        let word = unsigned.unwrap_or(s);
        if !(word.eq_ignore_ascii_case("inf") || word.eq_ignore_ascii_case("infinity")) {
            return None;
        }
    }
    Some(v)
}

/// Text-format timestamp: integer milliseconds since the epoch.
pub(super) fn parse_text_timestamp(s: &str) -> Option<i64> {
    s.parse().ok()
}

/// OpenMetrics timestamp: decimal seconds, converted to milliseconds truncated
/// toward zero (what Prometheus's `int64(ts*1000)` intends). Done in integer
/// arithmetic on the decimal digits, so `1520879607.789` is exactly
/// `1520879607789` rather than whatever `1520879607.789 * 1000.0` rounds to.
/// NaN, infinities and values outside `i64` milliseconds are rejected.
pub(super) fn parse_om_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (neg, mut i) = match b.first()? {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let mut mantissa: u64 = 0;
    let mut kept = 0usize; // significant digits held in `mantissa`
    let mut seen_digit = false;
    let mut exp: i64 = 0; // value = mantissa * 10^exp
    let mut push = |c: u8, exp: &mut i64, fractional: bool| {
        seen_digit = true;
        if mantissa == 0 && c == b'0' {
            if fractional {
                *exp -= 1;
            }
            return;
        }
        if kept < 19 {
            mantissa = mantissa * 10 + u64::from(c - b'0');
            kept += 1;
            if fractional {
                *exp -= 1;
            }
        } else if !fractional {
            // Dropped integer digits still scale the value. Dropped fraction
            // digits are below a millisecond at this magnitude (or the
            // value overflows anyway), so truncating them is exact.
            *exp += 1;
        }
    };
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        push(c, &mut exp, false);
        i += 1;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            push(c, &mut exp, true);
            i += 1;
        }
    }
    if !seen_digit {
        return None;
    }
    if let Some(&c) = b.get(i) {
        if c | 0x20 != b'e' {
            return None;
        }
        i += 1;
        let neg_exp = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let exp_start = i;
        let mut e: i64 = 0;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() {
                return None;
            }
            e = (e * 10 + i64::from(c - b'0')).min(100_000);
            i += 1;
        }
        if i == exp_start {
            return None;
        }
        exp += if neg_exp { -e } else { e };
    }
    if mantissa == 0 {
        return Some(0);
    }
    let shift = exp + 3; // seconds → milliseconds
    let ms: u64 = if shift >= 0 {
        let p = 10u64.checked_pow(u32::try_from(shift).ok()?)?;
        mantissa.checked_mul(p)?
    } else if shift >= -19 {
        mantissa / 10u64.pow((-shift) as u32)
    } else {
        0
    };
    if neg {
        // i64::MIN has no positive counterpart; one millisecond short of it is fine.
        i64::try_from(ms).ok().map(|v| -v)
    } else {
        i64::try_from(ms).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_go_parse_float() {
        for (s, want) in [
            ("0", 0.0),
            ("1", 1.0),
            ("-1.5", -1.5),
            ("+2", 2.0),
            ("1e3", 1000.0),
            ("1E-3", 0.001),
            ("7.6238e-05", 7.6238e-05),
            ("4.4046288803e+10", 4.4046288803e+10),
            ("1.7268398142239082e+09", 1.7268398142239082e+09),
            ("1.", 1.0),
            (".5", 0.5),
            ("123456789012345678901234567890", 1.2345678901234568e29),
            ("2.2250738585072014e-308", 2.2250738585072014e-308),
            ("5e-324", 5e-324),
        ] {
            assert_eq!(parse_value(s), Some(want), "{s}");
        }
        assert_eq!(
            parse_value("-0").map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
        for s in ["+Inf", "Inf", "inf", "infinity", "+Infinity"] {
            assert_eq!(parse_value(s), Some(f64::INFINITY), "{s}");
        }
        assert_eq!(parse_value("-Inf"), Some(f64::NEG_INFINITY));
        for s in ["NaN", "nan", "NAN"] {
            assert_eq!(
                parse_value(s).map(f64::to_bits),
                Some(f64::NAN.to_bits()),
                "{s}"
            );
        }
        for s in [
            "", "-", ".", "e5", "1e", "1e+", "0x10", "0x1p3", "1_000", "abc", "1.5.5", "+NaN",
            "-nan", "1e400", "-1e400", "1 ", "Inf1",
        ] {
            assert_eq!(parse_value(s), None, "{s:?}");
        }
    }

    #[test]
    fn fast_path_agrees_with_std() {
        for s in [
            "0.000135819",
            "9007199254740993",
            "9007199254740992",
            "1234567890123456789",
            "0.1",
            "0.30000000000000004",
            "1e22",
            "1e23",
            "123e-22",
            "4.9e-324",
        ] {
            let want: f64 = s.parse().unwrap();
            assert_eq!(
                parse_value(s).map(f64::to_bits),
                Some(want.to_bits()),
                "{s}"
            );
        }
    }

    #[test]
    fn text_timestamps_are_integer_milliseconds() {
        assert_eq!(
            parse_text_timestamp("1395066363000"),
            Some(1_395_066_363_000)
        );
        assert_eq!(parse_text_timestamp("-5"), Some(-5));
        assert_eq!(parse_text_timestamp("1.5"), None);
        assert_eq!(parse_text_timestamp("99999999999999999999"), None);
    }

    #[test]
    fn openmetrics_timestamps_are_seconds() {
        for (s, want) in [
            ("1520879607.789", 1_520_879_607_789),
            ("1520879607", 1_520_879_607_000),
            ("1.7268398142239082e+09", 1_726_839_814_223),
            ("1.726839814829977e+09", 1_726_839_814_829),
            ("0.0009", 0),
            ("-1.5", -1_500),
            ("-0.0019", -1),
            ("0", 0),
            ("000000000000000000000000001.5", 1_500),
            ("1.2345678901234567890123", 1_234),
            ("9223372036854775.807", i64::MAX),
            ("1e-30", 0),
        ] {
            assert_eq!(parse_om_timestamp(s), Some(want), "{s}");
        }
        for s in [
            "",
            "-",
            ".",
            "NaN",
            "+Inf",
            "1e",
            "9223372036854775.808",
            "1e100",
            "1x",
        ] {
            assert_eq!(parse_om_timestamp(s), None, "{s:?}");
        }
    }
}
