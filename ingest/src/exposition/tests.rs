use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::cell::Cell;

use proptest::prelude::*;

use super::*;

// ---- helpers ----------------------------------------------------------------

/// An owned copy of an entry, so whole bodies can be compared at once.
#[derive(Debug, Clone, PartialEq)]
enum Owned {
    Help(String, String),
    Type(String, MetricType),
    Unit(String, String),
    Sample(OwnedSample),
}

type OwnedLabels = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq)]
struct OwnedSample {
    name: String,
    labels: Vec<(String, String)>,
    /// Bits, so NaN compares equal to itself and -0.0 differs from 0.0.
    value: u64,
    ts: Option<i64>,
    exemplar: Option<(OwnedLabels, u64, Option<i64>)>,
}

fn own_labels(labels: &[Label<'_>]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn own(entry: Entry<'_, '_>) -> Owned {
    match entry {
        Entry::Help { family, help } => Owned::Help(family.into(), help.into_owned()),
        Entry::Type { family, kind } => Owned::Type(family.into(), kind),
        Entry::Unit { family, unit } => Owned::Unit(family.into(), unit.into()),
        Entry::Sample(s) => Owned::Sample(OwnedSample {
            name: s.name.into(),
            labels: own_labels(s.labels),
            value: s.value.to_bits(),
            ts: s.timestamp_ms,
            exemplar: s
                .exemplar
                .map(|e| (own_labels(e.labels), e.value.to_bits(), e.timestamp_ms)),
        }),
    }
}

fn parse(input: &str, format: Format) -> Result<Vec<Owned>, ParseError> {
    let mut p = Parser::new(input, format);
    let mut out = Vec::new();
    while let Some(entry) = p.next_entry() {
        out.push(own(entry?));
    }
    Ok(out)
}

fn text(input: &str) -> Vec<Owned> {
    parse(input, Format::Text).unwrap_or_else(|e| panic!("{e}\ninput: {input:?}"))
}

fn om(input: &str) -> Vec<Owned> {
    parse(input, Format::OpenMetrics).unwrap_or_else(|e| panic!("{e}\ninput: {input:?}"))
}

fn err(input: &str, format: Format) -> ParseError {
    match parse(input, format) {
        Ok(entries) => panic!("expected an error for {input:?}, got {entries:?}"),
        Err(e) => e,
    }
}

/// Asserts the error's line and that its detail contains `needle`.
fn assert_err(input: &str, format: Format, line: usize, needle: &str) {
    let e = err(input, format);
    assert_eq!(e.line, line, "line of {e} for {input:?}");
    assert!(
        e.detail.contains(needle),
        "{e:?} should mention {needle:?} (input {input:?})"
    );
    assert_eq!(e.to_string(), format!("line {line}: {}", e.detail));
}

fn sample(name: &str, labels: &[(&str, &str)], value: f64, ts: Option<i64>) -> Owned {
    Owned::Sample(OwnedSample {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        value: value.to_bits(),
        ts,
        exemplar: None,
    })
}

fn samples(entries: &[Owned]) -> Vec<&OwnedSample> {
    entries
        .iter()
        .filter_map(|e| match e {
            Owned::Sample(s) => Some(s),
            _ => None,
        })
        .collect()
}

// ---- API basics ---------------------------------------------------------------

#[test]
fn format_from_content_type() {
    for ct in [
        "application/openmetrics-text",
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        " Application/OpenMetrics-Text;version=0.0.1",
    ] {
        assert_eq!(Format::from_content_type(ct), Format::OpenMetrics, "{ct}");
    }
    for ct in [
        "text/plain; version=0.0.4",
        "",
        "application/json",
        "application/openmetrics",
    ] {
        assert_eq!(Format::from_content_type(ct), Format::Text, "{ct}");
    }
}

#[test]
fn metric_type_spelling() {
    let all = [
        (MetricType::Counter, "counter"),
        (MetricType::Gauge, "gauge"),
        (MetricType::Histogram, "histogram"),
        (MetricType::GaugeHistogram, "gaugehistogram"),
        (MetricType::Summary, "summary"),
        (MetricType::Info, "info"),
        (MetricType::StateSet, "stateset"),
        (MetricType::Unknown, "unknown"),
    ];
    for (kind, s) in all {
        assert_eq!(kind.as_str(), s);
        assert_eq!(kind.to_string(), s);
    }
}

#[test]
fn parser_is_fused_after_an_error_and_reports_the_line() {
    let mut p = Parser::new("a 1\nb{x} 1\nc 1\n", Format::Text);
    assert!(matches!(p.next_entry(), Some(Ok(Entry::Sample(_)))));
    assert_eq!(p.line(), 1);
    let e = p.next_entry().unwrap().unwrap_err();
    assert_eq!((e.line, p.line()), (2, 2));
    assert!(p.next_entry().is_none());
    assert!(p.next_entry().is_none());
}

#[test]
fn labels_are_borrowed_unless_escaped() {
    let input = "m{plain=\"abc\",esc=\"a\\\"b\"} 1\n";
    let mut p = Parser::new(input, Format::Text);
    let Some(Ok(Entry::Sample(s))) = p.next_entry() else {
        panic!("no sample")
    };
    assert!(matches!(s.labels[0].1, Cow::Borrowed("abc")));
    assert!(matches!(&s.labels[1].1, Cow::Owned(v) if v == "a\"b"));
}

// ---- text format features -----------------------------------------------------

#[test]
fn text_counter_gauge_with_metadata_and_timestamps() {
    let got = text(
        "# HELP http_requests_total The total number of HTTP requests.\n\
         # TYPE http_requests_total counter\n\
         http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
         http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n\
         # TYPE temp gauge\n\
         temp -3.5e2\n",
    );
    assert_eq!(
        got,
        vec![
            Owned::Help(
                "http_requests_total".into(),
                "The total number of HTTP requests.".into()
            ),
            Owned::Type("http_requests_total".into(), MetricType::Counter),
            sample(
                "http_requests_total",
                &[("method", "post"), ("code", "200")],
                1027.0,
                Some(1_395_066_363_000)
            ),
            sample(
                "http_requests_total",
                &[("method", "post"), ("code", "400")],
                3.0,
                Some(1_395_066_363_000)
            ),
            Owned::Type("temp".into(), MetricType::Gauge),
            sample("temp", &[], -350.0, None),
        ]
    );
}

#[test]
fn text_comments_blank_lines_and_unknown_hash_lines_are_skipped() {
    let got = text(
        "\n# just a comment\n#no space\n#\n   \n\t\n# UNIT a_seconds seconds\n\
         # HELPER not metadata\n# TYPE\n# EOF\na_seconds 1\n\n# EOF\n",
    );
    assert_eq!(got, vec![sample("a_seconds", &[], 1.0, None)]);
}

#[test]
fn text_last_line_may_lack_newline() {
    assert_eq!(text("a 1"), vec![sample("a", &[], 1.0, None)]);
    assert_eq!(text("a 1 5"), vec![sample("a", &[], 1.0, Some(5))]);
    assert_eq!(
        text("# HELP a x\n# TYPE a gauge"),
        vec![
            Owned::Help("a".into(), "x".into()),
            Owned::Type("a".into(), MetricType::Gauge)
        ]
    );
    assert!(text("").is_empty());
}

#[test]
fn text_whitespace_is_tolerated_where_prometheus_tolerates_it() {
    let got = text(
        "  a 1\n\
         b\t2\t\n\
         c { x = \"1\" , y=\"2\", } 3  7 \n\
         d{}4\n\
         e{x=\"1\"}\t\t5\n\
         #\tTYPE f gauge\n\
         # HELP\tf \tsome text  \n\
         f 6\n",
    );
    assert_eq!(
        got,
        vec![
            sample("a", &[], 1.0, None),
            sample("b", &[], 2.0, None),
            sample("c", &[("x", "1"), ("y", "2")], 3.0, Some(7)),
            sample("d", &[], 4.0, None),
            sample("e", &[("x", "1")], 5.0, None),
            Owned::Type("f".into(), MetricType::Gauge),
            // Like promparse: exactly one separator is dropped, the rest kept.
            Owned::Help("f".into(), "\tsome text  ".into()),
            sample("f", &[], 6.0, None),
        ]
    );
}

#[test]
fn label_value_escapes() {
    let got = text(concat!(
        r#"m{a="back\\slash",b="quote\"d",c="new\nline",d="tab\tkept",e="\\n",f="é😀"} 1"#,
        "\n"
    ));
    assert_eq!(
        got,
        vec![sample(
            "m",
            &[
                ("a", "back\\slash"),
                ("b", "quote\"d"),
                ("c", "new\nline"),
                ("d", "tab\\tkept"),
                ("e", "\\n"),
                ("f", "é😀")
            ],
            1.0,
            None
        )]
    );
    // A trailing escaped quote, an escaped backslash just before the closing quote.
    assert_eq!(
        text(r#"m{a="\"",b="\\"} 1"#),
        vec![sample("m", &[("a", "\""), ("b", "\\")], 1.0, None)]
    );
}

#[test]
fn help_escapes_differ_between_formats() {
    assert_eq!(
        text(r#"# HELP m a\\b\nc\"d\t"#),
        vec![Owned::Help("m".into(), "a\\b\nc\\\"d\\t".into())]
    );
    assert_eq!(
        om("# HELP m a\\\\b\\nc\\\"d\\t\n# EOF\n"),
        vec![Owned::Help("m".into(), "a\\b\nc\"d\\t".into())]
    );
    assert_eq!(
        text("# HELP m trailing\\"),
        vec![Owned::Help("m".into(), "trailing\\".into())]
    );
    assert_eq!(
        text("# HELP m\n"),
        vec![Owned::Help("m".into(), String::new())]
    );
}

#[test]
fn special_float_values_parse() {
    let got = text("a NaN\nb +Inf\nc -Inf\nd Inf\ne -0\nf 5e-324\ng nan\n");
    let values: Vec<u64> = samples(&got).iter().map(|s| s.value).collect();
    assert_eq!(
        values,
        vec![
            f64::NAN.to_bits(),
            f64::INFINITY.to_bits(),
            f64::NEG_INFINITY.to_bits(),
            f64::INFINITY.to_bits(),
            (-0.0f64).to_bits(),
            5e-324f64.to_bits(),
            f64::NAN.to_bits(),
        ]
    );
    // No input spelling yields the stale marker.
    assert!(values.iter().all(|&v| v != 0x7ff0_0000_0000_0002));
}

#[test]
fn summary_and_histogram_series_keep_their_suffixes() {
    let got = text(
        "# TYPE rpc summary\n\
         rpc{quantile=\"0.5\"} 0.1\nrpc_sum 5\nrpc_count 7\nrpc_created 1.7e9\n\
         # TYPE lat histogram\n\
         lat_bucket{le=\"0.5\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 0.75\nlat_count 2\n",
    );
    let names: Vec<&str> = samples(&got).iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "rpc",
            "rpc_sum",
            "rpc_count",
            "rpc_created",
            "lat_bucket",
            "lat_bucket",
            "lat_sum",
            "lat_count"
        ]
    );
    assert_eq!(
        samples(&got)[5].labels,
        vec![("le".to_string(), "+Inf".to_string())]
    );
}

#[test]
fn untyped_is_unknown_in_text() {
    assert_eq!(
        text("# TYPE a untyped\n"),
        vec![Owned::Type("a".into(), MetricType::Unknown)]
    );
}

#[test]
fn quoted_utf8_names() {
    let input = "# HELP \"my.metric\" dotted\n# TYPE \"my.metric\" gauge\n\
                 {\"my.metric\", \"label.name\"=\"v\", plain=\"w\"} 1\n\
                 {\"label.name\"=\"v\",\"my.metric\"} 2\n\
                 legacy{\"ünï\"=\"x\"} 3\n";
    let got = text(input);
    assert_eq!(
        got,
        vec![
            Owned::Help("my.metric".into(), "dotted".into()),
            Owned::Type("my.metric".into(), MetricType::Gauge),
            sample(
                "my.metric",
                &[("label.name", "v"), ("plain", "w")],
                1.0,
                None
            ),
            sample("my.metric", &[("label.name", "v")], 2.0, None),
            sample("legacy", &[("ünï", "x")], 3.0, None),
        ]
    );
    let om_got = om("{\"my.metric\",\"a.b\"=\"v\"} 1\n# EOF\n");
    assert_eq!(
        om_got,
        vec![sample("my.metric", &[("a.b", "v")], 1.0, None)]
    );
}

// ---- OpenMetrics features -----------------------------------------------------

#[test]
fn openmetrics_metadata_unit_timestamps_and_exemplars() {
    let got = om("# TYPE foo_seconds counter\n\
                  # UNIT foo_seconds seconds\n\
                  # HELP foo_seconds Time \"spent\".\n\
                  foo_seconds_total{a=\"b\"} 17 1520879607.789 # {trace_id=\"oHg5SJYRHA0\"} 9.8e-1 1520879607.7\n\
                  foo_seconds_created{a=\"b\"} 1520430000.123\n\
                  foo_seconds_total{a=\"c\"} 1 # {} 2\n\
                  # TYPE g gaugehistogram\n\
                  g_bucket{le=\"+Inf\"} 1\ng_gsum 2\ng_gcount 1\n\
                  # TYPE i info\ni_info{v=\"1\"} 1\n\
                  # TYPE s stateset\ns{s=\"a\"} 1\n\
                  # TYPE u unknown\nu -Inf -1.5\n\
                  # EOF");
    let ex_labels = vec![("trace_id".to_string(), "oHg5SJYRHA0".to_string())];
    assert_eq!(
        got[..6],
        [
            Owned::Type("foo_seconds".into(), MetricType::Counter),
            Owned::Unit("foo_seconds".into(), "seconds".into()),
            Owned::Help("foo_seconds".into(), "Time \"spent\".".into()),
            Owned::Sample(OwnedSample {
                name: "foo_seconds_total".into(),
                labels: vec![("a".into(), "b".into())],
                value: 17f64.to_bits(),
                ts: Some(1_520_879_607_789),
                exemplar: Some((ex_labels, 0.98f64.to_bits(), Some(1_520_879_607_700))),
            }),
            sample(
                "foo_seconds_created",
                &[("a", "b")],
                1_520_430_000.123,
                None
            ),
            Owned::Sample(OwnedSample {
                name: "foo_seconds_total".into(),
                labels: vec![("a".into(), "c".into())],
                value: 1f64.to_bits(),
                ts: None,
                exemplar: Some((vec![], 2f64.to_bits(), None)),
            }),
        ]
    );
    let kinds: Vec<MetricType> = got
        .iter()
        .filter_map(|e| match e {
            Owned::Type(_, k) => Some(*k),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            MetricType::Counter,
            MetricType::GaugeHistogram,
            MetricType::Info,
            MetricType::StateSet,
            MetricType::Unknown
        ]
    );
    assert_eq!(
        got.last(),
        Some(&sample("u", &[], f64::NEG_INFINITY, Some(-1_500)))
    );
}

#[test]
fn openmetrics_empty_body_is_just_eof() {
    assert!(om("# EOF\n").is_empty());
    assert!(om("# EOF").is_empty());
}

#[test]
fn openmetrics_empty_unit_is_allowed() {
    assert_eq!(
        om("# UNIT a \n# EOF\n"),
        vec![Owned::Unit("a".into(), String::new())]
    );
}

// ---- errors -------------------------------------------------------------------

#[test]
fn error_expected_equals_after_label_name() {
    let input = "# HELP a x\n# TYPE a gauge\na 1\n\n\n\n\n\n\n\n\nb{x} 1\n";
    assert_err(
        input,
        Format::Text,
        12,
        "expected '=' after label name \"x\"",
    );
    let e = err(input, Format::Text);
    assert!(
        e.to_string()
            .starts_with("line 12: expected '=' after label name"),
        "{e}"
    );
}

#[test]
fn errors_in_samples() {
    use Format::{OpenMetrics as O, Text as T};
    let cases: &[(&str, Format, usize, &str)] = &[
        ("a\n", T, 1, "expected a value"),
        ("a 1\nb{}\n", T, 2, "expected a value"),
        ("a 1\nb abc\n", T, 2, "invalid value \"abc\""),
        ("a 0x1p3\n", T, 1, "invalid value"),
        ("a 1e400\n", T, 1, "invalid value"),
        ("a 1 1.5\n", T, 1, "expected integer milliseconds"),
        (
            "a 1 2 3\n",
            T,
            1,
            "expected the end of the line after the timestamp",
        ),
        ("a{x=\"1\",x=\"2\"} 1\n", T, 1, "duplicate label name \"x\""),
        (
            "a 1\nb{x=\"1\",x=\"2\"} 1\n# EOF\n",
            O,
            2,
            "duplicate label name \"x\"",
        ),
        ("a{__name__=\"b\"} 1\n# EOF\n", O, 1, "reserved"),
        ("a{x=\"1\nb\"} 1\n# EOF\n", O, 1, "unterminated value"),
        ("a{__name__=\"b\"} 1\n", T, 1, "reserved"),
        ("foo.bar 1\n", T, 1, "invalid character '.' in metric name"),
        (
            "x 1\n1foo 1\n",
            T,
            2,
            "expected a metric name, '#' or a blank line, found '1'",
        ),
        ("a{x=\"1} 1\n", T, 1, "unterminated value of label \"x\""),
        ("a{x=\"1\nb\"} 1\n", T, 1, "unterminated value"),
        ("a{x=\"1\\\n\"} 1\n", T, 1, "unterminated value"),
        ("a{x=\"1\\", T, 1, "unterminated value"),
        (
            "a{x=1} 1\n",
            T,
            1,
            "expected '\"' to start the value of label \"x\"",
        ),
        (
            "a{x=\"1\" y=\"2\"} 1\n",
            T,
            1,
            "expected ',' or '}' after the value",
        ),
        ("a{x=\"1\",,} 1\n", T, 1, "expected a label name or '}'"),
        ("a{1x=\"1\"} 1\n", T, 1, "expected a label name or '}'"),
        ("a{x=\"1\"\n", T, 1, "expected ',' or '}'"),
        ("{x=\"1\"} 1\n", T, 1, "metric name missing"),
        ("a{\"b\"} 1\n", T, 1, "metric name given twice"),
        ("{\"a\\\"b\"} 1\n", T, 1, "escape sequences in quoted names"),
        ("{\"\"} 1\n", T, 1, "empty quoted name"),
        ("{\"abc} 1\n", T, 1, "unterminated quoted name"),
        (
            "a 1 # {x=\"y\"} 1\n",
            T,
            1,
            "exemplars are only allowed in OpenMetrics",
        ),
        ("a 1 b\n", T, 1, "invalid timestamp \"b\""),
        ("a +NaN\n", T, 1, "invalid value"),
        (
            "a{x=\"1\"} 1 2 # {a=\"b\"} 1\n",
            T,
            1,
            "expected the end of the line after the timestamp",
        ),
    ];
    for &(input, format, line, needle) in cases {
        assert_err(input, format, line, needle);
    }
}

#[test]
fn errors_in_metadata() {
    use Format::{OpenMetrics as O, Text as T};
    let cases: &[(&str, Format, usize, &str)] = &[
        ("# TYPE a foo\n", T, 1, "unknown metric type \"foo\""),
        ("# TYPE a gaugehistogram\n", T, 1, "unknown metric type"),
        ("# TYPE a untyped\n# EOF\n", O, 1, "unknown metric type"),
        ("# HELP 1a x\n", T, 1, "expected a metric name after HELP"),
        ("# TYPE \n", T, 1, "expected a metric name after TYPE"),
        (
            "# HELP a.b x\n",
            T,
            1,
            "expected a space after the metric name in HELP, found '.'",
        ),
        (
            "# TYPE a gauge\n# TYPE a counter\n",
            T,
            2,
            "duplicate TYPE line for metric family \"a\"",
        ),
        ("# HELP a x\n# HELP a y\n", T, 2, "duplicate HELP line"),
        (
            "a 1\n# TYPE a gauge\n",
            T,
            2,
            "TYPE line for metric family \"a\" comes after samples",
        ),
        ("a 1\nb 2\n# TYPE a gauge\n", T, 3, "comes after samples"),
        (
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\n# TYPE h histogram\n",
            T,
            4,
            "duplicate TYPE",
        ),
        (
            "c_total 1\n# TYPE c_total counter\n# EOF\n",
            O,
            2,
            "after samples",
        ),
        (
            "# TYPE c counter\nc_total 1\n# TYPE c counter\n# EOF\n",
            O,
            3,
            "duplicate TYPE",
        ),
        (
            "a 1\n# HELP a x\n# EOF\n",
            O,
            2,
            "HELP line for metric family \"a\" comes after",
        ),
        (
            "# UNIT a_s s\n# UNIT a_s s\n# EOF\n",
            O,
            2,
            "duplicate UNIT",
        ),
        (
            "# UNIT a_seconds bytes\n# EOF\n",
            O,
            1,
            "unit \"bytes\" is not a suffix",
        ),
        ("# UNIT seconds seconds\n# EOF\n", O, 1, "is not a suffix"),
        ("# UNIT aseconds seconds\n# EOF\n", O, 1, "is not a suffix"),
        (
            "# HELP a\n# EOF\n",
            O,
            1,
            "expected a space after the metric name in HELP",
        ),
        ("# TYPE a counter", O, 1, "line feed"),
    ];
    for &(input, format, line, needle) in cases {
        assert_err(input, format, line, needle);
    }
    // HELP after samples is fine in the text format (expfmt allows it).
    assert_eq!(text("a 1\n# HELP a x\n").len(), 2);
}

#[test]
fn errors_specific_to_openmetrics() {
    use Format::OpenMetrics as O;
    let cases: &[(&str, usize, &str)] = &[
        ("", 1, "expected '# EOF'"),
        ("a 1\n", 1, "expected '# EOF'"),
        ("a 1\nb 2\n", 2, "expected '# EOF'"),
        ("a 1", 1, "unexpected end of input"),
        ("# EOF\na 1\n", 2, "unexpected data after '# EOF'"),
        ("# EOF\n\n", 2, "unexpected data after '# EOF'"),
        ("# EOF \n", 1, "unexpected text after '# EOF'"),
        ("a 1\n\nb 1\n# EOF\n", 2, "blank lines are not allowed"),
        ("# comment\n# EOF\n", 1, "OpenMetrics has no other comments"),
        ("#TYPE a gauge\n# EOF\n", 1, "expected '# HELP '"),
        ("a  1\n# EOF\n", 1, "expected a value, found ' '"),
        ("a\t1\n# EOF\n", 1, "invalid character '\\t' in metric name"),
        ("a 1 \n# EOF\n", 1, "invalid timestamp \"\""),
        (
            "a{x=\"1\", y=\"2\"} 1\n# EOF\n",
            1,
            "expected a label name or '}', found ' '",
        ),
        (
            "a {x=\"1\"} 1\n# EOF\n",
            1,
            "invalid value \"{x=\\\"1\\\"}\"",
        ),
        (
            "a{x=\"1\"}1\n# EOF\n",
            1,
            "expected a space before the value",
        ),
        ("a 1 NaN\n# EOF\n", 1, "invalid timestamp \"NaN\""),
        ("a 1 +Inf\n# EOF\n", 1, "invalid timestamp"),
        (
            "a 1 # {x=\"y\"}\n# EOF\n",
            1,
            "expected a space before the exemplar value",
        ),
        (
            "a 1 # {x=\"y\"} z\n# EOF\n",
            1,
            "invalid exemplar value \"z\"",
        ),
        (
            "a 1 # {x=\"y\"} 1 Inf\n# EOF\n",
            1,
            "invalid exemplar timestamp",
        ),
        (
            "a 1 # {x=\"y\"} 1 2 3\n# EOF\n",
            1,
            "expected the end of the line",
        ),
        ("a 1 # x\n# EOF\n", 1, "expected an exemplar"),
        ("a 1 #{x=\"y\"} 1\n# EOF\n", 1, "expected an exemplar"),
        (
            "a 1 # {x=\"y\",x=\"z\"} 1\n# EOF\n",
            1,
            "duplicate label name \"x\"",
        ),
        (
            "a 1 # {\"n\"} 1\n# EOF\n",
            1,
            "expected '=' after label name \"n\"",
        ),
    ];
    for &(input, line, needle) in cases {
        assert_err(input, O, line, needle);
    }
    let long = "x".repeat(126);
    assert_eq!(om(&format!("a 1 # {{ab=\"{long}\"}} 1\n# EOF\n")).len(), 1);
    assert_err(
        &format!("a 1 # {{abc=\"{long}\"}} 1\n# EOF\n"),
        O,
        1,
        "129 characters, more than the 128",
    );
}

#[test]
fn large_label_sets_check_duplicates_by_sorting() {
    let mut labels: Vec<String> = (0..40).map(|i| format!("l{i}=\"v\"")).collect();
    let ok = format!("m{{{}}} 1\n", labels.join(","));
    assert_eq!(samples(&text(&ok))[0].labels.len(), 40);
    labels.push("l7=\"again\"".into());
    assert_err(
        &format!("m{{{}}} 1\n", labels.join(",")),
        Format::Text,
        1,
        "\"l7\"",
    );
}

// ---- conformance files --------------------------------------------------------

const ALLTYPES_237: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/conformance/exposition/alltypes.237mfs.prom.txt"
));
const ALLTYPES_5_OM: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/conformance/exposition/alltypes.5mfs.om.txt"
));

