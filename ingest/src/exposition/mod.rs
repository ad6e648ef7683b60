//! Streaming, zero-copy parser for the Prometheus text exposition format
//! (version 0.0.4) and OpenMetrics 1.0 text, shared by the push-import
//! endpoint and the scraper.
//!
//! [`Parser::next_entry`] is a lending iterator: each [`Entry`] borrows the
//! input (`'a`) and the parser's reusable label buffer (`'p`), so a scrape is
//! parsed without allocating per sample. Strings are borrowed from the input;
//! only a label value or HELP text that contains an escape sequence is copied
//! (that is what the `Cow`s are for).
//!
//! Grammar and semantics follow Prometheus (`model/textparse/promlex.l`,
//! `openmetricslex.l`, and `expfmt`'s text parser for the ordering rules):
//!
//! * Text format: `#` lines other than `# HELP` / `# TYPE` are comments;
//!   blank lines and runs of spaces or tabs between tokens are allowed; the
//!   last line may lack its `\n`; timestamps are integer milliseconds;
//!   exemplars do not exist.
//! * OpenMetrics: tokens are separated by exactly one space, there are no
//!   comments and no blank lines, `# UNIT` exists (and must be a suffix of the
//!   family name), timestamps are float seconds (converted to milliseconds,
//!   truncated toward zero), samples may carry one exemplar
//!   (`# {labels} value [timestamp]`, label set at most 128 code points), and
//!   the body must end with `# EOF`, after which nothing may follow.
//! * Both: label values unescape `\\`, `\"` and `\n`; HELP text unescapes `\\`
//!   and `\n` (OpenMetrics also `\"`); other escapes are kept literally, as
//!   Prometheus does. A raw newline inside a label value is an error. Values
//!   are Go-`ParseFloat` floats including `NaN`, `+Inf`, `-Inf`, `Inf`; every
//!   NaN comes out as `f64::NAN`, never as the stale marker. Duplicate label
//!   names, a `__name__` label, a second HELP/TYPE/UNIT for a family, and a
//!   TYPE after the family's samples are errors.
//! * The quoted UTF-8 name syntax (`{"my.metric", "label.name"="v"}`,
//!   `# HELP "my.metric" ...`) is accepted, except that a quoted name may not
//!   contain escape sequences (names are borrowed `&str`s).
//!
//! Errors name the 1-based line and what was expected; the parser stops at the
//! first error.

use std::borrow::Cow;
use std::fmt;

mod family;
mod number;
#[cfg(test)]
mod tests;

use family::{Families, Meta};

/// Which exposition format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    Text,
    /// OpenMetrics 1.0 text (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
}

impl Format {
    /// Picks the format from an HTTP `Content-Type`: OpenMetrics for
    /// `application/openmetrics-text` (any parameters), text for anything else,
    /// which is what Prometheus falls back to as well.
    pub fn from_content_type(ct: &str) -> Format {
        let media_type = ct.split(';').next().unwrap_or_default().trim();
        if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// A metric family's type, as declared by a `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    /// OpenMetrics `unknown`, text-format `untyped`.
    Unknown,
}

impl MetricType {
    /// The spelling the Prometheus HTTP API (`/api/v1/metadata`) uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }

