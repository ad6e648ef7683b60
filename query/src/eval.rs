//! Evaluation (being written).
use hearth_tsdb::Db;
use promql_parser::parser::Expr;

use crate::engine::{EngineOptions, QueryContext, QueryError};
use crate::value::QueryOutput;

pub(crate) fn parse(query: &str) -> Result<Expr, QueryError> {
    promql_parser::parser::parse(query).map_err(QueryError::BadData)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    _opts: &EngineOptions,
    _db: &Db,
    _expr: &Expr,
    _query: &str,
    _start: i64,
    _end: i64,
    _step: i64,
    _instant: bool,
    _ctx: &QueryContext,
) -> Result<QueryOutput, QueryError> {
    Err(QueryError::Internal("evaluator not written yet".into()))
}
