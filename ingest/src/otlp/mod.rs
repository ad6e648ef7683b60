//! OTLP/HTTP protobuf metrics (`POST /api/v1/otlp/v1/metrics`) translated into Prometheus
//! series, the way Prometheus 3's OTLP receiver does it with its default configuration.
//!
//! Pure translation: the HTTP handler decompresses the body, calls [`translate`] and appends
//! what comes back. Nothing here touches storage.
//!
//! The rules follow Prometheus `storage/remote/otlptranslator/prometheusremotewrite` and the
//! `prometheus/otlptranslator` module with Prometheus 3's defaults:
//!
//! - translation strategy `UnderscoreEscapingWithSuffixes`: metric names are escaped to the
//!   classic character set, get unit suffixes from the OTel unit, `_total` on monotonic
//!   cumulative sums and `_ratio` on gauges with unit `1`;
//! - label names: invalid characters become `_` (runs are kept, as
//!   `label_name_preserve_multiple_underscores: true` does), a leading digit gets `key_`, a
//!   single leading `_` gets `key` (`label_name_underscore_sanitization: true`);
//! - no resource attribute is promoted onto series; `service.name` (prefixed with
//!   `service.namespace/`) becomes `job`, `service.instance.id` becomes `instance`, and the
//!   other resource attributes go to a `target_info` gauge;
//! - scope name/version are not added as labels (`promote_scope_metadata: false`);
//! - delta temporality is rejected (no `--enable-feature=otlp-deltatocumulative`), explicit
//!   bucket histograms become classic `_bucket`/`_sum`/`_count` series
//!   (`convert_histograms_to_nhcb: false`).
//!
//! Exponential histograms would become native histograms, which hearth does not store yet:
//! they are rejected per metric.

use std::collections::{BTreeMap, HashMap, HashSet};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, DataPointFlags, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, Summary, SummaryDataPoint,
};
use prost::Message;

#[cfg(test)]
mod tests;

/// One output series. `labels` always contains `__name__`; names are unique, values are never
/// empty, and the pairs are sorted by name. `samples` are `(timestamp ms, value)` sorted by
/// timestamp, with exact duplicates removed.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSeries {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(i64, f64)>,
}

/// Metadata of one translated metric family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OtlpMetadata {
    /// The Prometheus family name (without `_bucket`/`_sum`/`_count`).
    pub family: String,
    /// `"counter"`, `"gauge"`, `"histogram"` or `"summary"`.
    pub kind: &'static str,
    /// The OTel description.
    pub help: String,
    /// The OTel unit as sent (UCUM, e.g. `ms`), as Prometheus stores it.
    pub unit: String,
}

/// Everything one request translated into. `errors` are per-metric problems: the metric named
/// in each was (partly) skipped, the rest of the request was translated.
#[derive(Debug, Default)]
pub struct OtlpBatch {
    pub series: Vec<OtlpSeries>,
    pub metadata: Vec<OtlpMetadata>,
    pub errors: Vec<OtlpError>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OtlpError {
    /// The body is not a protobuf `ExportMetricsServiceRequest`; nothing was translated.
    #[error("OTLP body does not decode as ExportMetricsServiceRequest: {detail}")]
    Decode { detail: String },
    /// The metric uses something hearth (or Prometheus by default) does not accept.
    #[error("metric {metric:?}: {what}")]
    Unsupported { metric: String, what: &'static str },
    /// A metric without data points; Prometheus drops it with the same complaint.
    #[error("empty data points. {metric:?} is dropped")]
    EmptyDataPoints { metric: String },
    /// The metric name escapes to nothing usable (empty or only underscores).
    #[error("normalization for metric {metric:?} resulted in invalid name {normalized:?}")]
    InvalidMetricName { metric: String, normalized: String },
    /// An attribute key escapes to nothing usable; the metric's remaining data points are
    /// skipped, as Prometheus does. `metric` is `target_info` for resource attributes.
    #[error(
        "metric {metric:?}: normalization for label name {attribute:?} resulted in invalid name {normalized:?}"
    )]
    InvalidLabelName {
        metric: String,
        attribute: String,
        normalized: String,
    },
}

