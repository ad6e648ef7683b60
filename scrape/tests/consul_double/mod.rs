//! An in-process stand-in for a Consul agent, following Consul's documented HTTP API:
//! `/v1/catalog/services`, `/v1/health/service/<name>` and `/v1/agent/self`, with blocking
//! queries (`index`/`wait`, `X-Consul-Index`), ACL tokens, and switches for outages and
//! index resets. Consul itself cannot be installed in the test environment.
//!
//! Simplifications, each harmless for a discovery client: one global index that every
//! mutation bumps (so any change wakes every blocking query, which real Consul may also do);
//! `filter` is recorded but not evaluated; checks come from the fixture, nothing runs them.
//!
//! Every route is also served under `/consul` to test `path_prefix`.

// Each integration test binary that declares `mod consul_double;` uses a different subset.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};

/// Consul's default and maximum blocking wait.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);
const MAX_WAIT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check {
    pub(crate) id: String,
    /// `passing`, `warning` or `critical`.
    pub(crate) status: String,
}

impl Check {
    pub(crate) fn new(id: &str, status: &str) -> Self {
        Self {
            id: id.to_owned(),
            status: status.to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) address: String,
    pub(crate) tagged_addresses: BTreeMap<String, String>,
    pub(crate) meta: BTreeMap<String, String>,
    /// Node-level checks (real agents always have `serfHealth`).
    pub(crate) checks: Vec<Check>,
}

impl Node {
    pub(crate) fn new(name: &str, address: &str) -> Self {
        Self {
            name: name.to_owned(),
            address: address.to_owned(),
            tagged_addresses: BTreeMap::from([
                ("lan".to_owned(), address.to_owned()),
                ("wan".to_owned(), address.to_owned()),
            ]),
            meta: BTreeMap::new(),
            checks: vec![Check::new("serfHealth", "passing")],
        }
    }

    pub(crate) fn meta(mut self, key: &str, value: &str) -> Self {
        self.meta.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// One registered service instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Instance {
    pub(crate) node: String,
    pub(crate) id: String,
    pub(crate) service: String,
    pub(crate) tags: Vec<String>,
    /// Empty means "use the node's address", as in Consul.
    pub(crate) address: String,
    pub(crate) port: u16,
    pub(crate) meta: BTreeMap<String, String>,
    /// `None` is OSS Consul, which leaves the field out of its JSON.
    pub(crate) namespace: Option<String>,
    pub(crate) partition: Option<String>,
    pub(crate) checks: Vec<Check>,
}

impl Instance {
    pub(crate) fn new(node: &str, service: &str, id: &str, port: u16) -> Self {
        Self {
            node: node.to_owned(),
            id: id.to_owned(),
            service: service.to_owned(),
            tags: Vec::new(),
            address: String::new(),
            port,
            meta: BTreeMap::new(),
            namespace: None,
            partition: None,
            checks: Vec::new(),
        }
    }

