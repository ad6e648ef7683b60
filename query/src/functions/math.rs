//! Per-value functions: `abs`, `round`, `clamp`, trigonometry, the calendar functions, ...
//!
//! Each kernel maps one float with the step's scalar parameters, as Prometheus's
//! `simpleFloatFunc` and friends do. Go's `math.Max`/`math.Min` differ from Rust's
//! `f64::max`/`min` (Go propagates NaN unless the other side is the matching infinity), so
//! `clamp*` use [`go_max`]/[`go_min`].

/// Per-float function with its scalar parameters (already evaluated for this step); None =
/// drop this element.
pub(crate) type MathKernel = fn(f64, &[f64]) -> Option<f64>;

pub(crate) fn kernel(name: &str) -> Option<MathKernel> {
    let k: MathKernel = match name {
        "abs" => |v, _| Some(v.abs()),
        "ceil" => |v, _| Some(v.ceil()),
        "floor" => |v, _| Some(v.floor()),
        "exp" => |v, _| Some(v.exp()),
        "ln" => |v, _| Some(v.ln()),
        "log2" => |v, _| Some(v.log2()),
        "log10" => |v, _| Some(v.log10()),
        "sqrt" => |v, _| Some(v.sqrt()),
        "sgn" => |v, _| Some(sgn(v)),
        "round" => round,
        "clamp" => clamp,
        "clamp_min" => |v, p| Some(go_max(param(p, 0), go_min(f64::INFINITY, v))),
        "clamp_max" => |v, p| Some(go_max(f64::NEG_INFINITY, go_min(param(p, 0), v))),
        "deg" => |v, _| Some(v * 180.0 / std::f64::consts::PI),
        "rad" => |v, _| Some(v * std::f64::consts::PI / 180.0),
        "sin" => |v, _| Some(v.sin()),
        "cos" => |v, _| Some(v.cos()),
        "tan" => |v, _| Some(v.tan()),
        "asin" => |v, _| Some(v.asin()),
        "acos" => |v, _| Some(v.acos()),
        "atan" => |v, _| Some(v.atan()),
        "sinh" => |v, _| Some(v.sinh()),
        "cosh" => |v, _| Some(v.cosh()),
        "tanh" => |v, _| Some(v.tanh()),
        "asinh" => |v, _| Some(v.asinh()),
        "acosh" => |v, _| Some(v.acosh()),
        "atanh" => |v, _| Some(v.atanh()),
        "day_of_month" => |v, _| Some(f64::from(civil(v).day)),
        "day_of_week" => |v, _| Some(f64::from(civil(v).weekday)),
        "day_of_year" => |v, _| Some(f64::from(civil(v).yday)),
        "days_in_month" => |v, _| {
            let c = civil(v);
            Some(f64::from(days_in_month(c.year, c.month)))
        },
        "hour" => |v, _| Some(f64::from(civil(v).hour)),
        "minute" => |v, _| Some(f64::from(civil(v).minute)),
        "month" => |v, _| Some(f64::from(civil(v).month)),
        "year" => |v, _| Some(civil(v).year as f64),
        _ => return None,
    };
    Some(k)
}

/// A missing parameter is a bug in the caller (the parser checks arity); NaN keeps the
/// kernel total instead of panicking in the query path.
fn param(p: &[f64], i: usize) -> f64 {
    p.get(i).copied().unwrap_or(f64::NAN)
}

fn sgn(v: f64) -> f64 {
    if v < 0.0 {
        -1.0
    } else if v > 0.0 {
        1.0
    } else {
        v // 0, -0 and NaN stay as they are.
    }
}

/// `round(v, to_nearest)`: ties round up; Prometheus divides by the inverse because that
/// gives fewer floating-point surprises (`round(x, 0.1)`).
fn round(v: f64, p: &[f64]) -> Option<f64> {
    let to_nearest = p.first().copied().unwrap_or(1.0);
    let inv = 1.0 / to_nearest;
    Some((v * inv + 0.5).floor() / inv)
}

