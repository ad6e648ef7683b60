//! The `parse_query` tree: a PromQL AST as JSON in the shape of Prometheus 3's
//! `translateAST` (web/api/v1/translate_ast.go), which its UI's tree view reads.
//!
//! Written by hand over `promql-parser`'s AST rather than with the crate's `ser` feature,
//! whose JSON differs from Prometheus's (no `__name__` matcher, no `matching` object, numbers
//! as numbers).

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AtModifier, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector,
};
use serde_json::{json, Value};

use super::encode::format_float;

/// Translates `expr` into Prometheus's JSON tree.
pub(super) fn translate(expr: &Expr) -> Value {
    match expr {
        Expr::Aggregate(a) => {
            let (grouping, without) = match &a.modifier {
                Some(LabelModifier::Include(l)) => (l.labels.clone(), false),
                Some(LabelModifier::Exclude(l)) => (l.labels.clone(), true),
                None => (Vec::new(), false),
            };
            json!({
                "type": "aggregation",
                "op": a.op.to_string(),
                "expr": translate(&a.expr),
                "param": a.param.as_deref().map_or(Value::Null, translate),
                "grouping": grouping,
                "without": without,
            })
        }
        Expr::Binary(b) => {
            let vectors =
                b.lhs.value_type() == ValueType::Vector && b.rhs.value_type() == ValueType::Vector;
            // Prometheus drops the matching of any operation with a scalar side.
            let matching = if vectors {
                let m = b.modifier.clone().unwrap_or_default();
                let card = match &m.card {
                    VectorMatchCardinality::OneToOne if b.op.is_set_operator() => "many-to-many",
                    VectorMatchCardinality::OneToOne => "one-to-one",
                    VectorMatchCardinality::ManyToOne(_) => "many-to-one",
                    VectorMatchCardinality::OneToMany(_) => "one-to-many",
                    VectorMatchCardinality::ManyToMany => "many-to-many",
                };
                let include = m
                    .card
                    .labels()
                    .map(|l| l.labels.clone())
                    .unwrap_or_default();
                let (labels, on) = match &m.matching {
                    Some(LabelModifier::Include(l)) => (l.labels.clone(), true),
                    Some(LabelModifier::Exclude(l)) => (l.labels.clone(), false),
                    None => (Vec::new(), false),
                };
                json!({"card": card, "labels": labels, "on": on, "include": include})
            } else {
                Value::Null
            };
            json!({
                "type": "binaryExpr",
                "op": b.op.to_string(),
                "lhs": translate(&b.lhs),
                "rhs": translate(&b.rhs),
                "matching": matching,
                "bool": b.return_bool(),
            })
        }
        Expr::Call(c) => json!({
            "type": "call",
            "func": {
                "name": c.func.name,
                "argTypes": c.func.arg_types.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "variadic": c.func.variadic,
                "returnType": c.func.return_type.to_string(),
            },
            "args": c.args.args.iter().map(|a| translate(a)).collect::<Vec<_>>(),
        }),
        Expr::MatrixSelector(m) => {
            let mut v = selector(&m.vs, "matrixSelector");
            v["range"] = json!(millis(m.range));
            v
        }
        Expr::Subquery(s) => json!({
            "type": "subquery",
            "expr": translate(&s.expr),
            "range": millis(s.range),
            "offset": offset_ms(s.offset.as_ref()),
            "step": s.step.map_or(0, millis),
            "timestamp": timestamp(s.at.as_ref()),
            "startOrEnd": start_or_end(s.at.as_ref()),
        }),
        Expr::NumberLiteral(n) => json!({"type": "numberLiteral", "val": format_float(n.val)}),
        Expr::Paren(p) => json!({"type": "parenExpr", "expr": translate(&p.expr)}),
        Expr::StringLiteral(s) => json!({"type": "stringLiteral", "val": s.val}),
        Expr::Unary(u) => json!({"type": "unaryExpr", "op": "-", "expr": translate(&u.expr)}),
        Expr::VectorSelector(vs) => selector(vs, "vectorSelector"),
        // The parser never produces extensions.
        Expr::Extension(e) => json!({"type": "extension", "name": e.expr.name()}),
    }
}

