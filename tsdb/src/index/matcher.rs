//! Label matchers with Prometheus's semantics.
//!
//! A matcher tests one label's value; a series without the label is tested as if the value were
//! the empty string (Prometheus labels never have empty values, so the two are the same thing).
//!
//! Regexes follow Prometheus 3 (`model/labels/regexp.go`): the pattern is first parsed on its
//! own (so `a)|(b` is rejected instead of escaping the anchors), then compiled fully anchored
//! with `.` matching `\n`: `^(?s:(?:PATTERN))$`. Prometheus uses Go's RE2; the `regex` crate
//! is the same design but differs in a few places, which [`Matcher::new`] smooths over:
//! - `\d`, `\s`, `\w` and `\b` are ASCII-only in Go, Unicode-aware in Rust: they are rewritten
//!   to their ASCII meaning (`\s` is `[\t\n\f\r ]` in Go, without `\v`).
//! - Syntax that Go rejects but Rust accepts (the flags `x`, `u`, `R`; `\u` escapes; `\<`,
//!   `\>`, `\b{start}` and friends) is rejected, as Prometheus would.

use std::fmt;

use regex::{Regex, RegexBuilder};
use regex_syntax::ast::{self, Ast};
use regex_syntax::hir::{Class, Hir, HirKind};

use super::IndexError;

/// Largest number of strings a regex may expand to and still be answered as a set of postings
/// look-ups (Prometheus's `maxSetMatches`).
const MAX_SET_VALUES: usize = 256;

/// The four PromQL matching operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        })
    }
}

/// One label matcher, e.g. `job=~"api|db"`. Immutable after construction.
#[derive(Debug, Clone)]
pub struct Matcher {
    op: MatchOp,
    name: String,
    value: String,
    /// How a regex matcher's pattern is evaluated; `Literal` for `=` and `!=`.
    pattern: Pattern,
    /// `self.matches("")`, cached: it decides how postings are combined.
    matches_empty: bool,
}

/// The evaluation strategy of a matcher's pattern.
#[derive(Debug, Clone)]
enum Pattern {
    /// `=` / `!=`: compare with `Matcher::value`.
    Literal,
    /// A regex whose language is this finite set of strings (deduplicated, in pattern order).
    Set(Vec<String>),
    /// A regex equivalent to `.*`: matches every string.
    Any,
    /// A regex equivalent to `.+`: matches every non-empty string.
    NonEmpty,
    /// Anything else: the compiled, anchored regex.
    General(Regex),
}

