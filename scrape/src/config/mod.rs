//! The scrape half of a prometheus.yml: `global:`, `scrape_configs:` and
//! `scrape_config_files:`, with Prometheus's defaults and load-time validation.
//!
//! Two kinds of keys are told apart on purpose:
//! * a key Prometheus does not know (a typo) is an error naming the key and its line
//!   (`deny_unknown_fields` everywhere);
//! * a key Prometheus knows but hearth does not implement (Kubernetes discovery, OAuth2,
//!   native-histogram options, ...) is accepted as an opaque `Option<Value>` and produces one
//!   warning naming the field and the job, so nothing is silently ignored and a user's
//!   existing file still loads.
//!
//! Structs here mirror Prometheus's schema key for key, which is why some have more than a
//! dozen fields: serde's `flatten` cannot be combined with `deny_unknown_fields`.
//!
//! Credential files (`password_file`, `credentials_file`, TLS files, ...) are only resolved
//! against the config's directory here, never read: like Prometheus, they are read when
//! scraping, so a rotated secret is picked up without a reload.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_tsdb::config::PromDuration;
use hearth_tsdb::labels::is_valid_label_name;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::relabel::{RelabelConfig, RelabelError};

/// Why a prometheus.yml (or a file of `scrape_config_files`) was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Syntax errors, unknown keys (typos) and bad values; the message names the line.
    #[error("{}: {detail}", path.as_ref().map_or("config".to_string(), |p| p.display().to_string()))]
    Yaml {
        path: Option<PathBuf>,
        /// serde_yaml_ng's message, with "at line N column M" (added when it has none).
        detail: String,
    },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid scrape config file path {pattern:?}: {detail}")]
    BadScrapeConfigFilePath { pattern: String, detail: String },
    /// An error in a file listed by `scrape_config_files`.
    #[error("in {path}: {source}")]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<ConfigError>,
    },
    #[error("job_name is empty")]
    EmptyJobName,
    #[error("found multiple scrape configs with job name {job:?}")]
    DuplicateJob { job: String },
    #[error("global scrape timeout ({timeout}) greater than scrape interval ({interval})")]
    GlobalTimeoutExceedsInterval {
        timeout: PromDuration,
        interval: PromDuration,
    },
    #[error("scrape timeout ({timeout}) greater than scrape interval ({interval}) for scrape config with job name {job:?}")]
    TimeoutExceedsInterval {
        job: String,
        timeout: PromDuration,
        interval: PromDuration,
    },
    /// `context` says where: `global.external_labels`, `job "x" static_configs[0].labels`.
    #[error("{context}: {name:?} is not a valid label name")]
    InvalidLabelName { context: String, name: String },
    #[error("job {job:?}: scheme {scheme:?} is not supported, use http or https")]
    InvalidScheme { job: String, scheme: String },
    #[error("job {job:?}: {field}: {source}")]
    Relabel {
        job: String,
        /// `relabel_configs` or `metric_relabel_configs`.
        field: &'static str,
        #[source]
        source: RelabelError,
    },
    /// Conflicting or incomplete HTTP client options (auth, TLS, proxy), with Prometheus's
    /// wording in `detail`.
    #[error("{context}: {detail}")]
    HttpClient { context: String, detail: String },
    #[error("job {job:?}: {address:?} is not a valid hostname (static target addresses must not contain '/'; use metrics_path or relabeling)")]
    InvalidTargetAddress { job: String, address: String },
    #[error("job {job:?}: file_sd_configs: {detail}")]
    FileSd { job: String, detail: String },
    #[error("job {job:?}: consul_sd_configs: {detail}")]
    ConsulSd { job: String, detail: String },
}

/// A string that must not be printed: `Debug` shows `<secret>`.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// A byte count in Prometheus's syntax (`15MB`, `512KiB`, `1.5GB`; KB and KiB both mean
/// 1024, as in Prometheus's `units.Base2Bytes`). 0 means "no limit" where used as a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

/// Why a byte size was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid byte size: {input:?} (examples: 0, 512KB, 15MB, 1GiB)")]
pub struct ByteSizeError {
    pub input: String,
}

impl ByteSize {
    pub fn parse(s: &str) -> Result<ByteSize, ByteSizeError> {
        let err = || ByteSizeError {
            input: s.to_string(),
        };
        if s == "0" {
            return Ok(ByteSize(0));
        }
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(err());
        }
        let mut i = 0;
        let mut total = 0f64;
        while i < b.len() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            let n: f64 = s[start..i].parse().map_err(|_| err())?;
            let ustart = i;
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            let scale: u32 = match &s[ustart..i] {
                "B" => 0,
                "KB" | "KiB" => 1,
                "MB" | "MiB" => 2,
                "GB" | "GiB" => 3,
                "TB" | "TiB" => 4,
                "PB" | "PiB" => 5,
                "EB" | "EiB" => 6,
                _ => return Err(err()),
            };
            total += n * 1024f64.powi(scale as i32);
        }
        if !total.is_finite() || total >= u64::MAX as f64 {
            return Err(err());
        }
        Ok(ByteSize(total as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte size such as 0, 512KB or 15MB")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

fn secs(s: u64) -> PromDuration {
    PromDuration(Duration::from_secs(s))
}
fn default_true() -> bool {
    true
}

/// Prometheus's `global:` section.
///
/// `scrape_timeout` of 0 means "unset": the effective timeout is then
/// min(10s, scrape_interval), as in Prometheus; use [`GlobalConfig::effective_scrape_timeout`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    pub scrape_interval: PromDuration,
    pub scrape_timeout: PromDuration,
    pub evaluation_interval: PromDuration,
    pub external_labels: BTreeMap<String, String>,
    pub body_size_limit: ByteSize,
    /// 0 = no limit, for this and the other limits.
    pub sample_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    pub target_limit: u64,
    pub keep_dropped_targets: u64,
    // Known to Prometheus, not implemented by hearth: each produces a warning.
    pub query_log_file: Option<Value>,
    pub scrape_failure_log_file: Option<Value>,
    pub scrape_protocols: Option<Value>,
    pub rule_query_offset: Option<Value>,
    pub metric_name_validation_scheme: Option<Value>,
    pub metric_name_escaping_scheme: Option<Value>,
    pub scrape_native_histograms: Option<Value>,
    pub convert_classic_histograms_to_nhcb: Option<Value>,
    pub always_scrape_classic_histograms: Option<Value>,
    pub extra_scrape_metrics: Option<Value>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: secs(60),
            scrape_timeout: PromDuration::default(),
            evaluation_interval: secs(60),
            external_labels: BTreeMap::new(),
            body_size_limit: ByteSize(0),
            sample_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            target_limit: 0,
            keep_dropped_targets: 0,
            query_log_file: None,
            scrape_failure_log_file: None,
            scrape_protocols: None,
            rule_query_offset: None,
            metric_name_validation_scheme: None,
            metric_name_escaping_scheme: None,
            scrape_native_histograms: None,
            convert_classic_histograms_to_nhcb: None,
            always_scrape_classic_histograms: None,
            extra_scrape_metrics: None,
        }
    }
}

