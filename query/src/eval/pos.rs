//! Positions for annotations. The parser's AST carries no source positions, so the
//! `(line:col)` Prometheus appends to a warning is found by locating the node's leading token
//! in the query text (the first occurrence on token boundaries).

use promql_parser::parser::{Call, Expr};

use super::Evaluator;

impl Evaluator<'_> {
    /// 1-based `(line, column)` of `e` in the query text; `(1, 1)` if it cannot be found.
    pub(crate) fn position_of(&self, e: &Expr) -> (usize, usize) {
        let needle = leading_token(e);
        find_token(self.query, &needle)
            .map(|off| line_col(self.query, off))
            .unwrap_or((1, 1))
    }

    pub(crate) fn position_of_call(&self, c: &Call) -> (usize, usize) {
        find_token(self.query, c.func.name)
            .map(|off| line_col(self.query, off))
            .unwrap_or((1, 1))
    }
}

fn leading_token(e: &Expr) -> String {
    match e {
        Expr::Call(c) => c.func.name.to_string(),
        Expr::Aggregate(a) => a.op.to_string(),
        Expr::VectorSelector(vs) => vs.name.clone().unwrap_or_else(|| "{".into()),
        Expr::MatrixSelector(ms) => ms.vs.name.clone().unwrap_or_else(|| "{".into()),
        Expr::Paren(_) => "(".into(),
        Expr::Subquery(s) => leading_token(&s.expr),
        Expr::Binary(b) => leading_token(&b.lhs),
        Expr::Unary(_) => "-".into(),
        Expr::StringLiteral(s) => format!("{:?}", s.val),
        other => other.to_string(),
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

/// Byte offset of the first occurrence of `needle` that is not part of a longer identifier.
fn find_token(hay: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    let hb = hay.as_bytes();
    let nb = needle.as_bytes();
    let word = nb.first().is_some_and(|b| is_ident(*b));
    let mut from = 0;
    while let Some(i) = hay[from..].find(needle) {
        let at = from + i;
        let end = at + nb.len();
        let ok = !word
            || ((at == 0 || !is_ident(hb[at - 1])) && (end >= hb.len() || !is_ident(hb[end])));
        if ok {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn line_col(q: &str, off: usize) -> (usize, usize) {
    let before = &q[..off];
    let line = before.matches('\n').count() + 1;
    let col = off - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tokens_on_boundaries() {
        let q = "histogram_quantile(0.8, series)";
        assert_eq!(
            find_token(q, "series").map(|o| line_col(q, o)),
            Some((1, 25))
        );
        let q = "sum(sort(series))";
        assert_eq!(find_token(q, "sort").map(|o| line_col(q, o)), Some((1, 5)));
        let q = "rate(x_total[5m]) + rate(x[5m])";
        assert_eq!(find_token(q, "x").map(|o| line_col(q, o)), Some((1, 26)));
        let q = "a +\n  b";
        assert_eq!(find_token(q, "b").map(|o| line_col(q, o)), Some((2, 3)));
    }
}