/// Which of a label's stored values [`MemPostings`](super::MemPostings) must look at for a
/// matcher; see [`Matcher::postings_plan`].
#[derive(Debug)]
pub(crate) enum ValueSel<'a> {
    /// No value.
    Nothing,
    /// Every value of the label.
    All,
    /// Exactly these values (those that exist).
    Only(&'a [String]),
    /// Every value of the label except these.
    AllBut(&'a [String]),
    /// The values `v` with `matcher.matches(v) == positive`, found by testing each one.
    Scan,
}

impl Matcher {
    /// Builds a matcher; for `=~` and `!~`, `value` is the regex pattern.
    ///
    /// # Errors
    /// [`IndexError::BadRegex`] if the pattern is not a valid regex in Prometheus's dialect.
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, IndexError> {
        let name = name.into();
        let value = value.into();
        let pattern = match op {
            MatchOp::Equal | MatchOp::NotEqual => Pattern::Literal,
            MatchOp::Regex | MatchOp::NotRegex => compile(&value)?,
        };
        let mut m = Matcher {
            op,
            name,
            value,
            pattern,
            matches_empty: false,
        };
        m.matches_empty = m.matches("");
        Ok(m)
    }

    /// The label name this matcher tests.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value (for `=` / `!=`) or the regex pattern as written (for `=~` / `!~`).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The operator.
    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// Whether a label value passes; pass `""` for a series that lacks the label.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.regex_matches(value),
            MatchOp::NotRegex => !self.regex_matches(value),
        }
    }

    /// Whether the matcher accepts series that lack the label (`matches("")`). PromQL requires
    /// every selector to have at least one matcher for which this is false.
    pub fn matches_empty(&self) -> bool {
        self.matches_empty
    }

    /// For `=~` and `!~` whose pattern is a finite set of literals (`a|b`, `(?:a|b)`, `a\.b`,
    /// `foo(bar|baz)`), that set, deduplicated in pattern order; `None` otherwise, including
    /// for `=` / `!=` and for case-insensitive patterns.
    pub fn set_values(&self) -> Option<&[String]> {
        match &self.pattern {
            Pattern::Set(values) => Some(values),
            _ => None,
        }
    }

    fn regex_matches(&self, value: &str) -> bool {
        match &self.pattern {
            // Only reachable through `matches` for regex ops; kept total for safety.
            Pattern::Literal => value == self.value,
            Pattern::Set(values) => values.iter().any(|v| v == value),
            Pattern::Any => true,
            Pattern::NonEmpty => !value.is_empty(),
            Pattern::General(re) => re.is_match(value),
        }
    }

    /// How to answer this matcher from postings. A series passes iff
    /// `matches(value_or_empty)`; the returned flag `positive` is `!matches_empty()`:
    /// - positive: the passing series are exactly the union of the postings of the selected
    ///   values (series without the label fail), so the caller intersects with that union;
    /// - negative: series without the label pass, and the selected values are those that
    ///   FAIL, so the caller subtracts their postings (Prometheus's
    ///   `inversePostingsForMatcher`).
    ///
    /// The selection is never meant to include the empty value: `All` and `AllBut` exclude it
    /// too, so a stored empty value (which Prometheus never produces) behaves like an absent
    /// label, as `matches` says it should.
    pub(crate) fn postings_plan(&self) -> (bool, ValueSel<'_>) {
        let positive = !self.matches_empty;
        let sel = match (&self.pattern, self.op) {
            // `l=""` subtracts everything with l; `l!=""` keeps everything with l.
            (Pattern::Literal, _) if self.value.is_empty() => ValueSel::All,
            // `l="x"` keeps x; `l!="x"` subtracts x.
            (Pattern::Literal, _) => ValueSel::Only(std::slice::from_ref(&self.value)),
            // The set contains "" exactly when the op's polarity flips to "negative" for `=~`
            // and to "positive" for `!~`; either way the selected values are the set minus ""
            // when (op is =~) == positive, and everything outside the set otherwise.
            (Pattern::Set(values), op) => {
                if (op == MatchOp::Regex) == positive {
                    ValueSel::Only(values)
                } else {
                    ValueSel::AllBut(values)
                }
            }
            // `=~".*"` subtracts nothing; `!~".*"` keeps nothing.
            (Pattern::Any, _) => ValueSel::Nothing,
            // `=~".+"` keeps everything with l; `!~".+"` subtracts everything with l.
            (Pattern::NonEmpty, _) => ValueSel::All,
            (Pattern::General(_), _) => ValueSel::Scan,
        };
        (positive, sel)
    }
}

impl fmt::Display for Matcher {
    /// PromQL form, e.g. `job=~"api|db"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op, self.value)
    }
}

fn bad_regex(pattern: &str, detail: impl fmt::Display) -> IndexError {
    IndexError::BadRegex {
        pattern: pattern.to_owned(),
        detail: detail.to_string(),
    }
}

/// Parses, checks and classifies a regex matcher's pattern.
fn compile(pattern: &str) -> Result<Pattern, IndexError> {
    let ast = ast::parse::Parser::new()
        .parse(pattern)
        .map_err(|e| bad_regex(pattern, e))?;
    let scan = ast::visit(&ast, GoDialect::default()).map_err(|d| bad_regex(pattern, d))?;
    let rewritten = scan.rewrite(pattern);

    let hir = regex_syntax::ParserBuilder::new()
        .dot_matches_new_line(true)
        .build()
        .parse(&rewritten)
        .map_err(|e| bad_regex(pattern, e))?;
    let hir = strip_captures(&hir);
    if *hir == dot_star(0) {
        return Ok(Pattern::Any);
    }
    if *hir == dot_star(1) {
        return Ok(Pattern::NonEmpty);
    }
    if !scan.case_insensitive {
        let mut set = Vec::new();
        if literal_set(hir, &mut set) {
            return Ok(Pattern::Set(set));
        }
    }
    let re = RegexBuilder::new(&format!("^(?s:(?:{rewritten}))$"))
        .build()
        .map_err(|e| bad_regex(pattern, e))?;
    Ok(Pattern::General(re))
}

/// The HIR of `(?s:.*)` (min 0) or `(?s:.+)` (min 1), greedy.
fn dot_star(min: u32) -> Hir {
    Hir::repetition(regex_syntax::hir::Repetition {
        min,
        max: None,
        greedy: true,
        sub: Box::new(Hir::dot(regex_syntax::hir::Dot::AnyChar)),
    })
}

/// Capture groups do not change which strings match.
fn strip_captures(hir: &Hir) -> &Hir {
    match hir.kind() {
        HirKind::Capture(c) => strip_captures(&c.sub),
        _ => hir,
    }
}