fn selector(vs: &VectorSelector, kind: &str) -> Value {
    // Prometheus keeps the name as a `__name__` matcher after the braces' matchers.
    let mut matchers: Vec<Value> = vs.matchers.matchers.iter().map(matcher).collect();
    for group in &vs.matchers.or_matchers {
        matchers.extend(group.iter().map(matcher));
    }
    if let Some(n) = &vs.name {
        matchers.push(json!({"name": "__name__", "value": n, "type": "="}));
    }
    json!({
        "type": kind,
        "name": vs.name.clone().unwrap_or_default(),
        "offset": offset_ms(vs.offset.as_ref()),
        "matchers": matchers,
        "timestamp": timestamp(vs.at.as_ref()),
        "startOrEnd": start_or_end(vs.at.as_ref()),
    })
}

fn matcher(m: &Matcher) -> Value {
    let op = match m.op {
        MatchOp::Equal => "=",
        MatchOp::NotEqual => "!=",
        MatchOp::Re(_) => "=~",
        MatchOp::NotRe(_) => "!~",
    };
    json!({"name": m.name, "value": m.value, "type": op})
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(o: Option<&Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => millis(*d),
        Some(Offset::Neg(d)) => -millis(*d),
    }
}

fn timestamp(at: Option<&AtModifier>) -> Value {
    match at {
        Some(AtModifier::At(t)) => {
            let ms = match t.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => millis(d),
                Err(e) => -millis(e.duration()),
            };
            json!(ms)
        }
        _ => Value::Null,
    }
}

fn start_or_end(at: Option<&AtModifier>) -> Value {
    match at {
        Some(AtModifier::Start) => json!("start"),
        Some(AtModifier::End) => json!("end"),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(q: &str) -> Value {
        translate(&promql_parser::parser::parse(q).unwrap())
    }

    #[test]
    fn selectors_like_prometheus() {
        assert_eq!(
            tree(r#"up{job="api"} offset 5m"#),
            json!({
                "type": "vectorSelector", "name": "up", "offset": 300000,
                "matchers": [
                    {"name": "job", "value": "api", "type": "="},
                    {"name": "__name__", "value": "up", "type": "="}
                ],
                "timestamp": null, "startOrEnd": null
            })
        );
        let m = tree("rate(x[5m] @ 100)");
        assert_eq!(m["type"], "call");
        assert_eq!(m["func"]["name"], "rate");
        assert_eq!(m["func"]["argTypes"], json!(["matrix"]));
        assert_eq!(m["func"]["returnType"], "vector");
        assert_eq!(m["args"][0]["type"], "matrixSelector");
        assert_eq!(m["args"][0]["range"], 300000);
        assert_eq!(m["args"][0]["timestamp"], 100000);
    }

    #[test]
    fn operators_and_aggregations() {
        let b = tree("sum by (job) (a) / on (job) group_left (x) b");
        assert_eq!(b["type"], "binaryExpr");
        assert_eq!(b["op"], "/");
        assert_eq!(
            b["matching"],
            json!({"card": "many-to-one", "labels": ["job"], "on": true, "include": ["x"]})
        );
        assert_eq!(b["lhs"]["type"], "aggregation");
        assert_eq!(b["lhs"]["op"], "sum");
        assert_eq!(b["lhs"]["grouping"], json!(["job"]));
        assert_eq!(b["lhs"]["without"], false);
        assert_eq!(b["lhs"]["param"], Value::Null);
        assert_eq!(tree("a and b")["matching"]["card"], "many-to-many");
        let s = tree("a > bool 1");
        assert_eq!(s["matching"], Value::Null);
        assert_eq!(s["bool"], true);
        assert_eq!(s["rhs"], json!({"type": "numberLiteral", "val": "1"}));
        assert_eq!(tree("-(1)")["type"], "unaryExpr");
        assert_eq!(tree("-(1)")["expr"]["type"], "parenExpr");
        assert_eq!(
            tree("topk(3, x)")["param"],
            json!({"type": "numberLiteral", "val": "3"})
        );
        let sq = tree("max_over_time(x[1h:5m] offset 1m)");
        assert_eq!(sq["args"][0]["type"], "subquery");
        assert_eq!(sq["args"][0]["range"], 3600000);
        assert_eq!(sq["args"][0]["step"], 300000);
        assert_eq!(sq["args"][0]["offset"], 60000);
        assert_eq!(tree("\"s\""), json!({"type": "stringLiteral", "val": "s"}));
    }
}
