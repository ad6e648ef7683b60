//! The script language: `load`, `clear`, `eval` and their `expect` lines.
//!
//! Mirrors Prometheus's `promql/promqltest/test.go` parser: lines are trimmed, `#` lines are
//! blank, a command's block ends at the first blank line, and an eval block ends early after
//! a bare number (an expected scalar) or a legacy `expected_fail_message` /
//! `expected_fail_regexp` line.

use std::sync::LazyLock;

use regex::Regex;

use super::series::{parse_duration_ms, parse_number, parse_series_desc, SeqValue, SeriesDesc};

static PAT_LOAD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^load(?:_(with_nhcb))?\s+(.+?)$").unwrap());
static PAT_EVAL_INSTANT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$").unwrap()
});
static PAT_EVAL_RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$",
    )
    .unwrap()
});
static PAT_EXPECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$")
        .unwrap()
});
static PAT_EXPECT_RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$").unwrap()
});

/// One command of a script, with its 1-based line number.
#[derive(Debug)]
pub(crate) enum Command {
    Load(Load),
    Clear,
    Eval(Box<Eval>),
}

#[derive(Debug)]
pub(crate) struct Load {
    pub(crate) line: usize,
    pub(crate) interval_ms: i64,
    /// `load_with_nhcb`: classic histograms are also loaded as native histograms with custom
    /// buckets (which hearth's runner cannot load; see the runner).
    pub(crate) with_nhcb: bool,
    pub(crate) series: Vec<(usize, SeriesDesc)>,
    /// Lines with start timestamps (`metric@st ...`), which are not loaded.
    pub(crate) st_lines: usize,
}

/// How an annotation or error message is matched.
#[derive(Debug, Clone)]
pub(crate) enum TextMatch {
    Any,
    Exact(String),
    Regex(Regex),
}

impl TextMatch {
    pub(crate) fn matches(&self, s: &str) -> bool {
        match self {
            TextMatch::Any => true,
            TextMatch::Exact(m) => m == s,
            TextMatch::Regex(r) => r.is_match(s),
        }
    }
}

impl std::fmt::Display for TextMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextMatch::Any => f.write_str("<any>"),
            TextMatch::Exact(m) => write!(f, "msg {m:?}"),
            TextMatch::Regex(r) => write!(f, "regex {:?}", r.as_str()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum EvalKind {
    Instant { at: i64 },
    Range { start: i64, end: i64, step: i64 },
}

/// What a successful eval must return.
#[derive(Debug, Default)]
pub(crate) struct Eval {
    pub(crate) line: usize,
    pub(crate) expr: String,
    pub(crate) kind: Option<EvalKind>,
    /// `expect fail` (with its message matcher) or `eval_fail` (matcher `Any` unless an
    /// `expected_fail_message` / `expected_fail_regexp` line follows).
    pub(crate) fail: Option<TextMatch>,
    /// Legacy `eval_warn` / `eval_info`: at least one annotation of that kind.
    pub(crate) legacy_warn: bool,
    pub(crate) legacy_info: bool,
    pub(crate) warn: Vec<TextMatch>,
    pub(crate) info: Vec<TextMatch>,
    pub(crate) no_warn: bool,
    pub(crate) no_info: bool,
    pub(crate) ordered: bool,
    /// `expect range vector from a to b step s` of an instant query returning a matrix.
    pub(crate) range_vector: Option<(i64, i64, i64)>,
    /// `expect string "..."`.
    pub(crate) string: Option<String>,
    pub(crate) scalar: Option<f64>,
    /// Expected series with their 1-based position in the result (for `ordered`).
    pub(crate) series: Vec<(usize, SeriesDesc)>,
}

impl Eval {
    pub(crate) fn kind(&self) -> EvalKind {
        self.kind.expect("BUG: eval without kind")
    }

    /// The expected result contains a native histogram.
    pub(crate) fn expects_histogram(&self) -> bool {
        self.series.iter().any(|(_, s)| s.has_histogram())
    }

    /// Excluded from the range-mode re-check, as in Prometheus's runner.
    pub(crate) fn exclude_from_range_check(&self) -> bool {
        self.range_vector.is_some() || self.string.is_some()
    }
}

/// A script error: line (1-based) and message.
pub(crate) type ParseError = (usize, String);

/// Prometheus's `getLines`: trimmed, comment lines emptied.
fn get_lines(input: &str) -> Vec<&str> {
    input
        .split('\n')
        .map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                ""
            } else {
                l
            }
        })
        .collect()
}

