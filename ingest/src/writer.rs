//! The one path every ingest protocol writes through: validate each series against the
//! limits, admit new series against the global limits, append, commit durably, and say per
//! series what was refused and why.

use std::fmt::Write as _;

use bytes::Bytes;

use crate::remote_write::proto::{Label, Sample};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hearth_tsdb::labels::is_valid_label_name;
use hearth_tsdb::{Db, Labels, RejectReason, TsdbError};
use parking_lot::Mutex;

use crate::config::IngestConfig;

/// One series as decoded from a request. Uses the remote-write message types so a decoded
/// remote-write series moves in without any conversion.
#[derive(Debug, Default, Clone)]
pub struct SeriesInput {
    /// Label pairs including `__name__`, as sent: raw bytes (usually slices of the request
    /// buffer), checked for UTF-8 here, and only for series that do not exist yet.
    pub labels: Vec<Label>,
    pub samples: Vec<Sample>,
    /// Native histogram samples sent for this series (refused: not supported yet).
    pub histograms: usize,
}

/// Label pairs as owned strings, for sources that build them (push import, OTLP): moved
/// into `Bytes` without copying.
pub fn owned_labels(labels: Vec<(String, String)>) -> Vec<Label> {
    labels
        .into_iter()
        .map(|(n, v)| Label {
            name: Bytes::from(n),
            value: Bytes::from(v),
        })
        .collect()
}

/// `(timestamp ms, value)` pairs as remote-write samples.
pub fn samples(s: impl IntoIterator<Item = (i64, f64)>) -> Vec<Sample> {
    s.into_iter()
        .map(|(timestamp, value)| Sample { value, timestamp })
        .collect()
}

/// Why (part of) a series was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    InvalidLabels,
    TooManyLabels,
    LabelNameTooLong,
    LabelValueTooLong,
    NativeHistogram,
    TooOld,
    DuplicateConflict,
    MaxActiveSeries,
    NewSeriesRate,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::InvalidLabels,
        Reason::TooManyLabels,
        Reason::LabelNameTooLong,
        Reason::LabelValueTooLong,
        Reason::NativeHistogram,
        Reason::TooOld,
        Reason::DuplicateConflict,
        Reason::MaxActiveSeries,
        Reason::NewSeriesRate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidLabels => "invalid_labels",
            Reason::TooManyLabels => "too_many_labels",
            Reason::LabelNameTooLong => "label_name_too_long",
            Reason::LabelValueTooLong => "label_value_too_long",
            Reason::NativeHistogram => "native_histogram",
            Reason::TooOld => "too_old",
            Reason::DuplicateConflict => "duplicate_conflict",
            Reason::MaxActiveSeries => "max_active_series",
            Reason::NewSeriesRate => "max_new_series_per_minute",
        }
    }

    /// Limit refusals are worth retrying later (429); the rest never succeed (400).
    pub fn is_limit(self) -> bool {
        matches!(self, Reason::MaxActiveSeries | Reason::NewSeriesRate)
    }
}

/// A refused series (or samples of it), for the response body.
#[derive(Debug, Clone)]
pub struct SeriesError {
    pub series: String,
    pub reason: Reason,
    pub detail: String,
    /// Samples of this series refused.
    pub samples: usize,
}

/// What one request did.
#[derive(Debug, Default)]
pub struct WriteOutcome {
    pub samples_written: usize,
    pub series_errors: Vec<SeriesError>,
    pub samples_refused: usize,
}

/// Series errors listed in a response body at most.
const MAX_LISTED: usize = 10;

impl WriteOutcome {
    pub fn limited(&self) -> bool {
        self.series_errors.iter().any(|e| e.reason.is_limit())
    }