    pub(crate) fn tags(mut self, tags: &[&str]) -> Self {
        self.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    pub(crate) fn address(mut self, address: &str) -> Self {
        self.address = address.to_owned();
        self
    }

    pub(crate) fn meta(mut self, key: &str, value: &str) -> Self {
        self.meta.insert(key.to_owned(), value.to_owned());
        self
    }

    pub(crate) fn check(mut self, id: &str, status: &str) -> Self {
        self.checks.push(Check::new(id, status));
        self
    }
}

/// A request as the double saw it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) token_header: Option<String>,
    pub(crate) authorization: Option<String>,
    pub(crate) status: u16,
}

impl Recorded {
    pub(crate) fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn params(&self, key: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

struct Fixture {
    /// Raft-like index: bumped by every mutation, reported as `X-Consul-Index`.
    index: u64,
    /// Bumped by `reset_index`: parked queries answer at once, as after a snapshot restore.
    epoch: u64,
    datacenter: String,
    nodes: BTreeMap<String, Node>,
    /// Keyed by service ID.
    instances: BTreeMap<String, Instance>,
    token: Option<String>,
    outage: bool,
    requests: Vec<Recorded>,
}

struct Shared {
    fixture: Mutex<Fixture>,
    /// Pinged after every change of `fixture`, to wake parked blocking queries.
    changed: watch::Sender<()>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Fixture> {
        self.fixture.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mutate(&self, f: impl FnOnce(&mut Fixture)) {
        {
            let mut fixture = self.lock();
            f(&mut fixture);
        }
        self.changed.send_replace(());
    }
}

/// The running double. Dropping it stops the server.
pub(crate) struct ConsulDouble {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Drop for ConsulDouble {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Parked long polls would otherwise keep graceful shutdown waiting.
        self.task.abort();
    }
}

impl ConsulDouble {
    /// Starts on 127.0.0.1 with an ephemeral port, in datacenter `datacenter`.
    pub(crate) async fn start(datacenter: &str) -> Self {
        let shared = Arc::new(Shared {
            fixture: Mutex::new(Fixture {
                index: 1,
                epoch: 0,
                datacenter: datacenter.to_owned(),
                nodes: BTreeMap::new(),
                instances: BTreeMap::new(),
                token: None,
                outage: false,
                requests: Vec::new(),
            }),
            changed: watch::channel(()).0,
        });
        let routes = |prefix: &'static str| {
            Router::new()
                .route("/v1/catalog/services", get(catalog_services))
                .route("/v1/health/service/{name}", get(health_service))
                .route("/v1/agent/self", get(agent_self))
                .with_state(Ctx {
                    shared: Arc::clone(&shared),
                    prefix,
                })
        };
        let app = Router::new()
            .nest("/consul", routes("/consul"))
            .merge(routes(""));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            addr,
            shared,
            stop: Some(stop),
            task,
        }
    }

    /// `host:port`, as `consul_sd_config.server` wants it.
    pub(crate) fn server(&self) -> String {
        self.addr.to_string()
    }

    /// Requires this ACL token from now on (`None`: ACLs off).
    pub(crate) fn set_token(&self, token: Option<&str>) {
        self.shared.mutate(|f| f.token = token.map(str::to_owned));
    }

    /// While on, every request (including parked ones) answers 500.
    pub(crate) fn set_outage(&self, outage: bool) {
        self.shared.mutate(|f| f.outage = outage);
    }

    /// Adds or replaces a node.
    pub(crate) fn upsert_node(&self, node: Node) {
        self.shared.mutate(|f| {
            f.index += 1;
            f.nodes.insert(node.name.clone(), node);
        });
    }

    /// Replaces a node's metadata.
    pub(crate) fn set_node_meta(&self, node: &str, meta: &[(&str, &str)]) {
        self.shared.mutate(|f| {
            f.index += 1;
            let node = f.nodes.get_mut(node).expect("known node");
            node.meta = meta
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
        });
    }

    /// Registers (or re-registers) a service instance.
    pub(crate) fn register(&self, instance: Instance) {
        self.shared.mutate(|f| {
            assert!(
                f.nodes.contains_key(&instance.node),
                "register on a known node"
            );
            f.index += 1;
            f.instances.insert(instance.id.clone(), instance);
        });
    }

    pub(crate) fn deregister(&self, service_id: &str) {
        self.shared.mutate(|f| {
            f.index += 1;
            assert!(f.instances.remove(service_id).is_some(), "known service id");
        });
    }

    pub(crate) fn set_tags(&self, service_id: &str, tags: &[&str]) {
        self.shared.mutate(|f| {
            f.index += 1;
            let instance = f.instances.get_mut(service_id).expect("known service id");
            instance.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        });
    }

    pub(crate) fn set_check(&self, service_id: &str, check_id: &str, status: &str) {
        self.shared.mutate(|f| {
            f.index += 1;
            let instance = f.instances.get_mut(service_id).expect("known service id");
            instance.checks.retain(|c| c.id != check_id);
            instance.checks.push(Check::new(check_id, status));
        });
    }

    /// Moves the index backwards (a snapshot restore) and wakes every parked query.
    pub(crate) fn reset_index(&self, index: u64) {
        self.shared.mutate(|f| {
            f.index = index;
            f.epoch += 1;
        });
    }

    pub(crate) fn index(&self) -> u64 {
        self.shared.lock().index
    }

    /// Every request answered so far, oldest first.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    pub(crate) fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }
}

type Params = Query<Vec<(String, String)>>;

/// Handler state: the fixture, and the path prefix the route was mounted under (recorded
/// so tests can check `path_prefix`).
#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    prefix: &'static str,
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Consul durations: `10s`, `5m`, `120000ms`, or a bare number of seconds.
fn parse_wait(value: &str) -> Option<Duration> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().ok()?;
    Some(match unit {
        "" | "s" => Duration::from_secs(number),
        "ms" => Duration::from_millis(number),
        "m" => Duration::from_secs(number * 60),
        "h" => Duration::from_secs(number * 3600),
        _ => return None,
    })
}

/// Who is asking, by Consul's ACL rules.
enum Caller {
    /// ACLs off, or the configured token.
    Allowed,
    /// No token at all: Consul's anonymous token, whose reads are filtered to nothing.
    Anonymous,
}

/// An error answer: status and Consul's plain-text body.
type Rejection = (StatusCode, &'static str);

/// Everything a handler does before it reads the fixture: record, check the outage switch,
/// the ACL token and `dc`, then park until the index moves past `index`.
async fn admit(
    shared: &Shared,
    path: &str,
    params: &[(String, String)],
    headers: &HeaderMap,
    blocking: bool,
) -> Result<Caller, Rejection> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let token_header = header("x-consul-token");
    let authorization = header("authorization");
    let bearer = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::to_owned);
    let presented = token_header
        .clone()
        .or_else(|| param(params, "token").map(str::to_owned))
        .or(bearer);
    let record = |status: StatusCode| Recorded {
        path: path.to_owned(),
        query: params.to_vec(),
        token_header: token_header.clone(),
        authorization: authorization.clone(),
        status: status.as_u16(),
    };
    let fail = |fixture: &mut Fixture, status: StatusCode, body: &'static str| {
        fixture.requests.push(record(status));
        Err((status, body))
    };

