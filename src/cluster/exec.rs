//! How `serve --cluster` runs a query on the cluster: [`ClusterPlanner`] plans every
//! statement here as before, and a plan that reads channel files (and nothing that
//! cannot travel) is wrapped in a [`ClusterExec`], which sends it to the scheduler when
//! it runs and streams the result back. Everything else (catalog queries, table
//! functions' results, writes, Delta scans) runs here, as on one machine.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use ballista_core::extension::SessionConfigExt;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::scalar_subquery::ScalarSubqueryExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion_proto::physical_plan::AsExecutionPlan;
use datafusion_proto::protobuf::PhysicalPlanNode;
use futures::{StreamExt, TryStreamExt};

use super::SchedulerAddr;
use super::codec::UserqlCodec;

/// In-memory data a plan may carry to the cluster (a `VALUES` list, a small lookup):
/// more than this, and the query runs here (it was computed here anyway).
const MAX_INLINE_BYTES: usize = 1 << 20;

/// The largest message a cluster query's gRPC clients accept (see [`ClusterExec::execute`]).
const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// Plans each statement as DataFusion does, then hands what can run on the cluster to
/// a [`ClusterExec`].
#[derive(Debug)]
pub struct ClusterPlanner {
    scheduler: SchedulerAddr,
}

impl ClusterPlanner {
    pub fn new(scheduler: SchedulerAddr) -> Self {
        ClusterPlanner { scheduler }
    }
}

#[async_trait]
impl QueryPlanner for ClusterPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn datafusion::catalog::Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = DefaultPhysicalPlanner::default()
            .create_physical_plan(logical_plan, session)
            .await?;
        Ok(distribute(plan, &self.scheduler))
    }
}

/// `plan` wrapped in a [`ClusterExec`] when it reads files and every node of it can be
/// sent; otherwise `plan` as it is.
pub fn distribute(
    plan: Arc<dyn ExecutionPlan>,
    scheduler: &SchedulerAddr,
) -> Arc<dyn ExecutionPlan> {
    if !reads_files_only(&plan) {
        return plan;
    }
    // One partition out, in the plan's order: the cluster returns a job's output
    // partitions one after another.
    let single: Arc<dyn ExecutionPlan> = if plan.output_partitioning().partition_count() <= 1 {
        plan.clone()
    } else if let Some(ordering) = plan.output_ordering() {
        Arc::new(SortPreservingMergeExec::new(ordering.clone(), plan.clone()))
    } else {
        Arc::new(CoalescePartitionsExec::new(plan.clone()))
    };
    match PhysicalPlanNode::try_from_physical_plan(single.clone(), &UserqlCodec::default()) {
        Ok(_) => Arc::new(ClusterExec::new(single, scheduler.clone())),
        Err(e) => {
            tracing::debug!("runs here, not on the cluster: {e}");
            plan
        }
    }
}

/// Whether `plan` scans at least one file and its other leaves are small in-memory
/// data (which travel inside the plan).
fn reads_files_only(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let mut files = false;
    let mut other = false;
    let _ = plan.apply(|node| {
        if let Some(repartition) = node.downcast_ref::<RepartitionExec>()
            && matches!(repartition.partitioning(), Partitioning::RoundRobinBatch(_))
        {
            // Through Ballista's shuffle, rows of a round-robin repartition came back
            // more than once (a LIMIT 3 gave 5 rows): such a plan runs here.
            other = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        if node.is::<ScalarSubqueryExec>() {
            // It writes, but an executor cannot read it back: its subquery expressions
            // are only decoded inside a stage that holds the subquery, and Ballista's
            // stages split them apart.
            other = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        if !node.children().is_empty() {
            return Ok(TreeNodeRecursion::Continue);
        }
        let source = node
            .downcast_ref::<DataSourceExec>()
            .map(|s| s.data_source());
        if source.is_some_and(|s| s.downcast_ref::<FileScanConfig>().is_some()) {
            files = true;
        } else if let Some(memory) = source.and_then(|s| s.downcast_ref::<MemorySourceConfig>()) {
            let bytes: usize = memory
                .partitions()
                .iter()
                .flatten()
                .map(|b| b.get_array_memory_size())
                .sum();
            other |= bytes > MAX_INLINE_BYTES;
        } else if !(node.is::<EmptyExec>() || node.is::<PlaceholderRowExec>()) {
            other = true;
        }
        Ok(if other {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    files && !other
}

/// A query the cluster runs: `input` (one output partition) is sent to the scheduler
/// when this runs, with the session's settings, and its result streamed back.
#[derive(Debug)]
pub struct ClusterExec {
    input: Arc<dyn ExecutionPlan>,
    scheduler: SchedulerAddr,
    properties: Arc<PlanProperties>,
}

impl ClusterExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, scheduler: SchedulerAddr) -> Self {
        let properties = PlanProperties::clone(input.properties())
            .with_partitioning(Partitioning::UnknownPartitioning(1))
            .into();
        ClusterExec {
            input,
            scheduler,
            properties,
        }
    }
}

impl DisplayAs for ClusterExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterExec: scheduler={}", self.scheduler)
    }
}

impl ExecutionPlan for ClusterExec {
    fn name(&self) -> &str {
        "ClusterExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        datafusion::common::assert_eq_or_internal_err!(
            children.len(),
            1,
            "ClusterExec has one input"
        );
        Ok(Arc::new(ClusterExec::new(
            children.swap_remove(0),
            self.scheduler.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        datafusion::common::assert_eq_or_internal_err!(
            partition,
            0,
            "ClusterExec has one partition"
        );
        let plan = self.input.clone();
        let url = self.scheduler.url();
        let schema = plan.schema();
        // Ballista's client reads its own section, with its defaults when absent, but a
        // larger message limit (for the client and the executors' shuffle readers, as the
        // setting travels with the job): a batch of string views is sent with every buffer
        // its views point into, which passes Ballista's 16 MiB default for a sorted
        // result of a few hundred thousand rows.
        // A name of its own, to find the job by when the statement stops early.
        let name = super::cancel::job_name();
        let config = context
            .session_config()
            .clone()
            .with_ballista_grpc_client_max_message_size(MAX_MESSAGE_BYTES)
            .with_ballista_job_name(&name);
        let session_id = context.session_id();
        let job = async move {
            let codec = UserqlCodec::default();
            ballista_core::execution_plans::execute_physical_plan::<PhysicalPlanNode>(
                url,
                &config.ballista_config(),
                plan,
                &codec,
                session_id,
                config,
            )
            .await
        };
        let stream = futures::stream::once(job)
            .try_flatten()
            .map_err(super::errors::from_cluster);
        let stream = super::cancel::CancelOnDrop::new(stream.boxed(), self.scheduler.clone(), name);
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
