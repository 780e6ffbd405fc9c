//! `rfm(input [, as_of])`: per-customer totals aggregated by DataFusion (in parallel,
//! under the memory limit), then scored and labelled in plain Rust (`scoring`, `labels`).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result;
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::logical_expr::{Expr, LogicalPlan, col, lit};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::DataFrame;

use super::labels::{Language, Segment, ValueClass};
use super::scoring::{self, CustomerTotals};
use crate::engine::{pg_text, settings as userql_settings};
use crate::error::sqlstate;
use crate::functions::args;
use crate::functions::input::{self, Expect, user_error};

const SIGNATURE: &str = "rfm(input text [, as_of timestamp])";

/// `rfm(...)` as a table function.
#[derive(Debug)]
pub struct RfmFunction;

impl TableFunctionImpl for RfmFunction {
    fn call_with_args(&self, call: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = call.exprs();
        if exprs.is_empty() || exprs.len() > 2 {
            return Err(user_error(
                sqlstate::UNDEFINED_FUNCTION,
                format!("{SIGNATURE} takes 1 or 2 arguments, got {}", exprs.len()),
            ));
        }
        let session = call.session();
        let options = session.config().options();
        let zone = pg_text::session_zone(options);
        let input = args::text(&exprs[0], "rfm(input)")?;
        let as_of = match exprs.get(1) {
            Some(e) => args::timestamp(e, "rfm(input, as_of)", &zone)?,
            None => None,
        };
        let settings = userql_settings::of_session(options);
        let bins = settings.int("rfm_bins") as u32;
        let language = Language::from_setting(settings.text("rfm_language"));
        // The input is planned now: its key and timestamp types are the output's.
        let frame = futures::executor::block_on(input::frame(
            session,
            "rfm",
            &input,
            &[
                ("customer_id", Expect::Key),
                ("order_ts", Expect::Timestamp),
                ("amount", Expect::Number),
            ],
        ))?;
        let key_type = frame.schema().field(0).data_type().clone();
        let ts_type = frame.schema().field(1).data_type().clone();
        Ok(Arc::new(RfmTable {
            input: frame.logical_plan().clone(),
            as_of,
            bins,
            language,
            schema: output_schema(key_type, ts_type),
        }))
    }
}

fn output_schema(key: DataType, ts: DataType) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("customer_id", key, false),
        Field::new("first_order_ts", ts.clone(), false),
        Field::new("last_order_ts", ts, false),
        Field::new("recency_days", DataType::Int64, false),
        Field::new("frequency", DataType::Int64, false),
        Field::new("monetary", DataType::Float64, false),
        Field::new("r_score", DataType::Int32, false),
        Field::new("f_score", DataType::Int32, false),
        Field::new("m_score", DataType::Int32, false),
        Field::new("rfm_cell", DataType::Utf8, false),
        Field::new("segment", DataType::Utf8, true),
        Field::new("value_class", DataType::Utf8, false),
    ]))
}

