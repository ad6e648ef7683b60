//! `POST /api/v1/import/prometheus`: push the text exposition format (or OpenMetrics, by
//! `Content-Type`), as VictoriaMetrics accepts it — the Pushgateway use case without a
//! Pushgateway, for cron jobs and scripts that cannot be scraped.
//!
//! Query parameters: `timestamp` for samples without one (Unix seconds, fractional allowed,
//! or RFC 3339; a number of 10^11 or more is taken as milliseconds, as a VictoriaMetrics user
//! may send), default now; `extra_label=name=value`, repeatable, added to every series
//! (replacing a label of the same name). A body that does not parse is refused whole with
//! 400 naming the line; `# HELP`/`# TYPE`/`# UNIT` are stored as metadata.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::exposition::{Entry, Format, Parser};
use crate::metadata::Metadata;
use crate::writer::SeriesInput;
use crate::IngestError;

/// Parsed query parameters.
#[derive(Debug, Default, PartialEq)]
pub struct ImportParams {
    pub timestamp_ms: Option<i64>,
    pub extra_labels: Vec<(String, String)>,
}

/// Parses `timestamp` and `extra_label` (other parameters are ignored, as VictoriaMetrics
/// does).
pub fn parse_params(pairs: Vec<(String, String)>) -> Result<ImportParams, IngestError> {
    let mut p = ImportParams::default();
    for (k, v) in pairs {
        match k.as_str() {
            "timestamp" => p.timestamp_ms = Some(parse_timestamp(&v)?),
            "extra_label" => {
                let (n, val) = v.split_once('=').ok_or_else(|| {
                    IngestError::BadRequest(format!(
                        "extra_label {v:?} must have the form name=value"
                    ))
                })?;
                if !hearth_tsdb::labels::is_valid_label_name(n) {
                    return Err(IngestError::BadRequest(format!(
                        "extra_label {v:?}: invalid label name {n:?}"
                    )));
                }
                p.extra_labels.retain(|(x, _)| x != n);
                p.extra_labels.push((n.to_string(), val.to_string()));
            }
            _ => {}
        }
    }
    Ok(p)
}

fn parse_timestamp(v: &str) -> Result<i64, IngestError> {
    let bad = || {
        IngestError::BadRequest(format!(
            "invalid timestamp {v:?}: expected Unix seconds or RFC 3339"
        ))
    };
    if let Ok(f) = v.parse::<f64>() {
        if !f.is_finite() {
            return Err(bad());
        }
        return Ok(if f.abs() >= 1e11 {
            f as i64
        } else {
            (f * 1000.0).round() as i64
        });
    }
    parse_rfc3339_ms(v).ok_or_else(bad)
}

/// Minimal RFC 3339 (`2024-01-02T03:04:05[.123](Z|+hh:mm)`) to Unix milliseconds.
fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = s.get(start..i)?;
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        ms = digits.parse().ok()?;
    }
    let offset_min = match s.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (tz.get(1..3)?.parse::<i64>().ok()? * 60 + tz.get(4..6)?.parse::<i64>().ok()?)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60) * 1000) + ms)
}

