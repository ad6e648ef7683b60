//! Consul service discovery against the Consul double (`consul_double`): labels exactly as
//! Prometheus sets them, blocking-query latency, filters, ACLs, outages and index resets.

mod consul_double;

use std::collections::BTreeMap;
use std::time::Duration;

use consul_double::{ConsulDouble, Instance, Node};
use hearth_scrape::discovery::consul::{run, ConsulOptions};
use hearth_scrape::discovery::{LabelSet, TargetGroup};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};

/// Short enough that throttling never dominates a test, long enough to count requests.
const REFRESH: Duration = Duration::from_millis(100);
/// Upper bound for anything that should happen "at once".
const PROMPT: Duration = Duration::from_secs(1);
/// Upper bound for waits that include an error backoff.
const PATIENT: Duration = Duration::from_secs(5);

fn options(double: &ConsulDouble) -> ConsulOptions {
    ConsulOptions {
        server: double.server(),
        refresh_interval: REFRESH,
        ..ConsulOptions::default()
    }
}

/// A running `run`, stopped (and awaited) on drop of the handle's sender.
struct Discovery {
    rx: watch::Receiver<Vec<TargetGroup>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Discovery {
    fn start(opts: ConsulOptions) -> Self {
        // The crate builds reqwest without a TLS provider; the binary installs one at start.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .build()
            .expect("plain-http reqwest client");
        let (tx, rx) = watch::channel(Vec::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(opts, client, tx, async {
            let _ = stopped.await;
        }));
        Self {
            rx,
            stop: Some(stop),
            task,
        }
    }

    /// Waits until the published groups satisfy `pred`, returning them; panics with the last
    /// value after `limit`.
    async fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&[TargetGroup]) -> bool,
    ) -> Vec<TargetGroup> {
        let deadline = Instant::now() + limit;
        loop {
            {
                let current = self.rx.borrow_and_update();
                if pred(&current) {
                    return current.clone();
                }
            }
            match tokio::time::timeout_at(deadline, self.rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => panic!("discovery stopped while waiting for {what}"),
                Err(_) => panic!(
                    "timed out after {limit:?} waiting for {what}; last groups: {:#?}",
                    *self.rx.borrow()
                ),
            }
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        timeout(PROMPT, &mut self.task)
            .await
            .expect("run returns promptly after shutdown")
            .expect("run does not panic");
    }
}

fn group<'a>(groups: &'a [TargetGroup], source: &str) -> Option<&'a TargetGroup> {
    groups.iter().find(|g| g.source == source)
}