/// Prometheus's stale marker (`value.StaleNaN`), written for points flagged
/// `NO_RECORDED_VALUE`.
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Resource attributes that identify the target: mapped to `job`/`instance`, kept off
/// `target_info`.
const SERVICE_NAME: &str = "service.name";
const SERVICE_NAMESPACE: &str = "service.namespace";
const SERVICE_INSTANCE_ID: &str = "service.instance.id";
const IDENTIFYING_ATTRIBUTES: [&str; 3] = [SERVICE_NAMESPACE, SERVICE_NAME, SERVICE_INSTANCE_ID];

const TARGET_INFO: &str = "target_info";
const TARGET_INFO_HELP: &str = "Target metadata";

/// Prometheus writes a `target_info` sample every half lookback delta between the earliest
/// and the latest point of a resource, so an `info()`/join finds it at every instant in
/// between. hearth uses PromQL's default lookback of 5 minutes.
const TARGET_INFO_INTERVAL_NS: u64 = 150 * 1_000_000_000;

/// Prometheus fills the whole span, however long; a single point with timestamp 0 next to a
/// current one would make it write ~12 million samples. We fill at most the last day (577
/// samples); older points are outside any sane ingest window anyway.
const TARGET_INFO_MAX_SPAN_NS: u64 = 24 * 3600 * 1_000_000_000;

/// Decodes an OTLP/HTTP protobuf metrics request and translates it.
///
/// Returns `Err` only when `body` does not decode; per-metric problems are collected in
/// [`OtlpBatch::errors`] while everything else is still translated.
pub fn translate(body: &[u8]) -> Result<OtlpBatch, OtlpError> {
    let request = ExportMetricsServiceRequest::decode(body).map_err(|e| OtlpError::Decode {
        detail: e.to_string(),
    })?;
    let mut out = Output::default();
    for rm in &request.resource_metrics {
        let resource_attrs: &[KeyValue] = rm
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
        let resource = ResourceLabels::new(resource_attrs);
        // Earliest/latest point over every metric of the resource, rejected ones included,
        // as Prometheus scans them before checking temporality.
        let mut earliest = u64::MAX;
        let mut latest = 0u64;
        for sm in &rm.scope_metrics {
            for metric in &sm.metrics {
                for t in point_times(metric) {
                    earliest = earliest.min(t);
                    latest = latest.max(t);
                }
                if let Err(e) = translate_metric(metric, &resource, &mut out) {
                    out.errors.push(e);
                }
            }
        }
        if earliest < u64::MAX {
            if let Err(e) = add_target_info(resource_attrs, &resource, earliest, latest, &mut out) {
                out.errors.push(e);
            }
        }
    }
    Ok(out.finish())
}

/// What a resource contributes to every series of it.
struct ResourceLabels {
    /// `None` when the resource has no `service.name`; `Some("")` deletes a `job` attribute,
    /// as Prometheus's `labels.Builder.Set(job, "")` does.
    job: Option<String>,
    instance: Option<String>,
}

impl ResourceLabels {
    fn new(attrs: &[KeyValue]) -> Self {
        let job =
            find_attr(attrs, SERVICE_NAME).map(|name| match find_attr(attrs, SERVICE_NAMESPACE) {
                Some(ns) => format!("{}/{}", any_value_string(ns), any_value_string(name)),
                None => any_value_string(name),
            });
        let instance = find_attr(attrs, SERVICE_INSTANCE_ID).map(any_value_string);
        ResourceLabels { job, instance }
    }
}

/// First attribute with `key`, like pcommon `Map.Get`.
fn find_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<Option<&'a AnyValue>> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_ref())
}

/// Accumulates series (merging identical label sets), metadata and errors.
#[derive(Default)]
struct Output {
    series: Vec<OtlpSeries>,
    index: HashMap<Vec<(String, String)>, usize>,
    samples: usize,
    metadata: Vec<OtlpMetadata>,
    seen_metadata: HashSet<OtlpMetadata>,
    errors: Vec<OtlpError>,
}

