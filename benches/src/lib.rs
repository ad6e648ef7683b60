//! End-to-end benchmark harnesses for hearth: each starts the real `hearth` binary and a
//! peer (VictoriaMetrics, Prometheus) on 127.0.0.1 with fresh temporary data directories,
//! feeds both the same pre-built data in the same run, and prints the ratios.
//!
//! Not shipped and not run in CI as benchmarks (they need release builds and a quiet
//! machine; see `benches/remote_write.sh`); CI only builds this crate and runs its small
//! debug-mode tests, which start no servers. Depends on `hearth-ingest` only for its
//! remote_write protobuf types; must not be a dependency of any shipped crate.

pub mod cli;
pub mod dataset;
pub mod http;
pub mod process;
pub mod query;
pub mod remote_write;
pub mod scrape;
pub mod scrape_targets;
pub mod storage;
