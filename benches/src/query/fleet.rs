//! The fleet the query benchmark ingests: [`dataset`] hosts in two groups (the last 24 h, and
//! history over the longest range), each with a classic histogram added, encoded into
//! remote_write bodies in global time order.

use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use hearth_ingest::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::Options;
use crate::dataset::{self, DatasetSpec, Host, Series, SCRAPE_INTERVAL_MS};

const HISTOGRAM_HANDLERS: &[(&str, f64)] = &[
    // (handler, requests per second)
    ("/api/v1/query", 20.0),
    ("/api/v1/query_range", 5.0),
    ("/api/v1/series", 2.0),
    ("/metrics", 0.2),
];
/// Upper bounds and the share of requests falling in each bucket (not cumulative).
const HISTOGRAM_BUCKETS: &[(&str, f64)] = &[
    ("0.005", 0.10),
    ("0.01", 0.15),
    ("0.025", 0.20),
    ("0.05", 0.20),
    ("0.1", 0.15),
    ("0.25", 0.10),
    ("0.5", 0.05),
    ("1", 0.03),
    ("2.5", 0.01),
    ("5", 0.005),
    ("10", 0.003),
    ("+Inf", 0.002),
];
/// Series of the histogram per host: buckets, `_sum` and `_count` per handler.
pub const HISTOGRAM_SERIES: usize = HISTOGRAM_HANDLERS.len() * (HISTOGRAM_BUCKETS.len() + 2);

/// The hosts to ingest, long group first.
#[derive(Debug)]
pub struct Fleet {
    pub hosts: Vec<Host>,
    /// Global scrape index (0 = the first scrape of the long group) of each host's first
    /// scrape.
    pub first_scrape: Vec<usize>,
    pub scrapes: usize,
    pub samples: u64,
    pub series: u64,
    pub end_ms: i64,
}

/// Builds the fleet: the long group over `long_span_s` and the short group over
/// `short_span_s`, on one scrape grid ending at `end_ms`.
pub fn build_fleet(opts: &Options, end_ms: i64) -> Result<Fleet, String> {
    let long_scrapes = (opts.long_span_s() * 1000 / SCRAPE_INTERVAL_MS) as usize;
    let short_scrapes = (opts.short_span_s() * 1000 / SCRAPE_INTERVAL_MS) as usize;
    let base = opts.series_per_host - HISTOGRAM_SERIES;
    let long_spec = DatasetSpec {
        hosts: opts.long_hosts,
        series_per_host: base,
        scrapes: long_scrapes,
        end_ms,
        seed: opts.seed,
    };
    let short_spec = DatasetSpec {
        hosts: opts.hosts,
        scrapes: short_scrapes,
        seed: opts.seed ^ 0x5eed,
        ..long_spec
    };
    let mut hosts = dataset::generate(&long_spec);
    dataset::check_dataset(&hosts, &long_spec)?;
    let mut short = dataset::generate(&short_spec);
    dataset::check_dataset(&short, &short_spec)?;
    for (i, host) in short.iter_mut().enumerate() {
        renumber(host, opts.long_hosts + i);
    }
    hosts.append(&mut short);
    let mut first_scrape = vec![0; opts.long_hosts];
    first_scrape.resize(hosts.len(), long_scrapes - short_scrapes);
    for (i, host) in hosts.iter_mut().enumerate() {
        add_histogram(host, opts.seed ^ (i as u64 + 1).wrapping_mul(0xA24B_AED4));
    }
    let series = hosts.iter().map(|h| h.series.len() as u64).sum();
    let samples = hosts
        .iter()
        .map(|h| (h.series.len() * h.timestamps.len()) as u64)
        .sum();
    Ok(Fleet {
        hosts,
        first_scrape,
        scrapes: long_scrapes,
        samples,
        series,
        end_ms,
    })
}

