//! `CAST(ts AS date) = DATE 'd'` → `ts >= 'd 00:00' AND ts < 'd+1 00:00'`, for timestamps
//! without time zone.
//!
//! The two are equal for every value, NULL included (both NULL), and the range reads the
//! timestamps as they are: no per-row date conversion (which arrow does through chrono, a
//! fifth of a `retention` over 10M events), and a predicate a Parquet scan can prune row
//! groups with. Runs as an optimiser rule, after constant folding has made `DATE 'd'` a
//! literal. A timestamp with a time zone is left alone: its date depends on the zone.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::expr::Cast;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

const SECONDS_PER_DAY: i64 = 86_400;

/// The optimiser rule.
#[derive(Debug, Default)]
pub struct DateEqualityAsRange;

impl OptimizerRule for DateEqualityAsRange {
    fn name(&self) -> &str {
        "userql_date_equality_as_range"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        if !matches!(
            plan,
            LogicalPlan::Filter(_) | LogicalPlan::Projection(_) | LogicalPlan::Aggregate(_)
        ) {
            return Ok(Transformed::no(plan));
        }
        let schema = merged_input_schema(&plan);
        // A rewritten output column keeps its name, so nothing above it changes.
        let names = NamePreserver::new(&plan);
        plan.map_expressions(|e| {
            let name = names.save(&e);
            Ok(e.transform_up(|e| rewrite_expr(e, &schema))?
                .update_data(|e| name.restore(e)))
        })
    }
}

/// The schema the node's expressions are written against (its inputs').
fn merged_input_schema(plan: &LogicalPlan) -> DFSchema {
    let mut schema = DFSchema::empty();
    for input in plan.inputs() {
        schema.merge(input.schema());
    }
    schema
}

/// `ts` in `unit`s since the epoch at the start of day `day` (days since the epoch).
fn start_of_day(day: i32, unit: &TimeUnit) -> Option<i64> {
    let seconds = i64::from(day).checked_mul(SECONDS_PER_DAY)?;
    match unit {
        TimeUnit::Second => Some(seconds),
        TimeUnit::Millisecond => seconds.checked_mul(1_000),
        TimeUnit::Microsecond => seconds.checked_mul(1_000_000),
        TimeUnit::Nanosecond => seconds.checked_mul(1_000_000_000),
    }
}

fn timestamp(value: i64, unit: &TimeUnit) -> ScalarValue {
    match unit {
        TimeUnit::Second => ScalarValue::TimestampSecond(Some(value), None),
        TimeUnit::Millisecond => ScalarValue::TimestampMillisecond(Some(value), None),
        TimeUnit::Microsecond => ScalarValue::TimestampMicrosecond(Some(value), None),
        TimeUnit::Nanosecond => ScalarValue::TimestampNanosecond(Some(value), None),
    }
}

fn rewrite_expr(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Eq,
        right,
    }) = &e
    else {
        return Ok(Transformed::no(e));
    };
    let (cast, day) = match (left.as_ref(), right.as_ref()) {
        (Expr::Cast(c), Expr::Literal(ScalarValue::Date32(Some(d)), _))
        | (Expr::Literal(ScalarValue::Date32(Some(d)), _), Expr::Cast(c)) => (c, *d),
        _ => return Ok(Transformed::no(e)),
    };
    let Cast { expr: ts, field } = cast;
    if field.data_type() != &DataType::Date32 {
        return Ok(Transformed::no(e));
    }
    let Ok(DataType::Timestamp(unit, None)) = ts.get_type(schema) else {
        return Ok(Transformed::no(e));
    };
    let (Some(start), Some(end)) = (start_of_day(day, &unit), start_of_day(day + 1, &unit)) else {
        return Ok(Transformed::no(e));
    };
    let ts = ts.as_ref().clone();
    let range = ts
        .clone()
        .gt_eq(Expr::Literal(timestamp(start, &unit), None))
        .and(ts.lt(Expr::Literal(timestamp(end, &unit), None)));
    Ok(Transformed::yes(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_start_at_midnight_in_every_unit() {
        // 2024-03-10 is day 19792 since 1970-01-01.
        assert_eq!(start_of_day(19_792, &TimeUnit::Second), Some(1_710_028_800));
        assert_eq!(
            start_of_day(19_792, &TimeUnit::Microsecond),
            Some(1_710_028_800_000_000)
        );
        assert_eq!(start_of_day(-1, &TimeUnit::Millisecond), Some(-86_400_000));
        assert_eq!(start_of_day(i32::MAX, &TimeUnit::Nanosecond), None);
    }
}