fn addresses(groups: &[TargetGroup], source: &str) -> Vec<String> {
    let mut out: Vec<String> = group(groups, source)
        .map(|g| g.targets.iter().map(|t| t["__address__"].clone()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Two nodes, `web` on both, `api` on one.
async fn fixture() -> ConsulDouble {
    let double = ConsulDouble::start("dc1").await;
    let mut n1 = Node::new("node-1", "10.0.0.1")
        .meta("rack-id", "r1")
        .meta("os", "linux");
    n1.tagged_addresses
        .insert("wan".to_owned(), "198.51.100.1".to_owned());
    double.upsert_node(n1);
    double.upsert_node(Node::new("node-2", "10.0.0.2").meta("os", "windows"));
    double.register(
        Instance::new("node-1", "web", "web-1", 8080)
            .tags(&["a", "b"])
            .meta("version", "1.2")
            .meta("team.name", "core")
            .check("service:web-1", "passing")
            .check("slow", "warning"),
    );
    double.register(
        Instance::new("node-2", "web", "web-2", 9090)
            .tags(&["b"])
            .address("10.0.1.5")
            .check("service:web-2", "critical"),
    );
    double.register(Instance::new("node-1", "api", "api-1", 7000));
    double
}

#[tokio::test]
async fn initial_discovery_sets_prometheus_labels() {
    let double = fixture().await;
    let mut discovery = Discovery::start(options(&double));
    let groups = discovery
        .wait_for(PROMPT, "web and api groups", |g| {
            group(g, "web").is_some_and(|g| g.targets.len() == 2) && group(g, "api").is_some()
        })
        .await;

    assert_eq!(
        groups.iter().map(|g| g.source.as_str()).collect::<Vec<_>>(),
        ["api", "web"],
        "one group per service"
    );
    let web = group(&groups, "web").expect("web group");
    // The datacenter came from /v1/agent/self, as no `datacenter` was configured.
    assert_eq!(
        web.labels,
        labels(&[
            ("__meta_consul_service", "web"),
            ("__meta_consul_dc", "dc1")
        ])
    );
    let expected_web_1 = labels(&[
        // Empty service address: the node's address is scraped.
        ("__address__", "10.0.0.1:8080"),
        ("__meta_consul_address", "10.0.0.1"),
        ("__meta_consul_node", "node-1"),
        ("__meta_consul_namespace", ""),
        ("__meta_consul_partition", ""),
        ("__meta_consul_tags", ",a,b,"),
        ("__meta_consul_service_address", ""),
        ("__meta_consul_service_port", "8080"),
        ("__meta_consul_service_id", "web-1"),
        // serfHealth passing + passing + warning.
        ("__meta_consul_health", "warning"),
        ("__meta_consul_metadata_rack_id", "r1"),
        ("__meta_consul_metadata_os", "linux"),
        ("__meta_consul_service_metadata_version", "1.2"),
        ("__meta_consul_service_metadata_team_name", "core"),
        ("__meta_consul_tagged_address_lan", "10.0.0.1"),
        ("__meta_consul_tagged_address_wan", "198.51.100.1"),
    ]);
    let expected_web_2 = labels(&[
        ("__address__", "10.0.1.5:9090"),
        ("__meta_consul_address", "10.0.0.2"),
        ("__meta_consul_node", "node-2"),
        ("__meta_consul_namespace", ""),
        ("__meta_consul_partition", ""),
        ("__meta_consul_tags", ",b,"),
        ("__meta_consul_service_address", "10.0.1.5"),
        ("__meta_consul_service_port", "9090"),
        ("__meta_consul_service_id", "web-2"),
        ("__meta_consul_health", "critical"),
        ("__meta_consul_metadata_os", "windows"),
        ("__meta_consul_tagged_address_lan", "10.0.0.2"),
        ("__meta_consul_tagged_address_wan", "10.0.0.2"),
    ]);
    assert_eq!(web.targets, vec![expected_web_1, expected_web_2]);

    let api = group(&groups, "api").expect("api group");
    assert_eq!(api.targets.len(), 1);
    assert_eq!(
        api.targets[0]["__meta_consul_tags"], ",,",
        "no tags still wrapped"
    );
    assert_eq!(api.targets[0]["__meta_consul_health"], "passing");

    // Prometheus's defaults: stale reads, a two-minute wait, no dc parameter unless set.
    let requests = double.requests();
    let health = requests
        .iter()
        .find(|r| r.path == "/v1/health/service/web")
        .expect("health endpoint used");
    assert_eq!(health.param("stale"), Some(""));
    assert_eq!(health.param("wait"), Some("120000ms"));
    assert_eq!(health.param("dc"), None);
    assert!(requests.iter().any(|r| r.path == "/v1/agent/self"));
    discovery.stop().await;
}

#[tokio::test]
async fn custom_tag_separator_wraps_tags() {
    let double = fixture().await;
    let opts = ConsulOptions {
        tag_separator: "|".to_owned(),
        datacenter: Some("dc1".to_owned()),
        ..options(&double)
    };
    let mut discovery = Discovery::start(opts);
    let groups = discovery
        .wait_for(PROMPT, "web", |g| {
            group(g, "web").is_some_and(|g| g.targets.len() == 2)
        })
        .await;
    assert_eq!(
        group(&groups, "web").expect("web").targets[0]["__meta_consul_tags"],
        "|a|b|"
    );
    // A configured datacenter is sent as `dc` and the agent is not asked.
    let requests = double.requests();
    assert!(requests.iter().all(|r| r.path != "/v1/agent/self"));
    assert!(requests
        .iter()
        .filter(|r| r.path.starts_with("/v1/"))
        .all(|r| r.param("dc") == Some("dc1")));
    discovery.stop().await;
}

#[tokio::test]
async fn registration_shows_up_within_a_second_through_blocking_queries() {
    let double = fixture().await;
    let mut discovery = Discovery::start(options(&double));
    discovery
        .wait_for(PROMPT, "initial web", |g| addresses(g, "web").len() == 2)
        .await;

    // Idle: the watchers must be parked in blocking queries, not polling every refresh.
    sleep(Duration::from_millis(300)).await;
    double.clear_requests();
    sleep(Duration::from_secs(1)).await;
    let idle = double.requests();
    assert!(
        idle.len() <= 1,
        "watchers polled while nothing changed: {idle:#?}"
    );

    // A new instance of a watched service wakes the health query.
    let started = Instant::now();
    double.register(Instance::new("node-2", "web", "web-3", 8081));
    discovery
        .wait_for(PROMPT, "web-3", |g| {
            addresses(g, "web").contains(&"10.0.0.2:8081".to_owned())
        })
        .await;
    let latency = started.elapsed();
    assert!(latency < PROMPT, "registration took {latency:?}");

    // A brand-new service wakes the catalog query, which starts a watcher.
    sleep(REFRESH).await;
    let started = Instant::now();
    double.register(Instance::new("node-1", "db", "db-1", 5432));
    discovery
        .wait_for(PROMPT, "db", |g| addresses(g, "db") == ["10.0.0.1:5432"])
        .await;
    let latency = started.elapsed();
    assert!(latency < PROMPT, "new service took {latency:?}");

    // The blocking queries carried the index of the previous answer.
    assert!(double
        .requests()
        .iter()
        .any(|r| r.path == "/v1/health/service/web" && r.param("index").is_some()));
    discovery.stop().await;
}

#[tokio::test]
async fn deregistration_removes_targets_and_empties_vanished_services() {
    let double = fixture().await;
    let mut discovery = Discovery::start(options(&double));
    discovery
        .wait_for(PROMPT, "initial", |g| {
            addresses(g, "web").len() == 2 && addresses(g, "api").len() == 1
        })
        .await;

    double.deregister("web-2");
    discovery
        .wait_for(PROMPT, "web without web-2", |g| {
            addresses(g, "web") == ["10.0.0.1:8080"]
        })
        .await;

    // The last instance of `api` leaves the catalog: Prometheus sends `{Source: "api"}`.
    double.deregister("api-1");
    let groups = discovery
        .wait_for(PROMPT, "api emptied", |g| {
            group(g, "api").is_some_and(|g| g.targets.is_empty())
        })
        .await;
    assert_eq!(
        group(&groups, "api"),
        Some(&TargetGroup {
            source: "api".to_owned(),
            ..TargetGroup::default()
        })
    );
    // And it comes back when re-registered.
    sleep(REFRESH).await;
    double.register(Instance::new("node-2", "api", "api-2", 7001));
    discovery
        .wait_for(PROMPT, "api back", |g| {
            addresses(g, "api") == ["10.0.0.2:7001"]
        })
        .await;
    discovery.stop().await;
}

#[tokio::test]
async fn tag_filter_drops_instances_that_lose_a_tag() {
    let double = fixture().await;
    let opts = ConsulOptions {
        tags: vec!["b".to_owned()],
        ..options(&double)
    };
    let mut discovery = Discovery::start(opts);
    let groups = discovery
        .wait_for(PROMPT, "web with tag b", |g| addresses(g, "web").len() == 2)
        .await;
    assert!(
        group(&groups, "api").is_none(),
        "api has no tag b: {groups:#?}"
    );

    // Every wanted tag is sent as its own `tag` parameter.
    assert!(double
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/health/service/web")
        .all(|r| r.params("tag") == ["b"]));

    double.set_tags("web-2", &["a"]);
    discovery
        .wait_for(PROMPT, "web-2 filtered out", |g| {
            addresses(g, "web") == ["10.0.0.1:8080"]
        })
        .await;
    double.set_tags("web-1", &["c"]);
    discovery
        .wait_for(PROMPT, "web empty", |g| addresses(g, "web").is_empty())
        .await;
    discovery.stop().await;
}

#[tokio::test]
async fn all_wanted_tags_are_required() {
    let double = fixture().await;
    let opts = ConsulOptions {
        tags: vec!["a".to_owned(), "b".to_owned()],
        ..options(&double)
    };
    let mut discovery = Discovery::start(opts);
    discovery
        .wait_for(PROMPT, "only web-1", |g| {
            addresses(g, "web") == ["10.0.0.1:8080"]
        })
        .await;
    discovery.stop().await;
}

#[tokio::test]
async fn wrong_token_yields_no_targets_until_the_acl_accepts_it() {
    let double = fixture().await;
    double.set_token(Some("secret"));

    let opts = ConsulOptions {
        token: Some("wrong".to_owned()),
        datacenter: Some("dc1".to_owned()),
        ..options(&double)
    };
    let mut wrong = Discovery::start(opts.clone());
    sleep(Duration::from_millis(1500)).await;
    assert!(wrong.rx.borrow().is_empty(), "{:#?}", *wrong.rx.borrow());
    let rejected: Vec<_> = double
        .requests()
        .into_iter()
        .filter(|r| r.status == 403)
        .collect();
    assert!(
        rejected.len() >= 2,
        "the client keeps retrying: {rejected:#?}"
    );
    assert!(rejected
        .iter()
        .all(|r| r.token_header.as_deref() == Some("wrong")));

    let mut right = Discovery::start(ConsulOptions {
        token: Some("secret".to_owned()),
        ..opts
    });
    right
        .wait_for(PROMPT, "targets with the right token", |g| {
            addresses(g, "web").len() == 2
        })
        .await;
    right.stop().await;

    // The ACL changes to accept the "wrong" token: the retrying client recovers.
    double.set_token(Some("wrong"));
    wrong
        .wait_for(PATIENT, "targets after ACL change", |g| {
            addresses(g, "web").len() == 2
        })
        .await;
    wrong.stop().await;
}

#[tokio::test]
async fn outage_keeps_last_targets_then_recovery_picks_up_changes() {
    let double = fixture().await;
    let mut discovery = Discovery::start(options(&double));
    let before = discovery
        .wait_for(PROMPT, "initial", |g| addresses(g, "web").len() == 2)
        .await;
    sleep(Duration::from_millis(200)).await;
    discovery.rx.mark_unchanged();

    double.set_outage(true);
    double.register(Instance::new("node-2", "web", "web-3", 8081));
    sleep(Duration::from_millis(1500)).await;
    assert!(
        double.requests().iter().any(|r| r.status == 500),
        "the outage was observed"
    );
    assert!(
        !discovery.rx.has_changed().expect("still running"),
        "nothing published during the outage: {:#?}",
        *discovery.rx.borrow()
    );
    assert_eq!(*discovery.rx.borrow(), before);

    double.set_outage(false);
    discovery
        .wait_for(PATIENT, "web-3 after recovery", |g| {
            addresses(g, "web").len() == 3
        })
        .await;
    discovery.stop().await;
}

#[tokio::test]
async fn services_option_watches_named_services_without_the_catalog() {
    let double = fixture().await;
    let opts = ConsulOptions {
        services: vec!["web".to_owned(), "missing".to_owned()],
        ..options(&double)
    };
    let mut discovery = Discovery::start(opts);
    let groups = discovery
        .wait_for(PROMPT, "web and missing", |g| {
            addresses(g, "web").len() == 2 && group(g, "missing").is_some()
        })
        .await;
    assert!(
        group(&groups, "api").is_none(),
        "api is not named: {groups:#?}"
    );
    let missing = group(&groups, "missing").expect("missing");
    assert!(missing.targets.is_empty());
    assert_eq!(missing.labels["__meta_consul_service"], "missing");

    // Registering the named service later is picked up by its health watch.
    double.register(Instance::new("node-2", "missing", "missing-1", 1234));
    discovery
        .wait_for(PROMPT, "missing registered", |g| {
            addresses(g, "missing") == ["10.0.0.2:1234"]
        })
        .await;
    assert!(
        double
            .requests()
            .iter()
            .all(|r| r.path != "/v1/catalog/services"),
        "Prometheus skips the catalog when only names are given"
    );
    discovery.stop().await;
}

#[tokio::test]
async fn services_and_tags_together_use_the_catalog() {
    let double = fixture().await;
    let opts = ConsulOptions {
        services: vec!["web".to_owned(), "api".to_owned()],
        tags: vec!["a".to_owned()],
        ..options(&double)
    };
    let mut discovery = Discovery::start(opts);
    let groups = discovery
        .wait_for(PROMPT, "web", |g| addresses(g, "web") == ["10.0.0.1:8080"])
        .await;
    assert!(
        group(&groups, "api").is_none(),
        "api lacks tag a: {groups:#?}"
    );
    assert!(double
        .requests()
        .iter()
        .any(|r| r.path == "/v1/catalog/services"));
    discovery.stop().await;
}

#[tokio::test]
async fn node_meta_filter_selects_nodes() {
    let double = fixture().await;
    let opts = ConsulOptions {
        node_meta: BTreeMap::from([("os".to_owned(), "linux".to_owned())]),
        ..options(&double)
    };
    let mut discovery = Discovery::start(opts);
    discovery
        .wait_for(PROMPT, "linux targets only", |g| {
            addresses(g, "web") == ["10.0.0.1:8080"] && addresses(g, "api") == ["10.0.0.1:7000"]
        })
        .await;
    assert!(double
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/catalog") || r.path.starts_with("/v1/health"))
        .all(|r| r.params("node-meta") == ["os:linux"]));

    double.set_node_meta("node-2", &[("os", "linux")]);
    let groups = discovery
        .wait_for(PROMPT, "node-2 joins", |g| addresses(g, "web").len() == 2)
        .await;
    let web_2 = group(&groups, "web")
        .expect("web")
        .targets
        .iter()
        .find(|t| t["__meta_consul_node"] == "node-2")
        .expect("node-2 target")
        .clone();
    assert_eq!(web_2["__meta_consul_metadata_os"], "linux");
    discovery.stop().await;
}

#[tokio::test]
async fn enterprise_and_http_options_reach_consul() {
    let double = fixture().await;
    let mut scoped = Instance::new("node-1", "billing", "billing-1", 6000);
    scoped.namespace = Some("team-a".to_owned());
    scoped.partition = Some("part-1".to_owned());
    double.register(scoped);

    let filter = "Service.Meta.env == \"prod\"";
    let opts = ConsulOptions {
        path_prefix: "/consul".to_owned(),
        namespace: Some("team-a".to_owned()),
        partition: Some("part-1".to_owned()),
        allow_stale: false,
        filter: Some(filter.to_owned()),
        basic_auth: Some(("user".to_owned(), "pass".to_owned())),
        ..options(&double)
    };
    let mut discovery = Discovery::start(opts);
    let groups = discovery
        .wait_for(PROMPT, "billing", |g| addresses(g, "billing").len() == 1)
        .await;
    assert_eq!(
        groups.len(),
        1,
        "only the namespace's services: {groups:#?}"
    );
    let target = &groups[0].targets[0];
    assert_eq!(target["__meta_consul_namespace"], "team-a");
    assert_eq!(target["__meta_consul_partition"], "part-1");

    let requests = double.requests();
    let watched: Vec<_> = requests
        .iter()
        .filter(|r| r.path != "/consul/v1/agent/self")
        .collect();
    assert!(watched
        .iter()
        .any(|r| r.path == "/consul/v1/catalog/services"));
    assert!(watched
        .iter()
        .any(|r| r.path == "/consul/v1/health/service/billing"));
    for request in &watched {
        assert!(request.path.starts_with("/consul/v1/"), "{request:#?}");
        assert_eq!(request.param("ns"), Some("team-a"));
        assert_eq!(request.param("partition"), Some("part-1"));
        assert_eq!(request.param("filter"), Some(filter));
        assert_eq!(request.param("stale"), None, "allow_stale: false");
        // base64("user:pass")
        assert_eq!(request.authorization.as_deref(), Some("Basic dXNlcjpwYXNz"));
    }
    discovery.stop().await;
}

#[tokio::test]
async fn index_reset_restarts_from_zero() {
    let double = fixture().await;
    let mut discovery = Discovery::start(options(&double));
    discovery
        .wait_for(PROMPT, "initial", |g| addresses(g, "web").len() == 2)
        .await;
    sleep(Duration::from_millis(200)).await;
    assert!(double.index() > 3);

    // A snapshot restore moves the index back below what the client is waiting on. A client
    // that kept its old index would block until the new index overtook it.
    double.clear_requests();
    double.reset_index(1);
    sleep(Duration::from_millis(300)).await;
    assert!(
        double
            .requests()
            .iter()
            .any(|r| r.path == "/v1/health/service/web" && r.param("index").is_none()),
        "after the reset the client asks without an index"
    );
    double.register(Instance::new("node-2", "web", "web-3", 8081));
    discovery
        .wait_for(PROMPT, "web-3 after reset", |g| {
            addresses(g, "web").len() == 3
        })
        .await;
    discovery.stop().await;
}

#[tokio::test]
async fn health_changes_update_the_label() {
    let double = fixture().await;
    let mut discovery = Discovery::start(options(&double));
    discovery
        .wait_for(PROMPT, "initial", |g| addresses(g, "web").len() == 2)
        .await;
    double.set_check("web-1", "slow", "passing");
    discovery
        .wait_for(PROMPT, "web-1 passing", |g| {
            group(g, "web").is_some_and(|g| {
                g.targets.iter().any(|t| {
                    t["__meta_consul_service_id"] == "web-1"
                        && t["__meta_consul_health"] == "passing"
                })
            })
        })
        .await;
    discovery.stop().await;
}

#[tokio::test]
async fn empty_catalog_publishes_an_empty_set_once() {
    let double = ConsulDouble::start("dc1").await;
    let mut discovery = Discovery::start(options(&double));
    timeout(PROMPT, discovery.rx.changed())
        .await
        .expect("a first (empty) publication")
        .expect("running");
    assert!(discovery.rx.borrow_and_update().is_empty());
    discovery.stop().await;
}
