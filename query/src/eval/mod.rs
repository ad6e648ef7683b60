//! The evaluator: walks the AST once per query, evaluating every node over all steps.
//!
//! An instant query is a range query with one step. Each node returns a [`Value`]: scalars as
//! one value per step, instant vectors as series with at most one point per step. Selectors
//! read each selected series once (one decode pass) and pick the value of every step with a
//! moving cursor; range functions slide the step-aligned window `(t - range, t]` over one
//! series at a time, so memory holds one series' samples plus the output, not the whole
//! selection. Subqueries evaluate their inner expression on their own aligned grid and feed
//! the result to the same windowing.
//!
//! Names are removed late (Prometheus 3 "delayed name removal"): a function or operator that
//! drops `__name__` only sets [`Series::drop_name`]; the name goes at the end of the query,
//! where series that became identical are merged (or refused when they overlap).

mod aggregate;
mod binary;
mod call;
mod pos;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hearth_tsdb::index::{MatchOp as TsdbOp, Matcher as TsdbMatcher};
use hearth_tsdb::Db;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};

use crate::engine::{EngineOptions, QueryContext, QueryError};
use crate::functions::{Note, NoteKind, Steps};
use crate::value::{Annotations, Metric, Point, QueryOutput, QueryValue, Series};

pub(crate) fn parse(query: &str) -> Result<Expr, QueryError> {
    let q = mark_invalid_utf8_strings(query);
    promql_parser::parser::parse(&q).map_err(QueryError::BadData)
}

/// Marks string literals whose Go-style escapes decode to invalid UTF-8.
///
/// In Prometheus a literal like `"a\xc5z"` is a byte string that is not UTF-8, so using it as
/// a label name fails with `invalid label name "a\xc5z"`. `promql-parser` decodes `\xNN` as
/// the code point U+00NN instead (always valid), so such literals are rewritten before
/// parsing into U+FFFD followed by their source text; [`check_label_name`] recognises the mark
/// and reports the original.
fn mark_invalid_utf8_strings(query: &str) -> std::borrow::Cow<'_, str> {
    if !query.contains('\\') {
        return std::borrow::Cow::Borrowed(query);
    }
    let b = query.as_bytes();
    let mut out = String::with_capacity(query.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        let q = b[i];
        if q != b'"' && q != b'\'' {
            i += 1;
            continue;
        }
        let start = i;
        let mut bytes = Vec::new();
        let mut j = i + 1;
        let mut closed = false;
        while j < b.len() {
            match b[j] {
                c if c == q => {
                    closed = true;
                    break;
                }
                b'\\' if j + 1 < b.len() => {
                    let e = b[j + 1];
                    match e {
                        b'x' if j + 3 < b.len() => {
                            let hex = std::str::from_utf8(&b[j + 2..j + 4]).unwrap_or("");
                            match u8::from_str_radix(hex, 16) {
                                Ok(v) => bytes.push(v),
                                Err(_) => bytes.extend_from_slice(&b[j..j + 4]),
                            }
                            j += 4;
                        }
                        b'0'..=b'7' if j + 3 < b.len() => {
                            let oct = std::str::from_utf8(&b[j + 1..j + 4]).unwrap_or("");
                            match u8::from_str_radix(oct, 8) {
                                Ok(v) => bytes.push(v),
                                Err(_) => bytes.extend_from_slice(&b[j..j + 4]),
                            }
                            j += 4;
                        }
                        _ => {
                            // Other escapes decode to valid UTF-8; their exact value does not
                            // matter for the validity check.
                            bytes.push(b'_');
                            j += 2;
                        }
                    }
                }
                c => {
                    bytes.push(c);
                    j += 1;
                }
            }
        }
        if !closed {
            break;
        }
        if std::str::from_utf8(&bytes).is_err() {
            let inner = &query[start + 1..j];
            out.push_str(&query[last..start]);
            out.push_str("\"\\uFFFD");
            out.push_str(&inner.replace('\\', "\\\\").replace('"', "\\\""));
            out.push('"');
            last = j + 1;
        }
        i = j + 1;
    }
    if last == 0 {
        return std::borrow::Cow::Borrowed(query);
    }
    out.push_str(&query[last..]);
    std::borrow::Cow::Owned(out)
}

/// Prometheus 3 accepts any UTF-8 label name except the empty one; see
/// [`mark_invalid_utf8_strings`] for names that were not UTF-8 in the query.
pub(crate) fn check_label_name(name: &str) -> Result<(), String> {
    match name.strip_prefix('\u{FFFD}') {
        Some(src) => Err(format!("invalid label name \"{src}\"")),
        None => crate::functions::labels::check_label_name(name),
    }
}