    let (start_epoch, caller) = {
        let mut fixture = shared.lock();
        if fixture.outage {
            return fail(
                &mut fixture,
                StatusCode::INTERNAL_SERVER_ERROR,
                "rpc error: no leader",
            );
        }
        let caller = match (&fixture.token, &presented) {
            (None, _) => Caller::Allowed,
            (Some(want), Some(got)) if want == got => Caller::Allowed,
            (Some(_), Some(_)) => {
                return fail(&mut fixture, StatusCode::FORBIDDEN, "ACL not found");
            }
            (Some(_), None) => Caller::Anonymous,
        };
        if let Some(dc) = param(params, "dc") {
            if dc != fixture.datacenter {
                return fail(
                    &mut fixture,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "No path to datacenter",
                );
            }
        }
        (fixture.epoch, caller)
    };

    if blocking {
        let index = match param(params, "index").map(str::parse::<u64>) {
            None => 0,
            Some(Ok(index)) => index,
            Some(Err(_)) => {
                return fail(&mut shared.lock(), StatusCode::BAD_REQUEST, "Invalid index");
            }
        };
        let wait = match param(params, "wait").map(parse_wait) {
            None => DEFAULT_WAIT,
            Some(Some(wait)) => wait.min(MAX_WAIT),
            Some(None) => {
                return fail(
                    &mut shared.lock(),
                    StatusCode::BAD_REQUEST,
                    "Invalid wait time",
                );
            }
        };
        let deadline = Instant::now() + wait;
        let mut changed = shared.changed.subscribe();
        changed.mark_unchanged();
        loop {
            {
                let mut fixture = shared.lock();
                if fixture.outage {
                    return fail(
                        &mut fixture,
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "rpc error: no leader",
                    );
                }
                if index == 0 || fixture.index > index || fixture.epoch != start_epoch {
                    break;
                }
            }
            if timeout_at(deadline, changed.changed()).await.is_err() {
                break;
            }
        }
    }
    shared.lock().requests.push(record(StatusCode::OK));
    Ok(caller)
}

fn respond(fixture: &Fixture, caller: &Caller, body: Value) -> Response {
    let mut response = axum::Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert("X-Consul-Index", fixture.index.into());
    headers.insert("X-Consul-KnownLeader", "true".parse().expect("header"));
    headers.insert("X-Consul-LastContact", 0.into());
    if matches!(caller, Caller::Anonymous) {
        headers.insert(
            "X-Consul-Results-Filtered-By-ACLs",
            "true".parse().expect("header"),
        );
    }
    response
}

/// The filters Consul applies to both listing endpoints: `node-meta` (all pairs), and the
/// Enterprise `ns`/`partition` (OSS objects are in `default`).
fn visible(fixture: &Fixture, instance: &Instance, params: &[(String, String)]) -> bool {
    let Some(node) = fixture.nodes.get(&instance.node) else {
        return false;
    };
    let meta_ok = params
        .iter()
        .filter(|(k, _)| k == "node-meta")
        .all(|(_, pair)| match pair.split_once(':') {
            Some((key, value)) => node.meta.get(key).map(String::as_str) == Some(value),
            None => false,
        });
    let scope_ok = |key: &str, have: &Option<String>| match param(params, key) {
        None | Some("") => true,
        Some(want) => have.as_deref().unwrap_or("default") == want,
    };
    meta_ok && scope_ok("ns", &instance.namespace) && scope_ok("partition", &instance.partition)
}

