//! Binary operators: arithmetic, comparisons (filtering or `bool`), set operators, and vector
//! matching (`on`/`ignoring`, `group_left`/`group_right`) with Prometheus's errors.
//!
//! Matching signatures are computed once per series; each step then matches the series that
//! have a point at that step.

use std::collections::HashMap;

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::{Evaluator, Value};
use crate::engine::QueryError;
use crate::functions::Steps;
use crate::value::{Metric, Series, NAME};

use promql_parser::parser::token::TokenId;

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

fn arith(op: TokenId, l: f64, r: f64) -> f64 {
    match op {
        T_ADD => l + r,
        T_SUB => l - r,
        T_MUL => l * r,
        T_DIV => l / r,
        T_MOD => l % r,
        T_POW => l.powf(r),
        T_ATAN2 => l.atan2(r),
        _ => f64::NAN,
    }
}

fn compare(op: TokenId, l: f64, r: f64) -> bool {
    match op {
        T_EQLC => l == r,
        T_NEQ => l != r,
        T_GTR => l > r,
        T_LSS => l < r,
        T_GTE => l >= r,
        T_LTE => l <= r,
        _ => false,
    }
}

/// Go's `labels.Labels.String()`: `{a="b", c="d"}` with the name inside the braces.
pub(crate) fn go_labels_string(m: &Metric) -> String {
    let parts: Vec<String> = m.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}

/// The labels a series is matched on.
fn match_labels(m: &Metric, on: bool, names: &[String]) -> Metric {
    let mut out = m.clone();
    if on {
        out.retain(|n| names.iter().any(|x| x == n));
    } else {
        out.retain(|n| n != NAME && !names.iter().any(|x| x == n));
    }
    out
}

/// Per step, the `(series index, value)` pairs present.
fn by_step(series: &[Series], steps: Steps) -> Vec<Vec<(usize, f64)>> {
    let mut out = vec![Vec::new(); steps.len()];
    for (si, s) in series.iter().enumerate() {
        for &(t, v) in &s.points {
            out[steps.index(t)].push((si, v));
        }
    }
    out
}

/// Signature ids (equal labels → equal id) of each series.
fn signatures(
    series: &[Series],
    on: bool,
    names: &[String],
    ids: &mut HashMap<Metric, u32>,
) -> Vec<u32> {
    series
        .iter()
        .map(|s| {
            let key = match_labels(&s.metric, on, names);
            let next = ids.len() as u32;
            *ids.entry(key).or_insert(next)
        })
        .collect()
}

