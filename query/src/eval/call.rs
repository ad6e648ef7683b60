//! Function calls: argument evaluation, windowing for range-vector functions, and the
//! functions that need the evaluator (selectors' labels for `absent`, sample timestamps for
//! `timestamp`, result order for `sort*`). The arithmetic lives in `crate::functions`.

use promql_parser::label::MatchOp;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Call, Expr, VectorSelector};

use super::{duration_ms, offset_ms, Evaluator, Value};
use crate::engine::QueryError;
use crate::functions::{histogram, labels, math, range, NoteKind, Steps, Window};
use crate::value::{Metric, Point, Series, NAME};

/// Range functions whose result keeps the metric name.
fn keeps_name(func: &str) -> bool {
    matches!(func, "last_over_time" | "first_over_time")
}

fn is_counter_name(n: &str) -> bool {
    ["_total", "_sum", "_count", "_bucket"]
        .iter()
        .any(|s| n.ends_with(s))
}

impl Evaluator<'_> {
    pub(crate) fn call(&mut self, c: &Call, steps: Steps) -> Result<Value, QueryError> {
        let name = c.func.name;
        let args = &c.args.args;
        let n = steps.len();
        match name {
            "time" => Ok(Value::Scalar(
                (0..n).map(|i| steps.ts(i) as f64 / 1000.0).collect(),
            )),
            "step" | "range" | "start" | "end" => {
                let v = match name {
                    "step" => self.query_step,
                    "range" => self.query_end - self.query_start,
                    "start" => self.query_start,
                    _ => self.query_end,
                } as f64
                    / 1000.0;
                Ok(Value::Scalar(vec![v; n]))
            }
            "min_of" | "max_of" => {
                let a = self.eval_scalar(&args[0], steps)?;
                let b = self.eval_scalar(&args[1], steps)?;
                let f = if name == "min_of" {
                    math::go_min
                } else {
                    math::go_max
                };
                Ok(Value::Scalar(
                    a.into_iter().zip(b).map(|(a, b)| f(a, b)).collect(),
                ))
            }
            "pi" => Ok(Value::Scalar(vec![std::f64::consts::PI; n])),
            "vector" => {
                let v = self.eval_scalar(&args[0], steps)?;
                Ok(Value::Vector(vec![Series::new(
                    Metric::default(),
                    v.into_iter()
                        .enumerate()
                        .map(|(i, v)| (steps.ts(i), v))
                        .collect(),
                )]))
            }
            "scalar" => {
                let series = self.eval_vector(&args[0], steps)?;
                let mut count = vec![0u32; n];
                let mut val = vec![f64::NAN; n];
                for s in &series {
                    for &(t, v) in &s.points {
                        let i = steps.index(t);
                        count[i] += 1;
                        val[i] = v;
                    }
                }
                Ok(Value::Scalar(
                    val.into_iter()
                        .zip(count)
                        .map(|(v, c)| if c == 1 { v } else { f64::NAN })
                        .collect(),
                ))
            }
            "absent" => {
                let series = self.eval_vector(&args[0], steps)?;
                let mut present = vec![false; n];
                for s in &series {
                    for &(t, _) in &s.points {
                        present[steps.index(t)] = true;
                    }
                }
                let metric = absent_labels(&args[0]);
                Ok(Value::Vector(absent_series(metric, &present, steps)))
            }
            "absent_over_time" => {
                let mut present = vec![false; n];
                self.apply_windows(&args[0], steps, &mut |_, i, w| {
                    if !w.samples.is_empty() {
                        present[i] = true;
                    }
                    None
                })?;
                let metric = absent_labels(&args[0]);
                Ok(Value::Vector(absent_series(metric, &present, steps)))
            }
            "timestamp" => {
                let series = match unparen(&args[0]) {
                    Expr::VectorSelector(vs) => self.vector_selector(vs, steps, true)?,
                    other => {
                        let mut series = self.eval_vector(other, steps)?;
                        for s in &mut series {
                            for p in &mut s.points {
                                p.1 = p.0 as f64 / 1000.0;
                            }
                        }
                        series
                    }
                };
                Ok(Value::Vector(drop_names(series)))
            }
            "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => {
                let mut series = self.eval_vector(&args[0], steps)?;
                if !self.instant {
                    let pos = self.position_of_call(c);
                    self.annotate(
                        NoteKind::Warn,
                        "sort is ineffective for range queries since results are always ordered by labels".into(),
                        Some(pos),
                    );
                    return Ok(Value::Vector(series));
                }
                let value = |s: &Series| s.points.first().map(|p| p.1).unwrap_or(f64::NAN);
                match name {
                    "sort" | "sort_desc" => {
                        let desc = name == "sort_desc";
                        series.sort_by(|a, b| {
                            let (x, y) = (value(a), value(b));
                            match (x.is_nan(), y.is_nan()) {
                                (true, true) => std::cmp::Ordering::Equal,
                                (true, false) => std::cmp::Ordering::Greater,
                                (false, true) => std::cmp::Ordering::Less,
                                _ if desc => y.partial_cmp(&x).unwrap(),
                                _ => x.partial_cmp(&y).unwrap(),
                            }
                        });
                    }
                    _ => {
                        let desc = name == "sort_by_label_desc";
                        let mut keys = Vec::new();
                        for a in &args[1..] {
                            keys.push(self.eval_string(a)?);
                        }
                        series.sort_by(|a, b| {
                            for k in &keys {
                                let (x, y) =
                                    (a.metric.get(k).unwrap_or(""), b.metric.get(k).unwrap_or(""));
                                let o = labels::sort_label_cmp(x, y);
                                if o != std::cmp::Ordering::Equal {
                                    return if desc { o.reverse() } else { o };
                                }
                            }
                            let o = a.metric.cmp(&b.metric);
                            if desc {
                                o.reverse()
                            } else {
                                o
                            }
                        });
                    }
                }
                Ok(Value::Vector(series))
            }
            "label_replace" => {
                let series = self.eval_vector(&args[0], steps)?;
                let dst = self.eval_string(&args[1])?;
                let repl = self.eval_string(&args[2])?;
                let src = self.eval_string(&args[3])?;
                let re_src = self.eval_string(&args[4])?;
                let re = labels::anchored_regex(&re_src).map_err(|e| {
                    QueryError::Execution(format!(
                        "invalid regular expression in label_replace(): {e}"
                    ))
                })?;
                relabel(series, name, &dst, |m| {
                    labels::label_replace(m, &dst, &repl, &src, &re)
                })
            }
            "label_join" => {
                let series = self.eval_vector(&args[0], steps)?;
                let dst = self.eval_string(&args[1])?;
                let sep = self.eval_string(&args[2])?;
                let mut srcs = Vec::new();
                for a in &args[3..] {
                    srcs.push(self.eval_string(a)?);
                }
                relabel(series, name, &dst, |m| {
                    labels::label_join(m, &dst, &sep, &srcs)
                })
            }
            "histogram_quantile" => {
                let q = self.eval_scalar(&args[0], steps)?;
                let input = self.eval_vector(&args[1], steps)?;
                let mut notes = Vec::new();
                let out = histogram::quantile(&q, &input, steps, &mut notes);
                self.notes(notes, args);
                Ok(Value::Vector(out))
            }
            "histogram_quantiles" => {
                let input = self.eval_vector(&args[0], steps)?;
                let label = self.eval_string(&args[1])?;
                let mut qs = Vec::new();
                for a in &args[2..] {
                    qs.push(self.eval_scalar(a, steps)?);
                }
                let mut notes = Vec::new();
                let out = histogram::quantiles(&label, &qs, &input, steps, &mut notes);
                self.notes(notes, args);
                Ok(Value::Vector(super::merge_same_labels(out)?))
            }
            "histogram_fraction" => {
                let lower = self.eval_scalar(&args[0], steps)?;
                let upper = self.eval_scalar(&args[1], steps)?;
                let input = self.eval_vector(&args[2], steps)?;
                let mut notes = Vec::new();
                let out = histogram::fraction(&lower, &upper, &input, steps, &mut notes);
                self.notes(notes, args);
                Ok(Value::Vector(out))
            }
            // Native-histogram functions: float samples are ignored.
            "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
            | "histogram_stdvar" => {
                self.eval_vector(&args[0], steps)?;
                Ok(Value::Vector(Vec::new()))
            }
            "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour"
            | "minute" | "month" | "year"
                if args.is_empty() =>
            {
                let k = math::kernel(name).ok_or_else(|| unsupported(name))?;
                let pts = (0..n)
                    .filter_map(|i| {
                        let t = steps.ts(i);
                        k(t as f64 / 1000.0, &[]).map(|v| (t, v))
                    })
                    .collect();
                Ok(Value::Vector(vec![Series::new(Metric::default(), pts)]))
            }
            _ => {
                if let Some(ri) = args
                    .iter()
                    .position(|a| a.value_type() == ValueType::Matrix)
                {
                    return self.range_function(c, ri, steps);
                }
                let k = math::kernel(name).ok_or_else(|| unsupported(name))?;
                let mut series = self.eval_vector(&args[0], steps)?;
                let mut params: Vec<Vec<f64>> = Vec::new();
                for a in &args[1..] {
                    params.push(self.eval_scalar(a, steps)?);
                }
                if name == "round" && params.is_empty() {
                    params.push(vec![1.0; n]);
                }
                let mut p = vec![0.0; params.len()];
                for s in &mut series {
                    s.points.retain_mut(|pt| {
                        let i = steps.index(pt.0);
                        for (k, v) in params.iter().enumerate() {
                            p[k] = v[i];
                        }
                        match k(pt.1, &p) {
                            Some(v) => {
                                pt.1 = v;
                                true
                            }
                            None => false,
                        }
                    });
                    s.drop_name = true;
                }
                series.retain(|s| !s.points.is_empty());
                Ok(Value::Vector(series))
            }
        }
    }

    pub(crate) fn eval_string(&mut self, e: &Expr) -> Result<String, QueryError> {
        match unparen(e) {
            Expr::StringLiteral(s) => Ok(s.val.clone()),
            other => Err(QueryError::BadData(format!(
                "expected string literal, got {}",
                other.value_type()
            ))),
        }
    }

    fn range_function(&mut self, c: &Call, ri: usize, steps: Steps) -> Result<Value, QueryError> {
        let name = c.func.name;
        let args = &c.args.args;
        let kernel = range::kernel(name).ok_or_else(|| unsupported(name))?;
        let mut params: Vec<Vec<f64>> = Vec::new();
        for (k, a) in args.iter().enumerate() {
            if k != ri {
                params.push(self.eval_scalar(a, steps)?);
            }
        }
        if name == "double_exponential_smoothing" && params.len() == 2 {
            for (&sf, &tf) in params[0].iter().zip(&params[1]) {
                if let Some(e) = range::double_exponential_smoothing_error(sf, tf) {
                    return Err(QueryError::Execution(e));
                }
            }
        }
        // predict_linear predicts from the step's evaluation time (not the window end, which
        // differs under offset and @).
        if name == "predict_linear" {
            params.push((0..steps.len()).map(|i| steps.ts(i) as f64).collect());
        }
        let mut notes = Vec::new();
        let mut p = vec![0.0; params.len()];
        let check_counter = matches!(name, "rate" | "increase");
        let mut non_counter: Option<String> = None;
        // The counter-name check needs one non-empty window per series (every series is
        // called for steps 0, 1, ... in order, so step 0 starts a new series).
        let mut checked = false;
        let mut out = self.apply_windows(&args[ri], steps, &mut |metric, i, w| {
            if i == 0 {
                checked = false;
            }
            if check_counter && non_counter.is_none() && !checked && !w.samples.is_empty() {
                checked = true;
                if let Some(n) = metric.name() {
                    if !is_counter_name(n) {
                        non_counter = Some(n.to_string());
                    }
                }
            }
            for (k, v) in params.iter().enumerate() {
                p[k] = v[i];
            }
            kernel(w, &p, &mut notes)
        })?;
        if !keeps_name(name) {
            for s in &mut out {
                s.drop_name = true;
            }
        }
        self.notes(notes, args);
        if let Some(n) = non_counter {
            let pos = self.position_of(&args[ri]);
            self.annotate(
                NoteKind::Info,
                format!(
                    "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {n:?}"
                ),
                Some(pos),
            );
        }
        Ok(Value::Vector(out))
    }

    /// Calls `f(metric, step index, window)` for every step's window of every series of a
    /// range-vector argument (matrix selector or subquery), one series at a time; returns the
    /// series with the points where `f` gave a value (metric and name flag of the source).
    fn apply_windows(
        &mut self,
        arg: &Expr,
        steps: Steps,
        f: &mut dyn FnMut(&Metric, usize, &Window<'_>) -> Option<f64>,
    ) -> Result<Vec<Series>, QueryError> {
        match unparen(arg) {
            Expr::MatrixSelector(ms) => {
                let range = duration_ms(&ms.range);
                let got =
                    self.range_input(&ms.vs, range, steps, &mut |m, samples, reference| {
                        let pts = slide(samples, range, steps, reference, &mut |i, w| f(m, i, w));
                        (!pts.is_empty()).then_some(pts)
                    })?;
                Ok(got
                    .into_iter()
                    .map(|(m, pts)| Series::new(m, pts))
                    .collect())
            }
            Expr::Subquery(sq) => {
                let (inner, _) = self.subquery(sq, steps)?;
                let range = duration_ms(&sq.range);
                let offset = offset_ms(&sq.offset);
                let at = self.at_ms(&sq.at);
                let reference = move |i: usize| at.unwrap_or(steps.ts(i)) - offset;
                let mut out = Vec::new();
                for s in inner {
                    let pts = slide(&s.points, range, steps, &reference, &mut |i, w| {
                        f(&s.metric, i, w)
                    });
                    if !pts.is_empty() {
                        out.push(Series {
                            metric: s.metric,
                            points: pts,
                            drop_name: s.drop_name,
                        });
                    }
                }
                Ok(out)
            }
            other => Err(QueryError::BadData(format!(
                "expected type range vector, got {}",
                other.value_type()
            ))),
        }
    }
}

