//! Aggregates typed as PostgreSQL types them, where DataFusion differs in a way clients
//! see: `avg` of integers is `numeric` in PostgreSQL (asyncpg and psycopg hand back a
//! `Decimal`, JDBC a `BigDecimal`), `double precision` in DataFusion. The argument is
//! cast to `numeric`, so the average is exact (DataFusion's decimal `avg` keeps four more
//! digits of scale than its input: `24.5000`).
//!
//! Applied to the plan as SQL planning leaves it, so the result description (read from
//! that plan) and the rows agree.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::error::Result;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, cast};

/// The numeric type integer averages are taken in: wide enough for any `int8` sum.
const NUMERIC_OF_INTEGERS: DataType = DataType::Decimal128(38, 0);

fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// Every `avg(integer)` in `plan` (subqueries included) as `avg(integer::numeric)`,
/// keeping its output name.
pub fn integer_avg_as_numeric(plan: LogicalPlan) -> Result<LogicalPlan> {
    let rewritten = plan.transform_up_with_subqueries(|plan| {
        let LogicalPlan::Aggregate(_) = &plan else {
            return Ok(Transformed::no(plan));
        };
        let input_schema = plan.inputs()[0].schema().clone();
        let rewritten = plan.map_expressions(|expr| {
            let name = expr.schema_name().to_string();
            let mut inner = &expr;
            while let Expr::Alias(alias) = inner {
                inner = &alias.expr;
            }
            let Expr::AggregateFunction(AggregateFunction { func, params }) = inner else {
                return Ok(Transformed::no(expr));
            };
            let [arg] = params.args.as_slice() else {
                return Ok(Transformed::no(expr));
            };
            if func.name() != "avg" || !is_integer(&arg.get_type(&input_schema)?) {
                return Ok(Transformed::no(expr));
            }
            let mut params = params.clone();
            params.args = vec![cast(arg.clone(), NUMERIC_OF_INTEGERS)];
            let numeric = Expr::AggregateFunction(AggregateFunction {
                func: func.clone(),
                params,
            });
            Ok(Transformed::yes(numeric.alias(name)))
        })?;
        if rewritten.transformed {
            rewritten.map_data(|p| p.recompute_schema())
        } else {
            Ok(rewritten)
        }
    })?;
    if !rewritten.transformed {
        return Ok(rewritten.data);
    }
    // The nodes above a retyped aggregate still describe its old type.
    rewritten
        .data
        .transform_up_with_subqueries(|plan| Ok(Transformed::yes(plan.recompute_schema()?)))
        .map(|t| t.data)
}