impl Output {
    fn push(&mut self, labels: Labels, ts: i64, value: f64) {
        let labels: Vec<(String, String)> = labels.0.into_iter().collect();
        self.samples += 1;
        if let Some(&i) = self.index.get(&labels) {
            self.series[i].samples.push((ts, value));
            return;
        }
        self.index.insert(labels.clone(), self.series.len());
        self.series.push(OtlpSeries {
            labels,
            samples: vec![(ts, value)],
        });
    }

    fn push_metadata(&mut self, meta: OtlpMetadata) {
        if self.seen_metadata.insert(meta.clone()) {
            self.metadata.push(meta);
        }
    }

    fn finish(mut self) -> OtlpBatch {
        for s in &mut self.series {
            // A request may repeat a point (e.g. the same resource in two ResourceMetrics
            // gives two identical target_info samples); appenders want time order.
            s.samples.sort_by_key(|&(ts, _)| ts);
            s.samples
                .dedup_by(|a, b| a.0 == b.0 && a.1.to_bits() == b.1.to_bits());
        }
        OtlpBatch {
            series: self.series,
            metadata: self.metadata,
            errors: self.errors,
        }
    }
}

/// A label set under construction, with Prometheus `labels.Builder` semantics: setting an
/// empty value removes the label.
#[derive(Debug, Clone, Default)]
struct Labels(BTreeMap<String, String>);

impl Labels {
    fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        if value.is_empty() {
            self.0.remove(&name);
        } else {
            self.0.insert(name, value);
        }
    }

    fn with(&self, extras: &[(&str, &str)]) -> Labels {
        let mut l = self.clone();
        for (n, v) in extras {
            l.set(*n, *v);
        }
        l
    }
}

/// Builds a point's labels like Prometheus `createAttributes`: attributes sorted by original
/// key and sanitized (values of keys that collide after sanitizing are joined with `;` in
/// that order), then `job`/`instance` from the resource. The caller adds `__name__` etc.
fn point_labels(
    metric: &str,
    attrs: &[KeyValue],
    ignore: &[&str],
    resource: &ResourceLabels,
) -> Result<Labels, OtlpError> {
    let mut sorted: Vec<(&str, String)> = attrs
        .iter()
        .filter(|kv| !ignore.contains(&kv.key.as_str()))
        .map(|kv| (kv.key.as_str(), any_value_string(kv.value.as_ref())))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut labels = Labels::default();
    for (key, value) in sorted {
        let name = normalize_label(key).map_err(|normalized| OtlpError::InvalidLabelName {
            metric: metric.to_owned(),
            attribute: key.to_owned(),
            normalized,
        })?;
        match labels.0.get(&name) {
            Some(existing) => {
                let joined = format!("{existing};{value}");
                labels.set(name, joined);
            }
            None => labels.set(name, value),
        }
    }
    if let Some(job) = &resource.job {
        labels.set("job", job.as_str());
    }
    if let Some(instance) = &resource.instance {
        labels.set("instance", instance.as_str());
    }
    Ok(labels)
}

/// The OTel metric kinds that matter for naming (otlptranslator `MetricType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameKind {
    Gauge,
    MonotonicCounter,
    NonMonotonicCounter,
    Histogram,
    ExponentialHistogram,
    Summary,
}

