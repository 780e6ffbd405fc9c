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
//! - `ARRAY(SELECT e(x) FROM unnest(a) x)` → `array_transform(a, x -> e(x))`, any other
//!   `ARRAY(subquery)` → `(SELECT array_agg(...) FROM (subquery))`;
//! - `pg_get_viewdef(oid)` → the view's definition from `pg_views`;
//! - `to_timestamp(text, 'YYYY-MM-DD HH24:MI:SS')`: PostgreSQL's pattern spelled in the
//!   pattern language DataFusion's `to_timestamp` reads;
//! - a domain's base type found by a recursive walk correlated with the outer row →
//!   `typbasetype` (see [`domain_base_type`]);
//! - `oid_expr::regtype` → `format_type(oid_expr, NULL)`, the name a `regtype` prints;
//! - `'name'::regproc` → `'name'` (`pg_type.typinput` and kin hold function names);
//! - a scalar subquery that returns a plain expression (`(SELECT c.relkind FROM pg_class c
//!   WHERE c.oid = t.typrelid)`) is put in the shape DataFusion decorrelates: an aggregate
//!   of inner columns (see [`decorrelated_subquery`]; PostgreSQL errors when such a
//!   subquery returns more than one row, here one of them is taken);
//! - `REFERENCES` clauses of `CREATE TABLE` are accepted and not kept, like keys.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, BinaryOperator, CaseWhen, ColumnOption, DataType as SqlType, Expr, Function,
    FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, GroupByExpr, Ident,
    LambdaFunction, LambdaFunctionParameter, LambdaSyntax, ObjectName, OneOrManyWithParens, Query,
    SelectItem, SetExpr, Statement, TableAlias, TableConstraint, TableFactor, Value, VisitMut,
    VisitorMut,
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
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "first_value",
    "last_value",
    "json_agg",
    "jsonb_agg",
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

/// Names a subquery's FROM clause gives its relations (table names and aliases, lower
/// case).
fn from_names(select: &datafusion::sql::sqlparser::ast::Select) -> Vec<String> {
    use datafusion::sql::sqlparser::ast::TableFactor;
    let mut names = Vec::new();
    let mut add = |factor: &TableFactor| {
        if let TableFactor::Table { name, alias, .. } = factor {
            if let Some(last) = name.0.last().and_then(|p| p.as_ident()) {
                names.push(last.value.to_ascii_lowercase());
            }
            if let Some(a) = alias {
                names.push(a.name.value.to_ascii_lowercase());
            }
        } else if let TableFactor::Derived { alias: Some(a), .. } = factor {
            names.push(a.name.value.to_ascii_lowercase());
        }
    };
    for t in &select.from {
        add(&t.relation);
        for j in &t.joins {
            add(&j.relation);
        }
    }
    names
}

