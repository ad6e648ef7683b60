//! Consul service discovery, the way Prometheus's `consul_sd_configs` does it
//! (`discovery/consul/consul.go`): the same endpoints, query parameters, target groups and
//! `__meta_consul_*` labels, so relabeling rules written for Prometheus keep working.
//!
//! How it talks to Consul:
//! - Unless `services` is set and `tags` is empty, one blocking query loop watches
//!   `/v1/catalog/services` (with `node-meta`, `filter`, `stale`, `dc`, `ns`, `partition`) and
//!   starts a watcher for each service that passes the name and tag filters; a service that
//!   leaves the catalog gets an empty group. With only `services` set, the catalog is never
//!   read: each named service is watched directly, as Prometheus does.
//! - Each service watcher runs blocking queries on `/v1/health/service/<name>` (plus a `tag`
//!   parameter per wanted tag), so a registration wakes the query and shows up at once.
//! - Requests of one loop start at least `refresh_interval` apart (Prometheus's ticker), and
//!   ask Consul to hold them for up to two minutes (`wait=120000ms`, Prometheus's
//!   `watchTimeout`).
//!
//! Where this differs from Prometheus: after an error Prometheus sleeps a fixed 15 s; we back
//! off from 500 ms, doubling up to `refresh_interval`. In both, the last known targets stay
//! in place while Consul is unreachable.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use super::{LabelSet, TargetGroup};

/// How long Consul may hold a blocking query (Prometheus's `watchTimeout`).
const WATCH_TIMEOUT: Duration = Duration::from_secs(120);
/// Consul adds up to `wait / 16` of jitter to a blocking query; Prometheus gives its HTTP
/// client `watchTimeout + 15s` so that a healthy long poll is never cut short.
const REQUEST_SLACK: Duration = Duration::from_secs(15);
/// First pause after a failed request; it doubles up to the refresh interval.
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Error bodies are logged; Consul's are one line, a proxy's HTML page is cut here.
const MAX_ERROR_BODY: usize = 512;

const ADDRESS_LABEL: &str = "__address__";
const META_ADDRESS: &str = "__meta_consul_address";
const META_NODE: &str = "__meta_consul_node";
const META_NODE_METADATA: &str = "__meta_consul_metadata_";
const META_SERVICE_METADATA: &str = "__meta_consul_service_metadata_";
const META_TAGS: &str = "__meta_consul_tags";
const META_SERVICE: &str = "__meta_consul_service";
const META_HEALTH: &str = "__meta_consul_health";
const META_SERVICE_ADDRESS: &str = "__meta_consul_service_address";
const META_SERVICE_PORT: &str = "__meta_consul_service_port";
const META_DC: &str = "__meta_consul_dc";
const META_NAMESPACE: &str = "__meta_consul_namespace";
const META_PARTITION: &str = "__meta_consul_partition";
const META_TAGGED_ADDRESS: &str = "__meta_consul_tagged_address_";
const META_SERVICE_ID: &str = "__meta_consul_service_id";

/// Options as they appear in a prometheus.yml `consul_sd_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsulOptions {
    /// `host:port` of the Consul agent or server.
    pub server: String,
    /// `http` or `https`.
    pub scheme: String,
    /// Prepended to every API path (Consul behind a reverse proxy).
    pub path_prefix: String,
    /// ACL token, sent as `X-Consul-Token`.
    pub token: Option<String>,
    /// Datacenter to query; `None` asks the agent (`/v1/agent/self`) for its own.
    pub datacenter: Option<String>,
    /// Consul Enterprise namespace (`ns` parameter).
    pub namespace: Option<String>,
    /// Consul Enterprise admin partition (`partition` parameter).
    pub partition: Option<String>,
    /// Services to watch; empty means all.
    pub services: Vec<String>,
    /// A service instance must carry all of these tags.
    pub tags: Vec<String>,
    /// Nodes must carry all of these metadata pairs.
    pub node_meta: BTreeMap<String, String>,
    /// Joins the tags in `__meta_consul_tags`, and wraps them at both ends.
    pub tag_separator: String,
    /// Let any server answer (`stale`), not only the leader.
    pub allow_stale: bool,
    /// Minimum time between the starts of two requests of one watch loop.
    pub refresh_interval: Duration,
    /// Consul filter expression, applied to the catalog and health queries.
    pub filter: Option<String>,
    /// HTTP basic auth (`username`/`password` or `basic_auth` in prometheus.yml).
    pub basic_auth: Option<(String, String)>,
}

