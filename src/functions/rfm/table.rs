//! `rfm(input [, as_of])`: per-customer totals (for `bigint` ids by `totals`, in parallel;
//! for text ids, or when the memory pool will not hold those tables, by DataFusion's
//! aggregate, which spills), then scored and labelled in plain Rust (`scoring`, `labels`).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, RecordBatch,
    RecordBatchOptions, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result;
use datafusion::functions_aggregate::expr_fn::{count, max, min};
use datafusion::logical_expr::{Expr, LogicalPlan, col, lit};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{DataFrame, SessionContext};

use super::labels::{Language, Segment, ValueClass};
use super::scoring;
use super::totals::{SharedTotals, Stager, into_columns};
use crate::engine::{pg_text, settings as userql_settings};
use crate::error::sqlstate;
use crate::functions::args;
use crate::functions::compensated_sum::compensated_sum;
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

/// Shards of the totals table: enough that two partitions seldom want the same shard's
/// lock at once, few enough that each stages a few hundred orders cheaply.
const TOTALS_SHARDS: usize = 64;

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
        // Only the columns the query reads are written.
        let columns: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&columns)?);
        let partitions: Vec<Vec<RecordBatch>> = self
            .compute(state, &columns, &schema)
            .await?
            .into_iter()
            .map(|b| vec![b])
            .collect();
        let exec = MemorySourceConfig::try_new_exec(&partitions, schema, None)?;
        Ok(exec)
    }
}

/// Every customer's totals, column by column, in no particular order.
#[derive(Debug)]
struct PerCustomer {
    customer_id: ArrayRef,
    first: Vec<i64>,
    last: Vec<i64>,
    orders: Vec<i64>,
    amount: Vec<f64>,
}

impl Default for PerCustomer {
    /// No customers (with `bigint` ids).
    fn default() -> Self {
        Self {
            customer_id: Arc::new(Int64Array::from(Vec::<i64>::new())),
            first: vec![],
            last: vec![],
            orders: vec![],
            amount: vec![],
        }
    }
}

impl RfmTable {
    /// The output's `columns` (indices into [`output_schema`]; `schema` their schema), in
    /// batches that can be scanned in parallel.
    async fn compute(
        &self,
        state: &dyn Session,
        columns: &[usize],
        schema: &SchemaRef,
    ) -> Result<Vec<RecordBatch>> {
        let ctx = input::context_of(state)?;
        let bigint_key = self.schema.field(0).data_type() == &DataType::Int64;
        let totals = match bigint_key {
            true => match self.totals_by_bigint(&ctx).await? {
                Some(totals) => totals,
                // The memory pool would not hold the table: DataFusion's aggregate, which
                // can spill, takes over.
                None => {
                    tracing::debug!("rfm: totals over the memory limit, aggregating with spilling");
                    self.totals_by_datafusion(&ctx).await?
                }
            },
            false => self.totals_by_datafusion(&ctx).await?,
        };
        if totals.orders.is_empty() {
            return Ok(vec![self.empty_or_error(state).await?.project(columns)?]);
        }
        let as_of = match self.as_of {
            Some(t) => t,
            None => totals.last.iter().copied().max().unwrap_or_default(),
        };
        let recency_days: Vec<i64> = totals
            .last
            .iter()
            .map(|&last| scoring::whole_days(as_of, last))
            .collect();
        let measures = scoring::Measures {
            recency_days: &recency_days,
            frequency: &totals.orders,
            monetary: &totals.amount,
        };
        let scores = scoring::score_all(measures, self.bins);
        let labelled = Labelled {
            table: self,
            columns,
            schema,
            totals: &totals,
            measures,
            scores: &scores,
            averages: scoring::averages(measures),
        };
        // Labels are written in parallel chunks, one output partition each.
        let rows = measures.len();
        let parts = crate::threads::available();
        let chunk = rows.div_ceil(parts).max(LABEL_CHUNK_MIN);
        std::thread::scope(|scope| {
            let chunks: Vec<_> = (0..rows)
                .step_by(chunk)
                .map(|start| {
                    let labelled = &labelled;
                    scope.spawn(move || labelled.batch(start..(start + chunk).min(rows)))
                })
                .collect();
            chunks
                .into_iter()
                .map(|c| c.join().expect("rfm labelling panicked"))
                .collect()
        })
    }

    /// The input with NULL rows and orders after `as_of` left out.
    fn orders(&self, ctx: &SessionContext) -> Result<DataFrame> {
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
        Ok(frame)
    }

    /// Totals by DataFusion's hash aggregate: any key type, spills under memory pressure.
    async fn totals_by_datafusion(&self, ctx: &SessionContext) -> Result<PerCustomer> {
        let batches = self
            .orders(ctx)?
            .aggregate(
                vec![col("customer_id")],
                vec![
                    min(col("order_ts")).alias("first"),
                    max(col("order_ts")).alias("last"),
                    count(lit(1)).alias("n"),
                    compensated_sum().call(vec![col("amount")]).alias("total"),
                ],
            )?
            .collect()
            .await?;
        let Some(schema) = batches.first().map(|b| b.schema()) else {
            return Ok(PerCustomer::default());
        };
        let all = concat_batches(&schema, &batches)?;
        let values = |i: usize| all.column(i).as_primitive::<Int64Type>().values().to_vec();
        Ok(PerCustomer {
            customer_id: all.column(0).clone(),
            first: all
                .column(1)
                .as_primitive::<TimestampMicrosecondType>()
                .values()
                .to_vec(),
            last: all
                .column(2)
                .as_primitive::<TimestampMicrosecondType>()
                .values()
                .to_vec(),
            orders: values(3),
            amount: all
                .column(4)
                .as_primitive::<Float64Type>()
                .values()
                .to_vec(),
        })
    }