/// Whether every column `expr` reads is qualified by a relation outside `inner` (an
/// outer reference of a correlated subquery), and it reads at least one.
fn only_outer_columns(expr: &Expr, inner: &[String]) -> bool {
    let mut outer = 0;
    let mut other = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(expr, |e| {
        match e {
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let relation = parts[parts.len() - 2].value.to_ascii_lowercase();
                if inner.contains(&relation) {
                    other = true;
                } else {
                    outer += 1;
                }
            }
            Expr::Identifier(_)
            | Expr::Subquery(_)
            | Expr::Exists { .. }
            | Expr::InSubquery { .. } => other = true,
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    outer > 0 && !other
}

fn split_and(expr: Expr, into: &mut Vec<Expr>) {
    match expr {
        Expr::BinaryOp {
            left,
            op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
            right,
        } => {
            split_and(*left, into);
            split_and(*right, into);
        }
        Expr::Nested(inner)
            if matches!(
                inner.as_ref(),
                Expr::BinaryOp {
                    op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_and(*inner, into)
        }
        other => into.push(other),
    }
}

fn and_all(mut parts: Vec<Expr>) -> Option<Expr> {
    let first = if parts.is_empty() {
        return None;
    } else {
        parts.remove(0)
    };
    Some(parts.into_iter().fold(first, |acc, e| Expr::BinaryOp {
        left: Box::new(acc),
        op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
        right: Box::new(e),
    }))
}

/// Where the columns an expression reads come from.
#[derive(Default)]
struct Refs {
    outer: bool,
    inner: bool,
    /// An unqualified column, a subquery or anything not looked into.
    unknown: bool,
}

fn refs_of(expr: &Expr, inner: &[String]) -> Refs {
    let mut refs = Refs::default();
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(expr, |e| {
        match e {
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                if inner.contains(&parts[parts.len() - 2].value.to_ascii_lowercase()) {
                    refs.inner = true;
                } else {
                    refs.outer = true;
                }
            }
            Expr::Identifier(_)
            | Expr::Subquery(_)
            | Expr::Exists { .. }
            | Expr::InSubquery { .. } => refs.unknown = true,
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    refs
}

/// Replace every largest part of `expr` that reads only inner columns by `lift(part)`.
/// `false` when a part mixing inner and outer columns cannot be looked into.
fn lift_inner_parts(expr: &mut Expr, inner: &[String], lift: &dyn Fn(Expr) -> Expr) -> bool {
    let refs = refs_of(expr, inner);
    if refs.unknown {
        return false;
    }
    if !refs.outer {
        if refs.inner {
            let part = std::mem::replace(expr, Expr::value(Value::Null));
            *expr = lift(part);
        }
        return true;
    }
    if !refs.inner {
        return true;
    }
    let mut each = |e: &mut Expr| lift_inner_parts(e, inner, lift);
    match expr {
        Expr::BinaryOp { left, right, .. } => each(left) && each(right),
        Expr::UnaryOp { expr: e, .. }
        | Expr::Nested(e)
        | Expr::Cast { expr: e, .. }
        | Expr::IsNull(e)
        | Expr::IsNotNull(e)
        | Expr::IsTrue(e)
        | Expr::IsFalse(e) => each(e),
        Expr::Function(f) => match &mut f.args {
            FunctionArguments::List(list) => list.args.iter_mut().all(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => each(e),
                _ => false,
            }),
            _ => false,
        },
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            operand.as_deref_mut().is_none_or(&mut each)
                && conditions
                    .iter_mut()
                    .all(|c| each(&mut c.condition) && each(&mut c.result))
                && else_result.as_deref_mut().is_none_or(&mut each)
        }
        _ => false,
    }
}

/// A scalar subquery DataFusion can decorrelate: its output an aggregate of inner columns
/// only, its WHERE free of conditions on outer columns alone. The subquery
/// `(SELECT f FROM t WHERE p AND q)`, `q` reading only outer columns and `f` reading both,
/// becomes
/// `CASE WHEN q AND (SELECT count(*) FROM t WHERE p) > 0 THEN f' END`, where `f'` is `f`
/// with each part reading only inner columns replaced by
/// `(SELECT first_value(part) FROM t WHERE p)`: the same value whenever the subquery
/// returns at most one row (PostgreSQL errors when it returns more; here one row's values
/// are taken). A plain `(SELECT e FROM t WHERE p)` becomes `(SELECT first_value(e) ...)`.
/// `None`: the subquery is left as it is.
fn decorrelated_subquery(query: &Query) -> Option<Expr> {
    if query.order_by.is_some() || query.with.is_some() {
        return None;
    }
    // A LIMIT 1 (which the compatibility parser adds) picks one row, as first_value will;
    // any other limit is left alone.
    let limit_one = matches!(
        &query.limit_clause,
        Some(datafusion::sql::sqlparser::ast::LimitClause::LimitOffset { limit: Some(Expr::Value(v)), offset: None, limit_by })
            if limit_by.is_empty() && matches!(&v.value, Value::Number(n, _) if n == "1")
    );
    if query.limit_clause.is_some() && !limit_one {
        return None;
    }
    let (select, output) = plain_single_output(query)?;
    let names = from_names(select);
    let mut conjuncts = Vec::new();
    if let Some(selection) = select.selection.clone() {
        split_and(selection, &mut conjuncts);
    }
    let (mut outer, rest): (Vec<Expr>, Vec<Expr>) = conjuncts
        .into_iter()
        .partition(|c| only_outer_columns(c, &names));
    // A condition comparing outer and inner columns other than by equality cannot be a
    // join key: it is checked outside, on the inner values the subquery finds.
    let (mixed, kept): (Vec<Expr>, Vec<Expr>) = rest
        .into_iter()
        .partition(|c| is_mixed_condition(c, &names));
    // The same FROM and (inner) WHERE, with `projection` as the output.
    let with_output = |projection: Expr| -> Expr {
        let mut q = query.clone();
        q.limit_clause = None;
        if let SetExpr::Select(sel) = q.body.as_mut() {
            sel.projection = vec![SelectItem::UnnamedExpr(projection)];
            sel.selection = and_all(kept.clone());
        }
        Expr::Subquery(Box::new(q))
    };
    for mut condition in mixed {
        if !lift_inner_parts(&mut condition, &names, &|part| {
            with_output(call("first_value", vec![part]))
        }) {
            return None;
        }
        outer.push(condition);
    }
    let refs = refs_of(&output, &names);
    if refs.outer && !refs.unknown {
        let mut lifted = output.clone();
        let ok = lift_inner_parts(&mut lifted, &names, &|part| {
            with_output(call("first_value", vec![part]))
        });
        if !ok {
            return None;
        }
        let any_row = Expr::BinaryOp {
            left: Box::new(with_output(call(
                "count",
                vec![Expr::Wildcard(
                    datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken::empty(
                    ),
                )],
            ))),
            op: datafusion::sql::sqlparser::ast::BinaryOperator::Gt,
            right: Box::new(number("0")),
        };
        let mut conditions = outer;
        conditions.push(any_row);
        return Some(case_when(and_all(conditions)?, lifted));
    }
    let aggregated = with_output(call("first_value", vec![output]));
    Some(match and_all(outer) {
        Some(condition) => case_when(condition, aggregated),
        None => aggregated,
    })
}

/// A plain `SELECT e FROM ... [WHERE ...]` — no GROUP BY, HAVING or DISTINCT, one output
/// that is not an aggregate: its select and that output.
fn plain_single_output(query: &Query) -> Option<(&datafusion::sql::sqlparser::ast::Select, Expr)> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
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
        return None;
    }
    let output = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) => e.clone(),
        SelectItem::ExprWithAlias { expr, .. } => expr.clone(),
        _ => return None,
    };
    (!has_aggregate(&output)).then_some((select, output))
}