/// The value of a node over all steps.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// One value per step.
    Scalar(Vec<f64>),
    String(String),
    /// Series with points on the step grid.
    Vector(Vec<Series>),
    /// Raw samples (only a range selector or subquery evaluated at the top of an instant
    /// query).
    Matrix(Vec<Series>),
}

pub(crate) fn is_stale(v: f64) -> bool {
    v.to_bits() == hearth_tsdb::STALE_NAN_BITS
}

/// Runs a parsed query over `[start, end]` every `step` (`instant`: one step at `start`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    opts: &EngineOptions,
    db: &Db,
    expr: &Expr,
    query: &str,
    start: i64,
    end: i64,
    step: i64,
    instant: bool,
    ctx: &QueryContext,
) -> Result<QueryOutput, QueryError> {
    let steps = Steps {
        start,
        end,
        step: if instant { 1 } else { step },
    };
    let mut ev = Evaluator {
        opts,
        db,
        query,
        ctx,
        ann: Annotations::default(),
        query_start: start,
        query_end: end,
        query_step: if instant { 0 } else { step },
        instant,
        samples: 0,
    };
    let v = ev.eval(expr, steps)?;
    let value = match v {
        Value::Scalar(vals) if instant => QueryValue::Scalar { t: start, v: vals[0] },
        Value::String(s) if instant => QueryValue::String { t: start, v: s },
        Value::Vector(series) if instant => QueryValue::Vector(finish_names(series, false)?),
        Value::Matrix(series) if instant => QueryValue::Matrix(finish_names(series, true)?),
        Value::Scalar(vals) => QueryValue::Matrix(vec![Series::new(
            Metric::default(),
            vals.into_iter()
                .enumerate()
                .map(|(i, v)| (steps.ts(i), v))
                .collect(),
        )]),
        Value::Vector(series) => {
            let mut out = finish_names(series, true)?;
            out.sort_by(|a, b| a.metric.cmp(&b.metric));
            QueryValue::Matrix(out)
        }
        Value::String(_) => {
            return Err(QueryError::BadData(
                "invalid expression type \"string\" for range query, must be Scalar or instant Vector"
                    .into(),
            ))
        }
        Value::Matrix(_) => {
            return Err(QueryError::BadData(
                "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
                    .into(),
            ))
        }
    };
    Ok(QueryOutput {
        value,
        annotations: ev.ann,
        samples_loaded: ev.samples as u64,
    })
}

/// Drops names flagged for removal, then merges series that became identical; two of them
/// with a point at the same timestamp is Prometheus's duplicate-labelset error.
fn finish_names(mut series: Vec<Series>, merge: bool) -> Result<Vec<Series>, QueryError> {
    let mut any = false;
    for s in &mut series {
        if s.drop_name {
            s.metric.remove(crate::value::NAME);
            s.drop_name = false;
            any = true;
        }
    }
    if !any && !merge {
        return Ok(series);
    }
    merge_same_labels(series)
}

pub(crate) fn dup_labelset_error() -> QueryError {
    QueryError::Execution("vector cannot contain metrics with the same labelset".into())
}

/// Merges series with equal label sets, keeping the first's order; overlapping timestamps are
/// an error.
pub(crate) fn merge_same_labels(series: Vec<Series>) -> Result<Vec<Series>, QueryError> {
    let mut index: HashMap<Metric, usize> = HashMap::with_capacity(series.len());
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    for s in series {
        match index.get(&s.metric) {
            None => {
                index.insert(s.metric.clone(), out.len());
                out.push(s);
            }
            Some(&i) => {
                let dst = &mut out[i];
                let mut merged = Vec::with_capacity(dst.points.len() + s.points.len());
                let (mut a, mut b) = (0, 0);
                while a < dst.points.len() || b < s.points.len() {
                    let pick_a = match (dst.points.get(a), s.points.get(b)) {
                        (Some(x), Some(y)) if x.0 == y.0 => return Err(dup_labelset_error()),
                        (Some(x), Some(y)) => x.0 < y.0,
                        (Some(_), None) => true,
                        _ => false,
                    };
                    if pick_a {
                        merged.push(dst.points[a]);
                        a += 1;
                    } else {
                        merged.push(s.points[b]);
                        b += 1;
                    }
                }
                dst.points = merged;
            }
        }
    }
    Ok(out)
}