impl Default for ConsulOptions {
    /// Prometheus's `DefaultSDConfig`.
    fn default() -> Self {
        Self {
            server: "localhost:8500".to_owned(),
            scheme: "http".to_owned(),
            path_prefix: String::new(),
            token: None,
            datacenter: None,
            namespace: None,
            partition: None,
            services: Vec::new(),
            tags: Vec::new(),
            node_meta: BTreeMap::new(),
            tag_separator: ",".to_owned(),
            allow_stale: true,
            refresh_interval: Duration::from_secs(30),
            filter: None,
            basic_auth: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ConsulError {
    #[error("invalid Consul URL {url:?}: {source}")]
    InvalidUrl {
        url: String,
        #[source]
        source: <Url as FromStr>::Err,
    },
    #[error("request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("cannot decode the answer of {url}: {source}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{url} sent an invalid X-Consul-Index {value:?}")]
    BadIndex { url: String, value: String },
    #[error("{url} did not report a datacenter (Config.Datacenter)")]
    NoDatacenter { url: String },
}

/// Runs until `shutdown` resolves (or every receiver of `tx` is dropped), publishing the full
/// current set of groups for this config whenever it changes: one group per Consul service,
/// `source` = service name, and an empty group for a service that left the catalog. Errors
/// are logged and retried; they never clear targets already published.
pub async fn run(
    opts: ConsulOptions,
    client: Client,
    tx: watch::Sender<Vec<TargetGroup>>,
    shutdown: impl Future<Output = ()>,
) {
    // Dropping `discover` drops every watcher handle, which aborts the watcher tasks.
    tokio::select! {
        () = shutdown => {}
        () = tx.closed() => {}
        () = discover(opts, client, &tx) => {}
    }
}

/// What the watcher tasks report to the loop that owns the target groups.
enum Event {
    /// The catalog's service list: name → union of the tags of its instances.
    Catalog(BTreeMap<String, Vec<String>>),
    /// The current instances of a service. `generation` tells apart a watcher that was
    /// stopped (its last message may still be queued) from its successor.
    Service {
        name: String,
        generation: u64,
        targets: Vec<LabelSet>,
    },
}

/// Aborts the task when dropped, so that removing a watcher from a map stops it.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct ServiceWatcher {
    generation: u64,
    _task: AbortOnDrop,
}

async fn discover(opts: ConsulOptions, client: Client, tx: &watch::Sender<Vec<TargetGroup>>) {
    let api = match Api::new(&opts, client) {
        Ok(api) => Arc::new(api),
        Err(err) => {
            tracing::error!(error = %err, "consul_sd: cannot start");
            return std::future::pending().await;
        }
    };
    let datacenter = match opts.datacenter.as_deref().filter(|dc| !dc.is_empty()) {
        Some(dc) => dc.to_owned(),
        None => api.local_datacenter(opts.refresh_interval).await,
    };

    let (events_tx, mut events) = mpsc::channel(64);
    let mut watchers: HashMap<String, ServiceWatcher> = HashMap::new();
    let mut next_generation = 0u64;
    let mut groups: BTreeMap<String, TargetGroup> = BTreeMap::new();
    let mut published = false;

    let mut start_watcher = |name: &str, watchers: &mut HashMap<String, ServiceWatcher>| {
        next_generation += 1;
        let task = tokio::spawn(watch_service(
            Arc::clone(&api),
            name.to_owned(),
            next_generation,
            opts.tags.clone(),
            opts.tag_separator.clone(),
            opts.refresh_interval,
            events_tx.clone(),
        ));
        watchers.insert(
            name.to_owned(),
            ServiceWatcher {
                generation: next_generation,
                _task: AbortOnDrop(task),
            },
        );
    };

    // Same switch as Prometheus: tags can only be checked against the catalog's list.
    let _catalog_task = if opts.services.is_empty() || !opts.tags.is_empty() {
        Some(AbortOnDrop(tokio::spawn(watch_catalog(
            Arc::clone(&api),
            opts.refresh_interval,
            events_tx.clone(),
        ))))
    } else {
        for name in &opts.services {
            if !watchers.contains_key(name) {
                start_watcher(name, &mut watchers);
            }
        }
        None
    };

    while let Some(event) = events.recv().await {
        let mut force = false;
        match event {
            Event::Catalog(services) => {
                for (name, tags) in &services {
                    if should_watch(&opts, name, tags) && !watchers.contains_key(name) {
                        start_watcher(name, &mut watchers);
                    }
                }
                // Like Prometheus, only leaving the catalog stops a watcher; an instance that
                // loses a wanted tag drops out through the health query's `tag` filter.
                let gone: Vec<String> = watchers
                    .keys()
                    .filter(|name| !services.contains_key(*name))
                    .cloned()
                    .collect();
                for name in gone {
                    watchers.remove(&name);
                    groups.insert(
                        name.clone(),
                        TargetGroup {
                            source: name,
                            ..TargetGroup::default()
                        },
                    );
                }
                // Nothing to watch means no group will ever arrive: say so once, so that
                // the manager knows this provider has synced.
                force = !published && watchers.is_empty();
            }
            Event::Service {
                name,
                generation,
                targets,
            } => {
                if watchers.get(&name).map(|w| w.generation) != Some(generation) {
                    continue;
                }
                let labels = LabelSet::from([
                    (META_SERVICE.to_owned(), name.clone()),
                    (META_DC.to_owned(), datacenter.clone()),
                ]);
                groups.insert(
                    name.clone(),
                    TargetGroup {
                        source: name,
                        targets,
                        labels,
                    },
                );
            }
        }
        let current: Vec<TargetGroup> = groups.values().cloned().collect();
        if force {
            tx.send_replace(current);
            published = true;
        } else if tx.send_if_modified(|old| {
            if *old == current {
                return false;
            }
            *old = current;
            true
        }) {
            published = true;
        }
    }
}

/// Prometheus's `shouldWatch`: the name is wanted (or no names are configured) and the
/// service's tags include every wanted tag.
fn should_watch(opts: &ConsulOptions, name: &str, tags: &[String]) -> bool {
    (opts.services.is_empty() || opts.services.iter().any(|s| s == name))
        && opts.tags.iter().all(|want| tags.contains(want))
}

async fn watch_catalog(api: Arc<Api>, refresh: Duration, events: mpsc::Sender<Event>) {
    let url = api.url(&["v1", "catalog", "services"], &[]);
    let mut poll = Poll::new(refresh);
    loop {
        let services: BTreeMap<String, Option<Vec<String>>> =
            poll.next(&api, &url, "service list").await;
        let services = services
            .into_iter()
            .map(|(name, tags)| (name, tags.unwrap_or_default()))
            .collect();
        if events.send(Event::Catalog(services)).await.is_err() {
            return;
        }
    }
}

async fn watch_service(
    api: Arc<Api>,
    name: String,
    generation: u64,
    tags: Vec<String>,
    tag_separator: String,
    refresh: Duration,
    events: mpsc::Sender<Event>,
) {
    let tag_params: Vec<(&str, &str)> = tags.iter().map(|t| ("tag", t.as_str())).collect();
    let url = api.url(&["v1", "health", "service", &name], &tag_params);
    let what = format!("service {name:?}");
    let mut poll = Poll::new(refresh);
    loop {
        let entries: Vec<ServiceEntry> = poll.next(&api, &url, &what).await;
        let targets = entries
            .iter()
            .map(|entry| target_labels(entry, &tag_separator))
            .collect();
        let event = Event::Service {
            name: name.clone(),
            generation,
            targets,
        };
        if events.send(event).await.is_err() {
            return;
        }
    }
}

/// One blocking-query loop's cursor and pacing.
struct Poll {
    /// Last `X-Consul-Index` seen; 0 asks Consul to answer at once.
    index: u64,
    /// Earliest start of the next request (refresh throttle or error backoff).
    next_start: Instant,
    refresh: Duration,
    backoff: Duration,
}

impl Poll {
    fn new(refresh: Duration) -> Self {
        Self {
            index: 0,
            next_start: Instant::now(),
            refresh,
            backoff: INITIAL_BACKOFF,
        }
    }

    /// Waits for the next successful answer, retrying (and logging) failures forever.
    async fn next<T: DeserializeOwned>(&mut self, api: &Api, url: &Url, what: &str) -> T {
        loop {
            sleep_until(self.next_start).await;
            let started = Instant::now();
            self.next_start = started + self.refresh;
            match api.get(url, Some(self.index)).await {
                Ok((value, index)) => {
                    self.backoff = INITIAL_BACKOFF;
                    self.index = next_index(self.index, index);
                    return value;
                }
                Err(err) => {
                    tracing::error!(error = %err, "consul_sd: error refreshing {what}");
                    self.next_start = self.next_start.max(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(self.refresh.max(INITIAL_BACKOFF));
                }
            }
        }
    }
}

/// Consul's blocking-query rules: an index that went backwards (snapshot restore, new
/// cluster) restarts from 0, which answers at once; an index of 0 after an answer is a Consul
/// bug that would make every later query return at once, so it becomes 1.
fn next_index(previous: u64, returned: u64) -> u64 {
    if returned < previous {
        0
    } else {
        returned.max(1)
    }
}

/// The HTTP side: base URL, the parameters every query carries, and credentials.
/// Fixed after construction.
struct Api {
    client: Client,
    base: Url,
    /// `dc`, `ns`, `partition`, `stale`, `node-meta`, `filter`, as the Go client sends them.
    common: Vec<(&'static str, String)>,
    token: Option<String>,
    basic_auth: Option<(String, String)>,
}

impl Api {
    fn new(opts: &ConsulOptions, client: Client) -> Result<Self, ConsulError> {
        let raw = format!("{}://{}", opts.scheme, opts.server);
        let mut base = Url::parse(&raw).map_err(|source| ConsulError::InvalidUrl {
            url: raw.clone(),
            source,
        })?;
        let prefix = opts.path_prefix.trim_matches('/');
        base.set_path(prefix);

        let mut common = Vec::new();
        let non_empty =
            |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_owned);
        if let Some(dc) = non_empty(&opts.datacenter) {
            common.push(("dc", dc));
        }
        if let Some(ns) = non_empty(&opts.namespace) {
            common.push(("ns", ns));
        }
        if let Some(partition) = non_empty(&opts.partition) {
            common.push(("partition", partition));
        }
        if opts.allow_stale {
            common.push(("stale", String::new()));
        }
        for (key, value) in &opts.node_meta {
            common.push(("node-meta", format!("{key}:{value}")));
        }
        if let Some(filter) = non_empty(&opts.filter) {
            common.push(("filter", filter));
        }
        Ok(Self {
            client,
            base,
            common,
            token: non_empty(&opts.token),
            basic_auth: opts.basic_auth.clone(),
        })
    }

    /// Builds the URL of a watched endpoint: `segments` are percent-encoded one by one, so a
    /// service name with `/` or `?` stays one path segment.
    fn url(&self, segments: &[&str], extra: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        // Only cannot-be-a-base URLs (`mailto:`) lack segments; `scheme://server` is not one.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        {
            let mut query = url.query_pairs_mut();
            for (key, value) in &self.common {
                query.append_pair(key, value);
            }
            for (key, value) in extra {
                query.append_pair(key, value);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    /// GETs `url`; `index` turns it into a blocking query. Returns the decoded body and the
    /// `X-Consul-Index` (0 when absent, as the Go client reads it).
    async fn get<T: DeserializeOwned>(
        &self,
        url: &Url,
        index: Option<u64>,
    ) -> Result<(T, u64), ConsulError> {
        let mut url = url.clone();
        let mut timeout = REQUEST_SLACK;
        if let Some(index) = index {
            let mut query = url.query_pairs_mut();
            if index != 0 {
                query.append_pair("index", &index.to_string());
            }
            query.append_pair("wait", &format!("{}ms", WATCH_TIMEOUT.as_millis()));
            timeout += WATCH_TIMEOUT;
        }
        let shown = url.as_str().to_owned();
        let mut request = self.client.get(url).timeout(timeout);
        if let Some(token) = &self.token {
            request = request.header("X-Consul-Token", token);
        }
        if let Some((user, password)) = &self.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        let http = |source| ConsulError::Http {
            url: shown.clone(),
            source,
        };
        let response = request.send().await.map_err(http)?;
        let status = response.status();
        let index = match response.headers().get("X-Consul-Index") {
            None => 0,
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ConsulError::BadIndex {
                    url: shown.clone(),
                    value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
                })?,
        };
        let body = response.bytes().await.map_err(http)?;
        if !status.is_success() {
            let mut text = String::from_utf8_lossy(&body).trim().to_owned();
            if text.len() > MAX_ERROR_BODY {
                let mut cut = MAX_ERROR_BODY;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
            }
            return Err(ConsulError::Status {
                url: shown,
                status: status.as_u16(),
                body: text,
            });
        }
        let value = serde_json::from_slice(&body).map_err(|source| ConsulError::Decode {
            url: shown.clone(),
            source,
        })?;
        Ok((value, index))
    }

    /// Asks the agent which datacenter it is in, retrying until it answers (Prometheus's
    /// `initialize`).
    async fn local_datacenter(&self, refresh: Duration) -> String {
        #[derive(Deserialize)]
        struct AgentSelf {
            #[serde(rename = "Config")]
            config: Option<AgentConfig>,
        }
        #[derive(Deserialize)]
        struct AgentConfig {
            #[serde(rename = "Datacenter")]
            datacenter: Option<String>,
        }

        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["v1", "agent", "self"]);
        }
        let mut backoff = INITIAL_BACKOFF;
        loop {
            let result = self.get::<AgentSelf>(&url, None).await.and_then(|(me, _)| {
                me.config
                    .and_then(|c| c.datacenter)
                    .filter(|dc| !dc.is_empty())
                    .ok_or_else(|| ConsulError::NoDatacenter {
                        url: url.to_string(),
                    })
            });
            match result {
                Ok(dc) => return dc,
                Err(err) => {
                    tracing::error!(error = %err, "consul_sd: error retrieving datacenter name");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(refresh.max(INITIAL_BACKOFF));
                }
            }
        }
    }
}

/// One element of `/v1/health/service/<name>`. Only the fields Prometheus reads; `Option`
/// where Consul may send `null`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceEntry {
    node: Node,
    service: Service,
    #[serde(default)]
    checks: Option<Vec<Check>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Node {
    #[serde(default)]
    node: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    tagged_addresses: Option<BTreeMap<String, String>>,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Service {
    #[serde(default, rename = "ID")]
    id: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    address: String,
    #[serde(default)]
    port: i64,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    partition: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Check {
    #[serde(default, rename = "CheckID")]
    check_id: String,
    #[serde(default)]
    status: String,
}

/// The labels Prometheus gives one service instance. Values may be empty (no service
/// address, OSS Consul's namespace and partition); Prometheus keeps those labels too, and
/// relabeling treats an empty label as absent.
fn target_labels(entry: &ServiceEntry, tag_separator: &str) -> LabelSet {
    let service = &entry.service;
    let node = &entry.node;
    // Wrapping the list in separators lets a relabel regex match `.*,tag,.*` at any position.
    let tags = service.tags.as_deref().unwrap_or_default();
    let tags = format!("{tag_separator}{}{tag_separator}", tags.join(tag_separator));
    // A service registered from another node carries its own address; it wins.
    let host = if service.address.is_empty() {
        &node.address
    } else {
        &service.address
    };
    let port = service.port.to_string();
    let checks = entry.checks.as_deref().unwrap_or_default();

    let mut labels = LabelSet::from([
        (ADDRESS_LABEL.to_owned(), join_host_port(host, &port)),
        (META_ADDRESS.to_owned(), node.address.clone()),
        (META_NODE.to_owned(), node.node.clone()),
        (
            META_NAMESPACE.to_owned(),
            service.namespace.clone().unwrap_or_default(),
        ),
        (
            META_PARTITION.to_owned(),
            service.partition.clone().unwrap_or_default(),
        ),
        (META_TAGS.to_owned(), tags),
        (META_SERVICE_ADDRESS.to_owned(), service.address.clone()),
        (META_SERVICE_PORT.to_owned(), port),
        (META_SERVICE_ID.to_owned(), service.id.clone()),
        (META_HEALTH.to_owned(), aggregated_status(checks).to_owned()),
    ]);
    let prefixed = [
        (META_NODE_METADATA, &node.meta),
        (META_SERVICE_METADATA, &service.meta),
        (META_TAGGED_ADDRESS, &node.tagged_addresses),
    ];
    for (prefix, map) in prefixed {
        for (key, value) in map.iter().flatten() {
            labels.insert(
                format!("{prefix}{}", sanitize_label_name(key)),
                value.clone(),
            );
        }
    }
    labels
}

/// The Consul API client's `HealthChecks.AggregatedStatus`: maintenance > critical > warning
/// > passing; no checks is passing; an unknown status makes the whole answer empty.
fn aggregated_status(checks: &[Check]) -> &'static str {
    // Passing needs no flag: it is also the answer when nothing else was seen.
    let (mut warning, mut critical, mut maintenance) = (false, false, false);
    for check in checks {
        if check.check_id == "_node_maintenance"
            || check.check_id.starts_with("_service_maintenance:")
        {
            maintenance = true;
            continue;
        }
        match check.status.as_str() {
            "passing" => {}
            "warning" => warning = true,
            "critical" => critical = true,
            _ => return "",
        }
    }
    if maintenance {
        "maintenance"
    } else if critical {
        "critical"
    } else if warning {
        "warning"
    } else {
        "passing"
    }
}

/// Prometheus's `strutil.SanitizeLabelName`: every character outside `[a-zA-Z0-9_]` becomes
/// `_` (one per character, not per byte).
fn sanitize_label_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Go's `net.JoinHostPort`: brackets a host containing `:` (IPv6).
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, status: &str) -> Check {
        Check {
            check_id: id.to_owned(),
            status: status.to_owned(),
        }
    }

    #[test]
    fn aggregated_status_ranks_like_the_consul_client() {
        assert_eq!(aggregated_status(&[]), "passing");
        assert_eq!(
            aggregated_status(&[check("serfHealth", "passing")]),
            "passing"
        );
        let mixed = [check("a", "passing"), check("b", "warning")];
        assert_eq!(aggregated_status(&mixed), "warning");
        let worse = [
            check("a", "warning"),
            check("b", "critical"),
            check("c", "passing"),
        ];
        assert_eq!(aggregated_status(&worse), "critical");
        let maint = [
            check("a", "critical"),
            check("_service_maintenance:web-1", "critical"),
        ];
        assert_eq!(aggregated_status(&maint), "maintenance");
        let node_maint = [check("_node_maintenance", "critical")];
        assert_eq!(aggregated_status(&node_maint), "maintenance");
        let unknown = [check("a", "critical"), check("b", "bogus")];
        assert_eq!(aggregated_status(&unknown), "");
    }

    #[test]
    fn label_names_are_sanitized_per_character() {
        assert_eq!(sanitize_label_name("rack-id"), "rack_id");
        assert_eq!(sanitize_label_name("team.name/x"), "team_name_x");
        assert_eq!(sanitize_label_name("zoné"), "zon_");
        assert_eq!(sanitize_label_name("ok_1"), "ok_1");
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(join_host_port("10.0.0.1", "80"), "10.0.0.1:80");
        assert_eq!(join_host_port("::1", "80"), "[::1]:80");
        assert_eq!(join_host_port("", "80"), ":80");
    }

    #[test]
    fn index_resets_when_it_goes_backwards() {
        assert_eq!(next_index(0, 7), 7);
        assert_eq!(next_index(7, 7), 7);
        assert_eq!(next_index(7, 9), 9);
        assert_eq!(next_index(9, 3), 0);
        assert_eq!(next_index(0, 0), 1);
    }

    #[test]
    fn query_parameters_follow_the_go_client() {
        let opts = ConsulOptions {
            server: "consul.example:8500".to_owned(),
            path_prefix: "/proxy/consul/".to_owned(),
            datacenter: Some("dc2".to_owned()),
            namespace: Some("team".to_owned()),
            partition: Some("".to_owned()),
            node_meta: BTreeMap::from([("rack".to_owned(), "r1".to_owned())]),
            filter: Some("Service.Meta.env == \"prod\"".to_owned()),
            ..ConsulOptions::default()
        };
        // reqwest is built without a TLS provider; building a client needs one installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let api = Api::new(&opts, Client::new()).expect("valid options");
        let url = api.url(&["v1", "health", "service", "a/b c"], &[("tag", "x")]);
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(url.path(), "/proxy/consul/v1/health/service/a%2Fb%20c");
        let expected = [
            ("dc", "dc2"),
            ("ns", "team"),
            ("stale", ""),
            ("node-meta", "rack:r1"),
            ("filter", "Service.Meta.env == \"prod\""),
            ("tag", "x"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(pairs, expected);
    }
}
