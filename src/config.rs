//! The config file: a Prometheus configuration (`global`, `scrape_configs`,
//! `scrape_config_files`, and the sections hearth does not support yet, each named in a
//! warning) plus hearth's own `storage:` (which also accepts Prometheus's `storage.tsdb`),
//! `server:`, `ingest:` and `query:`. Unknown keys are errors naming the key and its line, so a
//! user's existing prometheus.yml loads as is, and typos are caught.

use std::path::{Path, PathBuf};

use anyhow::Context;
use hearth_ingest::IngestConfig;
use hearth_query::http::QueryConfig;
use hearth_scrape::config::{
    finish, from_yaml, unsupported_section_warning, GlobalConfig, ScrapeConfig,
};
use hearth_tsdb::StorageConfig;
use serde::Deserialize;
use serde_yaml_ng::Value;

/// The configuration used when no `--config` is given.
pub(crate) const DEFAULT_CONFIG: &str = include_str!("default.yml");

/// Job of the embedded default config that scrapes hearth itself; its target follows the
/// listen address.
pub(crate) const SELF_JOB: &str = "hearth";

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    pub(crate) global: GlobalConfig,
    pub(crate) storage: StorageConfig,
    pub(crate) server: ServerConfig,
    pub(crate) ingest: IngestConfig,
    pub(crate) query: QueryConfig,
    pub(crate) scrape_configs: Vec<ScrapeConfig>,
    pub(crate) scrape_config_files: Vec<String>,
    // Prometheus sections hearth does not support yet: accepted, each named in a warning.
    runtime: Option<Value>,
    rule_files: Option<Value>,
    alerting: Option<Value>,
    remote_write: Option<Value>,
    remote_read: Option<Value>,
    otlp: Option<Value>,
    tracing: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerConfig {
    pub(crate) listen_address: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen_address: "127.0.0.1:9090".into(),
        }
    }
}

/// A loaded configuration: the parsed file, its finished scrape configs (defaults from
/// `global` applied, `scrape_config_files` merged, validated), and warnings.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) cfg: Config,
    pub(crate) scrape: Vec<ScrapeConfig>,
    pub(crate) warnings: Vec<String>,
    /// Where it came from (None: the embedded default).
    pub(crate) path: Option<PathBuf>,
    /// The file's text (or the embedded default), for `/api/v1/status/config`.
    pub(crate) text: String,
}

impl Config {
    pub(crate) fn parse(
        text: &str,
        base_dir: &Path,
    ) -> anyhow::Result<(Config, Vec<ScrapeConfig>, Vec<String>)> {
        // An empty file (or only comments) is a valid config, as in Prometheus; errors name
        // their line.
        let mut cfg: Config = from_yaml(text, None)?;
        cfg.global.validate()?;
        cfg.query.validate().map_err(anyhow::Error::msg)?;
        let mut warnings = cfg.global.warnings();
        for (name, present) in [
            ("runtime", cfg.runtime.is_some()),
            ("rule_files", cfg.rule_files.is_some()),
            ("alerting", cfg.alerting.is_some()),
            ("remote_write", cfg.remote_write.is_some()),
            ("remote_read", cfg.remote_read.is_some()),
            ("otlp", cfg.otlp.is_some()),
            ("tracing", cfg.tracing.is_some()),
        ] {
            if present {
                warnings.push(unsupported_section_warning(name));
            }
        }
        warnings.extend(cfg.storage.apply_prometheus_compat());
        let (scrape, w) = finish(
            &cfg.global,
            cfg.scrape_configs.clone(),
            &cfg.scrape_config_files,
            base_dir,
        )?;
        warnings.extend(w);
        Ok((cfg, scrape, warnings))
    }

    pub(crate) fn load(path: Option<&Path>) -> anyhow::Result<Loaded> {
        let (text, (cfg, scrape, warnings)) = match path {
            None => (
                DEFAULT_CONFIG.to_string(),
                Config::parse(DEFAULT_CONFIG, Path::new(".")).context("embedded default config")?,
            ),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config file {}", p.display()))?;
                let base = p.parent().unwrap_or(Path::new("."));
                let parsed = Config::parse(&text, base)
                    .with_context(|| format!("config file {}", p.display()))?;
                (text, parsed)
            }
        };
        Ok(Loaded {
            cfg,
            scrape,
            warnings,
            path: path.map(Path::to_path_buf),
            text,
        })
    }
}