/// Pushes one warning per listed `Option<Value>` field that is set.
macro_rules! warn_unsupported {
    ($out:expr, $ctx:expr, $s:expr, [$($f:ident),* $(,)?]) => {
        $(
            if $s.$f.is_some() {
                $out.push(unsupported_field_warning(&$ctx, stringify!($f)));
            }
        )*
    };
}

fn unsupported_field_warning(context: &str, field: &str) -> String {
    format!("{context}: `{field}` is not supported by hearth and is ignored")
}

/// The warning for a top-level prometheus.yml section hearth does not implement
/// (`runtime`, `remote_write`, ...).
pub fn unsupported_section_warning(name: &str) -> String {
    format!("`{name}` section of the Prometheus config is not supported by hearth and is ignored")
}

impl GlobalConfig {
    /// `scrape_interval`, with an explicit 0 meaning the default 1m as in Prometheus.
    pub fn effective_scrape_interval(&self) -> Duration {
        if self.scrape_interval.0.is_zero() {
            Duration::from_secs(60)
        } else {
            self.scrape_interval.0
        }
    }

    /// `scrape_timeout`, or min(10s, scrape_interval) when unset.
    pub fn effective_scrape_timeout(&self) -> Duration {
        if self.scrape_timeout.0.is_zero() {
            Duration::from_secs(10).min(self.effective_scrape_interval())
        } else {
            self.scrape_timeout.0
        }
    }

    /// `evaluation_interval`, with an explicit 0 meaning the default 1m.
    pub fn effective_evaluation_interval(&self) -> Duration {
        if self.evaluation_interval.0.is_zero() {
            Duration::from_secs(60)
        } else {
            self.evaluation_interval.0
        }
    }

    /// The checks Prometheus's `GlobalConfig.UnmarshalYAML` does.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_label_names("global.external_labels", self.external_labels.keys())?;
        if self.scrape_timeout.0 > self.effective_scrape_interval() {
            return Err(ConfigError::GlobalTimeoutExceedsInterval {
                timeout: self.scrape_timeout,
                interval: PromDuration(self.effective_scrape_interval()),
            });
        }
        Ok(())
    }

    /// One warning per set field hearth does not implement.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        warn_unsupported!(
            out,
            "global",
            self,
            [
                query_log_file,
                scrape_failure_log_file,
                scrape_protocols,
                rule_query_offset,
                metric_name_validation_scheme,
                metric_name_escaping_scheme,
                scrape_native_histograms,
                convert_classic_histograms_to_nhcb,
                always_scrape_classic_histograms,
                extra_scrape_metrics,
            ]
        );
        out
    }
}

fn check_label_names<'a>(
    context: &str,
    names: impl IntoIterator<Item = &'a String>,
) -> Result<(), ConfigError> {
    match names.into_iter().find(|n| !is_valid_label_name(n)) {
        Some(name) => Err(ConfigError::InvalidLabelName {
            context: context.to_string(),
            name: name.clone(),
        }),
        None => Ok(()),
    }
}

mod http_client;
use http_client::{bearer_into_authorization, join_dir, HttpClientView};
pub use http_client::{Authorization, BasicAuth, TlsConfig};

/// One entry of `static_configs:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

fn default_file_sd_refresh() -> PromDuration {
    secs(300)
}

/// One entry of `file_sd_configs:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Paths, relative ones resolved against the config file's directory by [`finish`];
    /// the last path component may contain a `*` glob.
    pub files: Vec<PathBuf>,
    #[serde(default = "default_file_sd_refresh")]
    pub refresh_interval: PromDuration,
}

fn default_consul_server() -> String {
    "localhost:8500".to_string()
}
fn default_tag_separator() -> String {
    ",".to_string()
}
fn default_http() -> String {
    "http".to_string()
}
fn default_consul_refresh() -> PromDuration {
    secs(30)
}

/// One entry of `consul_sd_configs:`, with Prometheus's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsulSdConfig {
    #[serde(default = "default_consul_server")]
    pub server: String,
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub datacenter: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub partition: Option<String>,
    #[serde(default = "default_http")]
    pub scheme: String,
    /// Services to watch; empty = all.
    #[serde(default)]
    pub services: Vec<String>,
    /// Tags an instance must all have.
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub node_meta: BTreeMap<String, String>,
    #[serde(default = "default_tag_separator")]
    pub tag_separator: String,
    #[serde(default = "default_true")]
    pub allow_stale: bool,
    #[serde(default = "default_consul_refresh")]
    pub refresh_interval: PromDuration,
    /// Consul catalog filter expression.
    #[serde(default)]
    pub filter: Option<String>,
    /// Deprecated in Prometheus; moved into `basic_auth` by [`finish`].
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub authorization: Option<Authorization>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    #[serde(default)]
    pub proxy_url: Option<String>,
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
    #[serde(default = "default_true")]
    pub enable_http2: bool,
    // Known to Prometheus, not implemented by hearth.
    #[serde(default)]
    pub health_filter: Option<Value>,
    #[serde(default)]
    pub oauth2: Option<Value>,
    #[serde(default)]
    pub bearer_token: Option<Value>,
    #[serde(default)]
    pub bearer_token_file: Option<Value>,
    #[serde(default)]
    pub no_proxy: Option<Value>,
    #[serde(default)]
    pub proxy_from_environment: Option<Value>,
    #[serde(default)]
    pub proxy_connect_header: Option<Value>,
    #[serde(default)]
    pub http_headers: Option<Value>,
}

