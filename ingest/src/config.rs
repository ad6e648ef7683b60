//! The `ingest:` section of hearth's config: limits on what one request, and all requests
//! together, may bring in. A zero means "no limit".

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest request body as sent (compressed), in bytes.
    pub max_request_body_bytes: usize,
    /// Largest body after decompression, in bytes (checked before decompressing, so a
    /// compression bomb never allocates).
    pub max_decompressed_body_bytes: usize,
    pub max_series_per_request: usize,
    pub max_labels_per_series: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    /// Series in the head, all sources together.
    pub max_active_series: u64,
    /// New series created per minute, all sources together (a token bucket: bursts up to
    /// this many, refilled continuously).
    pub max_new_series_per_minute: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_request_body_bytes: 32 << 20,
            max_decompressed_body_bytes: 128 << 20,
            max_series_per_request: 100_000,
            max_labels_per_series: 64,
            max_label_name_length: 1024,
            max_label_value_length: 16 * 1024,
            max_active_series: 5_000_000,
            max_new_series_per_minute: 500_000,
        }
    }
}