/// `ARRAY(SELECT e FROM ... WHERE p)` as `(SELECT array_agg(e) FROM ... WHERE p)`: the
/// correlation stays in the WHERE, where DataFusion decorrelates it (psql's `\du` asks
/// for each role's memberships this way). Only for a plain select whose order does not
/// matter; `None` otherwise.
fn array_agg_in_place(query: &Query) -> Option<Expr> {
    if query.order_by.is_some() || query.with.is_some() || query.limit_clause.is_some() {
        return None;
    }
    let (_, output) = plain_single_output(query)?;
    let mut q = query.clone();
    if let SetExpr::Select(sel) = q.body.as_mut() {
        sel.projection = vec![SelectItem::UnnamedExpr(call("array_agg", vec![output]))];
    }
    Some(Expr::Subquery(Box::new(q)))
}

/// Whether a WHERE condition reads both outer and inner columns and is not an equality
/// between an inner-only and an outer-only side (which DataFusion takes as a join key).
fn is_mixed_condition(condition: &Expr, inner: &[String]) -> bool {
    let refs = refs_of(condition, inner);
    if !(refs.outer && refs.inner) || refs.unknown {
        return false;
    }
    if let Expr::BinaryOp {
        left,
        op: datafusion::sql::sqlparser::ast::BinaryOperator::Eq,
        right,
    } = condition
    {
        let (l, r) = (refs_of(left, inner), refs_of(right, inner));
        let pure = |x: &Refs, outer: bool| !x.unknown && x.outer == outer && x.inner != outer;
        if (pure(&l, false) && pure(&r, true)) || (pure(&l, true) && pure(&r, false)) {
            return false;
        }
    }
    true
}

