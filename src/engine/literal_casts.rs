//! `'{a,"b c"}'::text[]` keeps PostgreSQL's meaning.
//!
//! The compatibility parser we build on rewrites a string literal cast with `::` to an
//! array type into an `ARRAY[...]` by splitting the text at commas, which keeps quotes
//! and backslashes inside elements and reads `NULL` as a string. Before it sees the SQL,
//! such casts are respelled `CAST('...' AS type[])`, which it leaves alone and which the
//! planner then reads with PostgreSQL's array syntax (see `text_input`).

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
    if !(sql.contains("::") && sql.contains('[')) {
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

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
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