fn translate_metric(
    metric: &Metric,
    resource: &ResourceLabels,
    out: &mut Output,
) -> Result<(), OtlpError> {
    let unsupported = |what| OtlpError::Unsupported {
        metric: metric.name.clone(),
        what,
    };
    let Some(data) = &metric.data else {
        return Err(unsupported("metric without data is not supported"));
    };
    let (name_kind, temporality) = match data {
        Data::Gauge(_) => (NameKind::Gauge, None),
        Data::Sum(s) if s.is_monotonic => {
            (NameKind::MonotonicCounter, Some(s.aggregation_temporality))
        }
        Data::Sum(s) => (
            NameKind::NonMonotonicCounter,
            Some(s.aggregation_temporality),
        ),
        Data::Histogram(h) => (NameKind::Histogram, Some(h.aggregation_temporality)),
        Data::ExponentialHistogram(h) => (
            NameKind::ExponentialHistogram,
            Some(h.aggregation_temporality),
        ),
        Data::Summary(_) => (NameKind::Summary, None),
    };
    if let Some(t) = temporality {
        if t == AggregationTemporality::Delta as i32 {
            return Err(unsupported("delta temporality not supported"));
        }
        if t != AggregationTemporality::Cumulative as i32 {
            return Err(unsupported(
                "aggregation temporality other than cumulative not supported",
            ));
        }
    }
    let family = metric_family_name(&metric.name, &metric.unit, name_kind)?;
    let kind = match name_kind {
        NameKind::Gauge | NameKind::NonMonotonicCounter => "gauge",
        NameKind::MonotonicCounter => "counter",
        NameKind::Histogram | NameKind::ExponentialHistogram => "histogram",
        NameKind::Summary => "summary",
    };
    let empty = || OtlpError::EmptyDataPoints {
        metric: metric.name.clone(),
    };
    let before = out.samples;
    let result = match data {
        Data::Gauge(g) if g.data_points.is_empty() => Err(empty()),
        Data::Gauge(g) => add_numbers(&metric.name, &family, &g.data_points, resource, out),
        Data::Sum(s) if s.data_points.is_empty() => Err(empty()),
        Data::Sum(s) => add_numbers(&metric.name, &family, &s.data_points, resource, out),
        Data::Histogram(Histogram { data_points, .. }) if data_points.is_empty() => Err(empty()),
        Data::Histogram(h) => add_histograms(&metric.name, &family, &h.data_points, resource, out),
        Data::ExponentialHistogram(h) if h.data_points.is_empty() => Err(empty()),
        Data::ExponentialHistogram(_) => {
            Err(unsupported("native histograms are not supported yet"))
        }
        Data::Summary(Summary { data_points }) if data_points.is_empty() => Err(empty()),
        Data::Summary(s) => add_summaries(&metric.name, &family, &s.data_points, resource, out),
    };
    // Prometheus records metadata with each appended sample, so a metric that produced none
    // leaves none.
    if out.samples > before {
        out.push_metadata(OtlpMetadata {
            family,
            kind,
            help: metric.description.clone(),
            unit: metric.unit.clone(),
        });
    }
    result
}

fn value_or_stale(flags: u32, value: f64) -> f64 {
    if flags & DataPointFlags::NoRecordedValueMask as u32 != 0 {
        f64::from_bits(STALE_NAN_BITS)
    } else {
        value
    }
}

/// OTLP timestamps are unsigned nanoseconds; the quotient always fits an `i64`.
fn ns_to_ms(ns: u64) -> i64 {
    (ns / 1_000_000) as i64
}

fn add_numbers(
    metric: &str,
    family: &str,
    points: &[NumberDataPoint],
    resource: &ResourceLabels,
    out: &mut Output,
) -> Result<(), OtlpError> {
    for p in points {
        let labels = point_labels(metric, &p.attributes, &[], resource)?;
        let value = match p.value {
            Some(number_data_point::Value::AsDouble(v)) => v,
            Some(number_data_point::Value::AsInt(v)) => v as f64,
            // pdata reports an unset value as 0.
            None => 0.0,
        };
        out.push(
            labels.with(&[("__name__", family)]),
            ns_to_ms(p.time_unix_nano),
            value_or_stale(p.flags, value),
        );
    }
    Ok(())
}