fn case_when(condition: Expr, result: Expr) -> Expr {
    Expr::Case {
        case_token: datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken::empty(
        ),
        end_token: datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        operand: None,
        conditions: vec![datafusion::sql::sqlparser::ast::CaseWhen { condition, result }],
        else_result: None,
    }
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

/// `ARRAY(SELECT e(x) FROM unnest(a) [AS] x)`, nothing more, → `array_transform(a, x ->
/// e(x))`: each element of `a` mapped, in order. DataFusion cannot run the subquery when
/// `a` belongs to the outer row (psql's `\d+` maps `tc.reloptions` so).
fn mapped_unnest(query: &Query) -> Option<Expr> {
    if query.with.is_some()
        || query.order_by.is_some()
        || query.limit_clause.is_some()
        || query.fetch.is_some()
    {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let plain_select = select.selection.is_none()
        && select.having.is_none()
        && select.distinct.is_none()
        && select.top.is_none()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    if !plain_select {
        return None;
    }
    let body = match select.projection.as_slice() {
        [SelectItem::UnnamedExpr(e)] | [SelectItem::ExprWithAlias { expr: e, .. }] => e.clone(),
        _ => return None,
    };
    let [from] = select.from.as_slice() else {
        return None;
    };
    if !from.joins.is_empty() {
        return None;
    }
    let element_name = |alias: &TableAlias| match alias.columns.as_slice() {
        [] => Some(alias.name.clone()),
        [only] => Some(only.name.clone()),
        _ => None,
    };
    let (array, element) = match &from.relation {
        TableFactor::Table {
            name,
            args: Some(args),
            alias: Some(alias),
            ..
        } if name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .is_some_and(|i| i.value.eq_ignore_ascii_case("unnest")) =>
        {
            match args.args.as_slice() {
                [FunctionArg::Unnamed(FunctionArgExpr::Expr(a))] => {
                    (a.clone(), element_name(alias)?)
                }
                _ => return None,
            }
        }
        TableFactor::UNNEST {
            alias: Some(alias),
            array_exprs,
            with_offset: false,
            with_ordinality: false,
            ..
        } => match array_exprs.as_slice() {
            [a] => (a.clone(), element_name(alias)?),
            _ => return None,
        },
        _ => return None,
    };
    let lambda = Expr::Lambda(LambdaFunction {
        params: OneOrManyWithParens::One(LambdaFunctionParameter {
            name: element,
            data_type: None,
        }),
        body: Box::new(body),
        syntax: LambdaSyntax::Arrow,
    });
    Some(call("array_transform", vec![array, lambda]))
}

fn is_string_literal(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)))
}

/// `CASE WHEN t.typtype = 'd' THEN (WITH RECURSIVE ... walk t's base types ...) END`,
/// the walk from a domain down to the type under it (asyncpg's type introspection), →
/// `CASE WHEN t.typtype = 'd' THEN t.typbasetype END`. DataFusion cannot run a recursive
/// query correlated with its outer row; the rewrite is exact because every domain in
/// userql's `pg_type` (the `information_schema` ones; `CREATE DOMAIN` is not supported)
/// lies directly over a base type, so the walk is one step.
fn domain_base_type(expr: &Expr) -> Option<Expr> {
    let Expr::Case {
        operand: None,
        conditions,
        else_result,
        case_token,
        end_token,
    } = expr
    else {
        return None;
    };
    let [when] = conditions.as_slice() else {
        return None;
    };
    let Expr::BinaryOp { left, op, right } = &when.condition else {
        return None;
    };
    let (Expr::CompoundIdentifier(parts), BinaryOperator::Eq) = (left.as_ref(), op) else {
        return None;
    };
    let [qualifier, column] = parts.as_slice() else {
        return None;
    };
    let is_domain_test = column.value.eq_ignore_ascii_case("typtype")
        && matches!(right.as_ref(), Expr::Value(v) if v.value == Value::SingleQuotedString("d".into()));
    let mut result = &when.result;
    while let Expr::Nested(inner) = result {
        result = inner;
    }
    let walks_recursively =
        matches!(result, Expr::Subquery(q) if q.with.as_ref().is_some_and(|w| w.recursive));
    if !(is_domain_test && walks_recursively) {
        return None;
    }
    Some(Expr::Case {
        case_token: case_token.clone(),
        end_token: end_token.clone(),
        operand: None,
        conditions: vec![CaseWhen {
            condition: when.condition.clone(),
            result: Expr::CompoundIdentifier(vec![qualifier.clone(), Ident::new("typbasetype")]),
        }],
        else_result: else_result.clone(),
    })
}

struct Rewriter;

impl VisitorMut for Rewriter {
    type Break = ();