    /// Totals of `bigint` customer ids by [`totals`](super::totals): each input partition
    /// fills its own tables on a task of its own, then the shards merge in parallel.
    /// `None` when the memory pool would not hold the tables.
    async fn totals_by_bigint(&self, ctx: &SessionContext) -> Result<Option<PerCustomer>> {
        let as_of = self.as_of.unwrap_or(i64::MAX);
        let shared = Arc::new(SharedTotals::new(TOTALS_SHARDS));
        let Some(filled) = input::fold_partitions(
            ctx,
            self.input.clone(),
            "rfm totals",
            |_| Stager::new(shared.clone()),
            move |stager, batch| {
                let orders = input::BigintOrderColumns::of(batch, as_of);
                stager.add_all(&orders.ids, &orders.ts, &orders.amounts);
                Ok(())
            },
            Stager::bytes,
        )
        .await?
        else {
            return Ok(None);
        };
        let (stagers, reservations): (Vec<Stager>, Vec<_>) = filled.into_iter().unzip();
        let threads = crate::threads::available();
        let columns = input::blocking(move || {
            stagers.into_iter().for_each(Stager::finish);
            let tables = Arc::try_unwrap(shared)
                .expect("every rfm stager is finished")
                .into_tables();
            into_columns(&tables, threads)
        })
        .await?;
        let out = PerCustomer {
            customer_id: Arc::new(Int64Array::from(columns.customer_id)),
            first: columns.first,
            last: columns.last,
            orders: columns.orders,
            amount: columns.amount,
        };
        drop(reservations);
        Ok(Some(out))
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

/// The fewest customers worth a labelling thread of their own.
const LABEL_CHUNK_MIN: usize = 65_536;

/// Scored customers, ready to be written out in chunks.
struct Labelled<'a> {
    table: &'a RfmTable,
    /// The output columns to write (indices into [`output_schema`]) and their schema.
    columns: &'a [usize],
    schema: &'a SchemaRef,
    totals: &'a PerCustomer,
    measures: scoring::Measures<'a>,
    scores: &'a scoring::RfmScores,
    averages: Option<scoring::Averages>,
}

impl Labelled<'_> {
    /// The output rows of the customers in `rows`.
    fn batch(&self, rows: std::ops::Range<usize>) -> Result<RecordBatch> {
        let columns = self
            .columns
            .iter()
            .map(|&c| self.column(c, rows.clone()))
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }

    /// Output column `column` (of [`output_schema`]) for the customers in `rows`.
    fn column(&self, column: usize, rows: std::ops::Range<usize>) -> ArrayRef {
        let (totals, scores) = (self.totals, self.scores);
        let int64 = |values: &[i64]| -> ArrayRef {
            Arc::new(Int64Array::from(values[rows.clone()].to_vec()))
        };
        let int32 = |s: &[u32]| -> ArrayRef {
            Arc::new(Int32Array::from_iter_values(
                s[rows.clone()].iter().map(|&s| s as i32),
            ))
        };
        let timestamps = |values: &[i64]| -> ArrayRef {
            let array = TimestampMicrosecondArray::from(values[rows.clone()].to_vec());
            match self.table.schema.field(1).data_type() {
                DataType::Timestamp(_, Some(tz)) => Arc::new(array.with_timezone(tz.clone())),
                _ => Arc::new(array),
            }
        };
        match column {
            0 => totals.customer_id.slice(rows.start, rows.len()),
            1 => timestamps(&totals.first),
            2 => timestamps(&totals.last),
            3 => int64(self.measures.recency_days),
            4 => int64(&totals.orders),
            5 => Arc::new(Float64Array::from(totals.amount[rows].to_vec())),
            6 => int32(&scores.r),
            7 => int32(&scores.f),
            8 => int32(&scores.m),
            9 => Arc::new(self.cells(rows)),
            10 => Arc::new(self.segments(rows)),
            11 => Arc::new(self.value_classes(rows)),
            _ => unreachable!("rfm has {} columns", self.table.schema.fields().len()),
        }
    }

    /// `rfm_cell`: the three scores' digits, written without a format per row.
    fn cells(&self, rows: std::ops::Range<usize>) -> StringArray {
        let digits: Vec<String> = (0..=self.table.bins).map(|s| s.to_string()).collect();
        let mut cells = StringBuilder::with_capacity(rows.len(), rows.len() * 3);
        let mut cell = String::with_capacity(9);
        let scores = self.scores;
        for i in rows {
            cell.clear();
            for s in [scores.r[i], scores.f[i], scores.m[i]] {
                cell.push_str(&digits[s as usize]);
            }
            cells.append_value(&cell);
        }
        cells.finish()
    }

    /// `segment`: NULL unless `rfm_bins` is 5.
    fn segments(&self, rows: std::ops::Range<usize>) -> StringArray {
        let language = self.table.language;
        let mut segments = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
        for i in rows {
            let (r, f) = (self.scores.r[i] as i64, self.scores.f[i] as i64);
            match (self.table.bins == 5).then(|| Segment::of(r, f)).flatten() {
                Some(s) => segments.append_value(s.label(language)),
                None => segments.append_null(),
            }
        }
        segments.finish()
    }

    fn value_classes(&self, rows: std::ops::Range<usize>) -> StringArray {
        let language = self.table.language;
        let mut classes = StringBuilder::with_capacity(rows.len(), rows.len() * 24);
        let m = self.measures;
        for i in rows {
            let class = self.averages.map(|a| {
                ValueClass::of(
                    m.recency_days[i] as f64,
                    m.frequency[i] as f64,
                    m.monetary[i],
                    a.recency_days,
                    a.frequency,
                    a.monetary,
                )
                .label(language)
            });
            classes.append_value(class.unwrap_or_default());
        }
        classes.finish()
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