#[test]
fn conformance_237_families_text() {
    let got = text(ALLTYPES_237);
    let count = |f: &dyn Fn(&Owned) -> bool| got.iter().filter(|e| f(e)).count();
    // Independent counts: `grep -c '^# HELP'` = 237, `grep -c '^# TYPE'` = 237,
    // `grep -vc '^#'` = 1857 sample lines (the file has no blank lines and one
    // `# EOF`, which is a plain comment in the text format).
    assert_eq!(count(&|e| matches!(e, Owned::Help(..))), 237);
    assert_eq!(count(&|e| matches!(e, Owned::Type(..))), 237);
    let s = samples(&got);
    assert_eq!(s.len(), 1857);
    assert_eq!(got.len(), 237 + 237 + 1857);
    // awk '/^# TYPE/{print $4}' | sort | uniq -c: 112 counter, 97 gauge, 15 histogram, 13 summary.
    for (kind, n) in [
        (MetricType::Counter, 112),
        (MetricType::Gauge, 97),
        (MetricType::Histogram, 15),
        (MetricType::Summary, 13),
    ] {
        assert_eq!(
            count(&|e| matches!(e, Owned::Type(_, k) if *k == kind)),
            n,
            "{kind}"
        );
    }
    // grep -v '^#' | grep -c '{' = 1648; grep -c 'le="+Inf"' = 105; 12 NaN values.
    assert_eq!(s.iter().filter(|s| !s.labels.is_empty()).count(), 1648);
    let inf_buckets = s
        .iter()
        .filter(|s| s.labels.iter().any(|(n, v)| n == "le" && v == "+Inf"))
        .count();
    assert_eq!(inf_buckets, 105);
    assert_eq!(
        s.iter()
            .filter(|s| f64::from_bits(s.value).is_nan())
            .count(),
        12
    );
    assert!(s.iter().all(|s| s.ts.is_none() && s.exemplar.is_none()));
    // Spot checks.
    assert_eq!(
        got[2],
        sample(
            "go_gc_cycles_automatic_gc_cycles_total",
            &[],
            190932.0,
            None
        )
    );
    assert_eq!(
        *s[4],
        match sample(
            "go_gc_duration_seconds",
            &[("quantile", "0.25")],
            0.00010188,
            None
        ) {
            Owned::Sample(x) => x,
            _ => unreachable!(),
        }
    );
    assert_eq!(
        s.iter()
            .find(|s| s.name == "go_gc_gomemlimit_bytes")
            .unwrap()
            .value,
        9.03676723e+08f64.to_bits()
    );
    let rule = s
        .iter()
        .find(|s| s.name == "prometheus_rule_group_rules" && s.labels[0].1.contains(".yml"))
        .unwrap();
    assert_eq!(
        rule.labels,
        vec![(
            "rule_group".to_string(),
            "/etc/prometheus/rules/ansible_managed.yml;ansible managed alert rules".to_string()
        )]
    );
    assert_eq!(rule.value, 2f64.to_bits());
    assert_eq!(
        got.last(),
        Some(&sample(
            "promhttp_metric_handler_requests_total",
            &[("code", "503")],
            0.0,
            None
        ))
    );
    assert_eq!(
        got[0],
        Owned::Help(
            "go_gc_cycles_automatic_gc_cycles_total".into(),
            "Count of completed GC cycles generated by the Go runtime. Sourced from \
             /gc/cycles/automatic:gc-cycles"
                .into()
        )
    );
}

