//! hearth's metric ingest: every way metrics enter hearth other than scraping.
//!
//! Owns the wire formats and their HTTP endpoints — Prometheus remote_write 1.0/2.0
//! (`POST /api/v1/write`), push import of the text exposition format
//! (`POST /api/v1/import/prometheus`), OTLP/HTTP metrics (`POST /api/v1/otlp/v1/metrics`) —
//! the exposition-format parser the scraper reuses, the ingest limits, and the metric
//! metadata that arrives with samples (served at `GET /api/v1/metadata`).
//!
//! Depends on `hearth-tsdb` for storage and writes only through its `Appender`; it must not
//! reach into the storage engine's internals, evaluate queries, or scrape.

pub mod config;
pub mod exposition;
mod http;
pub mod import;
pub mod metadata;
pub mod otlp;
pub mod remote_write;
pub mod writer;

use std::sync::Arc;

pub use config::IngestConfig;
use hearth_tsdb::http::DbSlot;
pub use http::router;
use metadata::MetadataStore;
pub use writer::{IngestStats, Reason, SeriesInput, WriteOutcome};

/// Shared state of the ingest endpoints.
pub struct Ingest {
    pub(crate) db: DbSlot,
    pub(crate) cfg: IngestConfig,
    pub(crate) budget: writer::NewSeriesBudget,
    pub stats: IngestStats,
    pub metadata: MetadataStore,
}

impl Ingest {
    pub fn new(db: DbSlot, cfg: IngestConfig) -> Arc<Ingest> {
        Arc::new(Ingest {
            db,
            budget: writer::NewSeriesBudget::new(cfg.max_new_series_per_minute),
            cfg,
            stats: IngestStats::default(),
            metadata: MetadataStore::new(),
        })
    }

    /// Appends ingest metrics in the Prometheus text format.
    pub fn write_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "# HELP hearth_ingest_samples_written_total Samples written through the ingest endpoints.\n# TYPE hearth_ingest_samples_written_total counter\nhearth_ingest_samples_written_total {}",
            self.stats.samples_written.load(std::sync::atomic::Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP hearth_ingest_samples_rejected_total Samples refused by the ingest endpoints, by reason.\n# TYPE hearth_ingest_samples_rejected_total counter"
        );
        for r in Reason::ALL {
            let _ = writeln!(
                out,
                "hearth_ingest_samples_rejected_total{{reason=\"{}\"}} {}",
                r.as_str(),
                self.stats.rejected(r)
            );
        }
        http::write_request_metrics(out);
        let _ = writeln!(
            out,
            "# HELP hearth_ingest_metadata_families Metric families with stored metadata.\n# TYPE hearth_ingest_metadata_families gauge\nhearth_ingest_metadata_families {}",
            self.metadata.len()
        );
    }
}

/// Request-level failures, each mapped to the status code the peer protocol uses.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("storage is not ready (WAL replay in progress)")]
    NotReady,
    #[error(transparent)]
    Storage(#[from] hearth_tsdb::TsdbError),
}
