//! `DELETE` and `UPDATE` of stored tables, run from the statement's own plan.
//!
//! DataFusion hands a table's `delete_from` / `update` the filters it finds in the
//! *optimised* plan, and an optimiser may have turned them into something else: a
//! `WHERE x IN (SELECT ...)` becomes a semi join and `WHERE 1 = 0` an empty relation, and
//! the table then sees no filter at all — and would change every row. So the session
//! takes the predicate and the assignments from the analysed (type-checked, not yet
//! optimised) plan itself:
//!
//! - a predicate and assignments of columns, constants and operators go to the Delta
//!   table's own `DELETE` / `UPDATE` (which rewrites only the files that hold matches);
//! - anything else — subqueries, functions — is evaluated by DataFusion: the table's new
//!   rows are computed (`rows EXCEPT ALL matched` for `DELETE`; plus the updated rows for
//!   `UPDATE`) and replace the old ones in one commit, under the table's write lock.
//!
//! Either way a statement is one Delta commit or nothing.

use std::sync::Arc;

use datafusion::common::DFSchema;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::provider_as_source;
use datafusion::execution::context::SessionState;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    DmlStatement, Expr, LogicalPlan, LogicalPlanBuilder, WriteOp, cast, col, lit,
};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_plan::collect;

use super::store::table::StoredTable;
use crate::error::{UserqlError, sqlstate};

/// The parts of a `DELETE` / `UPDATE` plan.
struct Target {
    /// The rows the statement applies to: the filter over the table (or the table).
    matched: LogicalPlan,
    /// The predicate (`None`: every row).
    predicate: Option<Expr>,
}

/// Split the analysed input of a `DELETE` (or the input below an `UPDATE`'s projection)
/// into the filter and the table scan under it.
fn target_of(plan: &LogicalPlan) -> Result<Target, UserqlError> {
    let mut predicates = Vec::new();
    let mut node = plan;
    loop {
        match node {
            LogicalPlan::Filter(f) => {
                predicates.push(f.predicate.clone());
                node = f.input.as_ref();
            }
            LogicalPlan::SubqueryAlias(a) => node = a.input.as_ref(),
            LogicalPlan::TableScan(_) => break,
            other => {
                return Err(UserqlError::unsupported(format!(
                    "this form of DELETE/UPDATE is not supported ({})",
                    other.display()
                ))
                .with_hint("write the condition in WHERE; UPDATE ... FROM is not supported"));
            }
        }
    }
    Ok(Target {
        matched: plan.clone(),
        predicate: conjunction(predicates),
    })
}