/// If `hir`'s language is a finite set of at most [`MAX_SET_VALUES`] strings, appends it to
/// `out` (deduplicated) and returns true.
fn literal_set(hir: &Hir, out: &mut Vec<String>) -> bool {
    let Some(strings) = expand(hir) else {
        return false;
    };
    for s in strings {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    true
}

/// The finite language of `hir`, or `None` if it is infinite, too large, or uses assertions.
fn expand(hir: &Hir) -> Option<Vec<String>> {
    match hir.kind() {
        HirKind::Empty => Some(vec![String::new()]),
        HirKind::Literal(lit) => Some(vec![String::from_utf8(lit.0.to_vec()).ok()?]),
        // `a|b|c` reaches us as the class `[a-c]`, so small classes must expand too.
        HirKind::Class(Class::Unicode(class)) => {
            let mut out = Vec::new();
            for range in class.ranges() {
                let n = range.end() as usize - range.start() as usize + 1;
                if out.len() + n > MAX_SET_VALUES {
                    return None;
                }
                out.extend((range.start()..=range.end()).map(String::from));
            }
            Some(out)
        }
        HirKind::Capture(c) => expand(&c.sub),
        HirKind::Concat(subs) => {
            let mut acc = vec![String::new()];
            for sub in subs {
                let tails = expand(sub)?;
                if acc.len() * tails.len() > MAX_SET_VALUES {
                    return None;
                }
                acc = acc
                    .iter()
                    .flat_map(|head| tails.iter().map(move |t| format!("{head}{t}")))
                    .collect();
            }
            Some(acc)
        }
        HirKind::Alternation(subs) => {
            let mut out: Vec<String> = Vec::new();
            for sub in subs {
                for s in expand(sub)? {
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
                if out.len() > MAX_SET_VALUES {
                    return None;
                }
            }
            Some(out)
        }
        HirKind::Class(Class::Bytes(_)) | HirKind::Look(_) | HirKind::Repetition(_) => None,
    }
}

/// Walks a pattern's AST to find where Rust's regex dialect differs from Go's RE2: collects
/// the Perl classes and word boundaries to rewrite, rejects Rust-only syntax, and notes
/// whether case-insensitivity is switched on anywhere.
#[derive(Default)]
struct GoDialect {
    /// `(start, end, replacement)` byte ranges of the pattern, in visiting order.
    edits: Vec<(usize, usize, &'static str)>,
    case_insensitive: bool,
}

impl GoDialect {
    fn rewrite(&self, pattern: &str) -> String {
        let mut edits = self.edits.clone();
        edits.sort_unstable_by_key(|e| e.0);
        let mut out = String::with_capacity(pattern.len() + 16 * edits.len());
        let mut at = 0;
        for (start, end, with) in edits {
            out.push_str(&pattern[at..start]);
            out.push_str(with);
            at = end;
        }
        out.push_str(&pattern[at..]);
        out
    }

    fn perl(&mut self, class: &ast::ClassPerl) {
        use ast::ClassPerlKind::*;
        // Nested classes (`[[0-9]_]`) are valid in Rust, so the same text works inside and
        // outside brackets.
        let with = match (&class.kind, class.negated) {
            (Digit, false) => "[0-9]",
            (Digit, true) => "[^0-9]",
            (Space, false) => r"[\t\n\f\r ]",
            (Space, true) => r"[^\t\n\f\r ]",
            (Word, false) => "[0-9A-Za-z_]",
            (Word, true) => "[^0-9A-Za-z_]",
        };
        self.edits
            .push((class.span.start.offset, class.span.end.offset, with));
    }

    fn flags(&mut self, flags: &ast::Flags) -> Result<(), String> {
        let mut negated = false;
        for item in &flags.items {
            match &item.kind {
                ast::FlagsItemKind::Negation => negated = true,
                ast::FlagsItemKind::Flag(flag) => match flag {
                    ast::Flag::CaseInsensitive => self.case_insensitive |= !negated,
                    ast::Flag::MultiLine | ast::Flag::DotMatchesNewLine | ast::Flag::SwapGreed => {}
                    ast::Flag::Unicode | ast::Flag::CRLF | ast::Flag::IgnoreWhitespace => {
                        return Err(format!(
                            "invalid or unsupported Perl syntax: flag at offset {}",
                            item.span.start.offset
                        ));
                    }
                },
            }
        }
        Ok(())
    }

    /// Go knows `\x7F` and `\x{10FFFF}` but not Rust's `\u` / `\U` escapes.
    fn literal(lit: &ast::Literal) -> Result<(), String> {
        match &lit.kind {
            ast::LiteralKind::HexFixed(kind) | ast::LiteralKind::HexBrace(kind)
                if !matches!(kind, ast::HexLiteralKind::X) =>
            {
                Err(format!(
                    "invalid escape sequence at offset {}",
                    lit.span.start.offset
                ))
            }
            _ => Ok(()),
        }
    }
}

impl ast::Visitor for GoDialect {
    type Output = GoDialect;
    type Err = String;

    fn finish(self) -> Result<GoDialect, String> {
        Ok(self)
    }

    fn visit_pre(&mut self, ast: &Ast) -> Result<(), String> {
        match ast {
            Ast::ClassPerl(class) => self.perl(class),
            Ast::Flags(set) => self.flags(&set.flags)?,
            Ast::Group(group) => {
                if let ast::GroupKind::NonCapturing(flags) = &group.kind {
                    self.flags(flags)?;
                }
            }
            Ast::Literal(lit) => Self::literal(lit)?,
            // Go rejects `a**` and `a+{2}` ("invalid nested repetition operator"); Rust
            // accepts them. `(a*)*` is fine in both.
            Ast::Repetition(rep) if matches!(*rep.ast, Ast::Repetition(_)) => {
                return Err(format!(
                    "invalid nested repetition operator at offset {}",
                    rep.op.span.start.offset
                ));
            }
            Ast::Assertion(assertion) => {
                use ast::AssertionKind::*;
                let span = &assertion.span;
                match assertion.kind {
                    StartLine | EndLine | StartText | EndText => {}
                    WordBoundary => {
                        self.edits
                            .push((span.start.offset, span.end.offset, r"(?-u:\b)"));
                    }
                    NotWordBoundary => {
                        self.edits
                            .push((span.start.offset, span.end.offset, r"(?-u:\B)"));
                    }
                    _ => {
                        return Err(format!(
                            "invalid escape sequence at offset {}",
                            span.start.offset
                        ))
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn visit_class_set_item_pre(&mut self, item: &ast::ClassSetItem) -> Result<(), String> {
        match item {
            ast::ClassSetItem::Perl(class) => self.perl(class),
            ast::ClassSetItem::Literal(lit) => Self::literal(lit)?,
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(p: &str) -> Matcher {
        Matcher::new(MatchOp::Regex, "l", p).unwrap()
    }

    #[test]
    fn regex_is_fully_anchored() {
        let m = re("ba");
        assert!(!m.matches("bar"));
        assert!(!m.matches("aba"));
        assert!(m.matches("ba"));
        let m = re("b.*");
        assert!(m.matches("bar"));
        assert!(!m.matches("abar"));
        // An alternation must be anchored as a whole, not just its first and last branch.
        let m = re("a|b.c");
        assert!(!m.matches("ab.c"));
        assert!(!m.matches("abxc"));
        assert!(m.matches("bxc"));
    }

    #[test]
    fn dot_matches_newline() {
        assert!(re("a.b").matches("a\nb"));
        assert!(re(".*").matches("x\ny"));
        assert!(re("x.+").matches("x\n"));
        // The user may still switch it off, as in Go.
        assert!(!re("(?-s:a.b)").matches("a\nb"));
    }

    #[test]
    fn bad_regex_is_an_error_with_context() {
        for p in [
            "(",
            "a)|(b",
            "[z-a]",
            "a**",
            "a+{2}",
            "(?x)a b",
            r"\u0041",
            r"\<a",
            r"a\b{start}",
        ] {
            match Matcher::new(MatchOp::Regex, "l", p) {
                Err(IndexError::BadRegex { pattern, detail }) => {
                    assert_eq!(pattern, p);
                    assert!(!detail.is_empty());
                }
                other => panic!("{p:?}: expected BadRegex, got {other:?}"),
            }
        }
        for p in ["(a*)*", "a*?", "a{2}?", r"\x41\x{42}", "(?P<n>a)", "(?U)a+"] {
            assert!(Matcher::new(MatchOp::Regex, "l", p).is_ok(), "{p}");
        }
        // The same check applies to `!~`, and `=` takes any string literally.
        assert!(Matcher::new(MatchOp::NotRegex, "l", "(").is_err());
        assert!(Matcher::new(MatchOp::Equal, "l", "(").unwrap().matches("("));
    }

    #[test]
    fn perl_classes_are_ascii_like_go() {
        let m = re(r"\d+");
        assert!(m.matches("0123456789"));
        assert!(!m.matches("١٢")); // Arabic-Indic digits: Unicode \d, not Go's.
        assert!(re(r"\w+").matches("a_Z9"));
        assert!(!re(r"\w+").matches("é"));
        assert!(re(r"\W").matches("é"));
        assert!(re(r"[\d_]+").matches("1_2"));
        assert!(!re(r"[\d_]+").matches("١"));
        assert!(re(r"[^\d]").matches("x"));
        assert!(!re(r"\s").matches("\u{b}")); // Go's \s has no \v.
        assert!(re(r"\s").matches("\t"));
        assert!(re(r"\S").matches("\u{b}"));
        // é is not an ASCII word character, so Go sees a word boundary before it.
        assert!(re(r"a\bé").matches("aé"));
        assert!(!re(r"a\Bé").matches("aé"));
        assert!(re(r"a\b-").matches("a-"));
        assert!(!re(r"a\bb").matches("ab"));
        // Unicode classes and escapes Go shares still work.
        assert!(re(r"\pL+").matches("é"));
        assert!(re(r"\x{e9}").matches("é"));
    }

    #[test]
    fn set_detection() {
        let set = |p: &str| re(p).set_values().map(<[String]>::to_vec);
        let v = |xs: &[&str]| Some(xs.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(set("a|b|c"), v(&["a", "b", "c"]));
        assert_eq!(set("foo|bar"), v(&["foo", "bar"]));
        assert_eq!(set("(?:foo|bar)"), v(&["foo", "bar"]));
        assert_eq!(set("(foo|bar)"), v(&["foo", "bar"]));
        assert_eq!(set(r"a\.b"), v(&["a.b"]));
        assert_eq!(set("foo"), v(&["foo"]));
        assert_eq!(set("foo|foo"), v(&["foo"]));
        assert_eq!(set(""), v(&[""]));
        assert_eq!(set("|a"), v(&["", "a"]));
        assert_eq!(set("foobar|foobaz"), v(&["foobar", "foobaz"]));
        assert_eq!(set("x(1|2)"), v(&["x1", "x2"]));
        assert_eq!(set("(?i)foo"), None);
        assert_eq!(set("(?i:a)|b"), None);
        assert_eq!(set("a.b"), None);
        assert_eq!(set("a+"), None);
        assert_eq!(set("^a$"), None);
        assert_eq!(set(".*"), None);
        assert_eq!(set("[0-9]{3}"), None);
        // Too many combinations to enumerate.
        assert_eq!(set("[a-z][a-z]"), None);
        assert!(Matcher::new(MatchOp::NotRegex, "l", "a|b")
            .unwrap()
            .set_values()
            .is_some());
        assert!(Matcher::new(MatchOp::Equal, "l", "a")
            .unwrap()
            .set_values()
            .is_none());
    }

    #[test]
    fn special_patterns() {
        for p in [".*", "(.*)", "(?s:.*)", r"[\s\S]*", "(?:.*)"] {
            assert!(matches!(re(p).pattern, Pattern::Any), "{p}");
        }
        for p in [".+", "(.+)"] {
            assert!(matches!(re(p).pattern, Pattern::NonEmpty), "{p}");
        }
        assert!(matches!(re(".*?").pattern, Pattern::General(_)));
        assert!(re(".*?").matches("a\nb"));
        assert!(matches!(re("(?-s:.*)").pattern, Pattern::General(_)));
    }

    #[test]
    fn empty_value_semantics() {
        let cases = [
            (MatchOp::Equal, "", true),
            (MatchOp::Equal, "a", false),
            (MatchOp::NotEqual, "", false),
            (MatchOp::NotEqual, "a", true),
            (MatchOp::Regex, ".*", true),
            (MatchOp::Regex, "", true),
            (MatchOp::Regex, "|a", true),
            (MatchOp::Regex, ".+", false),
            (MatchOp::Regex, "a.*", false),
            (MatchOp::Regex, "a*", true),
            (MatchOp::NotRegex, ".+", true),
            (MatchOp::NotRegex, ".*", false),
            (MatchOp::NotRegex, "a|b", true),
            (MatchOp::NotRegex, "|a", false),
        ];
        for (op, v, want) in cases {
            let m = Matcher::new(op, "l", v).unwrap();
            assert_eq!(m.matches_empty(), want, "{m}");
            assert_eq!(m.matches(""), want, "{m}");
        }
    }

    #[test]
    fn display_is_promql() {
        let m = Matcher::new(MatchOp::NotRegex, "job", "a\"b").unwrap();
        assert_eq!(m.to_string(), r#"job!~"a\"b""#);
        assert_eq!(m.name(), "job");
        assert_eq!(m.value(), "a\"b");
        assert_eq!(m.op(), MatchOp::NotRegex);
    }
}
