//! One target's scrape loop, with Prometheus's semantics: a fixed offset within the interval
//! (from a hash of the target, so targets don't scrape in lockstep), `Accept` negotiation,
//! gzip, timeouts, `honor_labels`/`honor_timestamps`, `metric_relabel_configs`, limits that
//! fail the whole scrape, the synthetic `up`/`scrape_*` series, and staleness markers when a
//! series disappears, the scrape fails, or the target goes away.
//!
//! A per-target scrape cache maps each exposition series (name + labels as written) to its
//! storage series, so a steady-state scrape does no label building or series lookup.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hearth_ingest::exposition::{Entry, Format, Parser};
use hearth_ingest::metadata::Metadata;
use hearth_ingest::Ingest;
use hearth_tsdb::{Db, Labels, SeriesRef, STALE_NAN_BITS};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::relabel::Relabeler;
use crate::target::Target;

/// What Prometheus 2.x sends: OpenMetrics preferred, then the text format.
pub const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Scrape-config settings a loop needs. Fixed for the loop's life (a changed config
/// restarts the loop).
#[derive(Clone)]
pub struct LoopOptions {
    pub job: String,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub metric_relabel: Arc<Relabeler>,
    /// 0 = no limit, for all limits.
    pub sample_limit: usize,
    pub label_limit: usize,
    pub label_name_length_limit: usize,
    pub label_value_length_limit: usize,
    pub body_size_limit: usize,
    pub auth: Auth,
}

/// Credentials applied per request (files are read at scrape time, as Prometheus does, so
/// rotated tokens are picked up).
#[derive(Clone, Debug, Default)]
pub enum Auth {
    #[default]
    None,
    Basic {
        username: String,
        password: Option<String>,
        password_file: Option<std::path::PathBuf>,
    },
    Authorization {
        kind: String,
        credentials: Option<String>,
        credentials_file: Option<std::path::PathBuf>,
    },
}

/// Health of a target as `/api/v1/targets` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// Last-scrape state, shared with the API.
#[derive(Debug, Clone)]
pub struct TargetState {
    pub health: Health,
    pub last_error: String,
    pub last_scrape: Option<SystemTime>,
    pub last_duration: Duration,
    pub last_samples: usize,
    /// Metadata seen in the target's last successful scrape: family → metadata.
    pub metadata: HashMap<String, Metadata>,
}

impl Default for TargetState {
    fn default() -> Self {
        TargetState {
            health: Health::Unknown,
            last_error: String::new(),
            last_scrape: None,
            last_duration: Duration::ZERO,
            last_samples: 0,
            metadata: HashMap::new(),
        }
    }
}

/// How a loop is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Running,
    /// The target went away: mark everything it wrote stale.
    Removed,
    /// Replaced by a loop for the same target (reload): no staleness.
    Replaced,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct CacheEntry {
    /// None: dropped by metric relabeling.
    series: Option<SeriesRef>,
    /// Scrape generation in which the entry was last seen.
    seen: u64,
}