    fn from_type_line(word: &str, format: Format) -> Option<MetricType> {
        Some(match (word, format) {
            ("counter", _) => MetricType::Counter,
            ("gauge", _) => MetricType::Gauge,
            ("histogram", _) => MetricType::Histogram,
            ("summary", _) => MetricType::Summary,
            ("untyped", Format::Text) => MetricType::Unknown,
            ("gaugehistogram", Format::OpenMetrics) => MetricType::GaugeHistogram,
            ("info", Format::OpenMetrics) => MetricType::Info,
            ("stateset", Format::OpenMetrics) => MetricType::StateSet,
            ("unknown", Format::OpenMetrics) => MetricType::Unknown,
            _ => return None,
        })
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A label pair: the name borrowed from the input, the value borrowed unless
/// it had to be unescaped.
pub type Label<'a> = (&'a str, Cow<'a, str>);

/// One parsed line. `'p` is the borrow of the parser's label buffer, `'a` the
/// borrow of the input.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'p, 'a> {
    Help {
        family: &'a str,
        help: Cow<'a, str>,
    },
    Type {
        family: &'a str,
        kind: MetricType,
    },
    /// OpenMetrics only.
    Unit {
        family: &'a str,
        unit: &'a str,
    },
    Sample(Sample<'p, 'a>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'p, 'a> {
    /// Metric name including any suffix (`_total`, `_bucket`, `_created`, ...).
    pub name: &'a str,
    /// In input order, without `__name__`.
    pub labels: &'p [Label<'a>],
    pub value: f64,
    /// Milliseconds since the epoch, if the line had a timestamp.
    pub timestamp_ms: Option<i64>,
    /// OpenMetrics only.
    pub exemplar: Option<Exemplar<'p, 'a>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar<'p, 'a> {
    pub labels: &'p [Label<'a>],
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

/// Malformed input. `detail` says what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {detail}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    pub detail: String,
}

/// What one line parsed to, before it borrows the label buffer.
enum Parsed<'a> {
    Help(&'a str, Cow<'a, str>),
    Type(&'a str, MetricType),
    Unit(&'a str, &'a str),
    Sample {
        name: &'a str,
        /// `labels[..label_count]` are the sample's, the rest the exemplar's.
        label_count: usize,
        value: f64,
        timestamp_ms: Option<i64>,
        exemplar: Option<(f64, Option<i64>)>,
    },
}

/// Character classes, indexed by byte.
const METRIC_START: u8 = 1;
const METRIC_CONT: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL_CONT: u8 = 8;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        if alpha {
            t[c] = METRIC_START | METRIC_CONT | LABEL_START | LABEL_CONT;
        } else if b.is_ascii_digit() {
            t[c] = METRIC_CONT | LABEL_CONT;
        } else if b == b':' {
            t[c] = METRIC_START | METRIC_CONT;
        }
        c += 1;
    }
    t
};

/// Above this many labels the duplicate check sorts instead of comparing pairs.
const PAIRWISE_DUPLICATE_CHECK_MAX: usize = 16;

/// OpenMetrics caps an exemplar's label set at 128 code points (names + values).
const EXEMPLAR_MAX_RUNES: usize = 128;

/// Streaming parser over one exposition body.
///
/// ```
/// use hearth_ingest::exposition::{Entry, Format, Parser};
/// let mut p = Parser::new("# TYPE up gauge\nup{job=\"node\"} 1\n", Format::Text);
/// while let Some(entry) = p.next_entry() {
///     if let Entry::Sample(s) = entry.unwrap() {
///         assert_eq!((s.name, s.labels[0].1.as_ref(), s.value), ("up", "node", 1.0));
///     }
/// }
/// ```
pub struct Parser<'a> {
    input: &'a str,
    format: Format,
    /// Byte offset of the next unread byte. Always on a char boundary.
    pos: usize,
    /// 1-based number of the line being (or last) parsed; 0 before the first.
    line: usize,
    /// Set once the parser has returned `None` or an error.
    finished: bool,
    /// Labels of the current sample followed by those of its exemplar. Cleared,
    /// never shrunk, between samples: this is the one buffer samples reuse.
    labels: Vec<Label<'a>>,
    /// Scratch for the duplicate-name check of large label sets.
    names: Vec<&'a str>,
    families: Families<'a>,
}