impl ConsulSdConfig {
    fn finish(&mut self, job: &str, index: usize, dir: &Path) -> Result<(), ConfigError> {
        let err = |detail: &str| {
            Err(ConfigError::ConsulSd {
                job: job.to_string(),
                detail: detail.to_string(),
            })
        };
        if self.server.trim().is_empty() {
            return err("consul SD configuration requires a server address");
        }
        if !matches!(self.scheme.as_str(), "http" | "https") {
            return err(&format!(
                "scheme {:?} is not supported, use http or https",
                self.scheme
            ));
        }
        if self.username.is_some() || self.password.is_some() {
            if self.basic_auth.is_some() {
                return err("at most one of consul SD configuration username and password and basic auth can be configured");
            }
            self.basic_auth = Some(BasicAuth {
                username: self.username.take().unwrap_or_default(),
                password: self.password.take(),
                ..BasicAuth::default()
            });
        }
        if self.token.is_some() && (self.authorization.is_some() || self.oauth2.is_some()) {
            return err(
                "at most one of consul SD token, authorization, or oauth2 can be configured",
            );
        }
        let context = format!("job {job:?}: consul_sd_configs[{index}]: ");
        HttpClientView {
            context: &context,
            basic_auth: self.basic_auth.as_ref(),
            authorization: self.authorization.as_ref(),
            oauth2: self.oauth2.is_some(),
            bearer_token: self.bearer_token.is_some(),
            bearer_token_file: self.bearer_token_file.is_some(),
            tls_config: &self.tls_config,
            proxy_url: self.proxy_url.is_some(),
            proxy_from_environment: self.proxy_from_environment.is_some(),
            no_proxy: self.no_proxy.is_some(),
        }
        .validate()?;
        self.tls_config.set_directory(dir);
        if let Some(b) = &mut self.basic_auth {
            join_dir(dir, &mut b.username_file);
            join_dir(dir, &mut b.password_file);
        }
        if let Some(a) = &mut self.authorization {
            join_dir(dir, &mut a.credentials_file);
        }
        Ok(())
    }

    fn warnings(&self, context: &str, out: &mut Vec<String>) {
        warn_unsupported!(
            out,
            context,
            self,
            [
                health_filter,
                oauth2,
                bearer_token,
                bearer_token_file,
                no_proxy,
                proxy_from_environment,
                proxy_connect_header,
                http_headers,
            ]
        );
        auth_warnings(
            context,
            self.basic_auth.as_ref(),
            self.authorization.as_ref(),
            out,
        );
        self.tls_config.warnings(context, out);
    }
}

fn auth_warnings(
    context: &str,
    basic: Option<&BasicAuth>,
    authz: Option<&Authorization>,
    out: &mut Vec<String>,
) {
    if let Some(b) = basic {
        let ctx = format!("{context}basic_auth");
        warn_unsupported!(out, ctx, b, [username_ref, password_ref]);
    }
    if let Some(a) = authz {
        let ctx = format!("{context}authorization");
        warn_unsupported!(out, ctx, a, [credentials_ref]);
    }
}

fn default_metrics_path() -> String {
    "/metrics".to_string()
}

/// One entry of `scrape_configs:`.
///
/// Zero values of `scrape_interval`, `scrape_timeout` and the limits mean "inherit from
/// `global`" (as in Prometheus); [`finish`] fills them in, so after it every field holds the
/// value in force.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    pub job_name: String,
    #[serde(default)]
    pub scrape_interval: PromDuration,
    #[serde(default)]
    pub scrape_timeout: PromDuration,
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    #[serde(default = "default_http")]
    pub scheme: String,
    /// URL query parameters: name → values.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub honor_labels: bool,
    #[serde(default = "default_true")]
    pub honor_timestamps: bool,
    /// Ask for gzip-compressed responses.
    #[serde(default = "default_true")]
    pub enable_compression: bool,

    // HTTP client.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// After [`finish`], also holds what `bearer_token`/`bearer_token_file` said.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    #[serde(default)]
    pub proxy_url: Option<String>,
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
    #[serde(default = "default_true")]
    pub enable_http2: bool,

    // Limits; 0 = none.
    #[serde(default)]
    pub body_size_limit: ByteSize,
    #[serde(default)]
    pub sample_limit: u64,
    #[serde(default)]
    pub label_limit: u64,
    #[serde(default)]
    pub label_name_length_limit: u64,
    #[serde(default)]
    pub label_value_length_limit: u64,
    #[serde(default)]
    pub target_limit: u64,
    #[serde(default)]
    pub keep_dropped_targets: u64,

    #[serde(default, deserialize_with = "null_as_empty")]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub metric_relabel_configs: Vec<RelabelConfig>,

    // Service discovery hearth implements.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub consul_sd_configs: Vec<ConsulSdConfig>,

    // Known to Prometheus, not implemented by hearth: each produces a warning.
    #[serde(default)]
    pub track_timestamps_staleness: Option<Value>,
    #[serde(default)]
    pub scrape_protocols: Option<Value>,
    #[serde(default)]
    pub fallback_scrape_protocol: Option<Value>,
    #[serde(default)]
    pub scrape_native_histograms: Option<Value>,
    #[serde(default)]
    pub always_scrape_classic_histograms: Option<Value>,
    #[serde(default)]
    pub convert_classic_histograms_to_nhcb: Option<Value>,
    #[serde(default)]
    pub native_histogram_bucket_limit: Option<Value>,
    #[serde(default)]
    pub native_histogram_min_bucket_factor: Option<Value>,
    #[serde(default)]
    pub scrape_failure_log_file: Option<Value>,
    #[serde(default)]
    pub metric_name_validation_scheme: Option<Value>,
    #[serde(default)]
    pub metric_name_escaping_scheme: Option<Value>,
    #[serde(default)]
    pub extra_scrape_metrics: Option<Value>,
    #[serde(default)]
    pub oauth2: Option<Value>,
    #[serde(default)]
    pub no_proxy: Option<Value>,
    #[serde(default)]
    pub proxy_from_environment: Option<Value>,
    #[serde(default)]
    pub proxy_connect_header: Option<Value>,
    #[serde(default)]
    pub http_headers: Option<Value>,

    // Service discovery hearth does not implement: a warning says its targets are missing.
    #[serde(default)]
    pub aws_sd_configs: Option<Value>,
    #[serde(default)]
    pub azure_sd_configs: Option<Value>,
    #[serde(default)]
    pub digitalocean_sd_configs: Option<Value>,
    #[serde(default)]
    pub docker_sd_configs: Option<Value>,
    #[serde(default)]
    pub dockerswarm_sd_configs: Option<Value>,
    #[serde(default)]
    pub dns_sd_configs: Option<Value>,
    #[serde(default)]
    pub ec2_sd_configs: Option<Value>,
    #[serde(default)]
    pub eureka_sd_configs: Option<Value>,
    #[serde(default)]
    pub gce_sd_configs: Option<Value>,
    #[serde(default)]
    pub hetzner_sd_configs: Option<Value>,
    #[serde(default)]
    pub http_sd_configs: Option<Value>,
    #[serde(default)]
    pub ionos_sd_configs: Option<Value>,
    #[serde(default)]
    pub kubernetes_sd_configs: Option<Value>,
    #[serde(default)]
    pub kuma_sd_configs: Option<Value>,
    #[serde(default)]
    pub lightsail_sd_configs: Option<Value>,
    #[serde(default)]
    pub linode_sd_configs: Option<Value>,
    #[serde(default)]
    pub marathon_sd_configs: Option<Value>,
    #[serde(default)]
    pub nerve_sd_configs: Option<Value>,
    #[serde(default)]
    pub nomad_sd_configs: Option<Value>,
    #[serde(default)]
    pub oci_sd_configs: Option<Value>,
    #[serde(default)]
    pub openstack_sd_configs: Option<Value>,
    #[serde(default)]
    pub outscale_sd_configs: Option<Value>,
    #[serde(default)]
    pub ovhcloud_sd_configs: Option<Value>,
    #[serde(default)]
    pub puppetdb_sd_configs: Option<Value>,
    #[serde(default)]
    pub scaleway_sd_configs: Option<Value>,
    #[serde(default)]
    pub serverset_sd_configs: Option<Value>,
    #[serde(default)]
    pub stackit_sd_configs: Option<Value>,
    #[serde(default)]
    pub triton_sd_configs: Option<Value>,
    #[serde(default)]
    pub uyuni_sd_configs: Option<Value>,
    #[serde(default)]
    pub vultr_sd_configs: Option<Value>,
}