    /// `FROM generate_series(1, n) g`: in PostgreSQL the alias of a one-column function
    /// also names its column (`SELECT g ...`); DataFusion calls it `value`.
    fn pre_visit_table_factor(
        &mut self,
        factor: &mut datafusion::sql::sqlparser::ast::TableFactor,
    ) -> ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{TableAliasColumnDef, TableFactor};
        if let TableFactor::Table {
            name,
            args: Some(_),
            alias: Some(alias),
            ..
        } = factor
            && alias.columns.is_empty()
            && name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .is_some_and(|i| i.value.eq_ignore_ascii_case("generate_series"))
        {
            alias
                .columns
                .push(TableAliasColumnDef::from_name(alias.name.value.clone()));
        }
        ControlFlow::Continue(())
    }

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
        if let Some(base) = domain_base_type(expr) {
            *expr = base;
        }
        if let Expr::Subquery(query) = expr
            && let Some(replacement) = decorrelated_subquery(query)
        {
            *expr = replacement;
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
                // ARRAY(subquery) of no rows is the empty array, never NULL.
                ("array", FunctionArguments::Subquery(query)) => mapped_unnest(query)
                    .or_else(|| array_agg_in_place(query))
                    .or_else(|| {
                        parse_expr(&format!(
                            "(SELECT array_agg(_a._v) FROM ({query}) AS _a (_v))"
                        ))
                    })
                    .map(|array| call("coalesce", vec![array, call("make_array", vec![])])),
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
            // A type oid shown as its name, as a `regtype` value prints (asyncpg reads
            // `elemtype::regtype::text`).
            if type_name == "regtype" && !is_string_literal(inner) {
                *expr = call(
                    "format_type",
                    vec![(**inner).clone(), Expr::value(Value::Null)],
                );
                return ControlFlow::Continue(());
            }
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
                        let original =
                            std::mem::replace(pattern.as_mut(), Expr::value(Value::Null));
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
        assert!(
            out.contains("NOT LIKE like_escape('pg/_' || '%', '/')"),
            "{out}"
        );
        assert!(out.contains("ESCAPE '\\'"), "{out}");
    }
}

#[cfg(test)]
mod catalog_query_shapes {
    use super::rewrite;

    fn rewritten(sql: &str) -> String {
        let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
        let parsed = datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, sql).unwrap();
        rewrite(parsed[0].clone()).to_string()
    }

    #[test]
    fn array_of_a_mapped_unnest_is_array_transform() {
        let out = rewritten(
            "SELECT array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x) FROM t",
        );
        assert!(
            out.contains(
                "coalesce(array_transform(tc.reloptions, x -> 'toast.' || x), make_array())"
            ),
            "{out}"
        );
        // A filtered select aggregates in place (its correlation stays in the WHERE);
        // an ordered one keeps the general form.
        let out = rewritten("SELECT array(select x from unnest(a) x where x > 1) FROM t");
        assert!(
            out.contains("(SELECT array_agg(x) FROM UNNEST(a) x WHERE x > 1)"),
            "{out}"
        );
        assert!(!out.contains("array_transform"), "{out}");
        let out = rewritten("SELECT array(select x from unnest(a) x order by x) FROM t");
        assert!(out.contains("array_agg(_a._v)"), "{out}");
    }

    #[test]
    fn a_domain_walk_is_its_base_type() {
        let out = rewritten(
            "SELECT CASE WHEN t.typtype = 'd' THEN (WITH RECURSIVE b(oid, depth) AS \
             (SELECT t2.typbasetype, 0 FROM pg_type t2 WHERE t2.oid = t.oid UNION ALL \
             SELECT t2.typbasetype, b.depth + 1 FROM pg_type t2, b WHERE b.oid = t2.oid) \
             SELECT oid FROM b ORDER BY depth DESC LIMIT 1) ELSE NULL END FROM pg_type t",
        );
        assert!(
            out.contains("CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE NULL END"),
            "{out}"
        );
        // Another CASE on typtype is left alone.
        let out = rewritten("SELECT CASE WHEN t.typtype = 'd' THEN 1 ELSE 0 END FROM pg_type t");
        assert!(out.contains("THEN 1 ELSE 0"), "{out}");
    }

    #[test]
    fn an_oid_as_regtype_is_its_name() {
        let out = rewritten("SELECT typelem::regtype::text, 'int4'::regtype FROM pg_type");
        assert!(out.contains("format_type(typelem, NULL)"), "{out}");
        assert!(
            out.contains("'int4'::REGTYPE") || out.contains("'int4'::regtype"),
            "{out}"
        );
    }
}