/// Called with a series' metric, its samples (stale markers removed) and the step → window
/// end mapping.
type PerSeries<'f, T> = dyn FnMut(&Metric, &[Point], &dyn Fn(usize) -> i64) -> Option<T> + 'f;

pub(crate) struct Evaluator<'a> {
    pub(crate) opts: &'a EngineOptions,
    db: &'a Db,
    pub(crate) query: &'a str,
    pub(crate) ctx: &'a QueryContext,
    pub(crate) ann: Annotations,
    query_start: i64,
    query_end: i64,
    /// The query's step (0 for an instant query), for `step()`.
    query_step: i64,
    /// The top-level query is an instant query (`sort()` matters only then).
    pub(crate) instant: bool,
    /// Samples loaded from storage or produced by subqueries so far (`max_samples`).
    samples: usize,
}

pub(crate) fn duration_ms(d: &Duration) -> i64 {
    d.as_millis() as i64
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

impl<'a> Evaluator<'a> {
    pub(crate) fn eval(&mut self, expr: &Expr, steps: Steps) -> Result<Value, QueryError> {
        self.ctx.check("query evaluation")?;
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(vec![n.val; steps.len()])),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, steps),
            Expr::Unary(u) => match self.eval(&u.expr, steps)? {
                Value::Scalar(v) => Ok(Value::Scalar(v.into_iter().map(|x| -x).collect())),
                Value::Vector(mut series) => {
                    for s in &mut series {
                        for p in &mut s.points {
                            p.1 = -p.1;
                        }
                        s.drop_name = true;
                    }
                    Ok(Value::Vector(series))
                }
                _ => Err(QueryError::BadData(
                    "unary expression only allowed on expressions of type scalar or instant vector"
                        .into(),
                )),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.vector_selector(vs, steps, false)?)),
            Expr::MatrixSelector(ms) => {
                let range = duration_ms(&ms.range);
                let series =
                    self.range_input(&ms.vs, range, steps, &mut |_, samples: &[Point], _| {
                        (!samples.is_empty()).then(|| samples.to_vec())
                    })?;
                // Only reachable at the top of an instant query: a range vector result.
                Ok(Value::Matrix(
                    series
                        .into_iter()
                        .map(|(m, pts)| Series::new(m, pts))
                        .collect(),
                ))
            }
            Expr::Subquery(sq) => {
                let (series, _) = self.subquery(sq, steps)?;
                let at = self.at_ms(&sq.at);
                let offset = offset_ms(&sq.offset);
                let range = duration_ms(&sq.range);
                let t = at.unwrap_or(steps.end) - offset;
                Ok(Value::Matrix(
                    series
                        .into_iter()
                        .filter_map(|s| {
                            let pts: Vec<Point> = s
                                .points
                                .iter()
                                .copied()
                                .filter(|p| p.0 > t - range && p.0 <= t)
                                .collect();
                            (!pts.is_empty()).then_some(Series {
                                metric: s.metric,
                                points: pts,
                                drop_name: s.drop_name,
                            })
                        })
                        .collect(),
                ))
            }
            Expr::Binary(b) => self.binary(b, steps),
            Expr::Aggregate(a) => self.aggregate(a, steps),
            Expr::Call(c) => self.call(c, steps),
            Expr::Extension(_) => Err(QueryError::BadData("unsupported expression".into())),
        }
    }

    /// Evaluates `expr` expecting a scalar (per step).
    pub(crate) fn eval_scalar(
        &mut self,
        expr: &Expr,
        steps: Steps,
    ) -> Result<Vec<f64>, QueryError> {
        match self.eval(expr, steps)? {
            Value::Scalar(v) => Ok(v),
            _ => Err(QueryError::BadData(format!(
                "expected type scalar, got {}",
                expr.value_type()
            ))),
        }
    }

    /// Evaluates `expr` expecting an instant vector.
    pub(crate) fn eval_vector(
        &mut self,
        expr: &Expr,
        steps: Steps,
    ) -> Result<Vec<Series>, QueryError> {
        match self.eval(expr, steps)? {
            Value::Vector(v) => Ok(v),
            _ => Err(QueryError::BadData(format!(
                "expected type instant vector, got {}",
                expr.value_type()
            ))),
        }
    }

    pub(crate) fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.query_start),
            Some(AtModifier::End) => Some(self.query_end),
            Some(AtModifier::At(t)) => Some(match t.duration_since(UNIX_EPOCH) {
                Ok(d) => duration_ms(&d),
                Err(e) => -duration_ms(&e.duration()),
            }),
        }
    }

    pub(crate) fn add_samples(&mut self, n: usize) -> Result<(), QueryError> {
        self.samples += n;
        if self.samples > self.opts.max_samples {
            return Err(QueryError::Execution(
                "query processing would load too many samples into memory in query execution"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Records kernel notes as annotations positioned at the call's arguments.
    pub(crate) fn notes(&mut self, notes: Vec<Note>, args: &[Box<Expr>]) {
        for n in notes {
            let at = args.get(n.arg).map(|a| self.position_of(a));
            self.annotate(n.kind, n.msg, at);
        }
    }

    pub(crate) fn annotate(&mut self, kind: NoteKind, msg: String, pos: Option<(usize, usize)>) {
        let suffix = pos.map(|(l, c)| format!(" ({l}:{c})")).unwrap_or_default();
        match kind {
            NoteKind::Warn => self.ann.warn(format!("PromQL warning: {msg}{suffix}")),
            NoteKind::Info => self.ann.info(format!("PromQL info: {msg}{suffix}")),
        }
    }

    /// Series matching a selector with samples in `[mint, maxt]`, decoded one at a time into
    /// `f(metric, samples)`; returns what `f` keeps.
    fn select_each<T>(
        &mut self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        f: &mut dyn FnMut(&Metric, &[Point]) -> Option<T>,
    ) -> Result<Vec<(Metric, T)>, QueryError> {
        let alternatives = selector_matchers(vs)?;
        let querier = self.db.querier(mint, maxt);
        let mut out = Vec::new();
        let mut buf: Vec<Point> = Vec::new();
        let mut seen: Option<std::collections::HashSet<Metric>> =
            (alternatives.len() > 1).then(Default::default);
        for matchers in &alternatives {
            let series = querier
                .select(matchers)
                .map_err(|e| QueryError::Internal(e.to_string()))?;
            for (i, s) in series.iter().enumerate() {
                if i % 256 == 0 {
                    self.ctx.check("series selection")?;
                }
                let metric = Metric::from(&s.labels);
                if let Some(seen) = &mut seen {
                    if !seen.insert(metric.clone()) {
                        continue;
                    }
                }
                buf.clear();
                s.decode_into(&mut buf)
                    .map_err(|e| QueryError::Internal(e.to_string()))?;
                self.add_samples(buf.len())?;
                if let Some(t) = f(&metric, &buf) {
                    out.push((metric, t));
                }
            }
        }
        if seen.is_some() {
            out.sort_by(|a, b| a.0.cmp(&b.0));
        }
        // Blocks left out (they failed a read): the answer is partial, say so.
        for w in querier.warnings() {
            self.ann.warn(w);
        }
        Ok(out)
    }

    /// An instant-vector selector over all steps: the newest sample in `(t - lookback, t]`
    /// unless it is a stale marker. With `sample_ts`, the value is the sample's timestamp in
    /// seconds (for `timestamp()`).
    pub(crate) fn vector_selector(
        &mut self,
        vs: &VectorSelector,
        steps: Steps,
        sample_ts: bool,
    ) -> Result<Vec<Series>, QueryError> {
        let offset = offset_ms(&vs.offset);
        let at = self.at_ms(&vs.at);
        let lookback = self.opts.lookback_delta_ms;
        let (lo, hi) = match at {
            Some(a) => (a - offset, a - offset),
            None => (steps.start - offset, steps.end - offset),
        };
        let n = steps.len();
        let got = self.select_each(vs, lo - lookback + 1, hi, &mut |_, samples| {
            let mut pts = Vec::new();
            let mut j = 0;
            for i in 0..n {
                let t = steps.ts(i);
                let r = at.unwrap_or(t) - offset;
                while j < samples.len() && samples[j].0 <= r {
                    j += 1;
                }
                if j > 0 {
                    let (ts, v) = samples[j - 1];
                    if ts > r - lookback && !is_stale(v) {
                        pts.push((t, if sample_ts { ts as f64 / 1000.0 } else { v }));
                    }
                }
            }
            (!pts.is_empty()).then_some(pts)
        })?;
        Ok(got
            .into_iter()
            .map(|(m, pts)| Series::new(m, pts))
            .collect())
    }

    /// Applies `per_window(metric, window_samples, step_index)` to every step's window
    /// `(r - range, r]` (`r` = step time or `@`, minus offset) of every series a selector
    /// matches; stale markers are not part of windows. Returns the series with their output
    /// points (those where `per_window` returned `Some`).
    fn range_input<T>(
        &mut self,
        vs: &VectorSelector,
        range: i64,
        steps: Steps,
        per_series: &mut PerSeries<'_, T>,
    ) -> Result<Vec<(Metric, T)>, QueryError> {
        let offset = offset_ms(&vs.offset);
        let at = self.at_ms(&vs.at);
        let (lo, hi) = match at {
            Some(a) => (a - offset, a - offset),
            None => (steps.start - offset, steps.end - offset),
        };
        let reference = move |i: usize| at.unwrap_or(steps.ts(i)) - offset;
        let mut clean: Vec<Point> = Vec::new();
        self.select_each(vs, lo - range + 1, hi, &mut |m, samples| {
            if !samples.iter().any(|p| is_stale(p.1)) {
                return per_series(m, samples, &reference);
            }
            clean.clear();
            clean.extend(samples.iter().copied().filter(|p| !is_stale(p.1)));
            per_series(m, &clean, &reference)
        })
    }

    /// Evaluates a subquery's inner expression on its own grid, aligned to multiples of its
    /// step, covering every window the outer steps need. Returns the inner series (points on
    /// the inner grid) and the inner steps.
    pub(crate) fn subquery(
        &mut self,
        sq: &promql_parser::parser::SubqueryExpr,
        steps: Steps,
    ) -> Result<(Vec<Series>, Steps), QueryError> {
        let offset = offset_ms(&sq.offset);
        let at = self.at_ms(&sq.at);
        let range = duration_ms(&sq.range);
        let step = sq
            .step
            .as_ref()
            .map(duration_ms)
            .filter(|s| *s > 0)
            .unwrap_or(self.opts.default_subquery_step_ms);
        let (lo, hi) = match at {
            Some(a) => (a - offset, a - offset),
            None => (steps.start - offset, steps.end - offset),
        };
        let mint = lo - range;
        let mut start = step * (mint / step);
        if start <= mint {
            start += step;
        }
        if start > hi {
            return Ok((
                Vec::new(),
                Steps {
                    start,
                    end: start,
                    step,
                },
            ));
        }
        let inner = Steps {
            start,
            end: start + (hi - start) / step * step,
            step,
        };
        let saved = (self.query_start, self.query_end);
        let v = self.eval(&sq.expr, inner);
        (self.query_start, self.query_end) = saved;
        let series = match v? {
            Value::Vector(s) => s,
            Value::Scalar(vals) => vec![Series::new(
                Metric::default(),
                vals.into_iter()
                    .enumerate()
                    .map(|(i, v)| (inner.ts(i), v))
                    .collect(),
            )],
            _ => {
                return Err(QueryError::BadData(
                    "subquery is only allowed on instant vector or scalar".into(),
                ))
            }
        };
        let n: usize = series.iter().map(|s| s.points.len()).sum();
        self.add_samples(n)?;
        Ok((series, inner))
    }
}

/// The selector's matchers as tsdb matchers; more than one list for `{a="1" or b="2"}`.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Vec<TsdbMatcher>>, QueryError> {
    let convert = |m: &Matcher| -> Result<TsdbMatcher, QueryError> {
        let op = match m.op {
            MatchOp::Equal => TsdbOp::Equal,
            MatchOp::NotEqual => TsdbOp::NotEqual,
            MatchOp::Re(_) => TsdbOp::Regex,
            MatchOp::NotRe(_) => TsdbOp::NotRegex,
        };
        TsdbMatcher::new(op, m.name.clone(), m.value.clone())
            .map_err(|e| QueryError::BadData(e.to_string()))
    };
    let mut base = Vec::new();
    if let Some(name) = &vs.name {
        base.push(
            TsdbMatcher::new(TsdbOp::Equal, crate::value::NAME, name.clone())
                .map_err(|e| QueryError::BadData(e.to_string()))?,
        );
    }
    if vs.matchers.or_matchers.is_empty() {
        let mut list = base;
        for m in &vs.matchers.matchers {
            list.push(convert(m)?);
        }
        return Ok(vec![list]);
    }
    let mut out = Vec::new();
    for alt in &vs.matchers.or_matchers {
        let mut list = base.clone();
        for m in alt.iter().chain(&vs.matchers.matchers) {
            list.push(convert(m)?);
        }
        out.push(list);
    }
    Ok(out)
}

/// Seconds since the epoch as `SystemTime` (for tests).
#[allow(dead_code)]
pub(crate) fn system_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}