/// `key:` with no value is YAML null; Prometheus (Go's YAML) treats it as empty.
fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl ScrapeConfig {
    /// One warning per set field hearth does not implement, each naming the job.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let ctx = format!("job {:?}", self.job_name);
        warn_unsupported!(
            out,
            ctx,
            self,
            [
                track_timestamps_staleness,
                scrape_protocols,
                fallback_scrape_protocol,
                scrape_native_histograms,
                always_scrape_classic_histograms,
                convert_classic_histograms_to_nhcb,
                native_histogram_bucket_limit,
                native_histogram_min_bucket_factor,
                scrape_failure_log_file,
                metric_name_validation_scheme,
                metric_name_escaping_scheme,
                extra_scrape_metrics,
                oauth2,
                no_proxy,
                proxy_from_environment,
                proxy_connect_header,
                http_headers,
            ]
        );
        let sd = [
            ("aws_sd_configs", &self.aws_sd_configs),
            ("azure_sd_configs", &self.azure_sd_configs),
            ("digitalocean_sd_configs", &self.digitalocean_sd_configs),
            ("docker_sd_configs", &self.docker_sd_configs),
            ("dockerswarm_sd_configs", &self.dockerswarm_sd_configs),
            ("dns_sd_configs", &self.dns_sd_configs),
            ("ec2_sd_configs", &self.ec2_sd_configs),
            ("eureka_sd_configs", &self.eureka_sd_configs),
            ("gce_sd_configs", &self.gce_sd_configs),
            ("hetzner_sd_configs", &self.hetzner_sd_configs),
            ("http_sd_configs", &self.http_sd_configs),
            ("ionos_sd_configs", &self.ionos_sd_configs),
            ("kubernetes_sd_configs", &self.kubernetes_sd_configs),
            ("kuma_sd_configs", &self.kuma_sd_configs),
            ("lightsail_sd_configs", &self.lightsail_sd_configs),
            ("linode_sd_configs", &self.linode_sd_configs),
            ("marathon_sd_configs", &self.marathon_sd_configs),
            ("nerve_sd_configs", &self.nerve_sd_configs),
            ("nomad_sd_configs", &self.nomad_sd_configs),
            ("oci_sd_configs", &self.oci_sd_configs),
            ("openstack_sd_configs", &self.openstack_sd_configs),
            ("outscale_sd_configs", &self.outscale_sd_configs),
            ("ovhcloud_sd_configs", &self.ovhcloud_sd_configs),
            ("puppetdb_sd_configs", &self.puppetdb_sd_configs),
            ("scaleway_sd_configs", &self.scaleway_sd_configs),
            ("serverset_sd_configs", &self.serverset_sd_configs),
            ("stackit_sd_configs", &self.stackit_sd_configs),
            ("triton_sd_configs", &self.triton_sd_configs),
            ("uyuni_sd_configs", &self.uyuni_sd_configs),
            ("vultr_sd_configs", &self.vultr_sd_configs),
        ];
        for (name, v) in sd {
            if v.is_some() {
                out.push(format!(
                    "job {:?}: `{name}` is not supported by hearth; targets from it will not be discovered",
                    self.job_name
                ));
            }
        }
        let prefix = format!("job {:?}: ", self.job_name);
        auth_warnings(
            &prefix,
            self.basic_auth.as_ref(),
            self.authorization.as_ref(),
            &mut out,
        );
        self.tls_config.warnings(&prefix, &mut out);
        for (i, c) in self.consul_sd_configs.iter().enumerate() {
            c.warnings(&format!("{prefix}consul_sd_configs[{i}]: "), &mut out);
        }
        out
    }

    /// Applies the global defaults and Prometheus's load-time checks; resolves relative
    /// file paths against `dir` (the directory of the file this config came from).
    fn finish(&mut self, global: &GlobalConfig, dir: &Path) -> Result<(), ConfigError> {
        if self.job_name.is_empty() {
            return Err(ConfigError::EmptyJobName);
        }
        let job = self.job_name.clone();
        if self.scrape_interval.0.is_zero() {
            self.scrape_interval = PromDuration(global.effective_scrape_interval());
        }
        if self.scrape_timeout > self.scrape_interval {
            return Err(ConfigError::TimeoutExceedsInterval {
                job,
                timeout: self.scrape_timeout,
                interval: self.scrape_interval,
            });
        }
        if self.scrape_timeout.0.is_zero() {
            self.scrape_timeout = PromDuration(
                global
                    .effective_scrape_timeout()
                    .min(self.scrape_interval.0),
            );
        }
        if self.body_size_limit.0 == 0 {
            self.body_size_limit = global.body_size_limit;
        }
        for (mine, theirs) in [
            (&mut self.sample_limit, global.sample_limit),
            (&mut self.label_limit, global.label_limit),
            (
                &mut self.label_name_length_limit,
                global.label_name_length_limit,
            ),
            (
                &mut self.label_value_length_limit,
                global.label_value_length_limit,
            ),
            (&mut self.target_limit, global.target_limit),
            (&mut self.keep_dropped_targets, global.keep_dropped_targets),
        ] {
            if *mine == 0 {
                *mine = theirs;
            }
        }
        if !matches!(self.scheme.as_str(), "http" | "https") {
            return Err(ConfigError::InvalidScheme {
                job,
                scheme: self.scheme.clone(),
            });
        }

        let context = format!("job {job:?}: ");
        HttpClientView {
            context: &context,
            basic_auth: self.basic_auth.as_ref(),
            authorization: self.authorization.as_ref(),
            oauth2: self.oauth2.is_some(),
            bearer_token: self.bearer_token.as_ref().is_some_and(|t| !t.0.is_empty()),
            bearer_token_file: self.bearer_token_file.is_some(),
            tls_config: &self.tls_config,
            proxy_url: self.proxy_url.is_some(),
            proxy_from_environment: self.proxy_from_environment.is_some(),
            no_proxy: self.no_proxy.is_some(),
        }
        .validate()?;
        bearer_into_authorization(
            &mut self.authorization,
            &mut self.bearer_token,
            &mut self.bearer_token_file,
        );

        for (field, rules) in [
            ("relabel_configs", &self.relabel_configs),
            ("metric_relabel_configs", &self.metric_relabel_configs),
        ] {
            for (index, rule) in rules.iter().enumerate() {
                rule.validate().map_err(|e| ConfigError::Relabel {
                    job: job.clone(),
                    field,
                    source: RelabelError::Rule {
                        index,
                        source: Box::new(e),
                    },
                })?;
            }
        }

        for (i, sc) in self.static_configs.iter().enumerate() {
            check_label_names(
                &format!("job {job:?}: static_configs[{i}].labels"),
                sc.labels.keys(),
            )?;
            // Prometheus's check for users putting URLs in targets; with relabeling the
            // address may still be rewritten, so it only applies without it.
            if self.relabel_configs.is_empty() {
                if let Some(t) = sc.targets.iter().find(|t| t.contains('/')) {
                    return Err(ConfigError::InvalidTargetAddress {
                        job,
                        address: t.clone(),
                    });
                }
            }
        }

        for f in &mut self.file_sd_configs {
            if f.files.is_empty() {
                return Err(ConfigError::FileSd {
                    job,
                    detail: "file service discovery config must contain at least one path name"
                        .into(),
                });
            }
            for p in &mut f.files {
                if !is_valid_file_sd_path(&p.to_string_lossy()) {
                    return Err(ConfigError::FileSd {
                        job,
                        detail: format!("path name {:?} is not valid for file discovery (must end in .json, .yml or .yaml; `*` only in the last path component)", p.display()),
                    });
                }
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        }

        for (i, c) in self.consul_sd_configs.iter_mut().enumerate() {
            c.finish(&job, i, dir)?;
        }

        self.tls_config.set_directory(dir);
        if let Some(b) = &mut self.basic_auth {
            join_dir(dir, &mut b.username_file);
            join_dir(dir, &mut b.password_file);
        }
        if let Some(a) = &mut self.authorization {
            join_dir(dir, &mut a.credentials_file);
        }
        Ok(())
    }
}

