//! Label rewriting: `label_replace`, `label_join`, and the ordering of `sort_by_label`.
//!
//! Prometheus compiles regexes with Go's RE2 and expands replacements with
//! `Regexp.ExpandString`; the `regex` crate has the same linear-time guarantees but differs
//! in two places we correct for here: its Perl classes (`\d`, `\w`, `\s`, `\b`) are Unicode
//! while RE2's are ASCII, and `Captures::expand` parses `$name` differently from Go.

use std::cmp::Ordering;

use crate::value::Metric;

/// Compiles a PromQL regex fully anchored: ^(?s:...)$ semantics as Prometheus (RE2).
/// The error is the regex crate's message; the caller words the query error
/// (`invalid regular expression in label_replace(): <re>`).
pub(crate) fn anchored_regex(re: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?s:{})$", ascii_perl_classes(re))).map_err(|e| e.to_string())
}

/// Rewrites `\d \D \w \W \s \S \b \B` to their ASCII (RE2) meaning, inside and outside
/// bracket expressions.
fn ascii_perl_classes(re: &str) -> String {
    const DIGIT: &str = "0-9";
    const WORD: &str = "0-9A-Za-z_";
    const SPACE: &str = r"\t\n\x0C\r ";
    let mut out = String::with_capacity(re.len() + 8);
    let mut in_class = false;
    let mut chars = re.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let set = match n.to_ascii_lowercase() {
                    'd' => Some(DIGIT),
                    'w' => Some(WORD),
                    's' => Some(SPACE),
                    _ => None,
                };
                match (set, n.is_ascii_uppercase(), in_class) {
                    (Some(s), false, false) => out.push_str(&format!("[{s}]")),
                    (Some(s), true, false) => out.push_str(&format!("[^{s}]")),
                    (Some(s), false, true) => out.push_str(s),
                    (Some(s), true, true) => out.push_str(&format!("[^{s}]")),
                    (None, _, false) if n == 'b' || n == 'B' => {
                        out.push_str(&format!("(?-u:\\{n})"))
                    }
                    _ => {
                        out.push('\\');
                        out.push(n);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A leading `^` and then a leading `]` are literal parts of the class.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            '[' if in_class && chars.peek() == Some(&':') => {
                // POSIX class like [:alpha:]: copy through to the closing `:]`.
                out.push('[');
                for d in chars.by_ref() {
                    out.push(d);
                    if d == ']' {
                        break;
                    }
                }
            }
            '[' => out.push_str("\\["),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

/// label_replace for one label set (Go regexp Expand semantics for $1, ${1}, $name; no match
/// → unchanged). An empty result removes `dst`.
pub(crate) fn label_replace(
    m: &Metric,
    dst: &str,
    replacement: &str,
    src: &str,
    re: &regex::Regex,
) -> Metric {
    let value = m.get(src).unwrap_or("");
    let Some(caps) = re.captures(value) else {
        return m.clone();
    };
    let expanded = go_expand(re, &caps, replacement);
    let mut out = m.clone();
    out.set(dst, &expanded);
    out
}

/// Go's `Regexp.ExpandString`: `$$` is `$`; `$name`/`${name}` where a name is a run of
/// Unicode letters, digits and `_`; an all-digit name without a leading zero is a group
/// number; unknown or unmatched groups expand to nothing; a malformed `$` is literal.
fn go_expand(re: &regex::Regex, caps: &regex::Captures<'_>, template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let Some((name, after)) = extract_name(rest) else {
            out.push('$');
            continue;
        };
        rest = after;
        let num = (!name.starts_with('0') || name.len() == 1)
            .then(|| {
                name.bytes().try_fold(0u64, |n, b| {
                    (b.is_ascii_digit() && n < 100_000_000).then(|| n * 10 + u64::from(b - b'0'))
                })
            })
            .flatten();
        let group = match num {
            Some(n) => usize::try_from(n).ok().and_then(|n| caps.get(n)),
            None => re
                .capture_names()
                .enumerate()
                .find(|(i, n)| *n == Some(name) && caps.get(*i).is_some())
                .and_then(|(i, _)| caps.get(i)),
        };
        if let Some(g) = group {
            out.push_str(g.as_str());
        }
    }
    out.push_str(rest);
    out
}

/// Go's `extract`: the name after a `$` (braced or not) and the rest of the template.
fn extract_name(s: &str) -> Option<(&str, &str)> {
    let (brace, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let end = body
        .char_indices()
        .find(|(_, c)| !(c.is_alphabetic() || c.is_numeric() || *c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    let rest = &body[end..];
    if brace {
        let rest = rest.strip_prefix('}')?;
        return Some((name, rest));
    }
    Some((name, rest))
}

/// `label_join`: the values of `srcs` (missing = empty) joined with `sep` into `dst`; an
/// empty result removes `dst`.
pub(crate) fn label_join(m: &Metric, dst: &str, sep: &str, srcs: &[String]) -> Metric {
    let joined = srcs
        .iter()
        .map(|s| m.get(s).unwrap_or(""))
        .collect::<Vec<_>>()
        .join(sep);
    let mut out = m.clone();
    out.set(dst, &joined);
    out
}

/// Error text for an invalid destination label name, exactly as Prometheus words it (test:
/// `invalid label name "a\xc5z"`) — Prometheus 3 accepts any valid UTF-8 name, so with Rust
/// strings only the empty name is invalid. `label_replace`/`label_join` word their query
/// error differently (`invalid destination label name in label_replace(): <name>`); the
/// caller chooses.
pub(crate) fn check_label_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("invalid label name {}", go_quote(name)));
    }
    Ok(())
}

/// Go's `%q` for a valid UTF-8 string (`strconv.Quote`).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Ordering used by sort_by_label / sort_by_label_desc for one label's values: Prometheus
/// uses `github.com/facette/natsort` — values are split into digit and non-digit runs;
/// runs that both parse as integers compare numerically, others as strings; a value that
/// is a prefix (in runs) of the other sorts first. natsort is not a strict order for
/// numerically equal runs (`"01"` vs `"1"`); those ties break by byte order so this is a
/// total order safe for `sort_by`.
pub(crate) fn sort_label_cmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let ord = match (x.parse::<i64>(), y.parse::<i64>()) {
            (Ok(i), Ok(j)) => i.cmp(&j),
            _ => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

/// Splits into maximal runs of ASCII digits and of everything else (`(\d+|\D+)`).
fn chunks(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = s.as_bytes();
    for i in 1..=b.len() {
        if i == b.len() || b[i].is_ascii_digit() != b[start].is_ascii_digit() {
            // Splitting at a digit/non-digit boundary never cuts a UTF-8 sequence.
            out.push(&s[start..i]);
            start = i;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(pairs: &[(&str, &str)]) -> Metric {
        Metric::new(pairs.iter().copied())
    }

    fn replace(metric: &Metric, dst: &str, repl: &str, src: &str, re: &str) -> Metric {
        label_replace(metric, dst, repl, src, &anchored_regex(re).unwrap())
    }

    #[test]
    fn label_replace_from_functions_test() {
        let s = m(&[
            ("__name__", "testmetric"),
            ("src", "source-value-10"),
            ("dst", "original-destination-value"),
        ]);
        let r = replace(
            &s,
            "dst",
            "destination-value-$1",
            "src",
            "source-value-(.*)",
        );
        assert_eq!(r.get("dst"), Some("destination-value-10"));
        // Not anchored → no match → unchanged.
        let r = replace(&s, "dst", "destination-value-$1", "src", "value-(.*)");
        assert_eq!(r, s);
        // Empty replacement removes the label.
        let r = replace(&s, "dst", "", "dst", ".*");
        assert_eq!(r.get("dst"), None);
        // Named groups, ${1} and $$.
        let r = replace(&s, "dst", "${1}-$$-$x", "src", "source-(?P<x>value)-.*");
        assert_eq!(r.get("dst"), Some("value-$-value"));
        // `$1x` is the group named "1x", which does not exist.
        let r = replace(&s, "dst", "$1x", "src", "source-(value)-.*");
        assert_eq!(r.get("dst"), None);
        // Unknown group expands to nothing; malformed `$` is literal.
        let r = replace(&s, "dst", "a$9b${", "src", "source-(value)-.*");
        assert_eq!(r.get("dst"), Some("a${"));
        // `(?s:)`: `.` matches a newline.
        let n = m(&[("src", "a\nb")]);
        assert_eq!(
            replace(&n, "dst", "$1", "src", "a.(b)").get("dst"),
            Some("b")
        );
        // Missing source label is the empty string.
        assert_eq!(replace(&n, "dst", "x", "nope", "").get("dst"), Some("x"));
    }

    #[test]
    fn regex_perl_classes_are_ascii() {
        let re = anchored_regex(r"\d+").unwrap();
        assert!(re.is_match("123"));
        assert!(!re.is_match("١٢٣")); // Arabic-Indic digits are \d in Rust, not in RE2.
        assert!(anchored_regex(r"[\w-]+").unwrap().is_match("a_b-9"));
        assert!(!anchored_regex(r"\w").unwrap().is_match("é"));
        assert!(anchored_regex(r"[^\d]").unwrap().is_match("é"));
        assert!(anchored_regex(r"\S\s\D").unwrap().is_match("a x"));
        assert!(anchored_regex(r"a\b.*").unwrap().is_match("a b"));
        assert!(anchored_regex(r"[]a]").unwrap().is_match("]"));
        assert!(anchored_regex(r"[[:alpha:]]+").unwrap().is_match("abc"));
        assert!(anchored_regex(r"\.").unwrap().is_match("."));
        assert!(anchored_regex("(").is_err());
        assert!(anchored_regex(r"a|b").unwrap().is_match("b"));
        assert!(!anchored_regex(r"a|b").unwrap().is_match("ab"));
    }

    #[test]
    fn label_join_from_functions_test() {
        let s = m(&[("src", "a"), ("src1", "b"), ("src2", "c"), ("dst", "orig")]);
        let srcs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let r = label_join(&s, "dst", "-", &srcs(&["src", "src1", "src2"]));
        assert_eq!(r.get("dst"), Some("a-b-c"));
        let r = label_join(&s, "dst", "-", &srcs(&["missing", "src"]));
        assert_eq!(r.get("dst"), Some("-a"));
        let r = label_join(&s, "dst", "", &srcs(&[]));
        assert_eq!(r.get("dst"), None);
    }

    #[test]
    fn label_names_and_quoting() {
        assert!(check_label_name("a.b/ü").is_ok());
        assert_eq!(
            check_label_name("").unwrap_err(),
            r#"invalid label name """#
        );
        assert_eq!(go_quote("a\"\\\n\u{1}é"), r#""a\"\\\n\x01é""#);
    }

    #[test]
    fn natural_sort_from_functions_test() {
        let mut v = vec!["4m1000", "4m5", "4m600"];
        v.sort_by(|a, b| sort_label_cmp(a, b));
        assert_eq!(v, ["4m5", "4m600", "4m1000"]);
        let mut v = vec!["1.111.3", "1.2.3", "1.11.3"];
        v.sort_by(|a, b| sort_label_cmp(a, b));
        assert_eq!(v, ["1.2.3", "1.11.3", "1.111.3"]);
        let mut v = vec!["100", "20", "3", "12", "0", "1", "2", "21", "11", "10"];
        v.sort_by(|a, b| sort_label_cmp(a, b));
        assert_eq!(v, ["0", "1", "2", "3", "10", "11", "12", "20", "21", "100"]);
        assert_eq!(sort_label_cmp("a1", "a1b"), Ordering::Less);
        assert_eq!(sort_label_cmp("a", "1"), Ordering::Greater);
        assert_eq!(sort_label_cmp("", "a"), Ordering::Less);
    }

    proptest! {
        #[test]
        fn natural_sort_is_antisymmetric(a in "[a-c0-2.]{0,6}", b in "[a-c0-2.]{0,6}") {
            prop_assert_eq!(sort_label_cmp(&a, &b), sort_label_cmp(&b, &a).reverse());
        }

        #[test]
        fn anchored_regex_never_panics(re in ".{0,12}", s in ".{0,12}") {
            if let Ok(r) = anchored_regex(&re) {
                let _ = label_replace(&m(&[("src", &s)]), "dst", "$1${x}$$", "src", &r);
            }
        }
    }
}
