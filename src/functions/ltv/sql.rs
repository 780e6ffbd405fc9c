//! What the LTV SQL faces share: the parameter structs as SQL values, the error
//! mapping, and the summary of an input (`clv_summary`'s rows).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Float64Type};
use datafusion::catalog::Session;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{LogicalPlan, col, lit};

use super::bgnbd::{BgNbdFit, BgNbdParams};
use super::buckets::{BucketSummaries, Scattered, summarize_buckets};
use super::error::LtvError;
use super::gamma_gamma::{GammaGammaFit, GammaGammaParams};
use super::summary::{self, Order, SummaryColumns, TimeUnit};
use crate::error::sqlstate;
use crate::functions::input::{self, user_error};
use crate::functions::lifecycle::activity;

/// An LTV error as the client sees it: bad data 22023, a model that cannot be fitted
/// 22000.
pub fn ltv_error(e: LtvError) -> DataFusionError {
    let code = match e {
        LtvError::DegenerateInput { .. }
        | LtvError::NotConverged { .. }
        | LtvError::NonFinite { .. } => sqlstate::DATA_EXCEPTION,
        _ => sqlstate::INVALID_PARAMETER_VALUE,
    };
    user_error(code, e.to_string())
}

fn float(name: &str) -> Field {
    Field::new(name, DataType::Float64, true)
}

/// `STRUCT(r, alpha, a, b, log_likelihood, n)`.
pub fn bgnbd_fields() -> Fields {
    Fields::from(vec![
        float("r"),
        float("alpha"),
        float("a"),
        float("b"),
        float("log_likelihood"),
        Field::new("n", DataType::Int64, true),
    ])
}

/// `STRUCT(p, q, v, log_likelihood, n)`.
pub fn gamma_gamma_fields() -> Fields {
    Fields::from(vec![
        float("p"),
        float("q"),
        float("v"),
        float("log_likelihood"),
        Field::new("n", DataType::Int64, true),
    ])
}

/// A fitted BG/NBD model as a one-row struct array.
pub fn bgnbd_struct(fit: &BgNbdFit) -> StructArray {
    let p = &fit.params;
    StructArray::new(
        bgnbd_fields(),
        vec![
            Arc::new(datafusion::arrow::array::Float64Array::from(vec![p.r])) as ArrayRef,
            Arc::new(datafusion::arrow::array::Float64Array::from(vec![p.alpha])),
            Arc::new(datafusion::arrow::array::Float64Array::from(vec![p.a])),
            Arc::new(datafusion::arrow::array::Float64Array::from(vec![p.b])),
            Arc::new(datafusion::arrow::array::Float64Array::from(vec![
                fit.log_likelihood,
            ])),
            Arc::new(datafusion::arrow::array::Int64Array::from(vec![
                fit.n as i64,
            ])),
        ],
        None,
    )
}

/// A fitted Gamma-Gamma model as a one-row struct array.
pub fn gamma_gamma_struct(fit: &GammaGammaFit) -> StructArray {
    let p = &fit.params;
    StructArray::new(
        gamma_gamma_fields(),
        vec![
            Arc::new(datafusion::arrow::array::Float64Array::from(vec![p.p])) as ArrayRef,
            Arc::new(datafusion::arrow::array::Float64Array::from(vec![p.q])),
            Arc::new(datafusion::arrow::array::Float64Array::from(vec![p.v])),
            Arc::new(datafusion::arrow::array::Float64Array::from(vec![
                fit.log_likelihood,
            ])),
            Arc::new(datafusion::arrow::array::Int64Array::from(vec![
                fit.n as i64,
            ])),
        ],
        None,
    )
}

/// Reads a field of a parameter struct column as doubles.
fn field(params: &StructArray, name: &str, function: &str) -> Result<ArrayRef> {
    let column = params.column_by_name(name).ok_or_else(|| {
        user_error(
            sqlstate::DATATYPE_MISMATCH,
            format!("{function}: the parameters have no field \"{name}\" (pass the result of the fitting aggregate)"),
        )
    })?;
    Ok(datafusion::arrow::compute::cast(
        column,
        &DataType::Float64,
    )?)
}

/// BG/NBD parameters per row of a struct column (`None` where the struct or a field is
/// NULL).
pub fn bgnbd_params(column: &ArrayRef, function: &str) -> Result<Vec<Option<BgNbdParams>>> {
    let s = struct_of(column, function, "bgnbd_fit")?;
    let (r, alpha, a, b) = (
        field(s, "r", function)?,
        field(s, "alpha", function)?,
        field(s, "a", function)?,
        field(s, "b", function)?,
    );
    let (r, alpha, a, b) = (
        r.as_primitive::<Float64Type>(),
        alpha.as_primitive::<Float64Type>(),
        a.as_primitive::<Float64Type>(),
        b.as_primitive::<Float64Type>(),
    );
    Ok((0..s.len())
        .map(|i| {
            (s.is_valid(i) && r.is_valid(i) && alpha.is_valid(i) && a.is_valid(i) && b.is_valid(i))
                .then(|| BgNbdParams {
                    r: r.value(i),
                    alpha: alpha.value(i),
                    a: a.value(i),
                    b: b.value(i),
                })
        })
        .collect())
}

/// Gamma-Gamma parameters per row of a struct column.
pub fn gamma_gamma_params(
    column: &ArrayRef,
    function: &str,
) -> Result<Vec<Option<GammaGammaParams>>> {
    let s = struct_of(column, function, "gamma_gamma_fit")?;
    let (p, q, v) = (
        field(s, "p", function)?,
        field(s, "q", function)?,
        field(s, "v", function)?,
    );
    let (p, q, v) = (
        p.as_primitive::<Float64Type>(),
        q.as_primitive::<Float64Type>(),
        v.as_primitive::<Float64Type>(),
    );
    Ok((0..s.len())
        .map(|i| {
            (s.is_valid(i) && p.is_valid(i) && q.is_valid(i) && v.is_valid(i)).then(|| {
                GammaGammaParams {
                    p: p.value(i),
                    q: q.value(i),
                    v: v.value(i),
                }
            })
        })
        .collect())
}