impl Evaluator<'_> {
    pub(crate) fn binary(&mut self, b: &BinaryExpr, steps: Steps) -> Result<Value, QueryError> {
        let op = b.op.id();
        let return_bool = b.return_bool();
        if let Some(m) = &b.modifier {
            if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                return Err(QueryError::BadData(
                    "fill modifiers are not supported".into(),
                ));
            }
        }
        let lhs = self.eval(&b.lhs, steps)?;
        let rhs = self.eval(&b.rhs, steps)?;
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => Ok(Value::Scalar(
                l.into_iter()
                    .zip(r)
                    .map(|(l, r)| {
                        if is_comparison(op) {
                            if compare(op, l, r) {
                                1.0
                            } else {
                                0.0
                            }
                        } else {
                            arith(op, l, r)
                        }
                    })
                    .collect(),
            )),
            (Value::Vector(v), Value::Scalar(s)) => Ok(Value::Vector(vector_scalar(
                op,
                v,
                &s,
                false,
                return_bool,
                steps,
            ))),
            (Value::Scalar(s), Value::Vector(v)) => Ok(Value::Vector(vector_scalar(
                op,
                v,
                &s,
                true,
                return_bool,
                steps,
            ))),
            (Value::Vector(l), Value::Vector(r)) => {
                let (on, names) = match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                    Some(LabelModifier::Include(ls)) => (true, ls.labels.clone()),
                    Some(LabelModifier::Exclude(ls)) => (false, ls.labels.clone()),
                    None => (false, Vec::new()),
                };
                let card = b
                    .modifier
                    .as_ref()
                    .map(|m| m.card.clone())
                    .unwrap_or(VectorMatchCardinality::OneToOne);
                match op {
                    T_LAND | T_LOR | T_LUNLESS => {
                        Ok(Value::Vector(set_op(op, l, r, on, &names, steps)))
                    }
                    _ => Ok(Value::Vector(self.vector_vector(
                        op,
                        l,
                        r,
                        on,
                        &names,
                        card,
                        return_bool,
                        steps,
                    )?)),
                }
            }
            _ => Err(QueryError::BadData(
                "binary expression must contain only scalar and instant vector types".into(),
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn vector_vector(
        &mut self,
        op: TokenId,
        lhs: Vec<Series>,
        rhs: Vec<Series>,
        on: bool,
        names: &[String],
        card: VectorMatchCardinality,
        return_bool: bool,
        steps: Steps,
    ) -> Result<Vec<Series>, QueryError> {
        let swap = matches!(card, VectorMatchCardinality::OneToMany(_));
        let include: Vec<String> = card.labels().map(|l| l.labels.clone()).unwrap_or_default();
        let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
        let (many, one) = if swap { (rhs, lhs) } else { (lhs, rhs) };
        let mut ids = HashMap::new();
        let msig = signatures(&many, on, names, &mut ids);
        let osig = signatures(&one, on, names, &mut ids);
        let mstep = by_step(&many, steps);
        let ostep = by_step(&one, steps);
        let comparison = is_comparison(op);
        let drop = !comparison || return_bool;

        let mut out: Vec<Series> = Vec::new();
        let mut out_index: HashMap<Metric, usize> = HashMap::new();
        let mut pair_out: HashMap<(usize, usize), usize> = HashMap::new();
        let mut right: HashMap<u32, (usize, f64)> = HashMap::new();
        let mut matched: HashMap<u32, ()> = HashMap::new();
        let mut inserted: HashMap<usize, ()> = HashMap::new();
        for i in 0..steps.len() {
            if i % 1024 == 0 {
                self.ctx.check("binary operation")?;
            }
            right.clear();
            matched.clear();
            inserted.clear();
            for &(oi, ov) in &ostep[i] {
                if let Some(&(prev, _)) = right.get(&osig[oi]) {
                    let side = if swap { "left" } else { "right" };
                    let group = match_labels(&one[oi].metric, on, names);
                    return Err(QueryError::Execution(format!(
                        "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                        go_labels_string(&group),
                        go_labels_string(&one[prev].metric),
                        go_labels_string(&one[oi].metric),
                    )));
                }
                right.insert(osig[oi], (oi, ov));
            }
            for &(mi, mv) in &mstep[i] {
                let sig = msig[mi];
                let Some(&(oi, ov)) = right.get(&sig) else {
                    continue;
                };
                if one_to_one && matched.insert(sig, ()).is_some() {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
                let (l, r) = if swap { (ov, mv) } else { (mv, ov) };
                let value = if comparison {
                    let keep = compare(op, l, r);
                    if return_bool {
                        if keep {
                            1.0
                        } else {
                            0.0
                        }
                    } else if keep {
                        l
                    } else {
                        continue;
                    }
                } else {
                    arith(op, l, r)
                };
                let idx = match pair_out.get(&(mi, oi)) {
                    Some(&idx) => idx,
                    None => {
                        let metric = result_metric(
                            &many[mi].metric,
                            &one[oi].metric,
                            on,
                            names,
                            one_to_one,
                            &include,
                        );
                        let drop_name = drop || many[mi].drop_name;
                        let idx = match out_index.get(&metric) {
                            Some(&idx) => idx,
                            None => {
                                out_index.insert(metric.clone(), out.len());
                                out.push(Series {
                                    metric,
                                    points: Vec::new(),
                                    drop_name,
                                });
                                out.len() - 1
                            }
                        };
                        pair_out.insert((mi, oi), idx);
                        idx
                    }
                };
                if inserted.insert(idx, ()).is_some() {
                    if one_to_one {
                        return Err(QueryError::Execution(
                            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                        ));
                    }
                    return Err(QueryError::Execution(
                        "multiple matches for labels: grouping labels must ensure unique matches"
                            .into(),
                    ));
                }
                out[idx].points.push((steps.ts(i), value));
            }
        }
        out.retain(|s| !s.points.is_empty());
        Ok(out)
    }
}

fn result_metric(
    many: &Metric,
    one: &Metric,
    on: bool,
    names: &[String],
    one_to_one: bool,
    include: &[String],
) -> Metric {
    let mut m = many.clone();
    if one_to_one {
        if on {
            m.retain(|n| names.iter().any(|x| x == n));
        } else {
            m.retain(|n| !names.iter().any(|x| x == n));
        }
    }
    for ln in include {
        match one.get(ln) {
            Some(v) => m.set(ln, v),
            None => m.remove(ln),
        }
    }
    m
}

fn vector_scalar(
    op: TokenId,
    mut v: Vec<Series>,
    s: &[f64],
    swap: bool,
    return_bool: bool,
    steps: Steps,
) -> Vec<Series> {
    let comparison = is_comparison(op);
    for series in &mut v {
        series.points.retain_mut(|p| {
            let sv = s[steps.index(p.0)];
            let (l, r) = if swap { (sv, p.1) } else { (p.1, sv) };
            if comparison {
                let keep = compare(op, l, r);
                if return_bool {
                    p.1 = if keep { 1.0 } else { 0.0 };
                    true
                } else {
                    keep
                }
            } else {
                p.1 = arith(op, l, r);
                true
            }
        });
        if !comparison || return_bool {
            series.drop_name = true;
        }
    }
    v.retain(|s| !s.points.is_empty());
    v
}

fn set_op(
    op: TokenId,
    lhs: Vec<Series>,
    rhs: Vec<Series>,
    on: bool,
    names: &[String],
    steps: Steps,
) -> Vec<Series> {
    let mut ids = HashMap::new();
    let lsig = signatures(&lhs, on, names, &mut ids);
    let rsig = signatures(&rhs, on, names, &mut ids);
    let n = steps.len();
    // Which signatures are present at each step on the side that filters.
    let present = |series: &[Series], sig: &[u32]| {
        let mut p: Vec<std::collections::HashSet<u32>> = vec![Default::default(); n];
        for (si, s) in series.iter().enumerate() {
            for &(t, _) in &s.points {
                p[steps.index(t)].insert(sig[si]);
            }
        }
        p
    };
    match op {
        T_LAND | T_LUNLESS => {
            let rp = present(&rhs, &rsig);
            let want = op == T_LAND;
            let mut out = lhs;
            for (si, s) in out.iter_mut().enumerate() {
                s.points
                    .retain(|&(t, _)| rp[steps.index(t)].contains(&lsig[si]) == want);
            }
            out.retain(|s| !s.points.is_empty());
            out
        }
        _ => {
            let lp = present(&lhs, &lsig);
            let mut out = lhs;
            for (si, mut s) in rhs.into_iter().enumerate() {
                s.points
                    .retain(|&(t, _)| !lp[steps.index(t)].contains(&rsig[si]));
                if !s.points.is_empty() {
                    out.push(s);
                }
            }
            out
        }
    }
}
