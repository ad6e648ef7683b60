//! The query entry points: parse, check limits, evaluate, and report errors in Prometheus's
//! categories.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_tsdb::Db;

use crate::eval;
use crate::value::QueryOutput;

/// Engine settings (`query:` section of the config; Prometheus's `--query.*` flags).
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (`--query.lookback-delta`, 5m).
    pub lookback_delta_ms: i64,
    /// Most samples a query may hold in memory at once (`--query.max-samples`, 50 M).
    pub max_samples: usize,
    /// Per-query time limit (`--query.timeout`, 2m).
    pub timeout: Duration,
    /// Step of a subquery without an explicit resolution (the global evaluation interval, 1m).
    pub default_subquery_step_ms: i64,
    /// Most steps a range query may have (Prometheus: 11,000).
    pub max_steps: i64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step_ms: 60 * 1000,
            max_steps: 11_000,
        }
    }
}

/// A query failure, in the categories of the Prometheus API's `errorType`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The query text or a parameter is invalid (HTTP 400, `bad_data`).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed (HTTP 422, `execution`), e.g. many-to-many matching, duplicate
    /// series after name removal, or "query processing would load too many samples into
    /// memory in query execution".
    #[error("{0}")]
    Execution(String),
    /// The query ran past its time limit (HTTP 503, `timeout`).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The client went away (HTTP 499, `canceled`).
    #[error("query was canceled in {0}")]
    Canceled(&'static str),
    /// Storage failure (HTTP 500, `internal`).
    #[error("{0}")]
    Internal(String),
}

impl QueryError {
    /// The API's `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) => "execution",
            QueryError::Timeout(_) => "timeout",
            QueryError::Canceled(_) => "canceled",
            QueryError::Internal(_) => "internal",
        }
    }
}

/// Cancellation and deadline of one query, checked between series and steps.
#[derive(Clone, Debug)]
pub struct QueryContext {
    deadline: Instant,
    canceled: Arc<AtomicBool>,
}

impl QueryContext {
    pub fn new(timeout: Duration) -> Self {
        QueryContext {
            deadline: Instant::now() + timeout,
            canceled: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A flag another task sets when the client disconnects.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.canceled.clone()
    }

    /// `Err` when the query must stop; `stage` names where (for the error message).
    pub fn check(&self, stage: &'static str) -> Result<(), QueryError> {
        if self.canceled.load(Ordering::Relaxed) {
            return Err(QueryError::Canceled(stage));
        }
        if Instant::now() >= self.deadline {
            return Err(QueryError::Timeout(stage));
        }
        Ok(())
    }
}

/// The PromQL engine. Cheap to clone; holds only settings.
#[derive(Clone, Debug, Default)]
pub struct Engine {
    pub opts: EngineOptions,
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts }
    }

    /// Parses `query` (an error is `BadData` with the parser's message).
    pub fn parse(query: &str) -> Result<promql_parser::parser::Expr, QueryError> {
        eval::parse(query)
    }

    /// Instant query at `t` (ms).
    pub fn instant(
        &self,
        db: &Db,
        query: &str,
        t: i64,
        ctx: &QueryContext,
    ) -> Result<QueryOutput, QueryError> {
        let expr = Self::parse(query)?;
        eval::run(&self.opts, db, &expr, query, t, t, 0, true, ctx)
    }

    /// Range query over `[start, end]` every `step` (all ms).
    pub fn range(
        &self,
        db: &Db,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
        ctx: &QueryContext,
    ) -> Result<QueryOutput, QueryError> {
        if step <= 0 {
            return Err(QueryError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end < start {
            return Err(QueryError::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        if (end - start) / step > self.opts.max_steps {
            return Err(QueryError::BadData(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
            ));
        }
        let expr = Self::parse(query)?;
        eval::run(&self.opts, db, &expr, query, start, end, step, false, ctx)
    }
}