#[test]
fn conformance_5_families_openmetrics() {
    let got = om(ALLTYPES_5_OM);
    // grep -c '^# HELP' = 5, '^# TYPE' = 5, '^# UNIT' = 0, grep -vc '^#' = 53 samples,
    // 6 of them with ' # {' exemplars, 9 `_created` samples.
    let s = samples(&got);
    assert_eq!(
        got.iter().filter(|e| matches!(e, Owned::Help(..))).count(),
        5
    );
    assert_eq!(
        got.iter().filter(|e| matches!(e, Owned::Type(..))).count(),
        5
    );
    assert_eq!(
        got.iter().filter(|e| matches!(e, Owned::Unit(..))).count(),
        0
    );
    assert_eq!(s.len(), 53);
    assert_eq!(s.iter().filter(|s| s.exemplar.is_some()).count(), 6);
    assert_eq!(s.iter().filter(|s| s.name.ends_with("_created")).count(), 9);
    assert_eq!(
        got[2],
        sample(
            "go_build_info",
            &[("checksum", ""), ("path", ""), ("version", "")],
            1.0,
            None
        )
    );
    let first_ex = s.iter().find(|s| s.exemplar.is_some()).unwrap();
    assert_eq!(first_ex.name, "rpc_durations_histogram_seconds_bucket");
    assert_eq!(
        first_ex.labels,
        vec![("le".to_string(), "-0.0002899999999999998".to_string())]
    );
    assert_eq!(first_ex.value, 3f64.to_bits());
    assert_eq!(
        first_ex.exemplar,
        Some((
            vec![("dummyID".to_string(), "17783".to_string())],
            (-0.0003825067330956884f64).to_bits(),
            Some(1_726_839_814_223)
        ))
    );
    let created = s
        .iter()
        .find(|s| s.name == "rpc_durations_seconds_created")
        .unwrap();
    assert_eq!(
        created.labels,
        vec![("service".to_string(), "exponential".to_string())]
    );
    assert_eq!(created.value, 1.7268398130168908e+09f64.to_bits());
    assert_eq!(
        got.last(),
        Some(&sample(
            "rpc_requests_created",
            &[("service", "uniform")],
            1.7268398130168471e+09,
            None
        ))
    );
}

