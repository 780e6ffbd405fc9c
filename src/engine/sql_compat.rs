//! Rewrites of parsed statements for PostgreSQL forms DataFusion plans differently or not
//! at all, applied after the catalog-compatibility parser. Each rewrite keeps the
//! statement's meaning; none matches a client's query text.
//!
//! - `x LIKE p ESCAPE 'c'` with an escape other than backslash (SQLAlchemy writes
//!   `ESCAPE '/'`) → `x LIKE like_escape(p, 'c')`, PostgreSQL's own function for it.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments,
    Ident, ObjectName, Statement, Value, VisitMut, VisitorMut,
};

/// Apply every rewrite to `statement`.
pub fn rewrite(mut statement: Statement) -> Statement {
    let _ = statement.visit(&mut Rewriter);
    statement
}

struct Rewriter;

impl VisitorMut for Rewriter {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Like {
                pattern,
                escape_char,
                ..
            }
            | Expr::ILike {
                pattern,
                escape_char,
                ..
            } => {
                if let Some(escape) = escape_char.take() {
                    if matches!(&escape.value, Value::SingleQuotedString(s) if s == "\\") {
                        *escape_char = Some(escape);
                    } else {
                        let original = std::mem::replace(pattern.as_mut(), Expr::value(Value::Null));
                        **pattern = call("like_escape", vec![original, Expr::Value(escape)]);
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// `like_escape(pattern, escape)`: `pattern` written with `escape` as its escape
/// character, rewritten to use backslash (an empty `escape` means none: every character
/// is literal except `%` and `_`).
pub fn like_escape(pattern: &str, escape: &str) -> Result<String, String> {
    let mut chars = escape.chars();
    let esc = match (chars.next(), chars.next()) {
        (None, _) => None,
        (Some(c), None) => Some(c),
        _ => return Err("invalid escape string: it must be empty or one character".into()),
    };
    let mut out = String::with_capacity(pattern.len() + 2);
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        if Some(c) == esc {
            match it.next() {
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => return Err("LIKE pattern must not end with escape character".into()),
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_escape_moves_escapes_to_backslash() {
        assert_eq!(like_escape("pg/_%", "/").unwrap(), "pg\\_%");
        assert_eq!(like_escape("a\\b", "/").unwrap(), "a\\\\b");
        assert_eq!(like_escape("a//b", "/").unwrap(), "a\\/b");
        assert_eq!(like_escape("a\\b_", "").unwrap(), "a\\\\b_");
        assert!(like_escape("a/", "/").is_err());
        assert!(like_escape("a", "ab").is_err());
    }

    #[test]
    fn escape_clause_becomes_like_escape() {
        let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
        let parsed = datafusion::sql::sqlparser::parser::Parser::parse_sql(
            &dialect,
            "SELECT 1 WHERE n NOT LIKE 'pg/_' || '%' ESCAPE '/' AND m LIKE 'a\\_' ESCAPE '\\'",
        )
        .unwrap();
        let out = rewrite(parsed[0].clone()).to_string();
        assert!(out.contains("NOT LIKE like_escape('pg/_' || '%', '/')"), "{out}");
        assert!(out.contains("ESCAPE '\\'"), "{out}");
    }
}