/// Makes a short-group host `host-NNN` with `n` after the long group's.
fn renumber(host: &mut Host, n: usize) {
    let old_node = host.instance.trim_end_matches(":9100").to_string();
    host.instance = format!("host-{n:03}:9100");
    let node = format!("host-{n:03}");
    for s in &mut host.series {
        for l in &mut s.labels {
            if l.name.as_ref() == b"instance" {
                l.value = host.instance.as_bytes().to_vec().into();
            } else if l.name.as_ref() == b"nodename" && l.value.as_ref() == old_node.as_bytes() {
                l.value = node.as_bytes().to_vec().into();
            }
        }
    }
}

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.as_bytes().to_vec().into(),
        value: value.as_bytes().to_vec().into(),
    }
}

/// Adds `http_request_duration_seconds` (a classic histogram of an app on the host, with
/// `_bucket{le}`, `_sum`, `_count` per handler) with a value for every scrape.
fn add_histogram(host: &mut Host, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = host.timestamps.len();
    for &(handler, rps) in HISTOGRAM_HANDLERS {
        let nb = HISTOGRAM_BUCKETS.len();
        let mut buckets = vec![Vec::with_capacity(n); nb];
        let mut sum = Vec::with_capacity(n);
        let (mut cum, mut total) = (vec![0.0; nb], rng.random_range(0.0..1e4));
        for _ in 0..n {
            let requests = (rps * 15.0 * rng.random_range(0.5..1.5)).round();
            let mut below = 0.0;
            for (b, &(le, share)) in HISTOGRAM_BUCKETS.iter().enumerate() {
                let k = (requests * share * rng.random_range(0.5..1.5)).round();
                below += k;
                cum[b] += below;
                // Requests over the last bound took about twice as long.
                let upper = le
                    .parse::<f64>()
                    .ok()
                    .filter(|u| u.is_finite())
                    .unwrap_or(20.0);
                total += k * upper * 0.7;
                buckets[b].push(cum[b]);
            }
            sum.push(total);
        }
        let base = |name: &str| {
            vec![
                label("__name__", name),
                label("handler", handler),
                label("instance", &host.instance),
                label("job", "node"),
            ]
        };
        let count = buckets[nb - 1].clone();
        for (b, values) in buckets.into_iter().enumerate() {
            let mut labels = base("http_request_duration_seconds_bucket");
            labels.push(label("le", HISTOGRAM_BUCKETS[b].0));
            host.series.push(Series { labels, values });
        }
        let labels = base("http_request_duration_seconds_sum");
        host.series.push(Series {
            labels,
            values: sum,
        });
        let labels = base("http_request_duration_seconds_count");
        host.series.push(Series {
            labels,
            values: count,
        });
    }
}

/// Scrapes per `TimeSeries` in a remote_write body: 20 × 15 s = 5 minutes of one series.
/// Backfilling days of data one sample per `TimeSeries` (as a live Prometheus sends) would
/// make every server re-read the labels for each sample and take many times longer.
pub const SCRAPES_PER_SERIES: usize = 20;