impl<'a> Parser<'a> {
    pub fn new(input: &'a str, format: Format) -> Parser<'a> {
        Parser {
            input,
            format,
            pos: 0,
            line: 0,
            finished: false,
            labels: Vec::new(),
            names: Vec::new(),
            families: Families::default(),
        }
    }

    /// The next HELP, TYPE, UNIT or sample line. Comments and (in the text
    /// format) blank lines are skipped. After `None` or an error, keeps
    /// returning `None`.
    pub fn next_entry(&mut self) -> Option<Result<Entry<'_, 'a>, ParseError>> {
        if self.finished {
            return None;
        }
        let parsed = match self.format {
            Format::Text => self.next_text(),
            Format::OpenMetrics => self.next_openmetrics(),
        };
        let parsed = match parsed {
            Ok(Some(p)) => p,
            Ok(None) => {
                self.finished = true;
                return None;
            }
            Err(detail) => {
                self.finished = true;
                return Some(Err(ParseError {
                    line: self.line.max(1),
                    detail,
                }));
            }
        };
        Some(Ok(match parsed {
            Parsed::Help(family, help) => Entry::Help { family, help },
            Parsed::Type(family, kind) => Entry::Type { family, kind },
            Parsed::Unit(family, unit) => Entry::Unit { family, unit },
            Parsed::Sample {
                name,
                label_count,
                value,
                timestamp_ms,
                exemplar,
            } => {
                let (labels, exemplar_labels) = self.labels.split_at(label_count);
                Entry::Sample(Sample {
                    name,
                    labels,
                    value,
                    timestamp_ms,
                    exemplar: exemplar.map(|(value, timestamp_ms)| Exemplar {
                        labels: exemplar_labels,
                        value,
                        timestamp_ms,
                    }),
                })
            }
        }))
    }

    /// 1-based line number of the entry or error most recently returned.
    pub fn line(&self) -> usize {
        self.line
    }

    pub fn format(&self) -> Format {
        self.format
    }

    // ---- text format -------------------------------------------------------

    fn next_text(&mut self) -> Result<Option<Parsed<'a>>, String> {
        loop {
            if self.pos >= self.input.len() {
                return Ok(None);
            }
            self.line += 1;
            self.skip_blanks();
            match self.peek() {
                None => return Ok(None),
                Some(b'\n') => self.pos += 1,
                Some(b'#') => {
                    if let Some(meta) = self.text_comment()? {
                        return Ok(Some(meta));
                    }
                }
                Some(_) => return self.sample().map(Some),
            }
        }
    }

