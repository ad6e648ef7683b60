//! From discovered label sets to scrape targets, as Prometheus's `PopulateLabels` does:
//! default `job`/`__scheme__`/`__metrics_path__`/`__scrape_interval__`/`__scrape_timeout__`/
//! `__param_*` labels, `relabel_configs`, `instance` defaulting to `__address__`, and the
//! `__`-prefixed labels removed from what is stored.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::discovery::{LabelSet, TargetGroup};
use crate::relabel::Relabeler;

/// What a target inherits from its scrape config.
#[derive(Debug, Clone)]
pub struct TargetDefaults {
    pub job: String,
    pub scheme: String,
    pub metrics_path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// `params` of the scrape config: name → values.
    pub params: BTreeMap<String, Vec<String>>,
}

/// A target that survived relabeling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Labels before relabeling (what `/api/v1/targets` calls `discoveredLabels`).
    pub discovered: LabelSet,
    /// Labels after relabeling, `__`-prefixed ones removed: attached to every scraped series.
    pub labels: Vec<(String, String)>,
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Target {
    /// A stable identity for the set of active targets (same labels + URL = same target).
    pub fn key(&self) -> String {
        let mut k = self.url.clone();
        for (n, v) in &self.labels {
            let _ = write!(k, "\u{0}{n}={v}");
        }
        k
    }
}

/// Outcome for one discovered label set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Populated {
    Active(Target),
    /// Dropped by relabeling (kept for `droppedTargets`).
    Dropped(LabelSet),
}

fn fmt_duration(d: Duration) -> String {
    hearth_tsdb::config::PromDuration(d).to_string()
}

/// Applies defaults and relabeling to one discovered label set.
pub fn populate(
    group: &TargetGroup,
    target: &LabelSet,
    defaults: &TargetDefaults,
    relabel: &Relabeler,
) -> Result<Populated, String> {
    let mut discovered = group.labels.clone();
    for (k, v) in target {
        discovered.insert(k.clone(), v.clone());
    }
    let set_default = |m: &mut LabelSet, k: &str, v: String| {
        m.entry(k.to_string()).or_insert(v);
    };
    set_default(&mut discovered, "job", defaults.job.clone());
    set_default(&mut discovered, "__scheme__", defaults.scheme.clone());
    set_default(
        &mut discovered,
        "__metrics_path__",
        defaults.metrics_path.clone(),
    );
    set_default(
        &mut discovered,
        "__scrape_interval__",
        fmt_duration(defaults.interval),
    );
    set_default(
        &mut discovered,
        "__scrape_timeout__",
        fmt_duration(defaults.timeout),
    );
    for (k, vs) in &defaults.params {
        if let Some(v) = vs.first() {
            set_default(&mut discovered, &format!("__param_{k}"), v.clone());
        }
    }
    let mut labels: Vec<(String, String)> = discovered
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !relabel.process(&mut labels) {
        return Ok(Populated::Dropped(discovered));
    }
    let get = |labels: &[(String, String)], k: &str| {
        labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    };
    let Some(address) = get(&labels, "__address__").filter(|a| !a.is_empty()) else {
        return Ok(Populated::Dropped(discovered));
    };
    if address.contains('/') {
        return Err(format!("{address} is not a valid hostname"));
    }
    let interval = match get(&labels, "__scrape_interval__") {
        Some(s) => hearth_tsdb::config::parse_duration(&s)
            .map_err(|e| format!("invalid __scrape_interval__: {e}"))?,
        None => defaults.interval,
    };
    let timeout = match get(&labels, "__scrape_timeout__") {
        Some(s) => hearth_tsdb::config::parse_duration(&s)
            .map_err(|e| format!("invalid __scrape_timeout__: {e}"))?,
        None => defaults.timeout,
    };
    if interval.is_zero() || timeout.is_zero() {
        return Err("scrape interval and timeout must be greater than zero".into());
    }
    if timeout > interval {
        return Err(format!(
            "scrape timeout {} greater than scrape interval {}",
            fmt_duration(timeout),
            fmt_duration(interval)
        ));
    }
    let scheme = get(&labels, "__scheme__").unwrap_or_else(|| defaults.scheme.clone());
    let path = get(&labels, "__metrics_path__").unwrap_or_else(|| defaults.metrics_path.clone());
    let mut query: Vec<(String, String)> = Vec::new();
    for (k, vs) in &defaults.params {
        match get(&labels, &format!("__param_{k}")) {
            // A relabeled param replaces the first value, as Prometheus does.
            Some(v) => {
                query.push((k.clone(), v));
                query.extend(vs.iter().skip(1).map(|v| (k.clone(), v.clone())));
            }
            None => query.extend(vs.iter().map(|v| (k.clone(), v.clone()))),
        }
    }
    for (n, v) in &labels {
        if let Some(p) = n.strip_prefix("__param_") {
            if !defaults.params.contains_key(p) {
                query.push((p.to_string(), v.clone()));
            }
        }
    }
    let mut url = format!("{scheme}://{address}{path}");
    for (i, (k, v)) in query.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(&percent_encode(k));
        url.push('=');
        url.push_str(&percent_encode(v));
    }
    if get(&labels, "instance").is_none() {
        labels.push(("instance".into(), address.clone()));
    }
    labels.retain(|(n, _)| !n.starts_with("__"));
    labels.sort();
    if let Some((n, _)) = labels
        .iter()
        .find(|(n, _)| !hearth_tsdb::labels::is_valid_label_name(n))
    {
        return Err(format!("invalid label name {n:?}"));
    }
    labels.retain(|(_, v)| !v.is_empty());
    Ok(Populated::Active(Target {
        discovered,
        labels,
        url,
        interval,
        timeout,
    }))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> TargetDefaults {
        TargetDefaults {
            job: "node".into(),
            scheme: "http".into(),
            metrics_path: "/metrics".into(),
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
            params: BTreeMap::from([("module".to_string(), vec!["http_2xx".to_string()])]),
        }
    }

    fn group(addr: &str) -> TargetGroup {
        TargetGroup {
            source: "0".into(),
            targets: vec![LabelSet::from([(
                "__address__".to_string(),
                addr.to_string(),
            )])],
            labels: LabelSet::from([
                ("env".to_string(), "home".to_string()),
                ("__meta_x".to_string(), "y".to_string()),
            ]),
        }
    }

    #[test]
    fn defaults_instance_url_and_hidden_labels() {
        let g = group("10.0.0.1:9100");
        let r = Relabeler::new(&[]).unwrap();
        let Populated::Active(t) = populate(&g, &g.targets[0], &defaults(), &r).unwrap() else {
            panic!("dropped")
        };
        assert_eq!(t.url, "http://10.0.0.1:9100/metrics?module=http_2xx");
        assert_eq!(
            t.labels,
            vec![
                ("env".to_string(), "home".to_string()),
                ("instance".into(), "10.0.0.1:9100".into()),
                ("job".into(), "node".into())
            ]
        );
        assert_eq!(t.discovered["__scrape_interval__"], "15s");
        assert_eq!(t.discovered["__meta_x"], "y");
        assert_eq!(t.interval, Duration::from_secs(15));
    }

    #[test]
    fn empty_address_is_dropped_and_bad_address_errors() {
        let r = Relabeler::new(&[]).unwrap();
        let g = group("");
        assert!(matches!(
            populate(&g, &g.targets[0], &defaults(), &r).unwrap(),
            Populated::Dropped(_)
        ));
        let g = group("host/path");
        assert!(populate(&g, &g.targets[0], &defaults(), &r).is_err());
    }
}