/// Slides the window `(r - range, r]` over `samples` for every step (`r = reference(i)`,
/// non-decreasing in `i`), collecting `f`'s values at the step timestamps.
fn slide(
    samples: &[Point],
    range: i64,
    steps: Steps,
    reference: &dyn Fn(usize) -> i64,
    f: &mut dyn FnMut(usize, &Window<'_>) -> Option<f64>,
) -> Vec<Point> {
    let mut out = Vec::new();
    let (mut lo, mut hi) = (0usize, 0usize);
    for i in 0..steps.len() {
        let r = reference(i);
        while lo < samples.len() && samples[lo].0 <= r - range {
            lo += 1;
        }
        if hi < lo {
            hi = lo;
        }
        while hi < samples.len() && samples[hi].0 <= r {
            hi += 1;
        }
        let w = Window {
            samples: &samples[lo..hi],
            start: r - range,
            end: r,
        };
        if let Some(v) = f(i, &w) {
            out.push((steps.ts(i), v));
        }
    }
    out
}

/// `label_replace`/`label_join`: checks the destination name, rewrites every label set
/// (writing `__name__` cancels a pending name removal) and refuses results that collide.
fn relabel(
    series: Vec<Series>,
    func: &str,
    dst: &str,
    f: impl Fn(&Metric) -> Metric,
) -> Result<Value, QueryError> {
    super::check_label_name(dst).map_err(|_| {
        QueryError::Execution(format!("invalid destination label name in {func}(): {dst}"))
    })?;
    let out: Vec<Series> = series
        .into_iter()
        .map(|s| Series {
            metric: f(&s.metric),
            points: s.points,
            drop_name: s.drop_name && dst != NAME,
        })
        .collect();
    Ok(Value::Vector(super::merge_same_labels(out)?))
}

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        other => other,
    }
}

