//! `lifecycle(input [, as_of [, period]])` and `lifecycle_flow(input, period, from_ts,
//! to_ts)`: each customer's activity collected in order (`activity`), then staged and
//! counted in plain Rust (`stage`, `flow`).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, col, lit};
use datafusion::physical_plan::ExecutionPlan;

use super::activity;
use super::flow::{Flow, Period, Periods};
use super::stage::StageRules;
use crate::engine::{pg_text, settings as userql_settings};
use crate::error::sqlstate;
use crate::functions::args;
use crate::functions::input::{self, Expect, user_error};

/// The session's `userql.lifecycle_*` settings.
pub fn rules_of(options: &datafusion::config::ConfigOptions) -> StageRules {
    let s = userql_settings::of_session(options);
    StageRules {
        new_days: s.int("lifecycle_new_days"),
        active_days: s.int("lifecycle_active_days"),
        churn_days: s.int("lifecycle_churn_days"),
        mature_orders: s.int("lifecycle_mature_orders"),
    }
}

/// Plan the input now: the key and timestamp types are the output's.
fn plan_input(session: &dyn Session, function: &str, input: &str) -> Result<LogicalPlan> {
    let frame = futures::executor::block_on(input::frame(
        session,
        function,
        input,
        &[
            ("customer_id", Expect::Key),
            ("order_ts", Expect::Timestamp),
        ],
    ))?;
    Ok(frame.logical_plan().clone())
}

fn timestamp_literal(micros: i64, plan: &LogicalPlan) -> ScalarValue {
    let zone = match plan.schema().field(1).data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    ScalarValue::TimestampMicrosecond(Some(micros), zone)
}

fn period_of((months, days, micros): (i32, i32, i64)) -> Period {
    Period {
        months,
        days,
        micros,
    }
}

fn memory_exec(
    batch: RecordBatch,
    projection: Option<&Vec<usize>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = batch.schema();
    let exec = MemorySourceConfig::try_new_exec(&[vec![batch]], schema, projection.cloned())?;
    Ok(exec)
}

/// `lifecycle(...)`.
#[derive(Debug)]
pub struct LifecycleFunction;

const LIFECYCLE: &str = "lifecycle(input text [, as_of timestamp [, period interval]])";

impl TableFunctionImpl for LifecycleFunction {
    fn call_with_args(&self, call: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = call.exprs();
        if exprs.is_empty() || exprs.len() > 3 {
            return Err(user_error(
                sqlstate::UNDEFINED_FUNCTION,
                format!("{LIFECYCLE} takes 1 to 3 arguments, got {}", exprs.len()),
            ));
        }
        let session = call.session();
        let options = session.config().options();
        let zone = pg_text::session_zone(options);
        let input = args::text(&exprs[0], "lifecycle(input)")?;
        let as_of = match exprs.get(1) {
            Some(e) => args::timestamp(e, "lifecycle(input, as_of)", &zone)?,
            None => None,
        };
        let period = match exprs.get(2) {
            Some(e) => period_of(args::interval(e, "lifecycle(input, as_of, period)")?),
            None => Period {
                months: 0,
                days: 30,
                micros: 0,
            },
        };
        let plan = plan_input(session, "lifecycle", &input)?;
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "customer_id",
                plan.schema().field(0).data_type().clone(),
                false,
            ),
            Field::new("stage", DataType::Utf8, false),
            Field::new("previous_stage", DataType::Utf8, true),
            Field::new("reactivated", DataType::Boolean, false),
        ]));
        Ok(Arc::new(LifecycleTable {
            input: plan,
            as_of,
            period,
            rules: rules_of(options),
            schema,
        }))
    }
}

