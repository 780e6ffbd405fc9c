//! Rewrites of parsed statements for PostgreSQL forms DataFusion plans differently or not
//! at all, applied after the catalog-compatibility parser. Each rewrite keeps the
//! statement's meaning; none matches a client's query text.
//!
//! - `x LIKE p ESCAPE 'c'` with an escape other than backslash (SQLAlchemy writes
//!   `ESCAPE '/'`) → `x LIKE like_escape(p, 'c')`, PostgreSQL's own function for it;
//! - `generate_subscripts(a, d)` → `unnest(generate_series(1, array_length(a, d)))`;
//! - `information_schema._pg_expandarray(a)` (pgjdbc's key lookups): its `.x` is
//!   `unnest(a)`, its `.n` the subscripts, the whole an `unnest` of `(x, n)` records;
//!   `(expr).field` is `get_field(expr, 'field')`;
//! - `ARRAY(subquery)` → `(SELECT array_agg(...) FROM (subquery))`;
//! - `pg_get_viewdef(oid)` → the view's definition from `pg_views`;
//! - `to_timestamp(text, 'YYYY-MM-DD HH24:MI:SS')`: PostgreSQL's pattern spelled in the
//!   pattern language DataFusion's `to_timestamp` reads;
//! - `'name'::regproc` → `'name'` (`pg_type.typinput` and kin hold function names);
//! - a scalar subquery that returns a plain column (`(SELECT c.relkind FROM pg_class c
//!   WHERE c.oid = t.typrelid)`) gets an aggregate around it, which DataFusion needs to
//!   decorrelate it (PostgreSQL errors when such a subquery returns more than one row;
//!   here one of them is taken);
//! - `REFERENCES` clauses of `CREATE TABLE` are accepted and not kept, like keys.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, ColumnOption, DataType as SqlType, Expr, Function, FunctionArg,
    FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident, ObjectName, Query,
    SelectItem, SetExpr, Statement, TableConstraint, Value, VisitMut, VisitorMut,
};

/// Apply every rewrite to `statement`.
pub fn rewrite(mut statement: Statement) -> Statement {
    if let Statement::CreateTable(create) = &mut statement {
        create
            .constraints
            .retain(|c| !matches!(c, TableConstraint::ForeignKey(_)));
        for column in &mut create.columns {
            column
                .options
                .retain(|o| !matches!(o.option, ColumnOption::ForeignKey(_)));
        }
    }
    let _ = statement.visit(&mut Rewriter);
    statement
}

/// The last part of a function's (possibly qualified) name, lower case.
fn function_name(f: &Function) -> String {
    f.name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase())
        .unwrap_or_default()
}

/// The plain (unnamed) arguments of a call.
fn plain_args(f: &Function) -> Vec<Expr> {
    match &f.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

fn text(s: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(s.to_string()))
}

fn number(n: &str) -> Expr {
    Expr::value(Value::Number(n.to_string(), false))
}

fn parse_expr(sql: &str) -> Option<Expr> {
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    datafusion::sql::sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(sql)
        .ok()?
        .parse_expr()
        .ok()
}

/// `unnest(generate_series(1, array_length(a, d)))`: the subscripts of `a`.
fn subscripts(array: Expr, dimension: Expr) -> Expr {
    let length = Expr::Cast {
        kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
        expr: Box::new(call("array_length", vec![array, dimension])),
        data_type: SqlType::BigInt(None),
        array: false,
        format: None,
    };
    call(
        "unnest",
        vec![call("generate_series", vec![number("1"), length])],
    )
}

/// Aggregate functions: a scalar subquery returning one of these is already a single row.
const AGGREGATES: &[&str] = &[
    "count", "sum", "min", "max", "avg", "array_agg", "string_agg", "bool_and", "bool_or",
    "every", "first_value", "last_value", "json_agg", "jsonb_agg",
];