/// The result of parsing an import body.
#[derive(Debug, Default)]
pub struct ParsedImport {
    pub series: Vec<SeriesInput>,
    /// (family, metadata)
    pub metadata: Vec<(String, Metadata)>,
    pub samples: usize,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Parses a whole body into series (samples of one series grouped, in body order).
pub fn parse_body(
    text: &str,
    format: Format,
    params: &ImportParams,
) -> Result<ParsedImport, IngestError> {
    let default_ts = params.timestamp_ms.unwrap_or_else(now_ms);
    let mut out = ParsedImport::default();
    let mut index: HashMap<Vec<(String, String)>, usize> = HashMap::new();
    let mut meta: HashMap<String, Metadata> = HashMap::new();
    let mut parser = Parser::new(text, format);
    while let Some(entry) = parser.next_entry() {
        let entry = entry.map_err(|e| IngestError::BadRequest(format!("parsing body: {e}")))?;
        match entry {
            Entry::Help { family, help } => {
                meta.entry(family.to_string())
                    .or_insert_with(empty_meta)
                    .help = help.into_owned()
            }
            Entry::Type { family, kind } => {
                meta.entry(family.to_string())
                    .or_insert_with(empty_meta)
                    .kind = kind.as_str().to_string()
            }
            Entry::Unit { family, unit } => {
                meta.entry(family.to_string())
                    .or_insert_with(empty_meta)
                    .unit = unit.to_string()
            }
            Entry::Sample(s) => {
                let mut labels: Vec<(String, String)> =
                    Vec::with_capacity(s.labels.len() + 1 + params.extra_labels.len());
                labels.push(("__name__".to_string(), s.name.to_string()));
                for (n, v) in s.labels {
                    if params.extra_labels.iter().any(|(x, _)| x == n) {
                        continue;
                    }
                    labels.push((n.to_string(), v.to_string()));
                }
                labels.extend(params.extra_labels.iter().cloned());
                labels.sort();
                let t = s.timestamp_ms.unwrap_or(default_ts);
                out.samples += 1;
                match index.get(&labels) {
                    Some(&i) => out.series[i]
                        .samples
                        .push(crate::remote_write::proto::Sample {
                            value: s.value,
                            timestamp: t,
                        }),
                    None => {
                        index.insert(labels.clone(), out.series.len());
                        out.series.push(SeriesInput {
                            labels: crate::writer::owned_labels(labels),
                            samples: crate::writer::samples([(t, s.value)]),
                            histograms: 0,
                        });
                    }
                }
            }
        }
    }
    out.metadata = meta.into_iter().collect();
    Ok(out)
}

fn empty_meta() -> Metadata {
    Metadata {
        kind: "unknown".into(),
        help: String::new(),
        unit: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(p: &[(&str, &str)]) -> Result<ImportParams, IngestError> {
        parse_params(
            p.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_timestamp("1700000000.123").unwrap(),
            1_700_000_000_123
        );
        assert_eq!(parse_timestamp("1700000000123").unwrap(), 1_700_000_000_123);
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20.5Z").unwrap(),
            1_700_000_000_500
        );
        assert_eq!(
            parse_timestamp("2023-11-15T00:13:20+02:00").unwrap(),
            1_700_000_000_000
        );
        for bad in [
            "",
            "NaN",
            "yesterday",
            "2023-13-01T00:00:00Z",
            "2023-11-14T22:13:20",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn params_and_extra_labels() {
        let p = params(&[
            ("extra_label", "job=cron"),
            ("extra_label", "job=backup"),
            ("timestamp", "10"),
        ])
        .unwrap();
        assert_eq!(p.timestamp_ms, Some(10_000));
        assert_eq!(
            p.extra_labels,
            vec![("job".to_string(), "backup".to_string())]
        );
        assert!(params(&[("extra_label", "nolabel")]).is_err());
        assert!(params(&[("extra_label", "1x=y")]).is_err());
    }

    #[test]
    fn body_groups_series_applies_labels_and_metadata() {
        let body = "# HELP backup_duration_seconds How long.\n# TYPE backup_duration_seconds gauge\nbackup_duration_seconds{job=\"x\",host=\"a\"} 12.5\nbackup_duration_seconds{host=\"a\"} 13 5000\nbackup_ok 1\n";
        let p = params(&[("extra_label", "job=backup"), ("timestamp", "1")]).unwrap();
        let r = parse_body(body, Format::Text, &p).unwrap();
        assert_eq!(r.samples, 3);
        assert_eq!(r.series.len(), 2);
        let s = &r.series[0];
        assert_eq!(
            s.labels,
            crate::writer::owned_labels(vec![
                (
                    "__name__".to_string(),
                    "backup_duration_seconds".to_string()
                ),
                ("host".into(), "a".into()),
                ("job".into(), "backup".into())
            ])
        );
        assert_eq!(
            s.samples,
            crate::writer::samples([(1000, 12.5), (5000, 13.0)])
        );
        let (_, m) = r
            .metadata
            .iter()
            .find(|(f, _)| f == "backup_duration_seconds")
            .unwrap();
        assert_eq!((m.kind.as_str(), m.help.as_str()), ("gauge", "How long."));
        let err = parse_body("ok 1\nbroken{ 2\n", Format::Text, &p).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