/// Encodes the fleet into remote_write bodies in global time order (a slice of
/// [`SCRAPES_PER_SERIES`] scrapes of every host before the next slice; every series in
/// time order, all series within minutes of each other, which Prometheus's remote-write
/// receiver needs without an out-of-order window) on a thread of its own, handing each body
/// to every receiver. Bodies hold at least `samples_per_request` samples, the last one less.
pub(super) fn produce(
    fleet: &Fleet,
    samples_per_request: usize,
    outs: Vec<SyncSender<Arc<Vec<u8>>>>,
) {
    let mut req = WriteRequest::default();
    let mut raw = Vec::new();
    let mut encoder = snap::raw::Encoder::new();
    let mut flush = |req: &mut WriteRequest| -> bool {
        if req.timeseries.is_empty() {
            return true;
        }
        raw.clear();
        req.encode(&mut raw)
            .expect("BUG: Vec<u8> has unlimited capacity");
        let body = Arc::new(
            encoder
                .compress_vec(&raw)
                .expect("BUG: snappy input too large"),
        );
        req.timeseries.clear();
        // A receiver gone means its server failed; the others still get everything.
        let mut any = false;
        for o in &outs {
            any |= o.send(body.clone()).is_ok();
        }
        any
    };
    let mut samples = 0;
    for g0 in (0..fleet.scrapes).step_by(SCRAPES_PER_SERIES) {
        let g1 = (g0 + SCRAPES_PER_SERIES).min(fleet.scrapes);
        for (host, &first) in fleet.hosts.iter().zip(&fleet.first_scrape) {
            if g1 <= first {
                continue;
            }
            let ks = g0.saturating_sub(first)..g1 - first;
            for series in &host.series {
                req.timeseries.push(TimeSeries {
                    labels: series.labels.clone(),
                    samples: ks
                        .clone()
                        .map(|k| Sample {
                            value: series.values[k],
                            timestamp: host.timestamps[k],
                        })
                        .collect(),
                    ..TimeSeries::default()
                });
                samples += ks.len();
                if samples >= samples_per_request {
                    samples = 0;
                    if !flush(&mut req) {
                        return;
                    }
                }
            }
        }
    }
    flush(&mut req);
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::mpsc::sync_channel;

    use super::*;

    #[test]
    fn fleet_is_time_ordered_with_histograms() {
        let o = Options::parse(["--hosts=2", "--long-hosts=1", "--ranges=1h"].map(String::from))
            .unwrap();
        let fleet = build_fleet(&o, 1_700_000_000_000).unwrap();
        assert_eq!(fleet.hosts.len(), 3);
        assert_eq!(fleet.series, 3 * 500);
        assert_eq!(fleet.samples, 3 * 500 * 240);
        let instances: Vec<&str> = fleet.hosts.iter().map(|h| h.instance.as_str()).collect();
        assert_eq!(
            instances,
            ["host-000:9100", "host-001:9100", "host-002:9100"]
        );
        for h in &fleet.hosts {
            let mut keys: Vec<String> = h.series.iter().map(|s| dataset::show(&s.labels)).collect();
            for s in &h.series {
                dataset::check_labels(&s.labels).unwrap();
                assert!(dataset::show(&s.labels).contains(&h.instance));
            }
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), 500);
            let buckets: Vec<&Series> = h
                .series
                .iter()
                .filter(|s| s.labels[0].value.as_ref() == b"http_request_duration_seconds_bucket")
                .collect();
            assert_eq!(buckets.len(), 48);
            assert!(h
                .series
                .iter()
                .all(|s| s.values.iter().all(|v| v.is_finite())));
            // Cumulative buckets never decrease over time.
            assert!(buckets
                .iter()
                .all(|s| s.values.windows(2).all(|w| w[0] <= w[1])));
        }
    }

    #[test]
    fn produces_every_sample_in_time_order_per_series() {
        let o = Options::parse(["--hosts=1", "--long-hosts=1", "--ranges=1h"].map(String::from))
            .unwrap();
        let fleet = build_fleet(&o, 1_700_000_000_000).unwrap();
        let (tx, rx) = sync_channel(1 << 20);
        produce(&fleet, 777, vec![tx]);
        let mut last: HashMap<String, i64> = HashMap::new();
        let mut samples = 0;
        for body in rx {
            for ts in dataset::decode_request(&body).unwrap().timeseries {
                let key = dataset::show(&ts.labels);
                assert!(ts.samples.len() <= SCRAPES_PER_SERIES);
                for s in &ts.samples {
                    let t = s.timestamp;
                    assert!(last.insert(key.clone(), t).is_none_or(|prev| prev < t));
                    samples += 1;
                }
            }
        }
        assert_eq!(samples, fleet.samples);
        assert_eq!(last.len() as u64, fleet.series);
    }
}