fn unsupported(name: &str) -> QueryError {
    QueryError::BadData(format!("function {name:?} is not supported"))
}

fn drop_names(mut series: Vec<Series>) -> Vec<Series> {
    for s in &mut series {
        s.drop_name = true;
    }
    series
}

/// `absent()`'s labels: the equality matchers of a selector argument (not the name), unless a
/// label is matched twice.
fn absent_labels(arg: &Expr) -> Metric {
    let vs: &VectorSelector = match unparen(arg) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Metric::default(),
    };
    let mut m = Metric::default();
    let mut seen = std::collections::HashSet::new();
    let mut dup = std::collections::HashSet::new();
    for x in &vs.matchers.matchers {
        if !seen.insert(x.name.clone()) {
            dup.insert(x.name.clone());
        }
    }
    for x in &vs.matchers.matchers {
        if x.name != NAME && matches!(x.op, MatchOp::Equal) && !dup.contains(&x.name) {
            m.set(&x.name, &x.value);
        }
    }
    m
}

fn absent_series(metric: Metric, present: &[bool], steps: Steps) -> Vec<Series> {
    let pts: Vec<Point> = present
        .iter()
        .enumerate()
        .filter(|(_, p)| !**p)
        .map(|(i, _)| (steps.ts(i), 1.0))
        .collect();
    if pts.is_empty() {
        Vec::new()
    } else {
        vec![Series::new(metric, pts)]
    }
}
