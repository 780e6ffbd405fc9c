//! A quoted literal compared with a typed value takes that value's type, as PostgreSQL's
//! literals of "unknown" type do: `flag = 'f'` compares booleans, `n = '05'` integers
//! (DataFusion would refuse the first and compare the second as text), `ts > '2024-01-01'`
//! timestamps. The text is read by PostgreSQL's input rules (`pg_text`), so a literal that
//! is no value of that type is PostgreSQL's error (`invalid input syntax for type
//! boolean: "maybe"`), not a silent mismatch.
//!
//! Runs before DataFusion's type coercion, on comparisons, `IN` lists and `BETWEEN`.

use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::{Between, InList};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;

use super::pg_text;

/// The analyzer rule.
#[derive(Debug, Default)]
pub struct UnknownLiteralRule;

fn literal_text(e: &Expr) -> Option<&str> {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)), _)
        | Expr::Literal(ScalarValue::Utf8View(Some(s)), _)
        | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _) => Some(s),
        _ => None,
    }
}

fn is_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null
    )
}

/// The literal `text` read as `target`, when `target` is a type it should become.
fn typed(text: &str, target: &DataType, zone: &Tz) -> Result<Option<Expr>> {
    if is_text(target)
        || !pg_text::input::handles(target)
        || matches!(target, DataType::List(_) | DataType::LargeList(_))
    {
        return Ok(None);
    }
    let array = pg_text::input::parse_column(&[Some(text)], target, zone)
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    Ok(Some(Expr::Literal(
        ScalarValue::try_from_array(array.as_ref(), 0)?,
        None,
    )))
}

fn is_comparison(op: &Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
    )
}

fn rewrite(e: Expr, schema: &DFSchema, zone: &Tz) -> Result<Transformed<Expr>> {
    let type_of = |e: &Expr| e.get_type(schema).ok();
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if is_comparison(&op) => {
            let (mut l, mut r) = (*left, *right);
            let mut changed = false;
            if let (Some(text), Some(t)) = (literal_text(&r), type_of(&l))
                && let Some(new) = typed(text, &t, zone)?
            {
                r = new;
                changed = true;
            } else if let (Some(text), Some(t)) = (literal_text(&l), type_of(&r))
                && let Some(new) = typed(text, &t, zone)?
            {
                l = new;
                changed = true;
            }
            let e = Expr::BinaryExpr(BinaryExpr::new(Box::new(l), op, Box::new(r)));
            Ok(if changed {
                Transformed::yes(e)
            } else {
                Transformed::no(e)
            })
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => {
            let mut changed = false;
            let list = match type_of(&expr) {
                Some(t) => list
                    .into_iter()
                    .map(|item| match literal_text(&item) {
                        Some(text) => match typed(text, &t, zone)? {
                            Some(new) => {
                                changed = true;
                                Ok(new)
                            }
                            None => Ok(item),
                        },
                        None => Ok(item),
                    })
                    .collect::<Result<Vec<_>>>()?,
                None => list,
            };
            let e = Expr::InList(InList {
                expr,
                list,
                negated,
            });
            Ok(if changed {
                Transformed::yes(e)
            } else {
                Transformed::no(e)
            })
        }
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => {
            let mut changed = false;
            let (mut low, mut high) = (*low, *high);
            if let Some(t) = type_of(&expr) {
                for bound in [&mut low, &mut high] {
                    if let Some(text) = literal_text(bound)
                        && let Some(new) = typed(text, &t, zone)?
                    {
                        *bound = new;
                        changed = true;
                    }
                }
            }
            let e = Expr::Between(Between::new(expr, negated, Box::new(low), Box::new(high)));
            Ok(if changed {
                Transformed::yes(e)
            } else {
                Transformed::no(e)
            })
        }
        other => Ok(Transformed::no(other)),
    }
}

impl AnalyzerRule for UnknownLiteralRule {
    fn name(&self) -> &str {
        "userql_unknown_literals"
    }

    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        let zone = pg_text::session_zone(config);
        plan.transform_up_with_subqueries(|node| {
            let schema = super::text_input::input_schema(&node);
            node.map_expressions(|e| e.transform_up(|e| rewrite(e, &schema, &zone)))
        })
        .map(|t| t.data)
    }
}