    /// A response body naming the first few refused series and why.
    pub fn error_text(&self) -> String {
        let mut s = format!(
            "{} samples of {} series refused ({} samples written)",
            self.samples_refused,
            self.series_errors.len(),
            self.samples_written
        );
        for e in self.series_errors.iter().take(MAX_LISTED) {
            let _ = write!(s, "\n{}: {}: {}", e.series, e.reason.as_str(), e.detail);
        }
        if self.series_errors.len() > MAX_LISTED {
            let _ = write!(
                s,
                "\n... and {} more",
                self.series_errors.len() - MAX_LISTED
            );
        }
        s
    }
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct IngestStats {
    pub samples_written: AtomicU64,
    rejected: [AtomicU64; Reason::ALL.len()],
}

impl IngestStats {
    pub fn rejected(&self, r: Reason) -> u64 {
        self.rejected[r as usize].load(Ordering::Relaxed)
    }
    fn add(&self, r: Reason, n: usize) {
        self.rejected[r as usize].fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Token bucket for new series: holds up to `per_minute` tokens, refilled continuously.
pub(crate) struct NewSeriesBudget {
    per_minute: u64,
    state: Mutex<(f64, Instant)>,
}

impl NewSeriesBudget {
    pub(crate) fn new(per_minute: u64) -> Self {
        NewSeriesBudget {
            per_minute,
            state: Mutex::new((per_minute as f64, Instant::now())),
        }
    }

    fn take(&self) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let mut st = self.state.lock();
        let now = Instant::now();
        let refill = now.duration_since(st.1).as_secs_f64() * self.per_minute as f64 / 60.0;
        st.0 = (st.0 + refill).min(self.per_minute as f64);
        st.1 = now;
        if st.0 >= 1.0 {
            st.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

fn display(labels: &[Label]) -> String {
    let lossy = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    let name = labels
        .iter()
        .find(|l| l.name.as_ref() == b"__name__")
        .map_or(String::new(), |l| lossy(&l.value));
    let mut s = format!("{name}{{");
    let mut first = true;
    for l in labels.iter().filter(|l| l.name.as_ref() != b"__name__") {
        let (n, v) = (lossy(&l.name), lossy(&l.value));
        if !first {
            s.push_str(", ");
        }
        first = false;
        let _ = write!(s, "{n}={v:?}");
    }
    s.push('}');
    s
}

/// Checks one series' labels against the per-series limits and the data model.
fn check_labels(
    cfg: &IngestConfig,
    labels: Vec<(String, String)>,
    require_sorted: bool,
) -> Result<Labels, (Reason, String)> {
    if cfg.max_labels_per_series > 0 && labels.len() > cfg.max_labels_per_series {
        let d = format!(
            "{} labels, limit is {}",
            labels.len(),
            cfg.max_labels_per_series
        );
        return Err((Reason::TooManyLabels, d));
    }
    for (n, v) in &labels {
        if cfg.max_label_name_length > 0 && n.len() > cfg.max_label_name_length {
            let d = format!(
                "label name of {} bytes, limit is {}",
                n.len(),
                cfg.max_label_name_length
            );
            return Err((Reason::LabelNameTooLong, d));
        }
        if cfg.max_label_value_length > 0 && v.len() > cfg.max_label_value_length {
            let d = format!(
                "value of label {n:?} has {} bytes, limit is {}",
                v.len(),
                cfg.max_label_value_length
            );
            return Err((Reason::LabelValueTooLong, d));
        }
        if !is_valid_label_name(n) {
            return Err((Reason::InvalidLabels, format!("invalid label name {n:?}")));
        }
    }
    let mut labels = labels;
    if !require_sorted {
        labels.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }
    for w in labels.windows(2) {
        if w[0].0 >= w[1].0 {
            let d = if w[0].0 == w[1].0 {
                format!("duplicate label name {:?}", w[0].0)
            } else {
                format!("labels not sorted: {:?} before {:?}", w[0].0, w[1].0)
            };
            return Err((Reason::InvalidLabels, d));
        }
    }
    if labels.iter().all(|(_, v)| v.is_empty()) {
        return Err((Reason::InvalidLabels, "no labels with a value".into()));
    }
    // Everything `Labels` checks was checked above, so the strings move into the label set
    // without being copied.
    Labels::from_sorted(labels).map_err(|e| (Reason::InvalidLabels, e.to_string()))
}

/// Writes `series` into `db`. `Err` only for failures worth retrying (storage I/O, shutdown):
/// per-series refusals are in the outcome, and what was accepted is durable either way.
pub(crate) fn write_series(
    db: &Db,
    cfg: &IngestConfig,
    budget: &NewSeriesBudget,
    stats: &IngestStats,
    series: &[SeriesInput],
    require_sorted: bool,
) -> Result<WriteOutcome, TsdbError> {
    let mut out = WriteOutcome::default();
    let refuse = |out: &mut WriteOutcome, series: String, reason, detail: String, n: usize| {
        stats.add(reason, n.max(1));
        out.samples_refused += n;
        out.series_errors.push(SeriesError {
            series,
            reason,
            detail,
            samples: n,
        });
    };
    let mut app = db.appender();
    // Reused across series: label pairs borrowed from the request.
    let mut pairs: Vec<(&[u8], &[u8])> = Vec::with_capacity(32);
    for s in series {
        if s.histograms > 0 {
            refuse(
                &mut out,
                display(&s.labels),
                Reason::NativeHistogram,
                "native histograms are not supported yet".into(),
                s.histograms,
            );
        }
        if s.samples.is_empty() {
            continue;
        }
        // Fast path: borrowed bytes, no allocation, no validation — an existing series was
        // validated when it was created, and only an exact (sorted, valid) match finds one.
        // Empty values are absent labels.
        pairs.clear();
        pairs.extend(
            s.labels
                .iter()
                .filter(|l| !l.value.is_empty())
                .map(|l| (l.name.as_ref(), l.value.as_ref())),
        );
        if !require_sorted {
            pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        let r = match app.existing_pairs(&pairs) {
            Some(r) => r,
            None => {
                let mut owned = Vec::with_capacity(pairs.len());
                for (n, v) in &pairs {
                    match (std::str::from_utf8(n), std::str::from_utf8(v)) {
                        (Ok(n), Ok(v)) => owned.push((n.to_string(), v.to_string())),
                        _ => break,
                    }
                }
                if owned.len() != pairs.len() {
                    let n = s.samples.len();
                    let d = "label is not valid UTF-8".to_string();
                    refuse(&mut out, display(&s.labels), Reason::InvalidLabels, d, n);
                    continue;
                }
                let labels = match check_labels(cfg, owned, require_sorted) {
                    Ok(l) => l,
                    Err((reason, detail)) => {
                        let n = s.samples.len();
                        refuse(&mut out, display(&s.labels), reason, detail, n);
                        continue;
                    }
                };
                match app.existing(&labels) {
                    Some(r) => r,
                    None => {
                        if cfg.max_active_series > 0 && db.num_series() >= cfg.max_active_series {
                            let d =
                                format!("limit of {} active series reached", cfg.max_active_series);
                            let n = s.samples.len();
                            refuse(&mut out, labels.to_string(), Reason::MaxActiveSeries, d, n);
                            continue;
                        }
                        if !budget.take() {
                            let d = format!(
                                "limit of {} new series per minute reached",
                                cfg.max_new_series_per_minute
                            );
                            let n = s.samples.len();
                            refuse(&mut out, labels.to_string(), Reason::NewSeriesRate, d, n);
                            continue;
                        }
                        app.series(&labels)?
                    }
                }
            }
        };
        for sm in &s.samples {
            app.append(&r, sm.timestamp, sm.value);
        }
    }
    let report = app.commit()?;
    out.samples_written = report.appended + report.duplicates;
    stats
        .samples_written
        .fetch_add(report.appended as u64, Ordering::Relaxed);
    for rej in &report.rejections {
        let reason = match rej.reason {
            RejectReason::TooOld => Reason::TooOld,
            RejectReason::DuplicateConflict => Reason::DuplicateConflict,
        };
        out.series_errors.push(SeriesError {
            series: rej.labels.to_string(),
            reason,
            detail: match rej.reason {
                RejectReason::TooOld => format!(
                    "sample at {} is older than the out-of-order window allows",
                    rej.t
                ),
                RejectReason::DuplicateConflict => {
                    format!("a different value is already stored at timestamp {}", rej.t)
                }
            },
            samples: 1,
        });
    }
    stats.add(Reason::TooOld, report.too_old);
    stats.add(Reason::DuplicateConflict, report.duplicate_conflicts);
    out.samples_refused += report.rejected();
    Ok(out)
}
