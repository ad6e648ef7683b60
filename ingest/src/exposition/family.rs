//! Which metric family each line belongs to, for the ordering rules on
//! metadata: a family has at most one HELP, TYPE and UNIT, and its TYPE may not
//! follow its samples (Prometheus's `expfmt` text parser, which `promtool` and
//! the Pushgateway use, rejects both). OpenMetrics additionally puts all
//! metadata before the family's samples.
//!
//! Memory grows with the number of families, never with the number of samples:
//! consecutive samples of one family take a string-compare fast path and touch
//! the map only when the family changes.

use std::collections::HashMap;

use super::{Format, MetricType};

/// The kind of metadata line being recorded.
#[derive(Debug, Clone, Copy)]
pub(super) enum Meta {
    Help,
    Type(MetricType),
    Unit,
}

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    help: bool,
    unit: bool,
    kind: Option<MetricType>,
    samples: bool,
}

#[derive(Debug, Default)]
pub(super) struct Families<'a> {
    seen: HashMap<&'a str, Seen>,
    /// Family named by the latest metadata line, with its declared type
    /// (`Unknown` until a TYPE line says otherwise).
    meta: Option<(&'a str, MetricType)>,
    /// Name of the previous sample and the family it was attributed to.
    last_sample: Option<(&'a str, &'a str)>,
}

impl<'a> Families<'a> {
    /// Records a metadata line, or explains why it is out of order.
    pub(super) fn on_metadata(
        &mut self,
        family: &'a str,
        meta: Meta,
        format: Format,
    ) -> Result<(), String> {
        let seen = self.seen.entry(family).or_default();
        let (what, duplicate) = match meta {
            Meta::Help => ("HELP", seen.help),
            Meta::Type(_) => ("TYPE", seen.kind.is_some()),
            Meta::Unit => ("UNIT", seen.unit),
        };
        if duplicate {
            return Err(format!(
                "duplicate {what} line for metric family {family:?}"
            ));
        }
        let after_samples = match meta {
            Meta::Type(_) => true,
            Meta::Help | Meta::Unit => format == Format::OpenMetrics,
        };
        if after_samples && seen.samples {
            return Err(format!(
                "{what} line for metric family {family:?} comes after samples of that family"
            ));
        }
        match meta {
            Meta::Help => seen.help = true,
            Meta::Type(kind) => seen.kind = Some(kind),
            Meta::Unit => seen.unit = true,
        }
        self.meta = Some((family, seen.kind.unwrap_or(MetricType::Unknown)));
        Ok(())
    }

    /// Records that a sample named `name` was seen.
    pub(super) fn on_sample(&mut self, name: &'a str) {
        if let Some((last_name, _)) = self.last_sample {
            if last_name == name {
                return;
            }
        }
        let family = match self.meta {
            Some((family, kind)) if belongs_to(name, family, kind) => family,
            _ => name,
        };
        let same_family = matches!(self.last_sample, Some((_, f)) if f == family);
        self.last_sample = Some((name, family));
        if !same_family {
            self.seen.entry(family).or_default().samples = true;
        }
    }
}

/// Whether a sample name is `family` itself or `family` plus a suffix that the
/// family's type produces (the rule Prometheus's `isSeriesPartOfFamily` uses).
fn belongs_to(name: &str, family: &str, kind: MetricType) -> bool {
    let Some(suffix) = name.strip_prefix(family) else {
        return false;
    };
    if suffix.is_empty() {
        return true;
    }
    let allowed: &[&str] = match kind {
        MetricType::Counter => &["_total", "_created"],
        MetricType::Summary => &["_sum", "_count", "_created"],
        MetricType::Histogram => &["_bucket", "_sum", "_count", "_created"],
        MetricType::GaugeHistogram => &["_bucket", "_gsum", "_gcount", "_created"],
        MetricType::Info => &["_info"],
        MetricType::Gauge | MetricType::StateSet | MetricType::Unknown => &[],
    };
    allowed.contains(&suffix)
}