// ---- allocation ---------------------------------------------------------------

/// Counts allocations made by the current thread, so parallel tests don't
/// disturb each other's counts.
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards every call unchanged to `System`; only bumps a counter.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Parses `input` to the end and returns (allocations, samples).
fn count_parse_allocations(input: &str, format: Format) -> (u64, usize) {
    let before = allocations();
    let mut p = Parser::new(input, format);
    let mut n = 0;
    while let Some(entry) = p.next_entry() {
        if let Entry::Sample(s) = entry.unwrap() {
            n += 1;
            std::hint::black_box(s.value);
        }
    }
    (allocations() - before, n)
}

#[test]
fn parsing_does_not_allocate_per_sample() {
    // The 237-family file has no escapes, so all allocations come from the
    // label buffer and the per-family map, which grow logarithmically.
    let (allocs, n) = count_parse_allocations(ALLTYPES_237, Format::Text);
    assert_eq!(n, 1857);
    assert!(allocs <= 24, "{allocs} allocations for {n} samples");

    // Ten times the samples in the same families: exactly the same allocations.
    let mut body = String::new();
    let mut repeated = String::new();
    for f in 0..50 {
        let meta = format!("# HELP f{f} help\n# TYPE f{f} histogram\n");
        body.push_str(&meta);
        repeated.push_str(&meta);
        for i in 0..20 {
            let line =
                format!("f{f}_bucket{{job=\"j\",instance=\"i:{i}\",le=\"{i}\"}} {i}.5 {i}\n");
            body.push_str(&line);
            for _ in 0..10 {
                repeated.push_str(&line);
            }
        }
    }
    let (small, n_small) = count_parse_allocations(&body, Format::Text);
    let (large, n_large) = count_parse_allocations(&repeated, Format::Text);
    assert_eq!((n_small, n_large), (1000, 10_000));
    assert_eq!(
        small, large,
        "allocations must not depend on the number of samples"
    );

    let (om_allocs, om_n) = count_parse_allocations(ALLTYPES_5_OM, Format::OpenMetrics);
    assert_eq!(om_n, 53);
    assert!(
        om_allocs <= 12,
        "{om_allocs} allocations for the OpenMetrics file"
    );
}