/// Prometheus's `patFileSDName`: `^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$`.
fn is_valid_file_sd_path(p: &str) -> bool {
    let ext_ok = ["json", "yml", "yaml", "JSON", "YML", "YAML"]
        .iter()
        .any(|e| p.strip_suffix(e).is_some_and(|s| s.ends_with('.')));
    ext_ok && is_valid_glob_path(p)
}

/// Prometheus's `patRulePath`: `^[^*]*(\*[^/]*)?$`: at most one `*`-section, in the last
/// path component.
fn is_valid_glob_path(p: &str) -> bool {
    match p.find('*') {
        None => true,
        Some(i) => !p[i..].contains('/'),
    }
}

/// A prometheus.yml with the sections hearth reads for scraping, and the other sections
/// Prometheus knows kept opaque (each one present produces a warning). hearth's own
/// `storage:`/`server:`/`ingest:` sections are not here: hearth's top-level config embeds
/// these fields next to its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromConfig {
    pub global: GlobalConfig,
    #[serde(deserialize_with = "null_as_empty")]
    pub scrape_configs: Vec<ScrapeConfig>,
    #[serde(deserialize_with = "null_as_empty")]
    pub scrape_config_files: Vec<String>,
    pub runtime: Option<Value>,
    pub rule_files: Option<Value>,
    pub alerting: Option<Value>,
    pub remote_write: Option<Value>,
    pub remote_read: Option<Value>,
    pub otlp: Option<Value>,
    pub tracing: Option<Value>,
}

impl PromConfig {
    /// One warning per unsupported top-level section present.
    pub fn section_warnings(&self) -> Vec<String> {
        [
            ("runtime", &self.runtime),
            ("rule_files", &self.rule_files),
            ("alerting", &self.alerting),
            ("remote_write", &self.remote_write),
            ("remote_read", &self.remote_read),
            ("otlp", &self.otlp),
            ("tracing", &self.tracing),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .map(|(n, _)| unsupported_section_warning(n))
        .collect()
    }
}

/// Parses a prometheus.yml (without hearth's own sections) and runs [`finish`].
/// `base_dir` is the directory of the file, for relative paths and `scrape_config_files`.
/// Returns the config with the merged, completed `scrape_configs` and all warnings.
pub fn parse(yaml: &str, base_dir: &Path) -> Result<(PromConfig, Vec<String>), ConfigError> {
    let mut cfg: PromConfig = from_yaml(yaml, None)?;
    cfg.global.validate()?;
    let (scrape_configs, mut warnings) = finish(
        &cfg.global,
        std::mem::take(&mut cfg.scrape_configs),
        &cfg.scrape_config_files,
        base_dir,
    )?;
    cfg.scrape_configs = scrape_configs;
    warnings.extend(cfg.section_warnings());
    Ok((cfg, warnings))
}

/// Deserializes YAML, making sure the error names a line: serde_yaml_ng gives no position
/// for an unknown key at the top level of a document, so the key's line is looked up.
/// An empty document (or only comments) is the default value, as in Prometheus.
pub fn from_yaml<T: serde::de::DeserializeOwned + Default>(
    yaml: &str,
    path: Option<&Path>,
) -> Result<T, ConfigError> {
    if yaml
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(T::default());
    }
    serde_yaml_ng::from_str(yaml).map_err(|e| ConfigError::Yaml {
        path: path.map(Path::to_path_buf),
        detail: with_line(yaml, &e),
    })
}

fn with_line(yaml: &str, e: &serde_yaml_ng::Error) -> String {
    let msg = e.to_string();
    // Checked on the message, not `location()`: for a top-level unknown key serde_yaml_ng
    // has a location but leaves it out of the message.
    if msg.contains(" line ") {
        return msg;
    }
    let key = msg
        .split_once("unknown field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(k, _)| k);
    if let Some(key) = key {
        let prefix = format!("{key}:");
        if let Some(n) = yaml
            .lines()
            .position(|l| l.starts_with(&prefix) || l == key)
        {
            return format!("{msg} at line {}", n + 1);
        }
    }
    msg
}

/// A file of `scrape_config_files`: only `scrape_configs:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ScrapeConfigsFile {
    #[serde(deserialize_with = "null_as_empty")]
    scrape_configs: Vec<ScrapeConfig>,
}