/// Per-target state between scrapes; only the loop's own task touches it.
struct Cache {
    entries: HashMap<String, CacheEntry>,
    generation: u64,
    /// Series written by the last successful scrape (for staleness on failure or removal).
    last_written: Vec<SeriesRef>,
    report: Vec<(&'static str, SeriesRef)>,
}

/// The failure of one scrape.
#[derive(Debug)]
struct ScrapeError(String);

pub struct ScrapeLoop {
    pub target: Target,
    pub opts: LoopOptions,
    pub client: reqwest::Client,
    pub db: Arc<Db>,
    pub ingest: Arc<Ingest>,
    pub state: Arc<Mutex<TargetState>>,
}

impl ScrapeLoop {
    /// Runs until `stop` says otherwise.
    pub async fn run(self, mut stop: watch::Receiver<Stop>) {
        let interval = self.target.interval;
        let offset = {
            let h = hearth_tsdb::labels::hash_pairs([(self.target.key().as_bytes(), &b""[..])]);
            Duration::from_millis(h % interval.as_millis().max(1) as u64)
        };
        // First scrape at the next instant that is `offset` past a multiple of the interval.
        let now = now_ms() as u128;
        let iv = interval.as_millis().max(1);
        let phase = (now + iv - offset.as_millis() % iv) % iv;
        let first = Duration::from_millis((iv - phase) as u64 % iv as u64);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + first, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let cache = Arc::new(Mutex::new(Cache {
            entries: HashMap::new(),
            generation: 0,
            last_written: Vec::new(),
            report: Vec::new(),
        }));
        let this = Arc::new(self);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                r = stop.changed() => {
                    // The manager dropped this loop without a word: stop quietly.
                    if r.is_err() {
                        return;
                    }
                }
            }
            let stop_now = *stop.borrow();
            match stop_now {
                Stop::Running => {}
                Stop::Replaced => return,
                Stop::Removed => {
                    let (this, cache) = (this.clone(), cache.clone());
                    let _ = tokio::task::spawn_blocking(move || this.end_of_run(&cache)).await;
                    return;
                }
            }
            let started = Instant::now();
            let ts = now_ms();
            let fetched = this.fetch().await;
            let (this2, cache2) = (this.clone(), cache.clone());
            let res =
                tokio::task::spawn_blocking(move || this2.process(&cache2, ts, started, fetched))
                    .await;
            if let Err(e) = res {
                tracing::error!(target = %this.target.url, error = %e, "scrape task failed");
            }
        }
    }

    async fn fetch(&self) -> Result<(Vec<u8>, Format), ScrapeError> {
        let t = &self.target;
        let mut req = self
            .client
            .get(&t.url)
            .header(reqwest::header::ACCEPT, ACCEPT)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", t.timeout.as_secs_f64()),
            )
            .timeout(t.timeout);
        match &self.opts.auth {
            Auth::None => {}
            Auth::Basic {
                username,
                password,
                password_file,
            } => {
                let pw = match password_file {
                    Some(f) => Some(read_secret(f)?),
                    None => password.clone(),
                };
                req = req.basic_auth(username, pw);
            }
            Auth::Authorization {
                kind,
                credentials,
                credentials_file,
            } => {
                let c = match credentials_file {
                    Some(f) => read_secret(f)?,
                    None => credentials.clone().unwrap_or_default(),
                };
                req = req.header(reqwest::header::AUTHORIZATION, format!("{kind} {c}"));
            }
        }
        let mut resp = req.send().await.map_err(|e| ScrapeError(error_chain(&e)))?;
        if !resp.status().is_success() {
            return Err(ScrapeError(format!(
                "server returned HTTP status {}",
                resp.status()
            )));
        }
        let format = Format::from_content_type(
            resp.headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        );
        let limit = self.opts.body_size_limit;
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ScrapeError(error_chain(&e)))?
        {
            body.extend_from_slice(&chunk);
            if limit > 0 && body.len() > limit {
                return Err(ScrapeError(format!(
                    "body size limit exceeded: response larger than {limit} bytes"
                )));
            }
        }
        Ok((body, format))
    }

    /// Parses and stores one scrape (or its failure), then the report series.
    fn process(
        &self,
        cache: &Mutex<Cache>,
        ts: i64,
        started: Instant,
        fetched: Result<(Vec<u8>, Format), ScrapeError>,
    ) {
        let mut cache = cache.lock();
        // One appender and one durable commit per scrape: samples, staleness markers and the
        // report series together (one fsync per scrape with `wal_fsync: always`).
        let mut app = self.db.appender();
        let outcome = fetched
            .and_then(|(body, format)| self.append_body(&mut app, &mut cache, ts, &body, format));
        let duration = started.elapsed();
        let (up, scraped, post, added) = match &outcome {
            Ok(o) => (1.0, o.scraped, o.post_relabel, o.added),
            Err(_) => (0.0, 0, 0, 0),
        };
        if outcome.is_err() {
            // Nothing of a failed scrape is stored; everything the last good one wrote ends now.
            app = self.db.appender();
            let stale = std::mem::take(&mut cache.last_written);
            append_stale(&mut app, &stale, ts);
        }
        let committed = self
            .append_report(&mut app, &mut cache, ts, up, duration, scraped, post, added)
            .and_then(|()| app.commit());
        match committed {
            Ok(r) if r.rejected() > 0 => {
                tracing::debug!(target = %self.target.url, too_old = r.too_old, conflicts = r.duplicate_conflicts, "scraped samples refused");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(target = %self.target.url, error = %e, "storing scrape failed");
            }
        }
        let mut st = self.state.lock();
        st.last_scrape = Some(SystemTime::now());
        st.last_duration = duration;
        match outcome {
            Ok(o) => {
                st.health = Health::Up;
                st.last_error.clear();
                st.last_samples = o.scraped;
                st.metadata = o.metadata;
            }
            Err(e) => {
                st.health = Health::Down;
                st.last_error = e.0;
                st.last_samples = 0;
            }
        }
    }

    fn append_body(
        &self,
        app: &mut hearth_tsdb::Appender<'_>,
        cache: &mut Cache,
        ts: i64,
        body: &[u8],
        format: Format,
    ) -> Result<BodyOutcome, ScrapeError> {
        let text = std::str::from_utf8(body)
            .map_err(|e| ScrapeError(format!("response is not valid UTF-8: {e}")))?;
        cache.generation += 1;
        let generation = cache.generation;
        let mut out = BodyOutcome::default();
        let mut written: Vec<SeriesRef> = Vec::new();
        let mut key = String::new();
        let mut parser = Parser::new(text, format);
        while let Some(entry) = parser.next_entry() {
            let entry = entry.map_err(|e| ScrapeError(format!("parsing scrape: {e}")))?;
            let s = match entry {
                Entry::Help { family, help } => {
                    out.meta(family).help = help.into_owned();
                    continue;
                }
                Entry::Type { family, kind } => {
                    out.meta(family).kind = kind.as_str().to_string();
                    continue;
                }
                Entry::Unit { family, unit } => {
                    out.meta(family).unit = unit.to_string();
                    continue;
                }
                Entry::Sample(s) => s,
            };
            out.scraped += 1;
            key.clear();
            key.push_str(s.name);
            for (n, v) in s.labels {
                key.push('\u{0}');
                key.push_str(n);
                key.push('\u{1}');
                key.push_str(v);
            }
            let series = match cache.entries.get_mut(key.as_str()) {
                Some(e) => {
                    e.seen = generation;
                    e.series.clone()
                }
                None => {
                    let series = self.resolve(app, s.name, s.labels, &mut out)?;
                    cache.entries.insert(
                        key.clone(),
                        CacheEntry {
                            series: series.clone(),
                            seen: generation,
                        },
                    );
                    series
                }
            };
            let Some(series) = series else { continue };
            out.post_relabel += 1;
            if self.opts.sample_limit > 0 && out.post_relabel > self.opts.sample_limit {
                return Err(ScrapeError(format!(
                    "sample limit exceeded: more than {} samples",
                    self.opts.sample_limit
                )));
            }
            let t = match (self.opts.honor_timestamps, s.timestamp_ms) {
                (true, Some(t)) => t,
                _ => ts,
            };
            app.append(&series, t, s.value);
            written.push(series);
        }
        // Series seen last time but not now end here.
        let gone: Vec<SeriesRef> = {
            let now: std::collections::HashSet<u64> = written.iter().map(|s| s.id()).collect();
            cache
                .last_written
                .iter()
                .filter(|s| !now.contains(&s.id()))
                .cloned()
                .collect()
        };
        append_stale(app, &gone, ts);
        cache.last_written = written;
        // Forget cache entries not seen for a while (series that went away).
        cache.entries.retain(|_, e| generation - e.seen < 10);
        for (family, m) in &out.metadata {
            self.ingest.metadata.record(family, m.clone());
        }
        Ok(out)
    }

    /// Builds the stored label set of a new exposition series; None when metric relabeling
    /// drops it. Limit violations fail the scrape.
    fn resolve(
        &self,
        app: &mut hearth_tsdb::Appender<'_>,
        name: &str,
        sample_labels: &[hearth_ingest::exposition::Label<'_>],
        out: &mut BodyOutcome,
    ) -> Result<Option<SeriesRef>, ScrapeError> {
        let mut labels: Vec<(String, String)> =
            Vec::with_capacity(sample_labels.len() + 1 + self.target.labels.len());
        labels.push(("__name__".into(), name.to_string()));
        for (n, v) in sample_labels {
            labels.push((n.to_string(), v.to_string()));
        }
        for (tn, tv) in &self.target.labels {
            match labels.iter().position(|(n, _)| n == tn) {
                Some(_) if self.opts.honor_labels => {}
                Some(i) => {
                    // Prometheus renames the scraped label to exported_<name> (repeatedly
                    // prefixed until unique) and sets the target's.
                    let mut new_name = format!("exported_{tn}");
                    while labels.iter().any(|(n, _)| *n == new_name) {
                        new_name = format!("exported_{new_name}");
                    }
                    labels[i].0 = new_name;
                    labels.push((tn.clone(), tv.clone()));
                }
                None => labels.push((tn.clone(), tv.clone())),
            }
        }
        labels.retain(|(_, v)| !v.is_empty());
        if !self.opts.metric_relabel.process(&mut labels) {
            return Ok(None);
        }
        let o = &self.opts;
        if o.label_limit > 0 && labels.len() > o.label_limit {
            return Err(ScrapeError(format!(
                "label_limit exceeded (metric: {name}, number of labels: {}, limit: {})",
                labels.len(),
                o.label_limit
            )));
        }
        for (n, v) in &labels {
            if o.label_name_length_limit > 0 && n.len() > o.label_name_length_limit {
                return Err(ScrapeError(format!(
                    "label_name_length_limit exceeded (metric: {name}, label name: {n}, limit: {})",
                    o.label_name_length_limit
                )));
            }
            if o.label_value_length_limit > 0 && v.len() > o.label_value_length_limit {
                return Err(ScrapeError(format!(
                    "label_value_length_limit exceeded (metric: {name}, label name: {n}, value: {v:?}, limit: {})",
                    o.label_value_length_limit
                )));
            }
        }
        let labels = Labels::new(labels).map_err(|e| {
            ScrapeError(format!(
                "invalid metric name or label names for {name}: {e}"
            ))
        })?;
        let existed = app.existing(&labels).is_some();
        let r = app
            .series(&labels)
            .map_err(|e| ScrapeError(format!("creating series: {e}")))?;
        if !existed {
            out.added += 1;
        }
        Ok(Some(r))
    }

    #[allow(clippy::too_many_arguments)]
    fn append_report(
        &self,
        app: &mut hearth_tsdb::Appender<'_>,
        cache: &mut Cache,
        ts: i64,
        up: f64,
        duration: Duration,
        scraped: usize,
        post: usize,
        added: usize,
    ) -> Result<(), hearth_tsdb::TsdbError> {
        if cache.report.is_empty() {
            for name in [
                "up",
                "scrape_duration_seconds",
                "scrape_samples_scraped",
                "scrape_samples_post_metric_relabeling",
                "scrape_series_added",
            ] {
                let mut l = self.target.labels.clone();
                l.retain(|(n, _)| n != "__name__");
                l.push(("__name__".into(), name.into()));
                let labels = Labels::new(l)?;
                cache.report.push((name, app.series(&labels)?));
            }
        }
        let values = [
            up,
            duration.as_secs_f64(),
            scraped as f64,
            post as f64,
            added as f64,
        ];
        for ((_, s), v) in cache.report.iter().zip(values) {
            app.append(s, ts, v);
        }
        Ok(())
    }

    /// The target went away: its series and its report series end now.
    fn end_of_run(&self, cache: &Mutex<Cache>) {
        let mut cache = cache.lock();
        let mut all = std::mem::take(&mut cache.last_written);
        all.extend(cache.report.iter().map(|(_, s)| s.clone()));
        let mut app = self.db.appender();
        append_stale(&mut app, &all, now_ms());
        if let Err(e) = app.commit() {
            tracing::error!(target = %self.target.url, error = %e, "writing stale markers failed");
        }
    }
}

#[derive(Default)]
struct BodyOutcome {
    scraped: usize,
    post_relabel: usize,
    added: usize,
    metadata: HashMap<String, Metadata>,
}

impl BodyOutcome {
    fn meta(&mut self, family: &str) -> &mut Metadata {
        self.metadata
            .entry(family.to_string())
            .or_insert_with(|| Metadata {
                kind: "unknown".into(),
                help: String::new(),
                unit: String::new(),
            })
    }
}

fn append_stale(app: &mut hearth_tsdb::Appender<'_>, series: &[SeriesRef], ts: i64) {
    for s in series {
        app.append(s, ts, f64::from_bits(STALE_NAN_BITS));
    }
}

fn read_secret(path: &std::path::Path) -> Result<String, ScrapeError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| ScrapeError(format!("reading {}: {e}", path.display())))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}