// ---- property tests -------------------------------------------------------------

#[derive(Debug, Clone)]
struct GenFamily {
    name: String,
    kind: MetricType,
    help: Option<String>,
    samples: Vec<GenSample>,
}

#[derive(Debug, Clone)]
struct GenSample {
    suffix: &'static str,
    labels: Vec<(String, String)>,
    value: f64,
    ts_ms: Option<i64>,
    exemplar: Option<(OwnedLabels, f64, Option<i64>)>,
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z\\\\\"\n é😀\t{},=#]{0,12}",
        any::<String>(),
        Just(String::new()),
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        (1u64..1 << 52).prop_map(f64::from_bits), // subnormals
        (-1_000_000i64..1_000_000).prop_map(|i| i as f64),
        (-1_000_000i64..1_000_000).prop_map(|i| i as f64 / 1000.0),
    ]
}

fn suffixes(kind: MetricType) -> &'static [&'static str] {
    match kind {
        MetricType::Counter => &["_total", "_created"],
        MetricType::Summary => &["", "_sum", "_count", "_created"],
        MetricType::Histogram => &["_bucket", "_sum", "_count"],
        _ => &[""],
    }
}

fn family() -> impl Strategy<Value = GenFamily> {
    let kind = prop_oneof![
        Just(MetricType::Counter),
        Just(MetricType::Gauge),
        Just(MetricType::Summary),
        Just(MetricType::Histogram),
        Just(MetricType::Unknown),
    ];
    let help = proptest::option::of(prop_oneof!["[ -~]{0,20}", "[a\\\\\n\"é]{0,8}"]);
    (kind, "[a-zA-Z_:][a-zA-Z0-9_:]{0,10}", help).prop_flat_map(|(kind, name, help)| {
        let sample = (
            proptest::sample::select(suffixes(kind)),
            proptest::collection::vec(("[a-zA-Z_][a-zA-Z0-9_]{0,6}", label_value()), 0..4),
            float(),
            proptest::option::of(-1_000_000_000_000_000i64..1_000_000_000_000_000),
            proptest::option::of((
                proptest::collection::vec(("[a-z]{1,5}", "[a-z0-9\"\\\\]{0,8}"), 0..3),
                float(),
                proptest::option::of(-1_000_000_000_000_000i64..1_000_000_000_000_000),
            )),
        )
            .prop_map(|(suffix, labels, value, ts_ms, exemplar)| {
                // Label names must be unique within a sample: number them.
                let labels = labels
                    .into_iter()
                    .enumerate()
                    .map(|(i, (n, v))| (format!("{n}_{i}"), v))
                    .collect();
                let exemplar = exemplar.map(|(l, v, t)| {
                    let l = l
                        .into_iter()
                        .enumerate()
                        .map(|(i, (n, v))| (format!("{n}{i}"), v));
                    (l.collect(), v, t)
                });
                GenSample {
                    suffix,
                    labels,
                    value,
                    ts_ms,
                    exemplar,
                }
            });
        proptest::collection::vec(sample, 0..5).prop_map(move |samples| GenFamily {
            name: name.clone(),
            kind,
            help: help.clone(),
            samples,
        })
    })
}