/// Completes `scrape_configs` as Prometheus does at load time: validates `global`, fills
/// each job's unset interval, timeout and limits from it, validates (unique `job_name`,
/// timeout <= interval, label names, relabel rules, exclusive auth options, ...), resolves
/// relative paths against `base_dir`, then appends the jobs of every file matching
/// `scrape_config_files` (globs relative to `base_dir`; paths inside each file relative to
/// that file). Returns the jobs and the warnings for `global` and every job; top-level
/// sections are the caller's (see [`unsupported_section_warning`]).
pub fn finish(
    global: &GlobalConfig,
    mut scrape_configs: Vec<ScrapeConfig>,
    scrape_config_files: &[String],
    base_dir: &Path,
) -> Result<(Vec<ScrapeConfig>, Vec<String>), ConfigError> {
    global.validate()?;
    let mut seen: HashMap<String, ()> = HashMap::new();
    for sc in &mut scrape_configs {
        sc.finish(global, base_dir)?;
        if seen.insert(sc.job_name.clone(), ()).is_some() {
            return Err(ConfigError::DuplicateJob {
                job: sc.job_name.clone(),
            });
        }
    }
    for pattern in scrape_config_files {
        if !is_valid_glob_path(pattern) {
            return Err(ConfigError::BadScrapeConfigFilePath {
                pattern: pattern.clone(),
                detail: "`*` is only allowed in the last path component".into(),
            });
        }
        let full = base_dir.join(pattern);
        let paths = glob::glob(&full.to_string_lossy()).map_err(|e| {
            ConfigError::BadScrapeConfigFilePath {
                pattern: pattern.clone(),
                detail: e.to_string(),
            }
        })?;
        // glob yields paths in alphabetical order, like Go's filepath.Glob.
        for entry in paths {
            let path = entry.map_err(|e| ConfigError::Io {
                path: e.path().to_path_buf(),
                source: std::io::Error::new(e.error().kind(), e.error().to_string()),
            })?;
            let in_file = |source: ConfigError| ConfigError::InFile {
                path: path.clone(),
                source: Box::new(source),
            };
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            let file: ScrapeConfigsFile = from_yaml(&text, Some(&path))?;
            let dir = path.parent().unwrap_or(Path::new("."));
            for mut sc in file.scrape_configs {
                sc.finish(global, dir).map_err(in_file)?;
                if seen.insert(sc.job_name.clone(), ()).is_some() {
                    return Err(in_file(ConfigError::DuplicateJob {
                        job: sc.job_name.clone(),
                    }));
                }
                scrape_configs.push(sc);
            }
        }
    }
    let mut warnings = global.warnings();
    for sc in &scrape_configs {
        warnings.extend(sc.warnings());
    }
    Ok((scrape_configs, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance/config/prometheus.conf.good.yml"
    ));

    /// Shaped like hearth's top-level config: the scrape fields of this module next to
    /// sections owned elsewhere (here opaque, `storage` included).
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct TopLevel {
        global: GlobalConfig,
        scrape_configs: Vec<ScrapeConfig>,
        scrape_config_files: Vec<String>,
        storage: Option<Value>,
        runtime: Option<Value>,
        rule_files: Option<Value>,
        alerting: Option<Value>,
        remote_write: Option<Value>,
        remote_read: Option<Value>,
        otlp: Option<Value>,
        tracing: Option<Value>,
    }

    fn load_good() -> (Vec<ScrapeConfig>, Vec<String>, TopLevel) {
        let mut top: TopLevel = from_yaml(GOOD, None).unwrap_or_else(|e| panic!("{e}"));
        let dir = Path::new("/etc/prometheus");
        let (jobs, warnings) = finish(
            &top.global,
            std::mem::take(&mut top.scrape_configs),
            &top.scrape_config_files,
            dir,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        (jobs, warnings, top)
    }

    fn job<'a>(jobs: &'a [ScrapeConfig], name: &str) -> &'a ScrapeConfig {
        jobs.iter()
            .find(|j| j.job_name == name)
            .unwrap_or_else(|| panic!("no job {name}"))
    }

    fn has_warning(warnings: &[String], parts: &[&str]) -> bool {
        warnings.iter().any(|w| parts.iter().all(|p| w.contains(p)))
    }

    #[test]
    fn conformance_file_loads_with_warnings() {
        let (jobs, warnings, top) = load_good();
        assert_eq!(jobs.len(), 34);
        assert!(top.storage.is_some());
        assert_eq!(jobs[0].job_name, "prometheus");
        assert!(jobs.iter().any(|j| j.job_name == "測試"));

        // Global values and inheritance.
        assert_eq!(top.global.scrape_interval, secs(15));
        assert_eq!(top.global.body_size_limit, ByteSize(15 * 1024 * 1024));
        assert_eq!(
            top.global
                .external_labels
                .get("monitor")
                .map(String::as_str),
            Some("codelab")
        );
        let prom = job(&jobs, "prometheus");
        assert_eq!(prom.scrape_interval, secs(15));
        assert_eq!(prom.scrape_timeout, secs(10));
        assert_eq!(prom.sample_limit, 1500);
        assert_eq!(prom.body_size_limit, ByteSize(15 << 20));
        assert!(prom.honor_labels && prom.honor_timestamps);
        assert_eq!(prom.metrics_path, "/metrics");
        assert_eq!(prom.relabel_configs.len(), 6);
        assert_eq!(prom.relabel_configs[0].replacement, "foo-${1}");
        // `regex:` with no value is the empty regex.
        assert_eq!(prom.relabel_configs[3].regex, "");
        assert_eq!(prom.static_configs[0].targets.len(), 2);
        assert_eq!(
            prom.file_sd_configs[0].files[0],
            Path::new("/etc/prometheus/foo/*.slow.json")
        );
        assert_eq!(prom.file_sd_configs[0].refresh_interval, secs(600));
        assert_eq!(prom.file_sd_configs[1].refresh_interval, secs(300));
        let authz = prom.authorization.as_ref().unwrap();
        assert_eq!(authz.auth_type, "Bearer");
        assert_eq!(
            authz.credentials_file.as_deref(),
            Some(Path::new("/etc/prometheus/valid_token_file"))
        );
        assert_eq!(prom.tls_config.min_version.as_deref(), Some("TLS10"));

        let x = job(&jobs, "service-x");
        let ba = x.basic_auth.as_ref().unwrap();
        assert_eq!(ba.username, "admin_name");
        assert_eq!(ba.password.as_ref().unwrap().0, "multiline\nmysecret\ntest");
        assert_eq!((x.scrape_interval, x.scrape_timeout), (secs(50), secs(5)));
        assert_eq!(
            (x.sample_limit, x.body_size_limit),
            (1000, ByteSize(10 << 20))
        );
        assert_eq!(
            (x.scheme.as_str(), x.metrics_path.as_str()),
            ("https", "/my_path")
        );
        assert_eq!(x.relabel_configs.len(), 6);
        assert_eq!(x.relabel_configs[1].modulus, 8);
        assert_eq!(x.metric_relabel_configs.len(), 1);

        let y = job(&jobs, "service-y");
        let consul = &y.consul_sd_configs[0];
        assert_eq!(consul.server, "localhost:1234");
        assert_eq!(consul.services, ["nginx", "cache", "mysql"]);
        assert_eq!(consul.tags, ["canary", "v1"]);
        assert_eq!(consul.path_prefix.as_deref(), Some("/consul"));
        assert_eq!(consul.token.as_ref().unwrap().0, "mysecret");
        assert_eq!(
            consul.node_meta.get("rack").map(String::as_str),
            Some("123")
        );
        assert_eq!(
            (consul.scheme.as_str(), consul.allow_stale),
            ("https", true)
        );
        assert_eq!(consul.tag_separator, ",");
        assert_eq!(consul.refresh_interval, secs(30));
        assert_eq!(
            consul.tls_config.ca_file.as_deref(),
            Some(Path::new("/etc/prometheus/valid_ca_file"))
        );

        let ns = job(&jobs, "service-kubernetes-namespaces");
        assert_eq!(
            ns.basic_auth.as_ref().unwrap().password_file.as_deref(),
            Some(Path::new("/etc/prometheus/valid_password_file"))
        );
        assert!(!job(&jobs, "badfederation").honor_timestamps);

        // Warnings: each names the field and the job.
        for parts in [
            &["job \"service-kubernetes\"", "kubernetes_sd_configs"][..],
            &[
                "job \"service-kubernetes-namespaces\"",
                "kubernetes_sd_configs",
            ],
            &["job \"service-x\"", "dns_sd_configs"],
            &["job \"service-x\"", "scrape_protocols"],
            &["job \"prometheus\"", "fallback_scrape_protocol"],
            &["job \"prometheus\"", "scrape_failure_log_file"],
            &["job \"prometheus\"", "http_headers"],
            &["job \"service-y\"", "consul_sd_configs[0]", "health_filter"],
            &["job \"hetzner\"", "scrape_native_histograms"],
            &["job \"hetzner\"", "hetzner_sd_configs"],
            &["job \"outscale\"", "outscale_sd_configs"],
            &["global", "query_log_file"],
            &["global", "scrape_failure_log_file"],
        ] {
            assert!(
                has_warning(&warnings, parts),
                "no warning with {parts:?} in {warnings:#?}"
            );
        }
        // Nothing hearth supports is warned about.
        assert!(!has_warning(&warnings, &["static_configs"]));
        assert!(!has_warning(&warnings, &["file_sd_configs"]));
        assert!(!has_warning(&warnings, &["`consul_sd_configs`"]));
        assert!(!has_warning(&warnings, &["basic_auth"]));
    }

    #[test]
    fn parse_without_storage_reports_sections() {
        // `parse` takes a prometheus.yml without hearth's sections: drop `storage:`.
        let start = GOOD.find("\nstorage:").unwrap();
        let end = start + 1 + GOOD[start + 1..].find("\ntracing:").unwrap();
        let text = format!("{}{}", &GOOD[..start], &GOOD[end..]);
        let (cfg, warnings) = parse(&text, Path::new("/etc/prometheus")).unwrap();
        assert_eq!(cfg.scrape_configs.len(), 34);
        for s in [
            "runtime",
            "rule_files",
            "alerting",
            "remote_write",
            "remote_read",
            "otlp",
            "tracing",
        ] {
            assert!(
                warnings.contains(&unsupported_section_warning(s)),
                "{s}: {warnings:#?}"
            );
        }
        // With `storage:` left in, `parse` refuses it: it belongs to hearth's own config.
        let err = parse(GOOD, Path::new("/")).unwrap_err().to_string();
        assert!(
            err.contains("unknown field `storage`") && err.contains("line 475"),
            "{err}"
        );
    }

    #[test]
    fn typo_is_an_error_with_key_and_line() {
        let yaml = "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    scrape_intervall: 10s\n";
        let err = parse(yaml, Path::new(".")).unwrap_err().to_string();
        assert!(
            err.contains("scrape_intervall") && err.contains("line 5"),
            "{err}"
        );

        let yaml =
            "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_label: [a]\n";
        let err = parse(yaml, Path::new(".")).unwrap_err().to_string();
        assert!(
            err.contains("source_label") && err.contains("line 4"),
            "{err}"
        );

        let err = parse(
            "global: {}\nscrape_config:\n  - job_name: a\n",
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("scrape_config") && err.contains("line 2"),
            "{err}"
        );
    }

    #[test]
    fn empty_file_is_default() {
        let (cfg, warnings) = parse("# nothing\n", Path::new(".")).unwrap();
        assert!(cfg.scrape_configs.is_empty() && warnings.is_empty());
        assert_eq!(
            cfg.global.effective_scrape_interval(),
            Duration::from_secs(60)
        );
        assert_eq!(
            cfg.global.effective_scrape_timeout(),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn duplicate_job_names_error() {
        let yaml = "scrape_configs:\n  - job_name: a\n  - job_name: b\n  - job_name: a\n";
        let err = parse(yaml, Path::new(".")).unwrap_err();
        assert!(
            matches!(&err, ConfigError::DuplicateJob { job } if job == "a"),
            "{err}"
        );
    }

    #[test]
    fn timeouts_and_intervals() {
        let yaml =
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n";
        let err = parse(yaml, Path::new(".")).unwrap_err();
        assert!(
            matches!(&err, ConfigError::TimeoutExceedsInterval { job, .. } if job == "a"),
            "{err}"
        );
        let err = parse(
            "global:\n  scrape_interval: 5s\n  scrape_timeout: 6s\n",
            Path::new("."),
        )
        .unwrap_err();
        assert!(
            matches!(err, ConfigError::GlobalTimeoutExceedsInterval { .. }),
            "{err}"
        );

        // Unset timeout: min(global timeout, interval); unset interval: global's.
        let yaml = "global:\n  scrape_interval: 30s\nscrape_configs:\n  - job_name: a\n    scrape_interval: 4s\n  - job_name: b\n";
        let (cfg, _) = parse(yaml, Path::new(".")).unwrap();
        let a = &cfg.scrape_configs[0];
        let b = &cfg.scrape_configs[1];
        assert_eq!((a.scrape_interval, a.scrape_timeout), (secs(4), secs(4)));
        assert_eq!((b.scrape_interval, b.scrape_timeout), (secs(30), secs(10)));
        // Global interval below the default timeout lowers the default timeout.
        let (cfg, _) = parse(
            "global:\n  scrape_interval: 5s\nscrape_configs:\n  - job_name: a\n",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(cfg.scrape_configs[0].scrape_timeout, secs(5));
    }

    #[test]
    fn validation_errors() {
        let cases = [
            ("global:\n  external_labels:\n    bad-name: x\n", "global.external_labels"),
            ("scrape_configs:\n  - job_name: ''\n", "job_name is empty"),
            ("scrape_configs:\n  - job_name: a\n    scheme: ftp\n", "scheme \"ftp\""),
            (
                "scrape_configs:\n  - job_name: a\n    static_configs:\n      - labels: {a.b: c}\n",
                "static_configs[0].labels",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['http://x:9100/metrics']\n",
                "not a valid hostname",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: hashmod\n        target_label: t\n",
                "relabel rule #0",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u}\n    bearer_token: t\n",
                "at most one of basic_auth, oauth2, bearer_token",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u}\n    authorization: {credentials: t}\n",
                "at most one of basic_auth, oauth2 & authorization",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    bearer_token: t\n    bearer_token_file: f\n",
                "at most one of bearer_token & bearer_token_file",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    authorization: {type: Basic, credentials: t}\n",
                "use \"basic_auth\" instead",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: p, password_file: f}\n",
                "password, password_file",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    tls_config: {cert_file: c}\n",
                "key_file",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    tls_config: {min_version: TLS9}\n",
                "unknown TLS version",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: ['targets.txt']\n",
                "not valid for file discovery",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    consul_sd_configs:\n      - server: ' '\n",
                "requires a server address",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    consul_sd_configs:\n      - {token: t, authorization: {credentials: c}}\n",
                "at most one of consul SD token",
            ),
            ("global:\n  body_size_limit: 15XB\n", "not a valid byte size"),
            ("scrape_config_files: ['*/x.yml']\n", "last path component"),
        ];
        for (yaml, want) in cases {
            let err = parse(yaml, Path::new(".")).expect_err(yaml).to_string();
            assert!(err.contains(want), "{yaml}\n got: {err}\n want: {want}");
        }
    }

    #[test]
    fn bearer_token_becomes_authorization() {
        let yaml = "scrape_configs:\n  - job_name: a\n    bearer_token_file: tok\n";
        let (cfg, _) = parse(yaml, Path::new("/cfg")).unwrap();
        let a = cfg.scrape_configs[0].authorization.as_ref().unwrap();
        assert_eq!(a.auth_type, "Bearer");
        assert_eq!(a.credentials_file.as_deref(), Some(Path::new("/cfg/tok")));
        assert!(cfg.scrape_configs[0].bearer_token_file.is_none());
        // Secrets don't leak through Debug.
        let yaml = "scrape_configs:\n  - job_name: a\n    bearer_token: hunter2\n";
        let (cfg, _) = parse(yaml, Path::new("/cfg")).unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn consul_defaults_and_username() {
        let yaml = "scrape_configs:\n  - job_name: c\n    consul_sd_configs:\n      - username: u\n        password: p\n";
        let (cfg, _) = parse(yaml, Path::new(".")).unwrap();
        let c = &cfg.scrape_configs[0].consul_sd_configs[0];
        assert_eq!(c.server, "localhost:8500");
        assert_eq!((c.scheme.as_str(), c.tag_separator.as_str()), ("http", ","));
        assert!(c.allow_stale && c.follow_redirects && c.enable_http2);
        assert_eq!(c.refresh_interval, secs(30));
        let b = c.basic_auth.as_ref().unwrap();
        assert_eq!(
            (b.username.as_str(), b.password.as_ref().unwrap().0.as_str()),
            ("u", "p")
        );
    }

    #[test]
    fn byte_sizes() {
        for (s, want) in [
            ("0", 0u64),
            ("1B", 1),
            ("15MB", 15 << 20),
            ("512KiB", 512 << 10),
            ("1.5GB", 3 << 29),
            ("1GB512MB", (1 << 30) + (512 << 20)),
        ] {
            assert_eq!(ByteSize::parse(s), Ok(ByteSize(want)), "{s}");
        }
        for s in ["", "15", "15mb", "MB", "1..5MB", "-1MB"] {
            assert!(ByteSize::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn scrape_config_files_merge() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("jobs");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(
            sub.join("b.yml"),
            "scrape_configs:\n  - job_name: from-b\n    basic_auth: {username: u, password_file: pw}\n    kubernetes_sd_configs: [{role: pod}]\n",
        )
        .unwrap();
        std::fs::write(
            sub.join("a.yml"),
            "scrape_configs:\n  - job_name: from-a\n    scrape_interval: 7s\n",
        )
        .unwrap();
        std::fs::write(sub.join("ignored.txt"), "not yaml: [").unwrap();
        let main = "global:\n  scrape_interval: 20s\n  sample_limit: 9\nscrape_config_files: ['jobs/*.yml']\nscrape_configs:\n  - job_name: main\n";
        let (cfg, warnings) = parse(main, dir.path()).unwrap();
        let names: Vec<&str> = cfg
            .scrape_configs
            .iter()
            .map(|j| j.job_name.as_str())
            .collect();
        assert_eq!(names, ["main", "from-a", "from-b"]);
        let a = &cfg.scrape_configs[1];
        assert_eq!(
            (a.scrape_interval, a.scrape_timeout, a.sample_limit),
            (secs(7), secs(7), 9)
        );
        let b = &cfg.scrape_configs[2];
        assert_eq!(b.scrape_interval, secs(20));
        // Paths in an included file are relative to that file.
        assert_eq!(
            b.basic_auth.as_ref().unwrap().password_file.as_deref(),
            Some(sub.join("pw").as_path())
        );
        assert!(has_warning(
            &warnings,
            &["\"from-b\"", "kubernetes_sd_configs"]
        ));

        // A job name repeated across files is an error naming the file.
        std::fs::write(sub.join("c.yml"), "scrape_configs:\n  - job_name: main\n").unwrap();
        let err = parse(main, dir.path()).unwrap_err();
        assert!(
            matches!(&err, ConfigError::InFile { path, source } if path.ends_with("c.yml") && matches!(**source, ConfigError::DuplicateJob { .. })),
            "{err}"
        );
        // A typo in an included file names the file and line.
        std::fs::write(
            sub.join("c.yml"),
            "scrape_configs:\n  - job_name: c\n    metric_path: /m\n",
        )
        .unwrap();
        let err = parse(main, dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("c.yml") && err.contains("metric_path") && err.contains("line 3"),
            "{err}"
        );
    }
}
