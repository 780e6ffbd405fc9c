//! Literal casts the compatibility parser we build on would misread, respelled before it
//! sees the SQL:
//!
//! - `'{a,"b c"}'::text[]`: the parser turns a string literal cast with `::` to an array
//!   type into an `ARRAY[...]` by splitting the text at commas, which keeps quotes and
//!   backslashes inside elements and reads `NULL` as a string. Respelled
//!   `CAST('...' AS type[])`, which it leaves alone and which the planner reads with
//!   PostgreSQL's array syntax (see `text_input`).
//! - `'pg_catalog.array_in'::regproc`: the parser makes it a number (a `pg_proc` OID),
//!   but `pg_type.typinput` and kin hold function names here; respelled `'array_in'`.
//! - `SELECT (SELECT ...) FROM ...`: the parser replaces a correlated subquery that is an
//!   output column with NULL — a silently wrong value. Wrapped in parentheses it is left
//!   alone, and DataFusion evaluates it (see `sql_compat`) or says why it cannot.

use std::borrow::Cow;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    CastKind, DataType, Expr, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// `sql` with every `'literal'::type[]` respelled as a `CAST`, or `sql` itself when it
/// has none (or does not parse: the caller's parser reports that).
pub fn protect_array_literal_casts(sql: &str) -> Cow<'_, str> {
    let lower = sql.to_ascii_lowercase();
    let regproc = lower.contains("regproc");
    let subquery = lower.matches("select").count() >= 2;
    if !((sql.contains("::") && sql.contains('[')) || regproc || subquery) {
        return Cow::Borrowed(sql);
    }
    let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Cow::Borrowed(sql);
    };
    let mut visitor = Respell { found: false };
    let _ = statements.visit(&mut visitor);
    if !visitor.found {
        return Cow::Borrowed(sql);
    }
    Cow::Owned(
        statements
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(";\n"),
    )
}

struct Respell {
    found: bool,
}

impl VisitorMut for Respell {
    type Break = ();

    fn pre_visit_query(
        &mut self,
        query: &mut datafusion::sql::sqlparser::ast::Query,
    ) -> ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr};
        if let SetExpr::Select(select) = query.body.as_mut() {
            for item in &mut select.projection {
                let expr = match item {
                    SelectItem::UnnamedExpr(e) => e,
                    SelectItem::ExprWithAlias { expr, .. } => expr,
                    _ => continue,
                };
                if matches!(expr, Expr::Subquery(_)) {
                    let inner = std::mem::replace(expr, Expr::value(Value::Null));
                    *expr = Expr::Nested(Box::new(inner));
                    self.found = true;
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Cast {
            expr: inner,
            data_type: DataType::Custom(name, _),
            ..
        } = expr
            && name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| {
                matches!(
                    i.value.to_ascii_lowercase().as_str(),
                    "regproc" | "regprocedure"
                )
            })
            && let Expr::Value(ValueWithSpan {
                value: Value::SingleQuotedString(text),
                ..
            }) = inner.as_ref()
        {
            let bare = text.rsplit('.').next().unwrap_or(text).to_string();
            *expr = Expr::value(Value::SingleQuotedString(bare));
            self.found = true;
            return ControlFlow::Continue(());
        }
        if let Expr::Cast {
            kind,
            expr: inner,
            data_type: DataType::Array(_),
            ..
        } = expr
            && *kind == CastKind::DoubleColon
            && matches!(
                inner.as_ref(),
                Expr::Value(ValueWithSpan {
                    value: Value::SingleQuotedString(_) | Value::EscapedStringLiteral(_),
                    ..
                })
            )
        {
            *kind = CastKind::Cast;
            self.found = true;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn respells_only_array_literal_casts() {
        assert!(matches!(
            protect_array_literal_casts("SELECT 'x'::text, a[1] FROM t"),
            Cow::Borrowed(_)
        ));
        let out = protect_array_literal_casts("SELECT '{p,\"q r\"}'::text[], 'it''s'");
        assert!(out.contains("CAST('{p,\"q r\"}' AS TEXT[])"), "{out}");
        assert!(out.contains("'it''s'"), "{out}");
    }
}