pub(crate) fn parse_script(input: &str) -> Result<Vec<Command>, ParseError> {
    let lines = get_lines(input);
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let first = l
            .split([' ', '\t'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let cmd = if first == "clear" {
            Command::Clear
        } else if first.starts_with("load") {
            let (next, load) = parse_load(&lines, i)?;
            i = next;
            Command::Load(load)
        } else if first.starts_with("eval") {
            let (next, eval) = parse_eval(&lines, i)?;
            i = next;
            Command::Eval(Box::new(eval))
        } else {
            return Err((i + 1, format!("invalid command {l:?}")));
        };
        cmds.push(cmd);
        i += 1;
    }
    Ok(cmds)
}

/// Returns the index of the block's last line.
fn parse_load(lines: &[&str], mut i: usize) -> Result<(usize, Load), ParseError> {
    let caps = PAT_LOAD.captures(lines[i]).ok_or((
        i + 1,
        "invalid load command. (load[_with_nhcb] <step:duration>)".to_string(),
    ))?;
    let interval_ms = parse_duration_ms(&caps[2]).map_err(|e| (i + 1, e))?;
    let mut load = Load {
        line: i + 1,
        interval_ms,
        with_nhcb: caps.get(1).is_some(),
        series: Vec::new(),
        st_lines: 0,
    };
    while i + 1 < lines.len() && !lines[i + 1].is_empty() {
        i += 1;
        let l = lines[i];
        let first = l.split([' ', '\t']).next().unwrap_or_default();
        if first.ends_with("@st") {
            load.st_lines += 1;
            continue;
        }
        let desc = parse_series_desc(l).map_err(|e| (i + 1, e))?;
        load.series.push((i + 1, desc));
    }
    Ok((i, load))
}

fn parse_eval(lines: &[&str], mut i: usize) -> Result<(usize, Eval), ParseError> {
    let line = lines[i];
    let err = |i: usize, m: String| (i + 1, m);
    let mut ev = Eval {
        line: i + 1,
        ..Default::default()
    };
    let modifier;
    if let Some(c) = PAT_EVAL_INSTANT.captures(line) {
        modifier = c.get(1).map(|m| m.as_str().to_string());
        let at = c.get(2).map_or("", |m| m.as_str());
        let at = parse_duration_ms(at)
            .map_err(|e| err(i, format!("invalid timestamp definition {at:?}: {e}")))?;
        ev.kind = Some(EvalKind::Instant { at });
        ev.expr = c[3].to_string();
    } else if let Some(c) = PAT_EVAL_RANGE.captures(line) {
        modifier = c.get(1).map(|m| m.as_str().to_string());
        let start = parse_duration_ms(&c[2]).map_err(|e| err(i, e))?;
        let end = parse_duration_ms(&c[3]).map_err(|e| err(i, e))?;
        let step = parse_duration_ms(&c[4]).map_err(|e| err(i, e))?;
        if end < start {
            return Err(err(i, "end timestamp is before start timestamp".into()));
        }
        ev.kind = Some(EvalKind::Range { start, end, step });
        ev.expr = c[5].to_string();
    } else {
        return Err(err(i, format!("invalid evaluation command {line:?}")));
    }
    match modifier.as_deref() {
        Some("ordered") => ev.ordered = true,
        Some("fail") => ev.fail = Some(TextMatch::Any),
        Some("warn") => ev.legacy_warn = true,
        Some("info") => ev.legacy_info = true,
        _ => {}
    }
    let instant = matches!(ev.kind, Some(EvalKind::Instant { .. }));
    let mut pos = 0;
    while i + 1 < lines.len() && !lines[i + 1].is_empty() {
        i += 1;
        let l = lines[i];
        if ev.fail.is_some() {
            if let Some(m) = l.strip_prefix("expected_fail_message") {
                ev.fail = Some(TextMatch::Exact(m.trim().to_string()));
                break;
            }
            if let Some(p) = l.strip_prefix("expected_fail_regexp") {
                let re = Regex::new(p.trim()).map_err(|e| err(i, e.to_string()))?;
                ev.fail = Some(TextMatch::Regex(re));
                break;
            }
        }
        if l.starts_with("expect range vector") {
            let c = PAT_EXPECT_RANGE
                .captures(l)
                .ok_or_else(|| err(i, format!("invalid range vector definition {l:?}")))?;
            let d = |s: &str| parse_duration_ms(s).map_err(|e| err(i, e));
            let (from, to, step) = (d(&c[1])?, d(&c[2])?, d(&c[3])?);
            if to < from {
                return Err(err(i, "range vector end is before its start".into()));
            }
            ev.range_vector = Some((from, to, step));
            continue;
        }
        if let Some(s) = l.strip_prefix("expect string") {
            let s = s.trim();
            let v = promql_parser::util::unquote_string(s)
                .map_err(|e| err(i, format!("expected string literal not valid: {e}")))?;
            ev.string = Some(v);
            continue;
        }
        if l.split(' ').next() == Some("expect") {
            parse_expect(&mut ev, l).map_err(|e| err(i, e))?;
            continue;
        }
        if let Some(v) = parse_number(l) {
            ev.scalar = Some(v);
            break;
        }
        let desc = parse_series_desc(l).map_err(|e| err(i, e))?;
        if desc.values.len() > 1 && instant && ev.range_vector.is_none() {
            return Err(err(
                i,
                "expecting multiple values in instant evaluation not allowed".into(),
            ));
        }
        pos += 1;
        ev.series.push((pos, desc));
    }
    Ok((i, ev))
}

fn parse_expect(ev: &mut Eval, l: &str) -> Result<(), String> {
    let c = PAT_EXPECT.captures(l.trim()).ok_or_else(|| {
        "invalid expect statement, must match `expect <type> <match_type>: <string>` format"
            .to_string()
    })?;
    let m = match c.get(2).map(|m| m.as_str()) {
        Some("msg") => TextMatch::Exact(c[3].trim().to_string()),
        Some(_) => {
            let p = c[3].trim();
            TextMatch::Regex(Regex::new(p).map_err(|e| format!("invalid regex {p}: {e}"))?)
        }
        None => TextMatch::Any,
    };
    match &c[1] {
        "ordered" => ev.ordered = true,
        "fail" => {
            if ev.fail.is_some() {
                return Err("multiple expect fail lines are not allowed".into());
            }
            ev.fail = Some(m);
        }
        "warn" => ev.warn.push(m),
        "info" => ev.info.push(m),
        "no_warn" => ev.no_warn = true,
        "no_info" => ev.no_info = true,
        _ => unreachable!("the pattern allows only these"),
    }
    if (!ev.warn.is_empty() && ev.no_warn) || (!ev.info.is_empty() && ev.no_info) {
        return Err("invalid expect lines, warn/info and no_warn/no_info together".into());
    }
    Ok(())
}

/// Values of an expected series as floats at their positions (`None` = no sample).
pub(crate) fn expected_floats(desc: &SeriesDesc) -> Vec<Option<f64>> {
    desc.values
        .iter()
        .map(|v| match v {
            SeqValue::Float(f) => Some(*f),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = r#"
# A comment.
load 5m
    http_requests{job="api", instance="0"} 0+10x10
    other 1 _ stale
    metric@st _ 1m

eval instant at 50m sum(http_requests)
    expect no_warn
    {} 100

eval range from 0 to 10m step 5m http_requests
    expect warn msg: PromQL warning: foo (1:1)
    expect info regex: bar.*
    http_requests{job="api", instance="0"} 0 10 _

clear

eval_fail instant at 0 foo(
    expected_fail_message parse error

eval_ordered instant at 1m sort(x)
    x{a="1"} 1
    x{a="2"} 2

eval instant at 10s 1 + 1
    2

eval instant at 1m some_metric[1m]
    expect range vector from 10s to 1m step 10s
    some_metric 1 2 3 4 5 6

eval instant at 0 "Foo"
    expect string "Foo"

eval instant at 0 bad
    expect fail regex: a|b
"#;

    #[test]
    fn parses_all_commands() {
        let cmds = parse_script(SCRIPT).unwrap();
        assert_eq!(cmds.len(), 10);
        let Command::Load(l) = &cmds[0] else { panic!() };
        assert_eq!(
            (l.line, l.interval_ms, l.series.len(), l.st_lines),
            (3, 300_000, 2, 1)
        );
        assert_eq!(l.series[0].1.values.len(), 11);
        let Command::Eval(e) = &cmds[1] else { panic!() };
        assert_eq!(e.line, 8);
        assert_eq!(e.expr, "sum(http_requests)");
        assert_eq!(e.kind(), EvalKind::Instant { at: 3_000_000 });
        assert!(e.no_warn && e.series.len() == 1);
        let Command::Eval(e) = &cmds[2] else { panic!() };
        assert_eq!(
            e.kind(),
            EvalKind::Range {
                start: 0,
                end: 600_000,
                step: 300_000
            }
        );
        assert_eq!(e.expr, "http_requests");
        assert!(matches!(&e.warn[0], TextMatch::Exact(m) if m == "PromQL warning: foo (1:1)"));
        assert!(e.info[0].matches("xx barb"));
        assert_eq!(
            expected_floats(&e.series[0].1),
            [Some(0.0), Some(10.0), None]
        );
        assert!(matches!(cmds[3], Command::Clear));
        let Command::Eval(e) = &cmds[4] else { panic!() };
        assert!(matches!(&e.fail, Some(TextMatch::Exact(m)) if m == "parse error"));
        let Command::Eval(e) = &cmds[5] else { panic!() };
        assert!(e.ordered);
        assert_eq!(e.series[1].0, 2);
        let Command::Eval(e) = &cmds[6] else { panic!() };
        assert_eq!(e.scalar, Some(2.0));
        let Command::Eval(e) = &cmds[7] else { panic!() };
        assert_eq!(e.range_vector, Some((10_000, 60_000, 10_000)));
        assert!(e.exclude_from_range_check());
        let Command::Eval(e) = &cmds[8] else { panic!() };
        assert_eq!(e.string.as_deref(), Some("Foo"));
        let Command::Eval(e) = &cmds[9] else { panic!() };
        assert!(matches!(&e.fail, Some(TextMatch::Regex(r)) if r.as_str() == "a|b"));
    }

    #[test]
    fn rejects_bad_scripts() {
        for bad in [
            "foo",
            "load\n a 1",
            "eval instant at 1m x\n x 1 2",
            "eval instant at 0 x\n expect bogus",
            "eval instant at 0 x\n expect warn\n expect no_warn",
        ] {
            assert!(parse_script(bad).is_err(), "{bad:?} should fail");
        }
    }

    /// Every script of the corpus parses.
    #[test]
    fn corpus_parses() {
        for (name, text) in super::super::corpus_files() {
            if let Err((line, e)) = parse_script(&text) {
                panic!("{name}:{line}: {e}");
            }
        }
    }
}