#[derive(Debug)]
struct LifecycleTable {
    input: LogicalPlan,
    as_of: Option<i64>,
    period: Period,
    rules: StageRules,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for LifecycleTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let keep = self
            .as_of
            .map(|t| col("order_ts").lt_eq(lit(timestamp_literal(t, &self.input))));
        let activity = activity::collect(state, &self.input, keep).await?;
        let Some(as_of) = self.as_of.or_else(|| activity.latest()) else {
            return memory_exec(RecordBatch::new_empty(self.schema.clone()), projection);
        };
        let before = self.period.add_times(as_of, -1).ok_or_else(|| {
            user_error(
                sqlstate::DATETIME_FIELD_OVERFLOW,
                "lifecycle: as_of minus period is out of range".into(),
            )
        })?;
        let n = activity.len();
        let mut stages = Vec::with_capacity(n);
        let mut previous = Vec::with_capacity(n);
        let mut reactivated = Vec::with_capacity(n);
        for i in 0..n {
            let times = activity.of(i);
            let stage = self.rules.stage_at(times, as_of).map(|s| s.code());
            stages.push(stage.unwrap_or_default());
            previous.push(self.rules.stage_at(times, before).map(|s| s.code()));
            reactivated.push(self.rules.reactivated(times, as_of));
        }
        let columns: Vec<ArrayRef> = vec![
            activity.keys.clone(),
            Arc::new(StringArray::from(stages)),
            Arc::new(StringArray::from(previous)),
            Arc::new(BooleanArray::from(reactivated)),
        ];
        memory_exec(
            RecordBatch::try_new(self.schema.clone(), columns)?,
            projection,
        )
    }
}

/// `lifecycle_flow(...)`.
#[derive(Debug)]
pub struct LifecycleFlowFunction;

const FLOW: &str =
    "lifecycle_flow(input text, period interval, from_ts timestamp, to_ts timestamp)";

impl TableFunctionImpl for LifecycleFlowFunction {
    fn call_with_args(&self, call: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = call.exprs();
        if exprs.len() != 4 {
            return Err(user_error(
                sqlstate::UNDEFINED_FUNCTION,
                format!("{FLOW} takes 4 arguments, got {}", exprs.len()),
            ));
        }
        let session = call.session();
        let zone = pg_text::session_zone(session.config().options());
        let input = args::text(&exprs[0], "lifecycle_flow(input)")?;
        let period = period_of(args::interval(&exprs[1], "lifecycle_flow(period)")?);
        let from = args::timestamp(&exprs[2], "lifecycle_flow(from_ts)", &zone)?;
        let to = args::timestamp(&exprs[3], "lifecycle_flow(to_ts)", &zone)?;
        let (Some(from), Some(to)) = (from, to) else {
            return Err(user_error(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("{FLOW}: from_ts and to_ts must not be NULL"),
            ));
        };
        let periods = Periods::new(period, from, to).map_err(|e| {
            user_error(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("lifecycle_flow: {e}"),
            )
        })?;
        let plan = plan_input(session, "lifecycle_flow", &input)?;
        let zone_of_input = match plan.schema().field(1).data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        let count = |name: &str| Field::new(name, DataType::Int64, false);
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "period_start",
                DataType::Timestamp(TimeUnit::Microsecond, zone_of_input),
                false,
            ),
            count("active"),
            count("new"),
            count("retained"),
            count("reactivated"),
            count("dormant"),
        ]));
        Ok(Arc::new(LifecycleFlowTable {
            input: plan,
            periods,
            schema,
        }))
    }
}

#[derive(Debug)]
struct LifecycleFlowTable {
    input: LogicalPlan,
    periods: Periods,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for LifecycleFlowTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Activity after the last period matters to no count.
        let keep = col("order_ts").lt(lit(timestamp_literal(self.periods.end(), &self.input)));
        let activity = activity::collect(state, &self.input, Some(keep)).await?;
        let mut flow = Flow::new(self.periods.clone());
        for i in 0..activity.len() {
            flow.add_customer(activity.of(i));
        }
        let rows = flow.finish();
        let starts = TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.0));
        let starts: ArrayRef = match self.schema.field(0).data_type() {
            DataType::Timestamp(_, Some(tz)) => Arc::new(starts.with_timezone(tz.clone())),
            _ => Arc::new(starts),
        };
        let counts = |f: fn(&super::flow::FlowCounts) -> u64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| f(&r.1) as i64),
            ))
        };
        let columns = vec![
            starts,
            counts(|c| c.active),
            counts(|c| c.new),
            counts(|c| c.retained),
            counts(|c| c.reactivated),
            counts(|c| c.dormant),
        ];
        memory_exec(
            RecordBatch::try_new(self.schema.clone(), columns)?,
            projection,
        )
    }
}
