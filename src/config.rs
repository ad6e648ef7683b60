//! The config file: Prometheus's `global:` section plus hearth's `storage:` and `server:`.
//! Every section denies unknown keys, so a typo is an error naming the key and its line.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use hearth_ingest::IngestConfig;
use hearth_tsdb::config::PromDuration;
use hearth_tsdb::StorageConfig;
use serde::Deserialize;

/// The configuration used when no `--config` is given.
pub(crate) const DEFAULT_CONFIG: &str = include_str!("default.yml");

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    pub(crate) global: GlobalConfig,
    pub(crate) storage: StorageConfig,
    pub(crate) server: ServerConfig,
    pub(crate) ingest: IngestConfig,
}

/// Prometheus's `global:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct GlobalConfig {
    pub(crate) scrape_interval: PromDuration,
    pub(crate) scrape_timeout: PromDuration,
    pub(crate) evaluation_interval: PromDuration,
    pub(crate) external_labels: BTreeMap<String, String>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        // Prometheus's defaults.
        GlobalConfig {
            scrape_interval: PromDuration(Duration::from_secs(60)),
            scrape_timeout: PromDuration(Duration::from_secs(10)),
            evaluation_interval: PromDuration(Duration::from_secs(60)),
            external_labels: BTreeMap::new(),
        }
    }
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

impl Config {
    pub(crate) fn parse(text: &str) -> anyhow::Result<Config> {
        // An empty file (or only comments) is a valid config, as in Prometheus.
        let cfg: Config = if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            Config::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| with_line(text, e))?
        };
        for name in cfg.global.external_labels.keys() {
            anyhow::ensure!(
                hearth_tsdb::labels::is_valid_label_name(name),
                "global.external_labels: invalid label name {name:?}"
            );
        }
        anyhow::ensure!(
            cfg.global.scrape_timeout <= cfg.global.scrape_interval,
            "global.scrape_timeout ({}) greater than scrape_interval ({})",
            cfg.global.scrape_timeout,
            cfg.global.scrape_interval
        );
        Ok(cfg)
    }

    pub(crate) fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        match path {
            None => Config::parse(DEFAULT_CONFIG).context("embedded default config"),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config file {}", p.display()))?;
                Config::parse(&text).with_context(|| format!("config file {}", p.display()))
            }
        }
    }
}

/// serde_yaml_ng reports no position for an unknown key at the top level of the document;
/// find the key's line ourselves so every unknown-key error names its line.
fn with_line(text: &str, e: serde_yaml_ng::Error) -> anyhow::Error {
    let msg = e.to_string();
    if msg.contains(" line ") {
        return e.into();
    }
    let key = msg
        .split_once("unknown field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(k, _)| k);
    if let Some(key) = key {
        let prefix = format!("{key}:");
        if let Some(n) = text
            .lines()
            .position(|l| l.starts_with(&prefix) || l.trim_start() == key)
        {
            return anyhow::anyhow!("{msg} at line {}", n + 1);
        }
    }
    e.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_parses() {
        let c = Config::parse(DEFAULT_CONFIG).unwrap();
        assert_eq!(c.global.scrape_interval.0, Duration::from_secs(15));
        assert_eq!(c.storage.path, Path::new("./data"));
        assert_eq!(c.server.listen_address, "127.0.0.1:9090");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = Config::parse("global:\n  scrape_interval: 15s\nstorage:\n  retenton: 1d\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("retenton"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        let err = Config::parse("bogus: 1\n").unwrap_err().to_string();
        assert!(err.contains("bogus") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn bad_values() {
        assert!(Config::parse("global:\n  scrape_interval: 15 s\n").is_err());
        assert!(Config::parse("storage:\n  wal_fsync: sometimes\n").is_err());
        assert!(Config::parse("global:\n  scrape_interval: 5s\n  scrape_timeout: 10s\n").is_err());
        assert!(Config::parse("global:\n  external_labels:\n    bad-name: x\n").is_err());
        let c = Config::parse("storage:\n  wal_fsync: interval\n  wal_fsync_interval: 250ms\n")
            .unwrap();
        assert_eq!(c.storage.wal_fsync_interval.0, Duration::from_millis(250));
    }
}
