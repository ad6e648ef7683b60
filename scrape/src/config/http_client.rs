//! The HTTP-client options shared by scrape configs and Consul SD configs (Prometheus's
//! inlined `HTTPClientConfig`): `basic_auth`, `authorization` (and the `bearer_token` forms it
//! absorbs), `tls_config`, and their validation.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml_ng::Value;

use super::{unsupported_field_warning, ConfigError, Secret};

/// `basic_auth:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    pub username: String,
    pub username_file: Option<PathBuf>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    pub username_ref: Option<Value>,
    pub password_ref: Option<Value>,
}

fn default_auth_type() -> String {
    "Bearer".to_string()
}

/// `authorization:`: sends `Authorization: <type> <credentials>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(rename = "type", default = "default_auth_type")]
    pub auth_type: String,
    #[serde(default)]
    pub credentials: Option<Secret>,
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    #[serde(default)]
    pub credentials_ref: Option<Value>,
}

/// `tls_config:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM text of the CA certificate(s).
    pub ca: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub key: Option<Secret>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    /// `TLS10` .. `TLS13`.
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub ca_ref: Option<Value>,
    pub cert_ref: Option<Value>,
    pub key_ref: Option<Value>,
}

impl TlsConfig {
    fn validate(&self, context: &str) -> Result<(), ConfigError> {
        let err = |detail: &str| {
            Err(ConfigError::HttpClient {
                context: format!("{context}tls_config"),
                detail: detail.to_string(),
            })
        };
        if self.ca.is_some() && self.ca_file.is_some() {
            return err("at most one of ca and ca_file must be configured");
        }
        if self.cert.is_some() && self.cert_file.is_some() {
            return err("at most one of cert and cert_file must be configured");
        }
        if self.key.is_some() && self.key_file.is_some() {
            return err("at most one of key and key_file must be configured");
        }
        let has_cert = self.cert.is_some() || self.cert_file.is_some();
        let has_key = self.key.is_some() || self.key_file.is_some();
        if has_cert && !has_key {
            return err("exactly one of key or key_file must be configured when a client certificate is configured");
        }
        if has_key && !has_cert {
            return err("exactly one of cert or cert_file must be configured when a client key is configured");
        }
        for v in [&self.min_version, &self.max_version].into_iter().flatten() {
            if !matches!(v.as_str(), "TLS10" | "TLS11" | "TLS12" | "TLS13") {
                return err(&format!(
                    "unknown TLS version: {v} (use TLS10, TLS11, TLS12 or TLS13)"
                ));
            }
        }
        Ok(())
    }

    pub(super) fn set_directory(&mut self, dir: &Path) {
        for p in [&mut self.ca_file, &mut self.cert_file, &mut self.key_file] {
            join_dir(dir, p);
        }
    }

    pub(super) fn warnings(&self, context: &str, out: &mut Vec<String>) {
        let ctx = format!("{context}tls_config");
        warn_unsupported!(out, ctx, self, [ca_ref, cert_ref, key_ref]);
    }
}

/// Prometheus's `config.JoinDir`: relative paths are relative to the config file's directory.
pub(super) fn join_dir(dir: &Path, p: &mut Option<PathBuf>) {
    if let Some(path) = p {
        if !path.as_os_str().is_empty() && path.is_relative() {
            *path = dir.join(&*path);
        }
    }
}

/// The HTTP client options shared by scrape configs and Consul SD configs (Prometheus's
/// inlined `HTTPClientConfig`), borrowed for validation.
pub(super) struct HttpClientView<'a> {
    pub(super) context: &'a str,
    pub(super) basic_auth: Option<&'a BasicAuth>,
    pub(super) authorization: Option<&'a Authorization>,
    pub(super) oauth2: bool,
    pub(super) bearer_token: bool,
    pub(super) bearer_token_file: bool,
    pub(super) tls_config: &'a TlsConfig,
    pub(super) proxy_url: bool,
    pub(super) proxy_from_environment: bool,
    pub(super) no_proxy: bool,
}

impl HttpClientView<'_> {
    /// Prometheus's `HTTPClientConfig.Validate`.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let err = |detail: &str| {
            Err(ConfigError::HttpClient {
                context: self.context.trim_end_matches(": ").to_string(),
                detail: detail.to_string(),
            })
        };
        if self.bearer_token && self.bearer_token_file {
            return err("at most one of bearer_token & bearer_token_file must be configured");
        }
        let any_bearer = self.bearer_token || self.bearer_token_file;
        if (self.basic_auth.is_some() || self.oauth2) && any_bearer {
            return err(
                "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
            );
        }
        if let Some(b) = self.basic_auth {
            let users = [
                !b.username.is_empty(),
                b.username_file.is_some(),
                b.username_ref.is_some(),
            ];
            if users.iter().filter(|x| **x).count() > 1 {
                return err(
                    "at most one of basic_auth username, username_file & username_ref must be configured",
                );
            }
            let pws = [
                b.password.as_ref().is_some_and(|p| !p.0.is_empty()),
                b.password_file.is_some(),
                b.password_ref.is_some(),
            ];
            if pws.iter().filter(|x| **x).count() > 1 {
                return err(
                    "at most one of basic_auth password, password_file & password_ref must be configured",
                );
            }
        }
        if let Some(a) = self.authorization {
            if any_bearer {
                return err(
                    "authorization is not compatible with bearer_token & bearer_token_file",
                );
            }
            let creds = [
                a.credentials.as_ref().is_some_and(|c| !c.0.is_empty()),
                a.credentials_file.is_some(),
                a.credentials_ref.is_some(),
            ];
            if creds.iter().filter(|x| **x).count() > 1 {
                return err(
                    "at most one of authorization credentials & credentials_file must be configured",
                );
            }
            if a.auth_type.trim().eq_ignore_ascii_case("basic") {
                return err(
                    r#"authorization type cannot be set to "basic", use "basic_auth" instead"#,
                );
            }
            if self.basic_auth.is_some() || self.oauth2 {
                return err("at most one of basic_auth, oauth2 & authorization must be configured");
            }
        }
        if self.oauth2 && self.basic_auth.is_some() {
            return err("at most one of basic_auth, oauth2 & authorization must be configured");
        }
        if self.proxy_from_environment && (self.proxy_url || self.no_proxy) {
            return err("if proxy_from_environment is configured, proxy_url and no_proxy must not be configured");
        }
        if self.no_proxy && !self.proxy_url {
            return err("if no_proxy is configured, proxy_url must also be configured");
        }
        self.tls_config.validate(self.context)
    }
}

/// Prometheus turns `bearer_token`/`bearer_token_file` into an `authorization` of type
/// Bearer; doing the same here leaves one place for the scraper to look.
pub(super) fn bearer_into_authorization(
    authorization: &mut Option<Authorization>,
    bearer_token: &mut Option<Secret>,
    bearer_token_file: &mut Option<PathBuf>,
) {
    if authorization.is_some() {
        return;
    }
    if let Some(t) = bearer_token.take().filter(|t| !t.0.is_empty()) {
        *authorization = Some(Authorization {
            auth_type: default_auth_type(),
            credentials: Some(t),
            credentials_file: None,
            credentials_ref: None,
        });
    } else if let Some(f) = bearer_token_file.take() {
        *authorization = Some(Authorization {
            auth_type: default_auth_type(),
            credentials: None,
            credentials_file: Some(f),
            credentials_ref: None,
        });
    }
}