fn add_histograms(
    metric: &str,
    family: &str,
    points: &[HistogramDataPoint],
    resource: &ResourceLabels,
    out: &mut Output,
) -> Result<(), OtlpError> {
    let (sum_name, count_name, bucket_name) = (
        format!("{family}_sum"),
        format!("{family}_count"),
        format!("{family}_bucket"),
    );
    for p in points {
        let base = point_labels(metric, &p.attributes, &[], resource)?;
        let ts = ns_to_ms(p.time_unix_nano);
        // An unset sum means "omit _sum" (e.g. histograms of negative measurements).
        if let Some(sum) = p.sum {
            out.push(
                base.with(&[("__name__", &sum_name)]),
                ts,
                value_or_stale(p.flags, sum),
            );
        }
        let count = value_or_stale(p.flags, p.count as f64);
        out.push(base.with(&[("__name__", &count_name)]), ts, count);
        // OTLP buckets are per-bucket counts; Prometheus buckets are cumulative. Counts past
        // either list's end are ignored, as Prometheus does. Go's uint64 wraps; so do we,
        // rather than panic on hostile input.
        let mut cumulative = 0u64;
        for (bound, n) in p.explicit_bounds.iter().zip(&p.bucket_counts) {
            cumulative = cumulative.wrapping_add(*n);
            let le = format_go_float(*bound);
            out.push(
                base.with(&[("__name__", &bucket_name), ("le", &le)]),
                ts,
                value_or_stale(p.flags, cumulative as f64),
            );
        }
        out.push(
            base.with(&[("__name__", &bucket_name), ("le", "+Inf")]),
            ts,
            count,
        );
    }
    Ok(())
}

fn add_summaries(
    metric: &str,
    family: &str,
    points: &[SummaryDataPoint],
    resource: &ResourceLabels,
    out: &mut Output,
) -> Result<(), OtlpError> {
    let (sum_name, count_name) = (format!("{family}_sum"), format!("{family}_count"));
    for p in points {
        let base = point_labels(metric, &p.attributes, &[], resource)?;
        let ts = ns_to_ms(p.time_unix_nano);
        out.push(
            base.with(&[("__name__", &sum_name)]),
            ts,
            value_or_stale(p.flags, p.sum),
        );
        out.push(
            base.with(&[("__name__", &count_name)]),
            ts,
            value_or_stale(p.flags, p.count as f64),
        );
        for q in &p.quantile_values {
            let quantile = format_go_float(q.quantile);
            out.push(
                base.with(&[("__name__", family), ("quantile", &quantile)]),
                ts,
                value_or_stale(p.flags, q.value),
            );
        }
    }
    Ok(())
}

/// `time_unix_nano` of every data point of `metric`.
fn point_times(metric: &Metric) -> Vec<u64> {
    match &metric.data {
        None => Vec::new(),
        Some(Data::Gauge(g)) => g.data_points.iter().map(|p| p.time_unix_nano).collect(),
        Some(Data::Sum(s)) => s.data_points.iter().map(|p| p.time_unix_nano).collect(),
        Some(Data::Histogram(h)) => h.data_points.iter().map(|p| p.time_unix_nano).collect(),
        Some(Data::ExponentialHistogram(h)) => {
            h.data_points.iter().map(|p| p.time_unix_nano).collect()
        }
        Some(Data::Summary(s)) => s.data_points.iter().map(|p| p.time_unix_nano).collect(),
    }
}

