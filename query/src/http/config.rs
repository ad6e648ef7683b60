//! The `query:` section of the config file: the engine's limits, with Prometheus's defaults
//! (its `--query.*` flags override them).

use std::time::Duration;

use hearth_tsdb::config::PromDuration;
use serde::Deserialize;

use crate::engine::EngineOptions;

/// `query:` — `lookback_delta` (5m), `max_samples` (50000000), `timeout` (2m).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// How far back an instant selector looks for a sample.
    pub lookback_delta: PromDuration,
    /// Most samples one query may hold in memory.
    pub max_samples: usize,
    /// Longest a query may run.
    pub timeout: PromDuration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        let d = EngineOptions::default();
        QueryConfig {
            lookback_delta: PromDuration(Duration::from_millis(d.lookback_delta_ms as u64)),
            max_samples: d.max_samples,
            timeout: PromDuration(d.timeout),
        }
    }
}

impl QueryConfig {
    /// Refuses values no query could run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.lookback_delta.0.is_zero() {
            return Err("query.lookback_delta must be greater than 0".into());
        }
        if self.timeout.0.is_zero() {
            return Err("query.timeout must be greater than 0".into());
        }
        if self.max_samples == 0 {
            return Err("query.max_samples must be greater than 0".into());
        }
        Ok(())
    }

    /// Engine options with these limits; `subquery_step` is the global evaluation interval.
    pub fn engine_options(&self, subquery_step: Duration) -> EngineOptions {
        EngineOptions {
            lookback_delta_ms: self.lookback_delta.as_millis_i64(),
            max_samples: self.max_samples,
            timeout: self.timeout.0,
            default_subquery_step_ms: i64::try_from(subquery_step.as_millis())
                .unwrap_or(i64::MAX)
                .max(1),
            ..EngineOptions::default()
        }
    }
}
