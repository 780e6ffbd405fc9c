//! What the LTV SQL faces share: the parameter structs as SQL values, the error
//! mapping, and the summary of an input (`clv_summary`'s rows).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Float64Type};
use datafusion::catalog::Session;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{LogicalPlan, col, lit};

use super::bgnbd::{BgNbdFit, BgNbdParams};
use super::error::LtvError;
use super::gamma_gamma::{GammaGammaFit, GammaGammaParams};
use super::summary::{self, ClvSummary, Order, TimeUnit};
use crate::error::sqlstate;
use crate::functions::input::{self, user_error};
use crate::functions::lifecycle::activity;
use crate::functions::mix::mix;
use crate::functions::radix;

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
    pub rows: Vec<ClvSummary>,
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
                rows: vec![],
                as_of: 0,
            });
        }
    };
    let mut rows = Vec::with_capacity(activity.len());
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
            rows.push(s);
            kept.push(i as u32);
        }
    }
    let keys = datafusion::arrow::compute::take(
        activity.keys.as_ref(),
        &datafusion::arrow::array::UInt32Array::from(kept),
        None,
    )?;
    Ok(Summaries { keys, rows, as_of })
}

/// One order of a `bigint` customer: (customer_id, order_ts, amount).
type BigintOrder = (i64, i64, f64);

/// Buckets each input partition scatters its orders into, by a hash of the customer
/// id, so a customer's orders from every partition meet in one bucket. At a few
/// million orders a bucket holds a few thousand — sorted in cache, where sorting all
/// orders at once took one pass over memory per id byte.
const BUCKETS: usize = 512;

/// Orders per summarising thread (below it, fewer threads).
const ORDERS_PER_THREAD: usize = 100_000;

/// The bucket of a customer id.
fn bucket_of(id: i64) -> usize {
    (mix(id) as usize) & (BUCKETS - 1)
}

/// One input partition's orders of `bigint` customers, scattered into [`BUCKETS`].
struct Scattered {
    buckets: Vec<Vec<BigintOrder>>,
    /// The latest order time seen (the default `as_of`).
    latest: Option<i64>,
    /// Capacity of all buckets, in orders.
    capacity: usize,
}

impl Scattered {
    fn new() -> Self {
        Scattered {
            buckets: vec![Vec::new(); BUCKETS],
            latest: None,
            capacity: 0,
        }
    }

    fn push(&mut self, order: BigintOrder) {
        let bucket = &mut self.buckets[bucket_of(order.0)];
        let before = bucket.capacity();
        bucket.push(order);
        self.capacity += bucket.capacity() - before;
    }
}

/// [`summarize`] for `bigint` customer ids, without DataFusion's sort: each input
/// partition scatters its orders into buckets by a hash of the id on a task of its
/// own; then each bucket's orders from every partition are radix-sorted by id in
/// cache and each customer summarised, buckets split among threads. Customers come
/// out by bucket and by id within one (no order is promised). `None` when the memory
/// pool will not hold the orders (24 bytes each); the general path, whose sort
/// spills, then takes over.
async fn summarize_bigint(
    state: &dyn Session,
    input: &LogicalPlan,
    as_of: Option<i64>,
    unit: TimeUnit,
) -> Result<Option<Summaries>> {
    const ORDER_BYTES: usize = std::mem::size_of::<BigintOrder>();
    let ctx = input::context_of(state)?;
    let until = as_of.unwrap_or(i64::MAX);
    let Some(parts) = input::fold_partitions(
        &ctx,
        input.clone(),
        "ltv orders",
        |_| Scattered::new(),
        move |scattered, batch| {
            let columns = input::BigintOrderColumns::of(batch, until);
            if let Some(&latest) = columns.ts.iter().max() {
                scattered.latest = scattered.latest.max(Some(latest));
            }
            for ((&id, &ts), &amount) in columns
                .ids
                .iter()
                .zip(columns.ts.iter())
                .zip(columns.amounts.iter())
            {
                scattered.push((id, ts, amount));
            }
            Ok(())
        },
        |scattered| scattered.capacity * ORDER_BYTES,
    )
    .await?
    else {
        return Ok(None);
    };
    let (parts, reservations): (Vec<Scattered>, Vec<_>) = parts.into_iter().unzip();
    let summaries = input::blocking(move || summarize_buckets(&parts, as_of, unit)).await??;
    drop(reservations);
    Ok(Some(summaries))
}

/// Summaries of the customers in `parts`, bucket after bucket, the buckets split
/// into contiguous ranges, one per thread (the hash spreads orders evenly).
fn summarize_buckets(parts: &[Scattered], as_of: Option<i64>, unit: TimeUnit) -> Result<Summaries> {
    let Some(as_of) = as_of.or_else(|| parts.iter().filter_map(|p| p.latest).max()) else {
        return Ok(Summaries {
            keys: Arc::new(Int64Array::from(Vec::<i64>::new())),
            rows: vec![],
            as_of: 0,
        });
    };
    let orders: usize = parts
        .iter()
        .flat_map(|p| p.buckets.iter().map(Vec::len))
        .sum();
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = orders.div_ceil(ORDERS_PER_THREAD).clamp(1, available);
    let per_thread = BUCKETS.div_ceil(threads);
    let summarised: Vec<Result<(Vec<i64>, Vec<ClvSummary>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let range = (i * per_thread).min(BUCKETS)..((i + 1) * per_thread).min(BUCKETS);
                scope.spawn(move || summarize_bucket_range(parts, range, as_of, unit))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("summarising panicked"))
            .collect()
    });
    let mut keys = Vec::new();
    let mut rows = Vec::new();
    for part in summarised {
        let (k, r) = part?;
        keys.extend(k);
        rows.extend(r);
    }
    Ok(Summaries {
        keys: Arc::new(Int64Array::from(keys)),
        rows,
        as_of,
    })
}

/// Summaries of the customers of the buckets in `range`: each bucket's orders from
/// every partition gathered and sorted by id, then each run of one id summarised.
fn summarize_bucket_range(
    parts: &[Scattered],
    range: std::ops::Range<usize>,
    as_of: i64,
    unit: TimeUnit,
) -> Result<(Vec<i64>, Vec<ClvSummary>)> {
    let mut keys = Vec::new();
    let mut rows = Vec::new();
    let (mut a, mut b): (Vec<BigintOrder>, Vec<BigintOrder>) = (Vec::new(), Vec::new());
    let mut customer: Vec<Order> = Vec::new();
    let mut runs: Vec<&[BigintOrder]> = Vec::with_capacity(parts.len());
    for bucket in range {
        runs.clear();
        runs.extend(parts.iter().map(|part| &part.buckets[bucket][..]));
        let sorted = radix::sort_runs_by_i64_key(&runs, &mut a, &mut b, |o| o.0);
        for run in sorted.chunk_by(|x, y| x.0 == y.0) {
            customer.clear();
            customer.extend(run.iter().map(|&(_, ts, amount)| Order { ts, amount }));
            if let Some(s) = summary::clv_summary(&mut customer, as_of, unit).map_err(ltv_error)? {
                keys.push(run[0].0);
                rows.push(s);
            }
        }
    }
    Ok((keys, rows))
}
