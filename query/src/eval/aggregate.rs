//! Aggregation operators. Group keys are computed once per series; each step folds the
//! series present at that step into per-group accumulators (Prometheus's exact numerics:
//! Kahan sums, mean with overflow fallback, Welford variance).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_LIMITK, T_LIMIT_RATIO, T_MAX, T_MIN,
    T_QUANTILE, T_STDDEV, T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::{Evaluator, Value};
use crate::engine::QueryError;
use crate::functions::{stats, NoteKind, Steps};
use crate::value::{Metric, Series, NAME};

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
pub(crate) fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[derive(Clone, Default)]
struct Acc {
    value: f64,
    mean: f64,
    c: f64,
    count: f64,
    incremental: bool,
    values: Vec<f64>,
}

impl Evaluator<'_> {
    pub(crate) fn aggregate(
        &mut self,
        a: &AggregateExpr,
        steps: Steps,
    ) -> Result<Value, QueryError> {
        let op = a.op.id();
        let n = steps.len();
        let mut param: Option<Vec<f64>> = None;
        let mut label: Option<String> = None;
        if let Some(p) = &a.param {
            if op == T_COUNT_VALUES {
                label = Some(self.eval_string(p)?);
            } else {
                param = Some(self.eval_scalar(p, steps)?);
            }
        }
        let input = self.eval_vector(&a.expr, steps)?;
        let (by, names): (bool, Vec<String>) = match &a.modifier {
            Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
            None => (true, Vec::new()),
        };
        let key_of = |m: &Metric| {
            let mut k = m.clone();
            if by {
                k.retain(|x| names.iter().any(|y| y == x));
            } else {
                k.retain(|x| x != NAME && !names.iter().any(|y| y == x));
            }
            k
        };
        let mut group_index: HashMap<Metric, usize> = HashMap::new();
        let mut groups: Vec<Series> = Vec::new();
        let mut gid = Vec::with_capacity(input.len());
        for s in &input {
            let k = key_of(&s.metric);
            let g = match group_index.get(&k) {
                Some(&g) => g,
                None => {
                    group_index.insert(k.clone(), groups.len());
                    groups.push(Series::new(k, Vec::new()));
                    groups.len() - 1
                }
            };
            // With delayed name removal the name survives grouping `by (__name__)`; it is
            // dropped later if any member was to lose it.
            if s.drop_name && groups[g].metric.name().is_some() {
                groups[g].drop_name = true;
            }
            gid.push(g);
        }
        let mut per_step: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
        for (si, s) in input.iter().enumerate() {
            for &(t, v) in &s.points {
                per_step[steps.index(t)].push((si, v));
            }
        }

        match op {
            T_TOPK | T_BOTTOMK | T_LIMITK | T_LIMIT_RATIO => {
                let param = param.unwrap_or_default();
                self.aggregate_k(a, op, input, &gid, groups.len(), &per_step, &param, steps)
            }
            T_COUNT_VALUES => {
                let label = label.unwrap_or_default();
                super::check_label_name(&label).map_err(QueryError::Execution)?;
                let mut out: Vec<Series> = Vec::new();
                let mut index: HashMap<Metric, usize> = HashMap::new();
                // Output label sets per (group, value): the value label may overwrite a
                // grouping label, so different groups can share an output series.
                let mut metrics: HashMap<(usize, String), usize> = HashMap::new();
                let mut counts: Vec<f64> = Vec::new();
                let mut touched: Vec<usize> = Vec::new();
                for (i, at_step) in per_step.iter().enumerate() {
                    touched.clear();
                    for &(si, v) in at_step {
                        let key = (gid[si], format_float(v));
                        let idx = match metrics.get(&key) {
                            Some(&idx) => idx,
                            None => {
                                let mut m = groups[key.0].metric.clone();
                                m.set(&label, &key.1);
                                let idx = *index.entry(m.clone()).or_insert_with(|| {
                                    out.push(Series::new(m, Vec::new()));
                                    counts.push(0.0);
                                    out.len() - 1
                                });
                                metrics.insert(key, idx);
                                idx
                            }
                        };
                        if counts[idx] == 0.0 {
                            touched.push(idx);
                        }
                        counts[idx] += 1.0;
                    }
                    for &idx in &touched {
                        out[idx].points.push((steps.ts(i), counts[idx]));
                        counts[idx] = 0.0;
                    }
                }
                Ok(Value::Vector(out))
            }
            _ => {
                if op == T_QUANTILE {
                    if let Some(q) = &param {
                        if let Some(bad) = q.iter().find(|q| !(0.0..=1.0).contains(*q)) {
                            let pos = a.param.as_ref().map(|p| self.position_of(p));
                            self.annotate(
                                NoteKind::Warn,
                                format!(
                                    "quantile value should be between 0 and 1, got {}",
                                    format_float(*bad)
                                ),
                                pos,
                            );
                        }
                    }
                }
                let mut acc = vec![Acc::default(); groups.len()];
                let mut seen = vec![usize::MAX; groups.len()];
                let mut touched = Vec::new();
                for (i, at_step) in per_step.iter().enumerate() {
                    touched.clear();
                    for &(si, f) in at_step {
                        let g = gid[si];
                        let st = &mut acc[g];
                        if seen[g] != i {
                            seen[g] = i;
                            touched.push(g);
                            *st = Acc {
                                value: f,
                                mean: f,
                                c: 0.0,
                                count: 1.0,
                                incremental: false,
                                values: std::mem::take(&mut st.values),
                            };
                            st.values.clear();
                            match op {
                                T_STDDEV | T_STDVAR => {
                                    st.value = if f.is_nan() || f.is_infinite() {
                                        f64::NAN
                                    } else {
                                        0.0
                                    }
                                }
                                T_QUANTILE => st.values.push(f),
                                T_GROUP => st.value = 1.0,
                                _ => {}
                            }
                            continue;
                        }
                        match op {
                            T_SUM => (st.value, st.c) = stats::kahan_inc(f, st.value, st.c),
                            T_AVG => {
                                st.count += 1.0;
                                if !st.incremental {
                                    let (nv, nc) = stats::kahan_inc(f, st.value, st.c);
                                    if !nv.is_infinite() {
                                        (st.value, st.c) = (nv, nc);
                                        continue;
                                    }
                                    st.incremental = true;
                                    st.mean = st.value / (st.count - 1.0);
                                    st.c /= st.count - 1.0;
                                }
                                let q = (st.count - 1.0) / st.count;
                                (st.mean, st.c) =
                                    stats::kahan_inc(f / st.count, q * st.mean, q * st.c);
                            }
                            T_MAX if st.value < f || st.value.is_nan() => st.value = f,
                            T_MIN if st.value > f || st.value.is_nan() => st.value = f,
                            T_COUNT => st.count += 1.0,
                            T_STDDEV | T_STDVAR => {
                                st.count += 1.0;
                                let delta = f - st.mean;
                                st.mean += delta / st.count;
                                st.value += delta * (f - st.mean);
                            }
                            T_QUANTILE => st.values.push(f),
                            _ => {}
                        }
                    }
                    let t = steps.ts(i);
                    for &g in &touched {
                        let st = &mut acc[g];
                        let v = match op {
                            T_AVG if st.incremental => st.mean + st.c,
                            T_AVG => (st.value + st.c) / st.count,
                            T_COUNT => st.count,
                            T_STDVAR => st.value / st.count,
                            T_STDDEV => (st.value / st.count).sqrt(),
                            T_QUANTILE => {
                                let q = param.as_ref().map(|p| p[i]).unwrap_or(f64::NAN);
                                stats::quantile(q, &mut st.values)
                            }
                            T_SUM => st.value + st.c,
                            _ => st.value,
                        };
                        groups[g].points.push((t, v));
                    }
                }
                groups.retain(|s| !s.points.is_empty());
                Ok(Value::Vector(groups))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn aggregate_k(
        &mut self,
        a: &AggregateExpr,
        op: u16,
        input: Vec<Series>,
        gid: &[usize],
        ngroups: usize,
        per_step: &[Vec<(usize, f64)>],
        param: &[f64],
        steps: Steps,
    ) -> Result<Value, QueryError> {
        let mut keep: Vec<Vec<(i64, f64)>> = vec![Vec::new(); input.len()];
        // Selection order of the last step, for an instant query's result order.
        let mut last_order: Vec<usize> = Vec::new();
        let mut members: Vec<Vec<(usize, f64)>> = vec![Vec::new(); ngroups];
        let mut capped = None;
        let hashes: Vec<f64> = if op == T_LIMIT_RATIO {
            input.iter().map(|s| ratio_offset(&s.metric)).collect()
        } else {
            Vec::new()
        };
        for (i, at_step) in per_step.iter().enumerate() {
            let p = param[i];
            if p.is_nan() {
                return Err(QueryError::Execution(if op == T_LIMIT_RATIO {
                    "Ratio value is NaN".into()
                } else {
                    "Parameter value is NaN".into()
                }));
            }
            if at_step.is_empty() {
                continue;
            }
            for m in &mut members {
                m.clear();
            }
            for &(si, v) in at_step {
                members[gid[si]].push((si, v));
            }
            last_order.clear();
            let t = steps.ts(i);
            if op == T_LIMIT_RATIO {
                let r = if p > 1.0 {
                    capped = Some((p, 1.0));
                    1.0
                } else if p < -1.0 {
                    capped = Some((p, -1.0));
                    -1.0
                } else {
                    p
                };
                for m in &members {
                    for &(si, v) in m {
                        let off = hashes[si];
                        let take = if r >= 0.0 { off < r } else { off >= 1.0 + r };
                        if take {
                            keep[si].push((t, v));
                            last_order.push(si);
                        }
                    }
                }
                continue;
            }
            let k = if p >= 9.2e18 {
                i64::MAX
            } else if p <= -9.2e18 {
                i64::MIN
            } else {
                p as i64
            };
            if k < 1 {
                continue;
            }
            for m in &mut members {
                if m.is_empty() {
                    continue;
                }
                let k = (k as usize).min(m.len());
                match op {
                    T_LIMITK => {}
                    T_TOPK => m.sort_by(|a, b| cmp_desc_nan_low(a.1, b.1)),
                    _ => m.sort_by(|a, b| cmp_asc_nan_high(a.1, b.1)),
                }
                for &(si, v) in &m[..k] {
                    keep[si].push((t, v));
                    last_order.push(si);
                }
            }
        }
        if let Some((got, to)) = capped {
            let pos = a.param.as_ref().map(|p| self.position_of(p));
            self.annotate(
                NoteKind::Warn,
                format!(
                    "ratio value should be between -1 and 1, got {}, capping to {}",
                    format_float(got),
                    format_float(to)
                ),
                pos,
            );
        }
        let mut input: Vec<Option<Series>> = input.into_iter().map(Some).collect();
        let mut out = Vec::new();
        let order: Vec<usize> = if self.instant {
            last_order
        } else {
            (0..input.len()).collect()
        };
        for si in order {
            if let Some(mut s) = input[si].take() {
                s.points = std::mem::take(&mut keep[si]);
                if !s.points.is_empty() {
                    out.push(s);
                }
            }
        }
        Ok(Value::Vector(out))
    }
}

fn cmp_desc_nan_low(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => b.partial_cmp(&a).unwrap(),
    }
}

fn cmp_asc_nan_high(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).unwrap(),
    }
}

/// A series' position in `[0, 1)` for `limit_ratio`, from a stable hash of its labels.
fn ratio_offset(m: &Metric) -> f64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    m.hash(&mut h);
    h.finish() as f64 / u64::MAX as f64
}