fn has_aggregate(expr: &Expr) -> bool {
    let mut found = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(expr, |e| {
        if let Expr::Function(f) = e
            && AGGREGATES.contains(&function_name(f).as_str())
        {
            found = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

/// Wrap the single output of a scalar subquery in `first_value(...)` when it is a plain
/// expression over a FROM clause (no aggregate, grouping, ordering or set operation).
fn aggregate_scalar_subquery(query: &mut Query) {
    if query.order_by.is_some() || query.with.is_some() {
        return;
    }
    // A LIMIT 1 (which the compatibility parser adds) picks one row, as the aggregate
    // will; any other limit is left alone.
    let limit_one = matches!(
        &query.limit_clause,
        Some(datafusion::sql::sqlparser::ast::LimitClause::LimitOffset { limit: Some(Expr::Value(v)), offset: None, limit_by })
            if limit_by.is_empty() && matches!(&v.value, Value::Number(n, _) if n == "1")
    );
    if query.limit_clause.is_some() && !limit_one {
        return;
    }
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    if select.from.is_empty()
        || select.having.is_some()
        || select.distinct.is_some()
        || select.projection.len() != 1
        || !matches!(
            &select.group_by,
            datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty()
        )
    {
        return;
    }
    let item = &mut select.projection[0];
    let expr = match item {
        SelectItem::UnnamedExpr(e) => e,
        SelectItem::ExprWithAlias { expr, .. } => expr,
        _ => return,
    };
    if has_aggregate(expr) {
        return;
    }
    let inner = std::mem::replace(expr, Expr::value(Value::Null));
    *expr = call("first_value", vec![inner]);
    query.limit_clause = None;
}

/// PostgreSQL's `to_char`/`to_timestamp` pattern in chrono's language, or `None` when
/// it uses something without an equivalent.
pub fn chrono_pattern(pattern: &str) -> Option<String> {
    const TOKENS: &[(&str, &str)] = &[
        ("YYYY", "%Y"),
        ("HH24", "%H"),
        ("HH12", "%I"),
        ("Month", "%B"),
        ("MONTH", "%B"),
        ("Mon", "%b"),
        ("MON", "%b"),
        ("Day", "%A"),
        ("Dy", "%a"),
        ("YY", "%y"),
        ("MM", "%m"),
        ("DD", "%d"),
        ("HH", "%I"),
        ("MI", "%M"),
        ("SS", "%S"),
        ("MS", "%3f"),
        ("US", "%6f"),
        ("AM", "%p"),
        ("PM", "%p"),
        ("TZ", "%Z"),
        ("OF", "%:z"),
    ];
    let mut out = String::new();
    let mut rest = pattern;
    'outer: while !rest.is_empty() {
        for (pg, chrono) in TOKENS {
            if let Some(r) = rest.strip_prefix(pg) {
                out.push_str(chrono);
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next()?;
        if c.is_ascii_alphabetic() {
            return None;
        }
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

struct Rewriter;

impl VisitorMut for Rewriter {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        // Before the arguments are visited: `(_pg_expandarray(a)).x` must be seen whole.
        if let Expr::CompoundFieldAccess { root, access_chain } = expr
            && let [AccessExpr::Dot(Expr::Identifier(key))] = access_chain.as_slice()
        {
            let mut inner = root.as_ref();
            while let Expr::Nested(e) = inner {
                inner = e;
            }
            let replacement = match inner {
                Expr::Function(f) if function_name(f) == "_pg_expandarray" => {
                    let array = plain_args(f).into_iter().next();
                    match (array, key.value.to_ascii_lowercase().as_str()) {
                        (Some(a), "x") => Some(call("unnest", vec![a])),
                        (Some(a), "n") => Some(subscripts(a, number("1"))),
                        _ => None,
                    }
                }
                other => Some(call("get_field", vec![other.clone(), text(&key.value)])),
            };
            if let Some(r) = replacement {
                *expr = r;
            }
        }
        if let Expr::Subquery(query) = expr {
            aggregate_scalar_subquery(query);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = expr {
            let name = function_name(f);
            let args = plain_args(f);
            let replacement = match (name.as_str(), &f.args) {
                ("generate_subscripts", _) if args.len() == 2 => {
                    Some(subscripts(args[0].clone(), args[1].clone()))
                }
                ("_pg_expandarray", _) if args.len() == 1 => Some(call(
                    "unnest",
                    vec![call("pg_expandarray", vec![args[0].clone()])],
                )),
                ("array", FunctionArguments::Subquery(query)) => {
                    parse_expr(&format!("(SELECT array_agg(_a._v) FROM ({query}) AS _a (_v))"))
                }
                ("pg_get_viewdef", _) if !args.is_empty() => parse_expr(&format!(
                    "(SELECT first_value(v.definition) FROM pg_catalog.pg_views v \
                     JOIN pg_catalog.pg_class c ON c.relname = v.viewname \
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.nspname = v.schemaname \
                     WHERE c.oid = {})",
                    args[0]
                )),
                ("to_timestamp", _) if args.len() == 2 => match &args[1] {
                    Expr::Value(v) => match &v.value {
                        Value::SingleQuotedString(p)
                            if p.chars().any(|c| c.is_ascii_uppercase()) =>
                        {
                            chrono_pattern(p)
                                .map(|c| call("to_timestamp", vec![args[0].clone(), text(&c)]))
                        }
                        _ => None,
                    },
                    _ => None,
                },
                _ => None,
            };
            if let Some(r) = replacement {
                *expr = r;
                return ControlFlow::Continue(());
            }
        }
        if let Expr::Cast {
            expr: inner,
            data_type: SqlType::Custom(name, _),
            ..
        } = expr
        {
            let type_name = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_ascii_lowercase())
                .unwrap_or_default();
            if (type_name == "regproc" || type_name == "regprocedure")
                && let Expr::Value(v) = inner.as_ref()
                && let Value::SingleQuotedString(s) = &v.value
            {
                let bare = s.rsplit('.').next().unwrap_or(s).to_string();
                *expr = text(&bare);
                return ControlFlow::Continue(());
            }
        }
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

#[cfg(test)]
mod ast_shapes {
    #[test]
    #[ignore]
    fn print_shapes() {
        let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
        for sql in [
            "SELECT (information_schema._pg_expandarray(i.indkey)).n FROM t",
            "SELECT (result.KEYS).x FROM t",
            "SELECT array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x) FROM t",
            "SELECT typinput='pg_catalog.array_in'::regproc FROM t",
            "CREATE TABLE t (a int REFERENCES u(b), b int, FOREIGN KEY (b) REFERENCES u(c))",
        ] {
            let parsed = datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, sql).unwrap();
            println!("{sql}\n{:#?}\n", parsed[0]);
        }
    }
}