async fn catalog_services(
    State(Ctx { shared, prefix }): State<Ctx>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    let path = format!("{prefix}/v1/catalog/services");
    let caller = match admit(&shared, &path, &params, &headers, true).await {
        Ok(caller) => caller,
        Err(rejection) => return rejection.into_response(),
    };
    let fixture = shared.lock();
    let mut services: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    if matches!(caller, Caller::Allowed) {
        for instance in fixture.instances.values() {
            if !visible(&fixture, instance, &params) {
                continue;
            }
            let tags = services.entry(&instance.service).or_default();
            tags.extend(instance.tags.iter().map(String::as_str));
            tags.sort_unstable();
            tags.dedup();
        }
    }
    respond(&fixture, &caller, json!(services))
}

async fn health_service(
    State(Ctx { shared, prefix }): State<Ctx>,
    Path(name): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    let path = format!("{prefix}/v1/health/service/{name}");
    let caller = match admit(&shared, &path, &params, &headers, true).await {
        Ok(caller) => caller,
        Err(rejection) => return rejection.into_response(),
    };
    let fixture = shared.lock();
    let wanted_tags: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "tag")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut entries = Vec::new();
    if matches!(caller, Caller::Allowed) {
        // Consul sorts the answer by node name.
        let mut instances: Vec<&Instance> = fixture
            .instances
            .values()
            .filter(|i| i.service == name && visible(&fixture, i, &params))
            .filter(|i| {
                wanted_tags
                    .iter()
                    .all(|t| i.tags.iter().any(|have| have == t))
            })
            .collect();
        instances.sort_by(|a, b| (&a.node, &a.id).cmp(&(&b.node, &b.id)));
        for instance in instances {
            entries.push(health_entry(&fixture, instance));
        }
    }
    respond(&fixture, &caller, Value::Array(entries))
}

fn health_entry(fixture: &Fixture, instance: &Instance) -> Value {
    let node = &fixture.nodes[&instance.node];
    let check = |c: &Check, service: bool| {
        let mut check = json!({
            "Node": node.name,
            "CheckID": c.id,
            "Name": c.id,
            "Status": c.status,
            "Notes": "",
            "Output": "",
            "ServiceID": if service { instance.id.as_str() } else { "" },
            "ServiceName": if service { instance.service.as_str() } else { "" },
            "ServiceTags": if service { instance.tags.clone() } else { Vec::new() },
        });
        if let Some(ns) = &instance.namespace {
            check["Namespace"] = json!(ns);
        }
        check
    };
    let checks: Vec<Value> = node
        .checks
        .iter()
        .map(|c| check(c, false))
        .chain(instance.checks.iter().map(|c| check(c, true)))
        .collect();
    let mut service = json!({
        "ID": instance.id,
        "Service": instance.service,
        "Tags": instance.tags,
        "Address": instance.address,
        "TaggedAddresses": {},
        "Meta": instance.meta,
        "Port": instance.port,
        "Weights": {"Passing": 1, "Warning": 1},
        "EnableTagOverride": false,
        "CreateIndex": fixture.index,
        "ModifyIndex": fixture.index,
    });
    if let Some(ns) = &instance.namespace {
        service["Namespace"] = json!(ns);
    }
    if let Some(partition) = &instance.partition {
        service["Partition"] = json!(partition);
    }
    json!({
        "Node": {
            "ID": format!("00000000-0000-0000-0000-{:012}", node.name.len()),
            "Node": node.name,
            "Address": node.address,
            "Datacenter": fixture.datacenter,
            "TaggedAddresses": node.tagged_addresses,
            "Meta": node.meta,
            "CreateIndex": 1,
            "ModifyIndex": fixture.index,
        },
        "Service": service,
        "Checks": checks,
    })
}

async fn agent_self(
    State(Ctx { shared, prefix }): State<Ctx>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    let path = format!("{prefix}/v1/agent/self");
    match admit(&shared, &path, &params, &headers, false).await {
        Ok(Caller::Allowed) => {}
        // Reading the agent needs `agent:read`, which the anonymous token lacks.
        Ok(Caller::Anonymous) => {
            return (StatusCode::FORBIDDEN, "Permission denied").into_response();
        }
        Err(rejection) => return rejection.into_response(),
    }
    let fixture = shared.lock();
    axum::Json(json!({
        "Config": {
            "Datacenter": fixture.datacenter,
            "NodeName": "consul-double",
            "Server": true,
            "Version": "1.20.0",
        },
        "Member": {"Name": "consul-double", "Addr": "127.0.0.1", "Port": 8301},
    }))
    .into_response()
}