/// `clamp(v, min, max)`: when `max < min` Prometheus returns an empty vector.
fn clamp(v: f64, p: &[f64]) -> Option<f64> {
    let (lo, hi) = (param(p, 0), param(p, 1));
    if hi < lo {
        return None;
    }
    Some(go_max(lo, go_min(hi, v)))
}

/// Go's `math.Max`: +Inf wins over NaN, then NaN wins, and +0 beats -0.
pub(crate) fn go_max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        f64::INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && x == y {
        if x.is_sign_negative() {
            y
        } else {
            x
        }
    } else if x > y {
        x
    } else {
        y
    }
}

/// Go's `math.Min`: -Inf wins over NaN, then NaN wins, and -0 beats +0.
pub(crate) fn go_min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && x == y {
        if x.is_sign_negative() {
            x
        } else {
            y
        }
    } else if x < y {
        x
    } else {
        y
    }
}

/// Calendar fields of a Unix time in UTC.
#[derive(Debug, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    yday: u32,
    /// Sunday = 0.
    weekday: u32,
    hour: u32,
    minute: u32,
}

/// Go's `int64(f)` on amd64 (`CVTTSD2SQ`): truncation toward zero, and the "integer
/// indefinite" value `i64::MIN` for NaN, ±Inf and anything out of range. Prometheus's date
/// functions do `time.Unix(int64(v), 0)`.
fn go_f64_to_i64(v: f64) -> i64 {
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&v) {
        i64::MIN
    } else {
        v as i64
    }
}

/// The UTC calendar fields of `v` seconds since the epoch exactly as Go's `time` package
/// (1.19–1.22, which Prometheus 2.x/3.x release builds use) computes them: seconds are moved
/// to Go's "absolute" epoch with wrapping 64-bit arithmetic, then split into 400/100/4/1-year
/// cycles. For representable times this is the proleptic Gregorian calendar; for NaN/±Inf
/// (`i64::MIN` seconds) it reproduces Go's wrapped results (e.g. `hour(vector(NaN))` = 15),
/// which the differential test against Prometheus checks.
fn civil(v: f64) -> Civil {
    const SECS_PER_DAY: u64 = 86_400;
    // unixToInternal + internalToAbsolute in Go's time.go.
    const UNIX_TO_ABSOLUTE: i64 = 62_135_596_800 + 9_223_371_966_579_724_800;
    const ABSOLUTE_ZERO_YEAR: i64 = -292_277_022_399;
    const DAYS_PER_400: u64 = 365 * 400 + 97;
    const DAYS_PER_100: u64 = 365 * 100 + 24;
    const DAYS_PER_4: u64 = 365 * 4 + 1;
    const DAYS_BEFORE: [u32; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];
    let abs = go_f64_to_i64(v).wrapping_add(UNIX_TO_ABSOLUTE) as u64;
    let mut d = abs / SECS_PER_DAY;
    let mut n = d / DAYS_PER_400;
    let mut y = 400 * n;
    d -= DAYS_PER_400 * n;
    n = d / DAYS_PER_100;
    n -= n >> 2;
    y += 100 * n;
    d -= DAYS_PER_100 * n;
    n = d / DAYS_PER_4;
    y += 4 * n;
    d -= DAYS_PER_4 * n;
    n = d / 365;
    n -= n >> 2;
    y += n;
    d -= 365 * n;
    let year = (y as i64).wrapping_add(ABSOLUTE_ZERO_YEAR);
    let yday = d as u32; // 0-based
    let mut day = yday;
    let (month, day) = 'md: {
        if is_leap(i128::from(year)) {
            if day > 31 + 29 - 1 {
                day -= 1;
            } else if day == 31 + 29 - 1 {
                break 'md (2, 29);
            }
        }
        let mut month = day / 31;
        let end = DAYS_BEFORE[month as usize + 1];
        let begin = if day >= end {
            month += 1;
            end
        } else {
            DAYS_BEFORE[month as usize]
        };
        (month + 1, day - begin + 1)
    };
    let sod = abs % SECS_PER_DAY;
    // Go's absWeekday: the absolute epoch starts on a Monday.
    let weekday = ((abs + SECS_PER_DAY) % (7 * SECS_PER_DAY) / SECS_PER_DAY) as u32;
    Civil {
        year,
        month,
        day,
        yday: yday + 1,
        weekday,
        hour: (sod / 3_600) as u32,
        minute: (sod % 3_600 / 60) as u32,
    }
}