/// The `target_info` series of a resource (Prometheus `addResourceTargetInfo`): its
/// non-identifying attributes as labels plus `job`/`instance`, value 1. Skipped when the
/// resource has nothing but identifying attributes, or when neither `job` nor `instance`
/// results.
fn add_target_info(
    attrs: &[KeyValue],
    resource: &ResourceLabels,
    earliest_ns: u64,
    latest_ns: u64,
    out: &mut Output,
) -> Result<(), OtlpError> {
    let identifying = IDENTIFYING_ATTRIBUTES
        .iter()
        .filter(|k| find_attr(attrs, k).is_some())
        .count();
    if attrs.len() <= identifying {
        return Ok(());
    }
    let labels = point_labels(TARGET_INFO, attrs, &IDENTIFYING_ATTRIBUTES, resource)?
        .with(&[("__name__", TARGET_INFO)]);
    if !labels.0.contains_key("job") && !labels.0.contains_key("instance") {
        return Ok(());
    }
    let start = earliest_ns.max(latest_ns.saturating_sub(TARGET_INFO_MAX_SPAN_NS));
    let mut t = start;
    while t < latest_ns {
        out.push(labels.clone(), ns_to_ms(t), 1.0);
        match t.checked_add(TARGET_INFO_INTERVAL_NS) {
            Some(next) => t = next,
            None => break,
        }
    }
    out.push(labels, ns_to_ms(latest_ns), 1.0);
    out.push_metadata(OtlpMetadata {
        family: TARGET_INFO.to_owned(),
        kind: "gauge",
        help: TARGET_INFO_HELP.to_owned(),
        unit: String::new(),
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Names (otlptranslator `MetricNamer` with `WithMetricSuffixes: true, UTF8Allowed: false`,
// `LabelNamer` with Prometheus 3's default sanitization options).
// ---------------------------------------------------------------------------------------

/// UCUM unit → Prometheus unit word. Units not listed are used as written (then escaped).
fn unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// UCUM unit after `/` → singular Prometheus word (`By/s` → `bytes_per_second`).
fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

fn is_metric_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// Splits the unit at the first `/` into main and per suffixes; a part that is blank or an
/// annotation (`{packets}`) contributes nothing.
fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().unwrap_or("").trim();
    let main = if main.is_empty() || main.contains(['{', '}']) {
        String::new()
    } else {
        unit_word(main).to_owned()
    };
    let per = match parts.next() {
        Some(p) => {
            let p = p.trim();
            if p.is_empty() || p.contains(['{', '}']) {
                String::new()
            } else {
                match per_unit_word(p) {
                    "" => String::new(),
                    w => format!("per_{w}"),
                }
            }
        }
        None => String::new(),
    };
    (main, per)
}

/// Escapes a unit suffix to metric-name characters, collapses `_` runs and drops one
/// leading `_` (otlptranslator `cleanUpUnit`).
fn clean_up_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if is_metric_name_char(c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    match out.strip_prefix('_') {
        Some(rest) => rest.to_owned(),
        None => out,
    }
}

/// The Prometheus family name of an OTel metric (otlptranslator `normalizeName`).
fn metric_family_name(name: &str, unit: &str, kind: NameKind) -> Result<String, OtlpError> {
    // Splitting on every non-name character (`_` included) both escapes and collapses runs.
    let mut tokens: Vec<&str> = name
        .split(|c| !is_metric_name_char(c))
        .filter(|t| !t.is_empty())
        .collect();
    let (main, per) = unit_suffixes(unit);
    let (main, per) = (clean_up_unit(&main), clean_up_unit(&per));
    let mut main = if tokens.contains(&main.as_str()) {
        ""
    } else {
        main.as_str()
    };
    let per = if per == "per_" {
        ""
    } else {
        let p = per.strip_suffix('_').unwrap_or(&per);
        if tokens.contains(&p) {
            ""
        } else {
            p
        }
    };
    if !per.is_empty() {
        main = main.strip_suffix('_').unwrap_or(main);
    }
    if !main.is_empty() {
        tokens.push(main);
    }
    if !per.is_empty() {
        tokens.push(per);
    }
    if kind == NameKind::MonotonicCounter {
        tokens.retain(|t| *t != "total");
        tokens.push("total");
    }
    // Only gauges: some receivers wrongly give counters of objects the unit "1".
    if unit == "1" && kind == NameKind::Gauge {
        tokens.retain(|t| *t != "ratio");
        tokens.push("ratio");
    }
    let mut normalized = tokens.join("_");
    if normalized.starts_with(|c: char| c.is_ascii_digit()) {
        normalized.insert(0, '_');
    }
    let invalid =
        normalized.is_empty() || (normalized != name && normalized.bytes().all(|b| b == b'_'));
    if invalid {
        return Err(OtlpError::InvalidMetricName {
            metric: name.to_owned(),
            normalized,
        });
    }
    Ok(normalized)
}

/// An attribute key as a Prometheus label name, or `Err(normalized)` when it escapes to
/// nothing usable (empty, or only underscores that were not written that way).
fn normalize_label(key: &str) -> Result<String, String> {
    if key.is_empty() {
        return Err(String::new());
    }
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "key_");
    } else if name.starts_with('_') && !name.starts_with("__") {
        // `__`-prefixed names are left alone: they are the reserved namespace.
        name.insert_str(0, "key");
    }
    if name != key && name.bytes().all(|b| b == b'_') {
        return Err(name);
    }
    Ok(name)
}

// ---------------------------------------------------------------------------------------
// Attribute values as strings (pdata `Value.AsString`), so label values match Prometheus
// byte for byte.
// ---------------------------------------------------------------------------------------

fn any_value_string(v: Option<&AnyValue>) -> String {
    let Some(value) = v.and_then(|v| v.value.as_ref()) else {
        return String::new();
    };
    match value {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::BoolValue(b) => b.to_string(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::DoubleValue(f) => {
            if f.is_finite() {
                format_es6_float(*f)
            } else {
                format!("json: unsupported value: {}", format_go_float(*f))
            }
        }
        any_value::Value::BytesValue(b) => base64_std(b),
        // Go's json.Marshal fails on NaN/Inf anywhere inside and AsString then yields "".
        any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_) => {
            let mut s = String::new();
            if write_json(value, &mut s) {
                s
            } else {
                String::new()
            }
        }
        // Dictionary index (profiles signal only); without the dictionary it has no value.
        any_value::Value::StringValueStrindex(_) => String::new(),
    }
}

/// Go `strconv.FormatFloat(f, 'f', -1, 64)`: shortest round-trip digits, no exponent.
fn format_go_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f == f64::INFINITY {
        "+Inf".to_owned()
    } else if f == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        // Rust's `Display` for f64 is also shortest-round-trip without exponent.
        format!("{f}")
    }
}

