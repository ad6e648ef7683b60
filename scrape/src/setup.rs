//! From a job's settings to a running [`JobSpec`]: the HTTP client (auth, TLS, proxy,
//! redirects), compiled relabeling, and the discovery providers' tasks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::discovery::{self, TargetGroup};
use crate::manager::JobSpec;
use crate::relabel::{RelabelConfig, Relabeler};
use crate::scrape_loop::{Auth, LoopOptions};
use crate::target::TargetDefaults;

/// TLS settings of a scrape config (`tls_config`).
#[derive(Debug, Clone, Default)]
pub struct TlsParams {
    pub ca_file: Option<PathBuf>,
    pub ca: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub cert: Option<String>,
    pub key_file: Option<PathBuf>,
    pub key: Option<String>,
    pub insecure_skip_verify: bool,
}

/// Everything about one job, independent of how it was configured.
#[derive(Debug, Clone)]
pub struct JobParams {
    pub name: String,
    pub scheme: String,
    pub metrics_path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub params: BTreeMap<String, Vec<String>>,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub relabel: Vec<RelabelConfig>,
    pub metric_relabel: Vec<RelabelConfig>,
    pub sample_limit: usize,
    pub label_limit: usize,
    pub label_name_length_limit: usize,
    pub label_value_length_limit: usize,
    pub target_limit: usize,
    pub body_size_limit: usize,
    pub auth: Auth,
    pub tls: TlsParams,
    pub proxy_url: Option<String>,
    pub follow_redirects: bool,
    pub static_groups: Vec<TargetGroup>,
    /// (file patterns, refresh interval) per file_sd config.
    pub file_sd: Vec<(Vec<PathBuf>, Duration)>,
    pub consul: Vec<discovery::consul::ConsulOptions>,
}

fn read_pem(file: &Option<PathBuf>, inline: &Option<String>) -> Result<Option<Vec<u8>>, String> {
    match (file, inline) {
        (Some(f), _) => std::fs::read(f)
            .map(Some)
            .map_err(|e| format!("reading {}: {e}", f.display())),
        (None, Some(s)) => Ok(Some(s.clone().into_bytes())),
        (None, None) => Ok(None),
    }
}

/// Builds the job's HTTP client.
pub fn build_client(p: &JobParams) -> Result<reqwest::Client, String> {
    // rustls needs a process-wide crypto provider; ring keeps the build free of cmake.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")))
        .redirect(if p.follow_redirects {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        })
        .pool_idle_timeout(Duration::from_secs(90));
    b = match &p.proxy_url {
        Some(u) => b.proxy(reqwest::Proxy::all(u).map_err(|e| format!("proxy_url: {e}"))?),
        None => b.no_proxy(),
    };
    if let Some(ca) = read_pem(&p.tls.ca_file, &p.tls.ca)? {
        for c in
            reqwest::Certificate::from_pem_bundle(&ca).map_err(|e| format!("tls_config ca: {e}"))?
        {
            b = b.add_root_certificate(c);
        }
    }
    match (
        read_pem(&p.tls.cert_file, &p.tls.cert)?,
        read_pem(&p.tls.key_file, &p.tls.key)?,
    ) {
        (Some(mut cert), Some(key)) => {
            cert.push(b'\n');
            cert.extend_from_slice(&key);
            b = b.identity(
                reqwest::Identity::from_pem(&cert)
                    .map_err(|e| format!("tls_config cert/key: {e}"))?,
            );
        }
        (None, None) => {}
        _ => return Err("tls_config: cert and key must be given together".into()),
    }
    if p.tls.insecure_skip_verify {
        b = b.danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| format!("building HTTP client: {e}"))
}

/// Starts the job's discovery providers and returns the runnable job.
pub fn build_job(p: JobParams) -> Result<JobSpec, String> {
    let client = build_client(&p)?;
    let relabel = Relabeler::new(&p.relabel).map_err(|e| format!("relabel_configs: {e}"))?;
    let metric_relabel =
        Relabeler::new(&p.metric_relabel).map_err(|e| format!("metric_relabel_configs: {e}"))?;
    let fingerprint = format!("{p:?}");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut providers = Vec::new();
    if !p.static_groups.is_empty() {
        let (tx, rx) = watch::channel(p.static_groups.clone());
        // Keep the sender alive for the job's life so the receiver never reports "closed".
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _keep = tx;
            let _ = stop.wait_for(|s| *s).await;
        });
        providers.push(rx);
    }
    for (patterns, refresh) in &p.file_sd {
        let (tx, rx) = watch::channel(Vec::new());
        tokio::spawn(discovery::file::run(
            patterns.clone(),
            *refresh,
            tx,
            stop_rx.clone(),
        ));
        providers.push(rx);
    }
    for opts in &p.consul {
        let (tx, rx) = watch::channel(Vec::new());
        let mut stop = stop_rx.clone();
        tokio::spawn(discovery::consul::run(
            opts.clone(),
            client.clone(),
            tx,
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ));
        providers.push(rx);
    }
    Ok(JobSpec {
        name: p.name.clone(),
        fingerprint,
        defaults: TargetDefaults {
            job: p.name.clone(),
            scheme: p.scheme.clone(),
            metrics_path: p.metrics_path.clone(),
            interval: p.interval,
            timeout: p.timeout,
            params: p.params.clone(),
        },
        relabel: Arc::new(relabel),
        opts: LoopOptions {
            job: p.name.clone(),
            honor_labels: p.honor_labels,
            honor_timestamps: p.honor_timestamps,
            metric_relabel: Arc::new(metric_relabel),
            sample_limit: p.sample_limit,
            label_limit: p.label_limit,
            label_name_length_limit: p.label_name_length_limit,
            label_value_length_limit: p.label_value_length_limit,
            body_size_limit: p.body_size_limit,
            auth: p.auth.clone(),
        },
        client,
        providers,
        provider_stop: Some(stop_tx),
        target_limit: p.target_limit,
    })
}

