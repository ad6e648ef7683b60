//! hearth's scraper: reads the `scrape_configs` of an existing prometheus.yml, discovers
//! targets (static, file, Consul catalog), relabels them, and runs one scrape loop per
//! target that parses the exposition format (with `hearth-ingest`'s parser) and appends to
//! the storage, with Prometheus's synthetic series, limits and staleness. Serves
//! `/api/v1/targets`, `/api/v1/targets/metadata` and the `/targets` page.
//!
//! Depends on `hearth-tsdb` (writes through its `Appender` only) and `hearth-ingest` (the
//! parser and the metadata store); must not evaluate queries or rules.

pub mod config;
pub mod discovery;
pub mod http;
pub mod manager;
pub mod relabel;
pub mod scrape_loop;
pub mod setup;

pub mod target;

pub use manager::ScrapeManager;