    /// A `#` line: HELP or TYPE metadata, or a comment (`None`) to skip.
    fn text_comment(&mut self) -> Result<Option<Parsed<'a>>, String> {
        self.pos += 1; // '#'
        if !matches!(self.peek(), Some(b' ' | b'\t')) {
            self.skip_line();
            return Ok(None);
        }
        self.skip_blanks();
        let rest = &self.bytes()[self.pos..];
        let is_help = rest.starts_with(b"HELP");
        let keyword_ends_in_blank = matches!(rest.get(4), Some(b' ' | b'\t'));
        if !(is_help || rest.starts_with(b"TYPE")) || !keyword_ends_in_blank {
            self.skip_line();
            return Ok(None);
        }
        let keyword = if is_help { "HELP" } else { "TYPE" };
        self.pos += 4;
        self.skip_blanks();
        let family = self.metadata_name(keyword)?;
        let text = match self.peek() {
            None | Some(b'\n') => "",
            Some(b' ' | b'\t') => {
                self.pos += 1;
                self.rest_of_line()
            }
            Some(_) => {
                return Err(format!(
                    "expected a space after the metric name in {keyword}, found {}",
                    self.show_here()
                ))
            }
        };
        self.consume_newline();
        if is_help {
            self.families
                .on_metadata(family, Meta::Help, Format::Text)?;
            Ok(Some(Parsed::Help(
                family,
                unescape_help(text, Format::Text),
            )))
        } else {
            let word = text.trim_end_matches([' ', '\t']);
            let kind = MetricType::from_type_line(word, Format::Text).ok_or_else(|| {
                format!(
                    "unknown metric type {word:?} in TYPE; expected counter, gauge, histogram, \
                     summary or untyped"
                )
            })?;
            self.families
                .on_metadata(family, Meta::Type(kind), Format::Text)?;
            Ok(Some(Parsed::Type(family, kind)))
        }
    }

    // ---- OpenMetrics -------------------------------------------------------

    fn next_openmetrics(&mut self) -> Result<Option<Parsed<'a>>, String> {
        if self.pos >= self.input.len() {
            return Err("expected '# EOF' at the end of an OpenMetrics body".into());
        }
        self.line += 1;
        match self.peek() {
            Some(b'#') => self.openmetrics_comment(),
            Some(b'\n') => Err("blank lines are not allowed in OpenMetrics".into()),
            _ => self.sample().map(Some),
        }
    }

    /// `# HELP`, `# TYPE`, `# UNIT` or `# EOF` (which ends the body: `None`).
    fn openmetrics_comment(&mut self) -> Result<Option<Parsed<'a>>, String> {
        let rest = &self.bytes()[self.pos..];
        let meta = if rest.starts_with(b"# HELP ") {
            Meta::Help
        } else if rest.starts_with(b"# TYPE ") {
            Meta::Type(MetricType::Unknown)
        } else if rest.starts_with(b"# UNIT ") {
            Meta::Unit
        } else if rest.starts_with(b"# EOF") {
            self.pos += 5;
            match self.peek() {
                None => return Ok(None),
                Some(b'\n') => self.pos += 1,
                Some(_) => return Err("unexpected text after '# EOF'".into()),
            }
            if self.pos < self.input.len() {
                self.line += 1;
                return Err("unexpected data after '# EOF'".into());
            }
            return Ok(None);
        } else {
            return Err("expected '# HELP ', '# TYPE ', '# UNIT ' or '# EOF' \
                        (OpenMetrics has no other comments)"
                .into());
        };
        let keyword = match meta {
            Meta::Help => "HELP",
            Meta::Type(_) => "TYPE",
            Meta::Unit => "UNIT",
        };
        self.pos += 7;
        let family = self.metadata_name(keyword)?;
        if self.peek() != Some(b' ') {
            return Err(format!(
                "expected a space after the metric name in {keyword}, found {}",
                self.show_here()
            ));
        }
        self.pos += 1;
        let text = self.rest_of_line();
        if self.peek() != Some(b'\n') {
            return Err(format!(
                "expected a line feed at the end of the {keyword} line"
            ));
        }
        self.pos += 1;
        let om = Format::OpenMetrics;
        match meta {
            Meta::Help => {
                self.families.on_metadata(family, Meta::Help, om)?;
                Ok(Some(Parsed::Help(family, unescape_help(text, om))))
            }
            Meta::Type(_) => {
                let kind = MetricType::from_type_line(text, om).ok_or_else(|| {
                    format!(
                        "unknown metric type {text:?} in TYPE; expected counter, gauge, \
                         histogram, gaugehistogram, summary, info, stateset or unknown"
                    )
                })?;
                self.families.on_metadata(family, Meta::Type(kind), om)?;
                Ok(Some(Parsed::Type(family, kind)))
            }
            Meta::Unit => {
                let unit_is_suffix = family
                    .strip_suffix(text)
                    .is_some_and(|stem| stem.len() > 1 && stem.ends_with('_'));
                if !text.is_empty() && !unit_is_suffix {
                    return Err(format!(
                        "unit {text:?} is not a suffix of metric family {family:?} \
                         (expected the family name to end in \"_{text}\")"
                    ));
                }
                self.families.on_metadata(family, Meta::Unit, om)?;
                Ok(Some(Parsed::Unit(family, text)))
            }
        }
    }

    // ---- samples (both formats) --------------------------------------------

    fn sample(&mut self) -> Result<Parsed<'a>, String> {
        let om = self.format == Format::OpenMetrics;
        self.labels.clear();
        let mut name = None;
        if self.peek() != Some(b'{') {
            name = Some(self.metric_name()?);
            match self.peek() {
                Some(b'{') => {}
                Some(b' ') => {}
                Some(b'\t') if !om => {}
                None | Some(b'\n') => return Err("expected a value after the metric name".into()),
                Some(_) => {
                    return Err(format!(
                        "invalid character {} in metric name (expected '{{' or a space after it)",
                        self.show_here()
                    ))
                }
            }
            if !om {
                self.skip_blanks();
            }
        }
        if self.peek() == Some(b'{') {
            self.label_set(&mut name, false)?;
        }
        let name = name.ok_or(
            "metric name missing: expected a name before '{' or a quoted name inside the braces",
        )?;
        let label_count = self.labels.len();
        self.check_duplicate_labels(0)?;

        let value = self.value_after_separator("value")?;
        let mut timestamp_ms = None;
        let mut exemplar = None;
        if om {
            if self.at_separator_then(b'#') {
                exemplar = Some(self.exemplar()?);
            } else if self.peek() == Some(b' ') {
                self.pos += 1;
                let token = self.token();
                timestamp_ms = Some(number::parse_om_timestamp(token).ok_or_else(|| {
                    format!("invalid timestamp {token:?}: expected a finite number of seconds")
                })?);
                if self.at_separator_then(b'#') {
                    exemplar = Some(self.exemplar()?);
                }
            }
            self.expect_om_line_end()?;
        } else {
            self.skip_blanks();
            if !self.at_line_end() {
                let token = self.token();
                if token.starts_with('#') {
                    return Err("exemplars are only allowed in OpenMetrics".into());
                }
                timestamp_ms = Some(number::parse_text_timestamp(token).ok_or_else(|| {
                    format!("invalid timestamp {token:?}: expected integer milliseconds")
                })?);
                self.skip_blanks();
                if !self.at_line_end() {
                    return Err(format!(
                        "expected the end of the line after the timestamp, found {}",
                        self.show_here()
                    ));
                }
            }
            self.consume_newline();
        }
        self.families.on_sample(name);
        Ok(Parsed::Sample {
            name,
            label_count,
            value,
            timestamp_ms,
            exemplar,
        })
    }

    /// `# {labels} value [timestamp]` after an OpenMetrics sample; `pos` is at
    /// the space before `#`.
    fn exemplar(&mut self) -> Result<(f64, Option<i64>), String> {
        if !self.bytes()[self.pos..].starts_with(b" # {") {
            return Err(format!(
                "expected an exemplar ' # {{labels}} value' after the sample value, found {}",
                self.show_here()
            ));
        }
        self.pos += 3;
        let start = self.labels.len();
        let mut no_name = None;
        self.label_set(&mut no_name, true)?;
        self.check_duplicate_labels(start)?;
        let runes: usize = self.labels[start..]
            .iter()
            .map(|(n, v)| n.chars().count() + v.chars().count())
            .sum();
        if runes > EXEMPLAR_MAX_RUNES {
            return Err(format!(
                "exemplar label set has {runes} characters, more than the {EXEMPLAR_MAX_RUNES} \
                 OpenMetrics allows"
            ));
        }
        let value = self.value_after_separator("exemplar value")?;
        let mut timestamp_ms = None;
        if self.peek() == Some(b' ') {
            self.pos += 1;
            let token = self.token();
            timestamp_ms = Some(number::parse_om_timestamp(token).ok_or_else(|| {
                format!("invalid exemplar timestamp {token:?}: expected a finite number of seconds")
            })?);
        }
        Ok((value, timestamp_ms))
    }

    /// The separator before a value (one space in OpenMetrics; any blanks, or
    /// none after `}`, in the text format) and the value itself.
    fn value_after_separator(&mut self, what: &str) -> Result<f64, String> {
        if self.format == Format::OpenMetrics {
            if self.peek() != Some(b' ') {
                return Err(format!(
                    "expected a space before the {what}, found {}",
                    self.show_here()
                ));
            }
            self.pos += 1;
        } else {
            self.skip_blanks();
        }
        let token = self.token();
        if token.is_empty() {
            return Err(format!("expected a {what}, found {}", self.show_here()));
        }
        number::parse_value(token).ok_or_else(|| {
            format!("invalid {what} {token:?}: expected a float such as 1.5, 2e-3, NaN or +Inf")
        })
    }

    fn expect_om_line_end(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(b'\n') => {
                self.pos += 1;
                Ok(())
            }
            None => Err(
                "unexpected end of input: OpenMetrics lines end with '\\n' and the body \
                         with '# EOF'"
                    .into(),
            ),
            Some(_) => Err(format!(
                "expected the end of the line, found {}",
                self.show_here()
            )),
        }
    }

    /// Parses `{...}` into `self.labels`. A quoted string followed by `,` or
    /// `}` is the metric name (new UTF-8 syntax) unless this is an exemplar.
    fn label_set(&mut self, name: &mut Option<&'a str>, exemplar: bool) -> Result<(), String> {
        let text = self.format == Format::Text;
        self.pos += 1; // '{'
        loop {
            if text {
                self.skip_blanks();
            }
            let (label, quoted) = match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'"') => (self.quoted_name()?, true),
                Some(c) if CLASS[c as usize] & LABEL_START != 0 => {
                    (self.scan_name(LABEL_CONT), false)
                }
                _ => {
                    return Err(format!(
                        "expected a label name or '}}', found {}",
                        self.show_here()
                    ))
                }
            };
            if text {
                self.skip_blanks();
            }
            if quoted && !exemplar && matches!(self.peek(), Some(b',' | b'}')) {
                if name.is_some() {
                    return Err(format!("metric name given twice (second: {label:?})"));
                }
                *name = Some(label);
                if self.peek() == Some(b',') {
                    self.pos += 1;
                }
                continue;
            }
            if self.peek() != Some(b'=') {
                return Err(format!(
                    "expected '=' after label name {label:?}, found {}",
                    self.show_here()
                ));
            }
            self.pos += 1;
            if text {
                self.skip_blanks();
            }
            if self.peek() != Some(b'"') {
                return Err(format!(
                    "expected '\"' to start the value of label {label:?}, found {}",
                    self.show_here()
                ));
            }
            let value = self.label_value(label)?;
            if label == "__name__" {
                return Err(
                    "label name \"__name__\" is reserved; put the metric name before '{'".into(),
                );
            }
            self.labels.push((label, value));
            if text {
                self.skip_blanks();
            }
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => {
                    return Err(format!(
                        "expected ',' or '}}' after the value of label {label:?}, found {}",
                        self.show_here()
                    ))
                }
            }
        }
    }

    /// A quoted label value starting at `pos` (on the opening quote).
    fn label_value(&mut self, label: &str) -> Result<Cow<'a, str>, String> {
        let input = self.input;
        let bytes = input.as_bytes();
        let start = self.pos + 1;
        let unterminated = || {
            format!(
                "unterminated value of label {label:?}: expected a closing '\"' on the same line \
                 (write a newline as \\n)"
            )
        };
        let Some(i) = memchr::memchr3(b'"', b'\\', b'\n', &bytes[start..]) else {
            return Err(unterminated());
        };
        let mut at = start + i;
        match bytes[at] {
            b'"' => {
                self.pos = at + 1;
                return Ok(Cow::Borrowed(&input[start..at]));
            }
            b'\n' => return Err(unterminated()),
            _ => {}
        }
        // Escapes: copy, unescaping \\ \" \n and keeping any other escape as is.
        let mut out = String::with_capacity(at - start + 16);
        let mut copied = start;
        loop {
            match bytes[at] {
                b'"' => {
                    out.push_str(&input[copied..at]);
                    self.pos = at + 1;
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {
                    out.push_str(&input[copied..at]);
                    let replacement = match bytes.get(at + 1) {
                        Some(b'\\') => '\\',
                        Some(b'"') => '"',
                        Some(b'n') => '\n',
                        None | Some(b'\n') => return Err(unterminated()),
                        Some(_) => {
                            out.push('\\');
                            copied = at + 1;
                            at += 1;
                            match memchr::memchr3(b'"', b'\\', b'\n', &bytes[at..]) {
                                Some(i) => at += i,
                                None => return Err(unterminated()),
                            }
                            continue;
                        }
                    };
                    out.push(replacement);
                    copied = at + 2;
                }
                _ => return Err(unterminated()),
            }
            match memchr::memchr3(b'"', b'\\', b'\n', &bytes[copied..]) {
                Some(i) => at = copied + i,
                None => return Err(unterminated()),
            }
        }
    }

    fn check_duplicate_labels(&mut self, from: usize) -> Result<(), String> {
        let set = &self.labels[from..];
        let duplicate = if set.len() <= PAIRWISE_DUPLICATE_CHECK_MAX {
            set.iter()
                .enumerate()
                .find(|(i, (n, _))| set[..*i].iter().any(|(m, _)| m == n))
                .map(|(_, (n, _))| *n)
        } else {
            self.names.clear();
            self.names.extend(set.iter().map(|(n, _)| *n));
            self.names.sort_unstable();
            self.names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
        };
        match duplicate {
            Some(n) => Err(format!("duplicate label name {n:?}")),
            None => Ok(()),
        }
    }

    // ---- lexical helpers ---------------------------------------------------

    fn bytes(&self) -> &'a [u8] {
        self.input.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn skip_blanks(&mut self) {
        let b = self.bytes();
        while matches!(b.get(self.pos), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn consume_newline(&mut self) {
        if self.peek() == Some(b'\n') {
            self.pos += 1;
        }
    }

    fn at_line_end(&self) -> bool {
        matches!(self.peek(), None | Some(b'\n'))
    }

    /// Whether the input continues with a space and then `c`.
    fn at_separator_then(&self, c: u8) -> bool {
        let b = self.bytes();
        b.get(self.pos) == Some(&b' ') && b.get(self.pos + 1) == Some(&c)
    }

    /// Skips to just past the next `\n` (or to the end).
    fn skip_line(&mut self) {
        let b = self.bytes();
        self.pos = match memchr::memchr(b'\n', &b[self.pos..]) {
            Some(i) => self.pos + i + 1,
            None => b.len(),
        };
    }

    /// Everything up to (not including) the next `\n`; `pos` ends on the `\n`.
    fn rest_of_line(&mut self) -> &'a str {
        let input = self.input;
        let start = self.pos;
        self.pos = match memchr::memchr(b'\n', &input.as_bytes()[start..]) {
            Some(i) => start + i,
            None => input.len(),
        };
        &input[start..self.pos]
    }

    /// Bytes up to the next separator: space or line feed, and tab in the
    /// text format. ASCII delimiters keep the slice on char boundaries.
    fn token(&mut self) -> &'a str {
        let input = self.input;
        let b = input.as_bytes();
        let start = self.pos;
        let tab_ends = self.format == Format::Text;
        let mut i = start;
        while let Some(&c) = b.get(i) {
            if c == b' ' || c == b'\n' || (c == b'\t' && tab_ends) {
                break;
            }
            i += 1;
        }
        self.pos = i;
        &input[start..i]
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*` at `pos`.
    fn metric_name(&mut self) -> Result<&'a str, String> {
        match self.peek() {
            Some(c) if CLASS[c as usize] & METRIC_START != 0 => Ok(self.scan_name(METRIC_CONT)),
            _ => Err(format!(
                "expected a metric name{}, found {}",
                match self.format {
                    Format::Text => ", '#' or a blank line",
                    Format::OpenMetrics => " or '#'",
                },
                self.show_here()
            )),
        }
    }

    /// The family name of a metadata line: legacy or quoted.
    fn metadata_name(&mut self, keyword: &str) -> Result<&'a str, String> {
        match self.peek() {
            Some(b'"') => self.quoted_name(),
            Some(c) if CLASS[c as usize] & METRIC_START != 0 => Ok(self.scan_name(METRIC_CONT)),
            _ => Err(format!(
                "expected a metric name after {keyword}, found {}",
                self.show_here()
            )),
        }
    }

    /// Advances over bytes of `class` starting at `pos` (whose first byte the
    /// caller has checked) and returns them.
    fn scan_name(&mut self, class: u8) -> &'a str {
        let input = self.input;
        let b = input.as_bytes();
        let start = self.pos;
        let mut i = start + 1;
        while let Some(&c) = b.get(i) {
            if CLASS[c as usize] & class == 0 {
                break;
            }
            i += 1;
        }
        self.pos = i;
        &input[start..i]
    }

    /// A `"quoted"` UTF-8 metric or label name at `pos`.
    fn quoted_name(&mut self) -> Result<&'a str, String> {
        let input = self.input;
        let start = self.pos + 1;
        match memchr::memchr3(b'"', b'\\', b'\n', &input.as_bytes()[start..]) {
            Some(i) if input.as_bytes()[start + i] == b'"' => {
                if i == 0 {
                    return Err("empty quoted name".into());
                }
                self.pos = start + i + 1;
                Ok(&input[start..start + i])
            }
            Some(i) if input.as_bytes()[start + i] == b'\\' => {
                Err("escape sequences in quoted names are not supported".into())
            }
            _ => Err("unterminated quoted name: expected a closing '\"' on the same line".into()),
        }
    }

    /// Describes the byte at `pos` for error messages.
    fn show_here(&self) -> String {
        match self.input[self.pos..].chars().next() {
            None => "the end of the input".into(),
            Some('\n') => "the end of the line".into(),
            Some(c) => format!("{c:?}"),
        }
    }
}

/// HELP text escapes: `\\` and `\n`, plus `\"` in OpenMetrics. Anything else
/// after a backslash is kept literally (Prometheus's replacer does the same).
fn unescape_help(text: &str, format: Format) -> Cow<'_, str> {
    let Some(first) = memchr::memchr(b'\\', text.as_bytes()) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..first]);
    let mut chars = text[first..].chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.clone().next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if format == Format::OpenMetrics => out.push('"'),
            _ => {
                out.push('\\');
                continue;
            }
        }
        chars.next();
    }
    Cow::Owned(out)
}