impl Loaded {
    /// With the embedded default, hearth scrapes itself at its real listen address.
    pub(crate) fn point_self_scrape_at(&mut self, listen: &str) {
        if self.path.is_some() {
            return;
        }
        for sc in self.scrape.iter_mut().filter(|sc| sc.job_name == SELF_JOB) {
            for st in &mut sc.static_configs {
                st.targets = vec![listen.to_string()];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn parse(t: &str) -> anyhow::Result<(Config, Vec<ScrapeConfig>, Vec<String>)> {
        Config::parse(t, Path::new("."))
    }

    #[test]
    fn default_parses_and_scrapes_itself() {
        let (c, scrape, w) = parse(DEFAULT_CONFIG).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.global.scrape_interval.0, Duration::from_secs(15));
        assert_eq!(c.storage.path, Path::new("./data"));
        assert_eq!(c.server.listen_address, "127.0.0.1:9090");
        assert_eq!(scrape.len(), 1);
        assert_eq!(scrape[0].job_name, SELF_JOB);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = parse("global:\n  scrape_interval: 15s\nstorage:\n  retenton: 1d\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("retenton"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        let err = parse("bogus: 1\n").unwrap_err().to_string();
        assert!(err.contains("bogus") && err.contains("line 1"), "{err}");
        let err = format!(
            "{:#}",
            parse("scrape_configs:\n  - job_name: a\n    scrape_intervall: 1s\n").unwrap_err()
        );
        assert!(
            err.contains("scrape_intervall") && err.contains("line 3"),
            "{err}"
        );
    }

    #[test]
    fn query_section() {
        let (c, _, _) = parse("").unwrap();
        assert_eq!(c.query, QueryConfig::default());
        assert_eq!(c.query.timeout.0, Duration::from_secs(120));
        assert_eq!(c.query.lookback_delta.0, Duration::from_secs(300));
        assert_eq!(c.query.max_samples, 50_000_000);
        let (c, _, _) =
            parse("query:\n  lookback_delta: 1m\n  max_samples: 1000\n  timeout: 30s\n").unwrap();
        assert_eq!(c.query.lookback_delta.0, Duration::from_secs(60));
        assert_eq!(c.query.max_samples, 1000);
        assert_eq!(c.query.timeout.0, Duration::from_secs(30));
        let err = format!("{:#}", parse("query:\n  timeot: 1m\n").unwrap_err());
        assert!(err.contains("timeot") && err.contains("line 2"), "{err}");
        assert!(parse("query:\n  timeout: 0s\n").is_err());
    }

    #[test]
    fn bad_values() {
        assert!(parse("global:\n  scrape_interval: 15 s\n").is_err());
        assert!(parse("storage:\n  wal_fsync: sometimes\n").is_err());
        assert!(parse("global:\n  scrape_interval: 5s\n  scrape_timeout: 10s\n").is_err());
        assert!(parse("global:\n  external_labels:\n    bad-name: x\n").is_err());
        let (c, _, _) =
            parse("storage:\n  wal_fsync: interval\n  wal_fsync_interval: 250ms\n").unwrap();
        assert_eq!(c.storage.wal_fsync_interval.0, Duration::from_millis(250));
    }

    #[test]
    fn prometheus_sections_warn_and_storage_tsdb_applies() {
        let (c, _, w) = parse(
            "rule_files: [a.rules]\nremote_write:\n  - url: http://x\nstorage:\n  tsdb:\n    out_of_order_time_window: 30m\n",
        )
        .unwrap();
        assert_eq!(c.storage.out_of_order_window.0, Duration::from_secs(1800));
        assert!(w.iter().any(|x| x.contains("rule_files")), "{w:?}");
        assert!(w.iter().any(|x| x.contains("remote_write")), "{w:?}");
    }

    #[test]
    fn conformance_prometheus_config_loads_with_only_warnings() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/conformance/config/prometheus.conf.good.yml");
        let text = std::fs::read_to_string(&path).expect("../shared/conformance is required");
        let (_, scrape, w) = Config::parse(&text, path.parent().unwrap()).unwrap();
        assert!(scrape.len() > 20, "{}", scrape.len());
        for needle in [
            "kubernetes_sd_configs",
            "rule_files",
            "alerting",
            "tracing",
            "query_log_file",
            "storage.tsdb.retention",
        ] {
            assert!(
                w.iter().any(|x| x.contains(needle)),
                "no warning about {needle}: {w:#?}"
            );
        }
    }
}