/// `time.Unix(secs, 0).UTC().Format(time.RFC3339)` for years 0..=9999
/// (`2006-01-02T15:04:05Z`).
pub(crate) fn rfc3339_utc(secs: i64) -> String {
    let c = civil(secs as f64);
    let sod = secs.rem_euclid(60);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, sod
    )
}

fn is_leap(y: i128) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(i128::from(year)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn k(name: &str, v: f64, p: &[f64]) -> Option<f64> {
        kernel(name).unwrap_or_else(|| panic!("no kernel {name}"))(v, p)
    }

    #[test]
    fn unknown_name() {
        assert!(kernel("rate").is_none());
    }

    #[test]
    fn calendar_fields_from_functions_test() {
        // functions.test, vector(1136239445) = 2006-01-02 22:04:05 Monday.
        let t = 1136239445.0;
        assert_eq!(k("year", t, &[]), Some(2006.0));
        assert_eq!(k("month", t, &[]), Some(1.0));
        assert_eq!(k("day_of_month", t, &[]), Some(2.0));
        assert_eq!(k("day_of_year", t, &[]), Some(2.0));
        assert_eq!(k("day_of_week", t, &[]), Some(1.0));
        assert_eq!(k("hour", t, &[]), Some(22.0));
        assert_eq!(k("minute", t, &[]), Some(4.0));
        // Epoch: Thursday, 1970-01-01.
        assert_eq!(k("day_of_week", 0.0, &[]), Some(4.0));
        // Go's wrapped results for NaN/±Inf, as Prometheus 2.42 (amd64) returns them.
        assert_eq!(k("minute", f64::NAN, &[]), Some(30.0));
        assert_eq!(k("hour", f64::NAN, &[]), Some(15.0));
        assert_eq!(k("year", f64::NAN, &[]), Some(292277026596.0));
        assert_eq!(k("day_of_month", f64::INFINITY, &[]), Some(4.0));
        assert_eq!(k("year", 0.0, &[]), Some(1970.0));
        assert_eq!(k("year", 1230767999.0, &[]), Some(2008.0));
        assert_eq!(k("year", 1230768000.0, &[]), Some(2009.0));
        // 2016-02-29 23:59:59 and 2016-03-01 00:00:00.
        assert_eq!(k("month", 1456790399.0, &[]), Some(2.0));
        assert_eq!(k("day_of_month", 1456790399.0, &[]), Some(29.0));
        assert_eq!(k("month", 1456790400.0, &[]), Some(3.0));
        assert_eq!(k("day_of_month", 1456790400.0, &[]), Some(1.0));
        assert_eq!(k("day_of_year", 1483191420.0, &[]), Some(366.0));
        assert_eq!(k("day_of_year", 1672493820.0, &[]), Some(365.0));
        assert_eq!(k("days_in_month", 1454284800.0, &[]), Some(29.0));
        assert_eq!(k("days_in_month", 1485907200.0, &[]), Some(28.0));
        // Fractional seconds truncate toward zero, as Go's int64 conversion does.
        assert_eq!(k("minute", 59.9, &[]), Some(0.0));
        // Before the epoch: 1969-12-31 23:59:59 is a Wednesday.
        assert_eq!(k("year", -1.0, &[]), Some(1969.0));
        assert_eq!(k("hour", -1.0, &[]), Some(23.0));
        assert_eq!(k("day_of_week", -1.0, &[]), Some(3.0));
    }

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1136239445), "2006-01-02T22:04:05Z");
        assert_eq!(rfc3339_utc(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn round_and_clamp() {
        assert_eq!(k("round", 2.5, &[1.0]), Some(3.0));
        assert_eq!(k("round", -2.5, &[1.0]), Some(-2.0));
        assert_eq!(k("round", 5.16, &[0.1]), Some(5.2));
        assert_eq!(k("round", 17.0, &[5.0]), Some(15.0));
        assert_eq!(k("round", 2.5, &[]), Some(3.0));
        assert_eq!(k("clamp", 5.0, &[0.0, 1.0]), Some(1.0));
        assert_eq!(k("clamp", -5.0, &[0.0, 1.0]), Some(0.0));
        assert_eq!(k("clamp", 0.5, &[1.0, 0.0]), None);
        assert!(k("clamp", f64::NAN, &[0.0, 1.0]).unwrap().is_nan());
        assert_eq!(k("clamp_min", -5.0, &[0.0]), Some(0.0));
        assert_eq!(k("clamp_max", 5.0, &[0.0]), Some(0.0));
        // Go's Max/Min: NaN bound poisons the value.
        assert!(k("clamp_max", 5.0, &[f64::NAN]).unwrap().is_nan());
        assert!(k("clamp_min", 5.0, &[f64::NAN]).unwrap().is_nan());
        assert!(k("clamp", 5.0, &[f64::NAN, 1.0]).unwrap().is_nan());
    }

    #[test]
    fn go_min_max_special_cases() {
        assert_eq!(go_max(f64::NAN, f64::INFINITY), f64::INFINITY);
        assert_eq!(go_min(f64::NAN, f64::NEG_INFINITY), f64::NEG_INFINITY);
        assert!(go_max(f64::NAN, 1.0).is_nan());
        assert!(go_max(-0.0, 0.0).is_sign_positive());
        assert!(go_min(0.0, -0.0).is_sign_negative());
    }

    #[test]
    fn sgn_and_trig() {
        assert_eq!(k("sgn", -3.0, &[]), Some(-1.0));
        assert_eq!(k("sgn", 3.0, &[]), Some(1.0));
        assert!(k("sgn", -0.0, &[]).unwrap().is_sign_negative());
        assert!(k("sgn", f64::NAN, &[]).unwrap().is_nan());
        // trig_functions.test
        assert_eq!(k("deg", std::f64::consts::PI, &[]), Some(180.0));
        assert_eq!(k("rad", 180.0, &[]), Some(std::f64::consts::PI));
        assert!(k("asin", 2.0, &[]).unwrap().is_nan());
        assert_eq!(k("atanh", 1.0, &[]), Some(f64::INFINITY));
        assert_eq!(k("ln", 0.0, &[]), Some(f64::NEG_INFINITY));
        assert!(k("sqrt", -1.0, &[]).unwrap().is_nan());
    }

    #[test]
    fn non_finite_times_do_not_panic() {
        // Go turns NaN/±Inf into i64::MIN seconds; we compute that instant's calendar.
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300, -1e300] {
            for name in [
                "year",
                "month",
                "day_of_month",
                "days_in_month",
                "day_of_week",
            ] {
                assert!(k(name, v, &[]).unwrap().is_finite());
            }
        }
    }

    proptest! {
        #[test]
        fn calendar_is_consistent(secs in -100_000_000_000i64..100_000_000_000) {
            let c = civil(secs as f64);
            prop_assert!((1..=12).contains(&c.month));
            prop_assert!(c.day >= 1 && c.day <= days_in_month(c.year, c.month));
            prop_assert!(c.yday >= 1 && c.yday <= 366);
            prop_assert!(c.weekday < 7 && c.hour < 24 && c.minute < 60);
            // The next day advances the weekday by one.
            let n = civil((secs + 86_400) as f64);
            prop_assert_eq!(n.weekday, (c.weekday + 1) % 7);
        }
    }
}
