//! Yield points above operators that emit many batches per batch they read.
//!
//! A query runs as tokio tasks that give their thread back only when a stream they poll
//! returns `Pending`. DataFusion's own `EnsureCooperative` rule makes scans and exchanges
//! spend tokio's per-task budget, which is enough while every operator reads about as many
//! batches as it emits. A join does not: a cross join of 160K rows with itself emits 160K
//! batches for each batch it reads, so one poll of the aggregate above it computed for
//! seconds. On a two-core server two such tasks held both worker threads, timers and
//! sockets went unserviced (tokio looks at them between polls), and `statement_timeout`
//! and CancelRequest took effect only when the query had finished, minutes late.
//!
//! Wrapping each fan-out operator in a [`CooperativeExec`] makes every batch it emits
//! spend budget, so the task yields about every 128 batches: the statement's deadline,
//! a CancelRequest and other sessions' messages are seen within milliseconds, and
//! dropping the query's stream stops its work at the next yield.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, SortMergeJoinExec, SymmetricHashJoinExec,
};
use datafusion::physical_plan::unnest::UnnestExec;

/// The physical optimiser rule; runs after DataFusion's own rules.
#[derive(Debug, Default)]
pub struct FanOutYieldPoints;

impl PhysicalOptimizerRule for FanOutYieldPoints {
    fn name(&self) -> &str {
        "userql_fan_out_yield_points"
    }

    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Each node wraps its fan-out children, so a wrapper already there (the rule run
        // twice) is seen as the parent and nothing is wrapped again.
        let plan = plan
            .transform_up(|node| {
                if node.is::<CooperativeExec>()
                    || !node.children().iter().any(|c| fans_out(c.as_ref()))
                {
                    return Ok(Transformed::no(node));
                }
                let children = node
                    .children()
                    .into_iter()
                    .map(|c| match fans_out(c.as_ref()) {
                        true => Arc::new(CooperativeExec::new(c.clone())) as _,
                        false => c.clone(),
                    })
                    .collect();
                replace_children_if_necessary(node, children).map(Transformed::yes)
            })?
            .data;
        Ok(match fans_out(plan.as_ref()) {
            true => Arc::new(CooperativeExec::new(plan)),
            false => plan,
        })
    }

    fn schema_check(&self) -> bool {
        // The wrapper passes its input's batches through unchanged.
        true
    }
}

/// Whether an operator can emit many batches for one batch it reads.
fn fans_out(node: &dyn ExecutionPlan) -> bool {
    node.is::<CrossJoinExec>()
        || node.is::<NestedLoopJoinExec>()
        || node.is::<HashJoinExec>()
        || node.is::<SortMergeJoinExec>()
        || node.is::<SymmetricHashJoinExec>()
        || node.is::<UnnestExec>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn plan_of(sql: &str) -> Arc<dyn ExecutionPlan> {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t AS VALUES (1, 'a'), (2, 'b')")
            .await
            .unwrap();
        let df = ctx.sql(sql).await.unwrap();
        df.create_physical_plan().await.unwrap()
    }

    fn names(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<String>) {
        out.push(plan.name().to_string());
        for child in plan.children() {
            names(child, out);
        }
    }

    fn wrapped_names(plan: Arc<dyn ExecutionPlan>) -> Vec<String> {
        let plan = FanOutYieldPoints
            .optimize(plan, &ConfigOptions::default())
            .unwrap();
        let mut out = Vec::new();
        names(&plan, &mut out);
        out
    }

    #[tokio::test]
    async fn a_cross_join_gets_one_yield_point_above_it() {
        let plan = plan_of("SELECT sum(a.column1 * b.column1) FROM t a CROSS JOIN t b").await;
        let names = wrapped_names(plan.clone());
        let at = names.iter().position(|n| n == "CrossJoinExec");
        let at = at.unwrap_or_else(|| panic!("no cross join in {names:?}"));
        assert_eq!(names[at - 1], "CooperativeExec");
        // Running the rule again adds nothing.
        let twice = FanOutYieldPoints
            .optimize(
                FanOutYieldPoints
                    .optimize(plan, &ConfigOptions::default())
                    .unwrap(),
                &ConfigOptions::default(),
            )
            .unwrap();
        let mut again = Vec::new();
        super::tests::names(&twice, &mut again);
        assert_eq!(again, names);
    }

    #[tokio::test]
    async fn a_join_at_the_root_is_wrapped_too() {
        let mut join = plan_of("SELECT * FROM t a CROSS JOIN t b").await;
        while join.name() != "CrossJoinExec" {
            join = join.children()[0].clone();
        }
        let names = wrapped_names(join);
        assert_eq!(names[..2], ["CooperativeExec", "CrossJoinExec"]);
    }

    #[tokio::test]
    async fn a_plain_aggregate_is_left_alone() {
        let plan = plan_of("SELECT column2, count(*) FROM t GROUP BY column2").await;
        let mut before = Vec::new();
        names(&plan, &mut before);
        assert_eq!(wrapped_names(plan), before);
    }
}