/// A planned `rfm` call, computed when scanned.
#[derive(Debug)]
struct RfmTable {
    input: LogicalPlan,
    as_of: Option<i64>,
    bins: u32,
    language: Language,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for RfmTable {
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
        let batch = self.compute(state).await?;
        let exec = MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}

impl RfmTable {
    async fn compute(&self, state: &dyn Session) -> Result<RecordBatch> {
        let ctx = input::context_of(state)?;
        let mut frame = DataFrame::new(ctx.state(), self.input.clone()).filter(
            col("customer_id")
                .is_not_null()
                .and(col("order_ts").is_not_null())
                .and(col("amount").is_not_null()),
        )?;
        if let Some(as_of) = self.as_of {
            frame = frame.filter(col("order_ts").lt_eq(lit(timestamp_literal(
                as_of,
                &self.schema.field(1).data_type().clone(),
            ))))?;
        }
        let totals = frame
            .aggregate(
                vec![col("customer_id")],
                vec![
                    min(col("order_ts")).alias("first"),
                    max(col("order_ts")).alias("last"),
                    count(lit(1)).alias("n"),
                    sum(col("amount")).alias("total"),
                ],
            )?
            .collect()
            .await?;
        let agg_schema = match totals.first() {
            Some(b) => b.schema(),
            None => return self.empty_or_error(state).await,
        };
        let all = concat_batches(&agg_schema, &totals)?;
        if all.num_rows() == 0 {
            return self.empty_or_error(state).await;
        }
        let first = all.column(1).as_primitive::<TimestampMicrosecondType>();
        let last = all.column(2).as_primitive::<TimestampMicrosecondType>();
        let n = all.column(3).as_primitive::<Int64Type>();
        let total = all.column(4).as_primitive::<Float64Type>();
        let as_of = match self.as_of {
            Some(t) => t,
            None => last.values().iter().copied().max().unwrap_or_default(),
        };
        let customers: Vec<CustomerTotals> = (0..all.num_rows())
            .map(|i| CustomerTotals {
                recency_days: scoring::whole_days(as_of, last.value(i)),
                frequency: n.value(i),
                monetary: total.value(i),
            })
            .collect();
        let scores = scoring::score_all(&customers, self.bins);
        let averages = scoring::averages(&customers);
        let rows = customers.len();
        let mut cells = Vec::with_capacity(rows);
        let mut segments = Vec::with_capacity(rows);
        let mut classes = Vec::with_capacity(rows);
        for (i, c) in customers.iter().enumerate() {
            let (r, f, m) = (scores.r[i], scores.f[i], scores.m[i]);
            cells.push(format!("{r}{f}{m}"));
            segments.push(if self.bins == 5 {
                Segment::of(r as i64, f as i64).map(|s| s.label(self.language))
            } else {
                None
            });
            let class = averages.map(|a| {
                ValueClass::of(
                    c.recency_days as f64,
                    c.frequency as f64,
                    c.monetary,
                    a.recency_days,
                    a.frequency,
                    a.monetary,
                )
                .label(self.language)
            });
            classes.push(class.unwrap_or_default());
        }
        let ts_type = self.schema.field(1).data_type().clone();
        let with_zone = |a: &TimestampMicrosecondArray| -> ArrayRef {
            match &ts_type {
                DataType::Timestamp(_, Some(tz)) => Arc::new(a.clone().with_timezone(tz.clone())),
                _ => Arc::new(a.clone()),
            }
        };
        let columns: Vec<ArrayRef> = vec![
            all.column(0).clone(),
            with_zone(first),
            with_zone(last),
            Arc::new(Int64Array::from_iter_values(
                customers.iter().map(|c| c.recency_days),
            )),
            Arc::new(Int64Array::from_iter_values(
                customers.iter().map(|c| c.frequency),
            )),
            Arc::new(Float64Array::from_iter_values(
                customers.iter().map(|c| c.monetary),
            )),
            Arc::new(Int32Array::from_iter_values(
                scores.r.iter().map(|&s| s as i32),
            )),
            Arc::new(Int32Array::from_iter_values(
                scores.f.iter().map(|&s| s as i32),
            )),
            Arc::new(Int32Array::from_iter_values(
                scores.m.iter().map(|&s| s as i32),
            )),
            Arc::new(StringArray::from(cells)),
            Arc::new(StringArray::from(segments)),
            Arc::new(StringArray::from(classes)),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// No customer had an order at or before `as_of`: an empty result, unless there were
    /// orders, all after `as_of` — then the caller's `as_of` is surely a mistake.
    async fn empty_or_error(&self, state: &dyn Session) -> Result<RecordBatch> {
        if let Some(as_of) = self.as_of {
            let ctx = input::context_of(state)?;
            let first = DataFrame::new(ctx.state(), self.input.clone())
                .aggregate(vec![], vec![min(col("order_ts")).alias("first")])?
                .collect()
                .await?;
            let earliest = first
                .first()
                .map(|b| {
                    b.column(0)
                        .as_primitive::<TimestampMicrosecondType>()
                        .clone()
                })
                .filter(|a| !a.is_empty() && a.is_valid(0))
                .map(|a| a.value(0));
            if let Some(earliest) = earliest {
                let mut as_of_text = String::new();
                pg_text::datetime::write_timestamp(&mut as_of_text, as_of, 1_000);
                let mut first_text = String::new();
                pg_text::datetime::write_timestamp(&mut first_text, earliest, 1_000);
                return Err(user_error(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!(
                        "rfm: as_of {as_of_text} is before the first order ({first_text}); \
                         leave it out to use the latest order time"
                    ),
                ));
            }
        }
        Ok(RecordBatch::new_empty(self.schema.clone()))
    }
}

/// A microsecond timestamp literal of `ts_type` (the input's zone kept).
fn timestamp_literal(micros: i64, ts_type: &DataType) -> datafusion::common::ScalarValue {
    let zone = match ts_type {
        DataType::Timestamp(TimeUnit::Microsecond, tz) => tz.clone(),
        _ => None,
    };
    datafusion::common::ScalarValue::TimestampMicrosecond(Some(micros), zone)
}