fn read_trimmed(p: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("reading {}: {e}", p.display()))
}

fn auth_of(
    basic: &Option<crate::config::BasicAuth>,
    authorization: &Option<crate::config::Authorization>,
) -> Result<Auth, String> {
    if let Some(b) = basic {
        let username = match &b.username_file {
            Some(f) => read_trimmed(f)?,
            None => b.username.clone(),
        };
        return Ok(Auth::Basic {
            username,
            password: b.password.as_ref().map(|s| s.0.clone()),
            password_file: b.password_file.clone(),
        });
    }
    if let Some(a) = authorization {
        return Ok(Auth::Authorization {
            kind: a.auth_type.clone(),
            credentials: a.credentials.as_ref().map(|s| s.0.clone()),
            credentials_file: a.credentials_file.clone(),
        });
    }
    Ok(Auth::None)
}

fn tls_of(t: &crate::config::TlsConfig) -> TlsParams {
    TlsParams {
        ca_file: t.ca_file.clone(),
        ca: t.ca.clone(),
        cert_file: t.cert_file.clone(),
        cert: t.cert.clone(),
        key_file: t.key_file.clone(),
        key: t.key.as_ref().map(|s| s.0.clone()),
        insecure_skip_verify: t.insecure_skip_verify,
    }
}

/// A finished scrape config (defaults from `global` already applied by
/// [`crate::config::finish`]) as job parameters.
pub fn params_of(sc: &crate::config::ScrapeConfig) -> Result<JobParams, String> {
    let ctx = |e: String| format!("job {:?}: {e}", sc.job_name);
    // Parsed but not applied yet: said at every (re)load rather than ignored silently.
    let t = &sc.tls_config;
    for (set, what) in [
        (t.server_name.is_some(), "tls_config.server_name"),
        (t.min_version.is_some(), "tls_config.min_version"),
        (t.max_version.is_some(), "tls_config.max_version"),
    ] {
        if set {
            tracing::warn!(job = %sc.job_name, "{what} is not supported yet; the target's own host name and rustls' default TLS versions are used");
        }
    }
    let static_groups = discovery::static_groups(
        &sc.static_configs
            .iter()
            .map(|s| (s.targets.clone(), s.labels.clone()))
            .collect::<Vec<_>>(),
    );
    let mut consul = Vec::new();
    for c in &sc.consul_sd_configs {
        let basic_auth = match (&c.basic_auth, &c.username) {
            (Some(b), _) => Some((
                b.username.clone(),
                b.password.as_ref().map(|s| s.0.clone()).unwrap_or_default(),
            )),
            (None, Some(u)) => Some((
                u.clone(),
                c.password.as_ref().map(|s| s.0.clone()).unwrap_or_default(),
            )),
            _ => None,
        };
        consul.push(discovery::consul::ConsulOptions {
            server: c.server.clone(),
            scheme: c.scheme.clone(),
            path_prefix: c.path_prefix.clone().unwrap_or_default(),
            token: c.token.as_ref().map(|s| s.0.clone()),
            datacenter: c.datacenter.clone(),
            namespace: c.namespace.clone(),
            partition: c.partition.clone(),
            services: c.services.clone(),
            tags: c.tags.clone(),
            node_meta: c.node_meta.clone(),
            tag_separator: c.tag_separator.clone(),
            allow_stale: c.allow_stale,
            refresh_interval: c.refresh_interval.0,
            filter: c.filter.clone(),
            basic_auth,
        });
    }
    Ok(JobParams {
        name: sc.job_name.clone(),
        scheme: sc.scheme.clone(),
        metrics_path: sc.metrics_path.clone(),
        interval: sc.scrape_interval.0,
        timeout: sc.scrape_timeout.0,
        params: sc.params.clone(),
        honor_labels: sc.honor_labels,
        honor_timestamps: sc.honor_timestamps,
        relabel: sc.relabel_configs.clone(),
        metric_relabel: sc.metric_relabel_configs.clone(),
        sample_limit: sc.sample_limit as usize,
        label_limit: sc.label_limit as usize,
        label_name_length_limit: sc.label_name_length_limit as usize,
        label_value_length_limit: sc.label_value_length_limit as usize,
        target_limit: sc.target_limit as usize,
        body_size_limit: sc.body_size_limit.0 as usize,
        auth: auth_of(&sc.basic_auth, &sc.authorization).map_err(ctx)?,
        tls: tls_of(&sc.tls_config),
        proxy_url: sc.proxy_url.clone(),
        follow_redirects: sc.follow_redirects,
        static_groups,
        file_sd: sc
            .file_sd_configs
            .iter()
            .map(|f| (f.files.clone(), f.refresh_interval.0))
            .collect(),
        consul,
    })
}

/// Builds every job of a finished configuration.
pub fn build_jobs(scrape_configs: &[crate::config::ScrapeConfig]) -> Result<Vec<JobSpec>, String> {
    scrape_configs
        .iter()
        .map(|sc| params_of(sc).and_then(build_job))
        .collect()
}