fn struct_of<'a>(column: &'a ArrayRef, function: &str, from: &str) -> Result<&'a StructArray> {
    column.as_struct_opt().ok_or_else(|| {
        user_error(
            sqlstate::DATATYPE_MISMATCH,
            format!(
                "{function}: parameters must be the struct {from}() returns, got {}",
                column.data_type()
            ),
        )
    })
}

/// Parse a `unit` argument.
pub fn unit_of(text: &str, function: &str) -> Result<TimeUnit> {
    TimeUnit::parse(text).ok_or_else(|| {
        user_error(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("{function}: unit must be 'day', 'week' or 'month', got '{text}'"),
        )
    })
}

/// Every customer's summary as of `as_of` (default: the latest order in the input).
pub struct Summaries {
    /// One key per customer with an order at or before `as_of`.
    pub keys: ArrayRef,
    pub columns: SummaryColumns,
    pub as_of: i64,
}

/// Summarise `input` (columns `customer_id`, `order_ts`, `amount`; rows with a NULL
/// among them skipped) by customer.
pub async fn summarize(
    state: &dyn Session,
    input: &LogicalPlan,
    as_of: Option<i64>,
    unit: TimeUnit,
) -> Result<Summaries> {
    let zone = match input.schema().field(1).data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    let keep = as_of.map(|t| {
        col("order_ts").lt_eq(lit(datafusion::common::ScalarValue::TimestampMicrosecond(
            Some(t),
            zone,
        )))
    });
    if input.schema().field(0).data_type() == &DataType::Int64
        && let Some(summaries) = summarize_bigint(state, input, as_of, unit).await?
    {
        return Ok(summaries);
    }
    let activity = activity::collect_with(state, input, keep, Some("amount")).await?;
    let as_of = match as_of.or_else(|| activity.latest()) {
        Some(t) => t,
        None => {
            return Ok(Summaries {
                keys: datafusion::arrow::array::new_empty_array(
                    input.schema().field(0).data_type(),
                ),
                columns: SummaryColumns::default(),
                as_of: 0,
            });
        }
    };
    let mut columns = SummaryColumns::with_capacity(activity.len());
    let mut kept: Vec<u32> = Vec::with_capacity(activity.len());
    let mut orders: Vec<Order> = Vec::new();
    for i in 0..activity.len() {
        let range = activity.offsets[i]..activity.offsets[i + 1];
        orders.clear();
        orders.extend(
            activity.times[range.clone()]
                .iter()
                .zip(&activity.values[range])
                .map(|(&ts, &amount)| Order { ts, amount }),
        );
        if let Some(s) = summary::clv_summary(&mut orders, as_of, unit).map_err(ltv_error)? {
            columns.push(&s);
            kept.push(i as u32);
        }
    }
    let keys = datafusion::arrow::compute::take(
        activity.keys.as_ref(),
        &datafusion::arrow::array::UInt32Array::from(kept),
        None,
    )?;
    Ok(Summaries {
        keys,
        columns,
        as_of,
    })
}

/// [`summarize`] for `bigint` customer ids, without DataFusion's sort (see
/// [`super::buckets`]): each input partition scatters its orders into buckets by a hash
/// of the id on a task of its own; then each bucket's orders from every partition are
/// grouped by customer in cache and each customer summarised, buckets split among
/// threads. Customers come out in an order fixed by their ids' hashes (no order is
/// promised). `None` when the memory pool will not hold the orders (24 bytes each); the
/// general path, whose sort spills, then takes over.
async fn summarize_bigint(
    state: &dyn Session,
    input: &LogicalPlan,
    as_of: Option<i64>,
    unit: TimeUnit,
) -> Result<Option<Summaries>> {
    let ctx = input::context_of(state)?;
    let until = as_of.unwrap_or(i64::MAX);
    let scatter_clock = crate::threads::CpuClock::start();
    let Some(parts) = input::fold_partitions(
        &ctx,
        input.clone(),
        "ltv orders",
        |_| Scattered::new(),
        move |scattered, batch| {
            let columns = input::BigintOrderColumns::of(batch, until);
            scattered.extend(&columns.ids, &columns.ts, &columns.amounts);
            Ok(())
        },
        Scattered::bytes,
    )
    .await?
    else {
        return Ok(None);
    };
    let (parts, reservations): (Vec<Scattered>, Vec<_>) = parts.into_iter().unzip();
    let (scattered, scatter_cpu) = scatter_clock.read();
    let group_clock = crate::threads::CpuClock::start();
    let summaries = input::blocking(move || summarize_buckets(&parts, as_of, unit))
        .await?
        .map_err(ltv_error)?;
    drop(reservations);
    let (grouped, group_cpu) = group_clock.read();
    tracing::debug!(
        scatter_ms = scattered.as_secs_f64() * 1e3,
        scatter_cpu,
        group_ms = grouped.as_secs_f64() * 1e3,
        group_cpu,
        "ltv summaries of bigint ids"
    );
    Ok(Some(match summaries {
        Some(BucketSummaries {
            keys,
            columns,
            as_of,
        }) => Summaries {
            keys: Arc::new(Int64Array::from(keys)),
            columns,
            as_of,
        },
        None => Summaries {
            keys: Arc::new(Int64Array::from(Vec::<i64>::new())),
            columns: SummaryColumns::default(),
            as_of: 0,
        },
    }))
}
