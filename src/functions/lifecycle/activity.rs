//! Each customer's activity as sorted timestamps: the input sorted by DataFusion (which
//! spills to disk under the memory limit) and cut into one run per customer.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use datafusion::arrow::compute::{concat, take};
use datafusion::arrow::datatypes::{Float64Type, TimestampMicrosecondType};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::catalog::Session;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, col};
use datafusion::prelude::DataFrame;
use futures::StreamExt;

use crate::functions::input;

/// Customers and their activity, in customer order.
#[derive(Debug)]
pub struct Activity {
    /// One key per customer.
    pub keys: ArrayRef,
    /// Customer `i`'s timestamps are `times[offsets[i]..offsets[i + 1]]`, ascending.
    pub offsets: Vec<usize>,
    pub times: Vec<i64>,
    /// The value column beside each timestamp, when one was asked for.
    pub values: Vec<f64>,
}

impl Activity {
    /// Number of customers.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Customer `i`'s timestamps.
    pub fn of(&self, i: usize) -> &[i64] {
        &self.times[self.offsets[i]..self.offsets[i + 1]]
    }

    /// The latest timestamp of anyone.
    pub fn latest(&self) -> Option<i64> {
        (0..self.len())
            .filter_map(|i| self.of(i).last().copied())
            .max()
    }
}

/// Read `input` (columns `customer_id`, `order_ts` already checked) with rows where
/// `keep` holds, skipping rows with a NULL key or timestamp.
pub async fn collect(
    state: &dyn Session,
    input: &LogicalPlan,
    keep: Option<Expr>,
) -> Result<Activity> {
    collect_with(state, input, keep, None).await
}

/// As [`collect`], also reading the (double precision) column `value` beside each
/// timestamp; rows where it is NULL are skipped too.
pub async fn collect_with(
    state: &dyn Session,
    input: &LogicalPlan,
    keep: Option<Expr>,
    value: Option<&str>,
) -> Result<Activity> {
    let ctx = input::context_of(state)?;
    let mut frame = DataFrame::new(ctx.state(), input.clone()).filter(
        col("customer_id")
            .is_not_null()
            .and(col("order_ts").is_not_null()),
    )?;
    if let Some(value) = value {
        frame = frame.filter(col(value).is_not_null())?;
    }
    if let Some(keep) = keep {
        frame = frame.filter(keep)?;
    }
    let mut columns = vec![col("customer_id"), col("order_ts")];
    if let Some(value) = value {
        columns.push(col(value));
    }
    let frame = frame.select(columns)?.sort(vec![
        col("customer_id").sort(true, true),
        col("order_ts").sort(true, true),
    ])?;
    let key_type = frame.schema().field(0).data_type().clone();
    let converter = RowConverter::new(vec![SortField::new(key_type.clone())])?;
    let mut stream = frame.execute_stream().await?;
    let mut key_parts: Vec<ArrayRef> = Vec::new();
    let mut offsets = vec![0usize];
    let mut times: Vec<i64> = Vec::new();
    let mut values: Vec<f64> = Vec::new();
    let mut previous: Option<OwnedRow> = None;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        let keys = batch.column(0);
        let ts = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        if let Some(v) = batch.columns().get(2) {
            values.extend_from_slice(v.as_primitive::<Float64Type>().values());
        }
        let rows = converter.convert_columns(std::slice::from_ref(keys))?;
        let mut starts: Vec<u32> = Vec::new();
        for i in 0..batch.num_rows() {
            let is_new = match (i, &previous) {
                (0, None) => true,
                (0, Some(p)) => rows.row(0) != p.row(),
                _ => rows.row(i) != rows.row(i - 1),
            };
            if is_new {
                if !times.is_empty() {
                    offsets.push(times.len());
                }
                starts.push(i as u32);
            }
            times.push(ts.value(i));
        }
        previous = Some(rows.row(batch.num_rows() - 1).owned());
        if !starts.is_empty() {
            key_parts.push(take(keys.as_ref(), &UInt32Array::from(starts), None)?);
        }
    }
    if !times.is_empty() {
        offsets.push(times.len());
    }
    let keys: ArrayRef = if key_parts.is_empty() {
        datafusion::arrow::array::new_empty_array(&key_type)
    } else {
        let parts: Vec<&dyn Array> = key_parts.iter().map(|a| a.as_ref()).collect();
        concat(&parts)?
    };
    if keys.len() + 1 != offsets.len() && !(keys.is_empty() && offsets.len() == 1) {
        return Err(datafusion::error::DataFusionError::Internal(format!(
            "activity: {} customers but {} runs",
            keys.len(),
            offsets.len() - 1
        )));
    }
    Ok(Activity {
        keys,
        offsets,
        times,
        values,
    })
}