/// Whether `expr` holds a subquery or a function call: then only DataFusion can evaluate
/// it, not the Delta table's own predicate evaluation.
fn needs_datafusion(expr: &Expr) -> bool {
    let mut found = false;
    let _ = expr.apply(|e| {
        if matches!(
            e,
            Expr::ScalarSubquery(_)
                | Expr::InSubquery(_)
                | Expr::Exists(_)
                | Expr::ScalarFunction(_)
                | Expr::AggregateFunction(_)
                | Expr::WindowFunction(_)
                | Expr::Placeholder(_)
        ) {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Constants folded (a literal cast to the column's type becomes a literal), columns
/// unqualified (the Delta table resolves names against itself).
fn simplified(expr: Expr, schema: &DFSchema, state: &SessionState) -> Result<Expr, UserqlError> {
    let context = SimplifyContext::builder()
        .with_schema(Arc::new(schema.clone()))
        .with_config_options(Arc::new(state.config_options().as_ref().clone()))
        .build();
    let expr = ExprSimplifier::new(context).simplify(expr)?;
    let expr = expr
        .transform(|e| match e {
            Expr::Column(c) if c.relation.is_some() => {
                Ok(datafusion::common::tree_node::Transformed::yes(
                    Expr::Column(datafusion::common::Column::new_unqualified(c.name)),
                ))
            }
            other => Ok(datafusion::common::tree_node::Transformed::no(other)),
        })?
        .data;
    Ok(expr)
}

/// Run a `DELETE` or `UPDATE` on `table`; the rows it changed.
pub async fn run(
    table: &Arc<StoredTable>,
    table_name: &str,
    dml: &DmlStatement,
    state: &SessionState,
) -> Result<u64, UserqlError> {
    let analysed = state.analyzer().execute_and_check(
        dml.input.as_ref().clone(),
        state.config_options(),
        |_, _| {},
    )?;
    match dml.op {
        WriteOp::Delete => delete(table, table_name, analysed, state).await,
        WriteOp::Update => update(table, table_name, analysed, state).await,
        _ => Err(UserqlError::new(
            sqlstate::INTERNAL_ERROR,
            "internal error: dml::run takes DELETE or UPDATE",
        )),
    }
}

async fn delete(
    table: &Arc<StoredTable>,
    table_name: &str,
    analysed: LogicalPlan,
    state: &SessionState,
) -> Result<u64, UserqlError> {
    let target = target_of(&analysed)?;
    let schema = target.matched.schema().as_ref().clone();
    let predicate = target
        .predicate
        .map(|p| simplified(p, &schema, state))
        .transpose()?;
    if !predicate.as_ref().is_some_and(needs_datafusion) {
        return Ok(table.delete_where(predicate).await?);
    }
    rewrite(table, table_name, state, &target.matched, None).await
}

async fn update(
    table: &Arc<StoredTable>,
    table_name: &str,
    analysed: LogicalPlan,
    state: &SessionState,
) -> Result<u64, UserqlError> {
    let LogicalPlan::Projection(projection) = &analysed else {
        return Err(UserqlError::unsupported(
            "this form of UPDATE is not supported",
        ));
    };
    let target = target_of(projection.input.as_ref())?;
    let schema = target.matched.schema().as_ref().clone();
    let table_schema = datafusion::catalog::TableProvider::schema(table.as_ref());
    let mut assignments = Vec::new();
    let mut datafusion_only = false;
    for (expr, field) in projection.expr.iter().zip(table_schema.fields()) {
        let value = match expr {
            Expr::Alias(a) => a.expr.as_ref().clone(),
            other => other.clone(),
        };
        // Unchanged columns come as references to themselves.
        if matches!(&value, Expr::Column(c) if c.name == *field.name()) {
            continue;
        }
        let value = simplified(value, &schema, state)?;
        datafusion_only |= needs_datafusion(&value);
        assignments.push((field.name().clone(), value));
    }
    let predicate = target
        .predicate
        .clone()
        .map(|p| simplified(p, &schema, state))
        .transpose()?;
    datafusion_only |= predicate.as_ref().is_some_and(needs_datafusion);
    if !datafusion_only {
        return Ok(table.update_where(assignments, predicate).await?);
    }
    rewrite(table, table_name, state, &target.matched, Some(&analysed)).await
}

/// Replace the table's rows with `rows EXCEPT ALL matched` (plus `updated` for an
/// `UPDATE`) in one commit; the number of matched rows.
async fn rewrite(
    table: &Arc<StoredTable>,
    table_name: &str,
    state: &SessionState,
    matched: &LogicalPlan,
    updated: Option<&LogicalPlan>,
) -> Result<u64, UserqlError> {
    // Hold the write lock from planning to commit, so the plan reads the latest rows and
    // no other write lands in between.
    let _guard = table.lock_writes().await;
    let provider: Arc<dyn datafusion::catalog::TableProvider> = table.clone();
    let storage = provider.schema();
    let scan = LogicalPlanBuilder::scan(table_name, provider_as_source(provider), None)?.build()?;
    let matched_count = LogicalPlanBuilder::from(matched.clone())
        .aggregate(Vec::<Expr>::new(), vec![count(lit(1)).alias("n")])?
        .build()?;
    let physical = state
        .create_physical_plan(&state.optimize(&matched_count)?)
        .await?;
    let counted = collect(physical, state.task_ctx()).await?;
    let n = counted
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0) as u64;
    if n == 0 {
        return Ok(0);
    }
    let kept = LogicalPlanBuilder::except(scan, matched.clone(), true)?;
    let mut content = LogicalPlanBuilder::from(kept);
    if let Some(updated) = updated {
        content = content.union(updated.clone())?;
    }
    // Back to the stored types, by position.
    let content = content.build()?;
    let exprs: Vec<Expr> = content
        .schema()
        .columns()
        .into_iter()
        .zip(storage.fields())
        .map(|(c, f)| cast(col(c), f.data_type().clone()).alias(f.name()))
        .collect();
    let content = LogicalPlanBuilder::from(content).project(exprs)?.build()?;
    let physical = state
        .create_physical_plan(&state.optimize(&content)?)
        .await?;
    table.overwrite_locked(physical, &state.task_ctx()).await?;
    Ok(n)
}