fn escape_label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:?}")
    }
}

fn render_seconds(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

fn render_labels(out: &mut String, labels: &[(String, String)]) {
    out.push('{');
    for (i, (n, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("{n}=\"{}\"", escape_label_value(v)));
    }
    out.push('}');
}

/// Renders families the way client libraries do, and the entries parsing must
/// give back.
fn render(families: &[GenFamily], format: Format) -> (String, Vec<Owned>) {
    let om = format == Format::OpenMetrics;
    let mut out = String::new();
    let mut want = Vec::new();
    for (i, f) in families.iter().enumerate() {
        // Unique family names, so no TYPE can follow its family's samples.
        let family = format!("{}_{i}", f.name);
        if let Some(help) = &f.help {
            let mut escaped = help.replace('\\', "\\\\").replace('\n', "\\n");
            if om {
                escaped = escaped.replace('"', "\\\"");
            }
            out.push_str(&format!("# HELP {family} {escaped}\n"));
            want.push(Owned::Help(family.clone(), help.clone()));
        }
        let type_word = match (f.kind, om) {
            (MetricType::Unknown, false) => "untyped",
            (kind, _) => kind.as_str(),
        };
        out.push_str(&format!("# TYPE {family} {type_word}\n"));
        want.push(Owned::Type(family.clone(), f.kind));
        for s in &f.samples {
            let name = format!("{family}{}", s.suffix);
            out.push_str(&name);
            if !s.labels.is_empty() || !om {
                render_labels(&mut out, &s.labels);
            }
            out.push(' ');
            out.push_str(&render_float(s.value));
            if let Some(ts) = s.ts_ms {
                out.push(' ');
                out.push_str(&if om {
                    render_seconds(ts)
                } else {
                    ts.to_string()
                });
            }
            let exemplar = if om { s.exemplar.clone() } else { None };
            if let Some((labels, value, ts)) = &exemplar {
                out.push_str(" # ");
                render_labels(&mut out, labels);
                out.push(' ');
                out.push_str(&render_float(*value));
                if let Some(ts) = ts {
                    out.push(' ');
                    out.push_str(&render_seconds(*ts));
                }
            }
            out.push('\n');
            want.push(Owned::Sample(OwnedSample {
                name,
                labels: s.labels.clone(),
                value: canonical(s.value),
                ts: s.ts_ms,
                exemplar: exemplar.map(|(l, v, t)| (l, canonical(v), t)),
            }));
        }
    }
    if om {
        out.push_str("# EOF\n");
    }
    (out, want)
}

fn canonical(v: f64) -> u64 {
    if v.is_nan() {
        f64::NAN.to_bits()
    } else {
        v.to_bits()
    }
}

/// Arbitrary text built from the characters the grammar cares about.
fn exposition_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_:{}=,\"\\\\# \t\n0-9.eE+\\-NaInfTYPEHLPUOé]{0,200}",
        any::<String>(),
        "(# (HELP|TYPE|UNIT|EOF) ?[a-z_]{0,4} ?[a-z]{0,8}\n|[a-z]{1,3}(\\{[a-z\"=,\\\\ ]{0,12}\\})? [0-9.e+\\-]{0,6}( # \\{[a-z=\"]{0,6}\\} 1)?\n){0,8}(# EOF\n?)?",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rendered_families_round_trip(families in proptest::collection::vec(family(), 0..6)) {
        for format in [Format::Text, Format::OpenMetrics] {
            let (body, want) = render(&families, format);
            let got = parse(&body, format);
            prop_assert_eq!(got, Ok(want), "{:?} body:\n{}", format, body);
        }
    }

    #[test]
    fn arbitrary_input_never_panics(input in exposition_like()) {
        for format in [Format::Text, Format::OpenMetrics] {
            let mut p = Parser::new(&input, format);
            let mut entries = 0;
            while let Some(entry) = p.next_entry() {
                entries += 1;
                prop_assert!(entries <= input.len() + 1, "parser does not terminate");
                if let Err(e) = entry {
                    prop_assert!(e.line >= 1 && e.line <= input.split('\n').count() + 1);
                }
            }
        }
    }
}
