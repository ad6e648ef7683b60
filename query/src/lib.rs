//! hearth's PromQL engine and the read side of the Prometheus HTTP API.
//!
//! Owns: parsing (with the `promql-parser` crate), evaluation of instant and range queries in
//! Prometheus 3 semantics over `hearth-tsdb`'s querier, and the `/api/v1/query*`, series,
//! labels and status endpoints. Range queries are evaluated over all steps in one pass per
//! node: selectors read each series once and slide step-aligned windows over it.
//!
//! Depends on `hearth-tsdb` (reads through `Db::querier` only); must not write to storage,
//! scrape, or evaluate rules (the rules crate calls this one).

pub mod engine;
mod eval;
pub(crate) mod functions;
pub mod http;
pub mod value;

pub use engine::{Engine, EngineOptions, QueryContext, QueryError};
pub use value::{Annotations, Metric, QueryOutput, QueryValue, Series};