/// Go encoding/json's float format (ES6 number-to-string) for finite `f`.
fn format_es6_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust writes `1e21` / `1e-7`; Go writes `1e+21` / `1e-7`.
        let s = format!("{f:e}");
        match s.find('e') {
            Some(i) if !s[i + 1..].starts_with('-') => format!("{}e+{}", &s[..i], &s[i + 1..]),
            _ => s,
        }
    } else {
        format!("{f}")
    }
}

/// Writes `value` as Go's `json.Marshal(value.AsRaw())` would; `false` where Go fails
/// (non-finite floats). Nesting depth is bounded by prost's decode recursion limit.
fn write_json(value: &any_value::Value, out: &mut String) -> bool {
    match value {
        any_value::Value::StringValue(s) => write_json_string(s, out),
        any_value::Value::BoolValue(b) => out.push_str(if *b { "true" } else { "false" }),
        any_value::Value::IntValue(i) => out.push_str(&i.to_string()),
        any_value::Value::DoubleValue(f) => {
            if !f.is_finite() {
                return false;
            }
            out.push_str(&format_es6_float(*f));
        }
        any_value::Value::BytesValue(b) => {
            out.push('"');
            out.push_str(&base64_std(b));
            out.push('"');
        }
        any_value::Value::StringValueStrindex(_) => out.push_str("null"),
        any_value::Value::ArrayValue(a) => {
            out.push('[');
            for (i, v) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !write_json_opt(v.value.as_ref(), out) {
                    return false;
                }
            }
            out.push(']');
        }
        any_value::Value::KvlistValue(kvs) => {
            // AsRaw builds a Go map (a later duplicate key wins) and json sorts its keys.
            let mut map: BTreeMap<&str, Option<&any_value::Value>> = BTreeMap::new();
            for kv in &kvs.values {
                map.insert(&kv.key, kv.value.as_ref().and_then(|v| v.value.as_ref()));
            }
            out.push('{');
            for (i, (k, v)) in map.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(k, out);
                out.push(':');
                if !write_json_opt(v, out) {
                    return false;
                }
            }
            out.push('}');
        }
    }
    true
}

fn write_json_opt(value: Option<&any_value::Value>, out: &mut String) -> bool {
    match value {
        Some(v) => write_json(v, out),
        None => {
            out.push_str("null");
            true
        }
    }
}

/// Go encoding/json string escaping, HTML-safe as `json.Marshal` does by default.
fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Standard padded base64, for bytes attributes only; not worth a dependency.
fn base64_std(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |shift: u32| ALPHABET[((n >> shift) & 63) as usize] as char;
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}
