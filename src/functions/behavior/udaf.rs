//! `window_funnel` and `retention` as DataFusion aggregates: the plain-Rust cores
//! (`funnel`, `retention`) behind a grouped accumulator (many groups in flat vectors) and
//! a single-group one, with partial states that merge in any order.
//!
//! Partial state: `window_funnel` keeps each group's events as two lists (timestamps,
//! condition masks); `retention` keeps one `u32` of the conditions seen.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, ListArray, UInt32Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type, TimeUnit, UInt32Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;
use datafusion::prelude::SessionContext;

use super::funnel::{self, FunnelError, FunnelGroups, FunnelMode, FunnelState};
use super::retention::{self, RetentionState};
use crate::error::sqlstate;
use crate::functions::input::user_error;

fn funnel_error(e: FunnelError) -> DataFusionError {
    user_error(sqlstate::INVALID_PARAMETER_VALUE, e.to_string())
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The boolean condition types, checked and named.
fn condition_types(function: &str, first: usize, types: &[DataType]) -> Result<Vec<DataType>> {
    types
        .iter()
        .enumerate()
        .map(|(i, t)| match t {
            DataType::Boolean | DataType::Null => Ok(DataType::Boolean),
            other => Err(user_error(
                sqlstate::DATATYPE_MISMATCH,
                format!(
                    "{function}: argument {} (condition {}) is {other}, expected boolean",
                    first + i + 1,
                    i + 1
                ),
            )),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// window_funnel

/// `window_funnel(window_seconds, [mode,] ts, cond1, ..., condN) → integer`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct WindowFunnel {
    signature: Signature,
}

const FUNNEL_SIGNATURE: &str = "window_funnel(window_seconds bigint, [mode text,] ts timestamp, cond1 boolean, ..., condN boolean)";

impl Default for WindowFunnel {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Where a call's arguments are.
struct FunnelLayout {
    has_mode: bool,
}

impl FunnelLayout {
    fn of(types: &[DataType]) -> Self {
        Self {
            has_mode: types.get(1).is_some_and(is_text),
        }
    }

    fn ts(&self) -> usize {
        if self.has_mode { 2 } else { 1 }
    }

    fn first_condition(&self) -> usize {
        self.ts() + 1
    }
}

impl AggregateUDFImpl for WindowFunnel {
    fn name(&self) -> &str {
        "window_funnel"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let layout = FunnelLayout::of(arg_types);
        if arg_types.len() <= layout.ts() {
            return Err(user_error(
                sqlstate::UNDEFINED_FUNCTION,
                format!(
                    "window_funnel: missing arguments; expected {FUNNEL_SIGNATURE} with 1 to 32 conditions"
                ),
            ));
        }
        let window = match &arg_types[0] {
            t if t.is_integer() || t == &DataType::Null => DataType::Int64,
            other => {
                return Err(user_error(
                    sqlstate::DATATYPE_MISMATCH,
                    format!("window_funnel: window_seconds is {other}, expected bigint"),
                ));
            }
        };
        let mut out = vec![window];
        if layout.has_mode {
            out.push(DataType::Utf8);
        }
        out.push(match &arg_types[layout.ts()] {
            DataType::Timestamp(unit, tz) => DataType::Timestamp(*unit, tz.clone()),
            DataType::Date32 | DataType::Date64 | DataType::Null => {
                DataType::Timestamp(TimeUnit::Microsecond, None)
            }
            other => {
                return Err(user_error(
                    sqlstate::DATATYPE_MISMATCH,
                    format!("window_funnel: ts is {other}, expected timestamp"),
                ));
            }
        });
        let conditions = &arg_types[layout.first_condition()..];
        funnel::check_condition_count(conditions.len()).map_err(funnel_error)?;
        out.extend(condition_types(
            "window_funnel",
            layout.first_condition(),
            conditions,
        )?);
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[timestamps]", args.name),
                DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
                true,
            )),
            Arc::new(Field::new(
                format!("{}[masks]", args.name),
                DataType::List(Arc::new(Field::new("item", DataType::UInt32, true))),
                true,
            )),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let call = FunnelCall::of(&args)?;
        Ok(Box::new(FunnelAccumulator {
            call,
            state: FunnelState::new(),
        }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let call = FunnelCall::of(&args)?;
        Ok(Box::new(FunnelGroupsAccumulator {
            call,
            groups: FunnelGroups::new(),
        }))
    }
}

/// The constants of one call: window (in the timestamps' unit), mode, conditions.
#[derive(Debug, Clone, Copy)]
struct FunnelCall {
    window: i64,
    mode: FunnelMode,
    has_mode: bool,
    conditions: usize,
}

fn literal_of<'a>(args: &'a AccumulatorArgs, i: usize, what: &str) -> Result<&'a ScalarValue> {
    args.exprs
        .get(i)
        .and_then(|e| e.as_ref().downcast_ref::<Literal>())
        .map(|l| l.value())
        .ok_or_else(|| {
            user_error(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!("window_funnel: {what} must be a constant"),
            )
        })
}

impl FunnelCall {
    fn of(args: &AccumulatorArgs) -> Result<Self> {
        let types: Vec<DataType> = args
            .expr_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let layout = FunnelLayout::of(&types);
        let seconds = match literal_of(args, 0, "window_seconds")?.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(Some(s)) => s,
            _ => {
                return Err(user_error(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    "window_funnel: window_seconds must not be NULL".into(),
                ));
            }
        };
        let mode = if layout.has_mode {
            match literal_of(args, 1, "mode")? {
                ScalarValue::Utf8(Some(t))
                | ScalarValue::LargeUtf8(Some(t))
                | ScalarValue::Utf8View(Some(t)) => FunnelMode::parse(t).map_err(funnel_error)?,
                _ => FunnelMode::default(),
            }
        } else {
            FunnelMode::default()
        };
        let per_second = match types.get(layout.ts()) {
            Some(DataType::Timestamp(TimeUnit::Second, _)) => 1,
            Some(DataType::Timestamp(TimeUnit::Millisecond, _)) => 1_000,
            Some(DataType::Timestamp(TimeUnit::Nanosecond, _)) => 1_000_000_000,
            _ => 1_000_000,
        };
        let window = funnel::window_from_seconds(seconds, per_second).map_err(funnel_error)?;
        Ok(Self {
            window,
            mode,
            has_mode: layout.has_mode,
            conditions: types.len() - layout.first_condition(),
        })
    }

    fn ts_index(&self) -> usize {
        if self.has_mode { 2 } else { 1 }
    }

    /// `(row, ts, mask)` of every usable row of a batch: no NULL timestamp or condition,
    /// and passing the aggregate's `FILTER`.
    fn rows<'a>(
        &self,
        values: &'a [ArrayRef],
        filter: Option<&'a BooleanArray>,
    ) -> Result<impl Iterator<Item = (usize, i64, u32)> + 'a> {
        // The timestamps' own units (the window was converted to them).
        let ts_values =
            datafusion::arrow::compute::cast(&values[self.ts_index()], &DataType::Int64)?;
        let ts_values = ts_values.as_primitive::<Int64Type>().clone();
        let conditions: Vec<BooleanArray> = values[self.ts_index() + 1..]
            .iter()
            .map(|c| c.as_boolean().clone())
            .collect();
        let rows = ts_values.len();
        Ok((0..rows).filter_map(move |i| {
            if filter.is_some_and(|f| !f.is_valid(i) || !f.value(i)) || ts_values.is_null(i) {
                return None;
            }
            let mut mask = 0u32;
            for (k, c) in conditions.iter().enumerate() {
                if c.is_null(i) {
                    return None;
                }
                if c.value(i) {
                    mask |= 1 << k;
                }
            }
            Some((i, ts_values.value(i), mask))
        }))
    }
}

/// Two list arrays (timestamps, masks) of grouped events.
fn events_to_state(events: &funnel::GroupedEvents) -> Result<Vec<ArrayRef>> {
    let offsets: Vec<i32> = events
        .offsets()
        .iter()
        .map(|&o| i32::try_from(o))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| DataFusionError::ResourcesExhausted("window_funnel state too large".into()))?;
    let offsets = OffsetBuffer::new(offsets.into());
    let ts = Int64Array::from_iter_values(events.events().iter().map(|e| e.ts));
    let masks = UInt32Array::from_iter_values(events.events().iter().map(|e| e.mask));
    Ok(vec![
        Arc::new(ListArray::new(
            Arc::new(Field::new("item", DataType::Int64, true)),
            offsets.clone(),
            Arc::new(ts),
            None,
        )),
        Arc::new(ListArray::new(
            Arc::new(Field::new("item", DataType::UInt32, true)),
            offsets,
            Arc::new(masks),
            None,
        )),
    ])
}

/// Many groups' events in flat vectors.
struct FunnelGroupsAccumulator {
    call: FunnelCall,
    groups: FunnelGroups,
}

impl GroupsAccumulator for FunnelGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.ensure_groups(total_num_groups);
        let (call, groups) = (self.call, &mut self.groups);
        for (i, ts, mask) in call.rows(values, opt_filter)? {
            groups
                .push(group_indices[i], ts, mask, call.mode)
                .map_err(funnel_error)?;
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.ensure_groups(total_num_groups);
        let (ts, masks) = (values[0].as_list::<i32>(), values[1].as_list::<i32>());
        let ts_values = ts.values().as_primitive::<Int64Type>();
        let mask_values = masks.values().as_primitive::<UInt32Type>();
        for (row, &group) in group_indices.iter().enumerate() {
            if ts.is_null(row) {
                continue;
            }
            let range = ts.value_offsets()[row] as usize..ts.value_offsets()[row + 1] as usize;
            let mask_start = masks.value_offsets()[row] as usize;
            for (k, j) in range.enumerate() {
                self.groups
                    .push(
                        group,
                        ts_values.value(j),
                        mask_values.value(mask_start + k),
                        self.call.mode,
                    )
                    .map_err(funnel_error)?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let events = self.groups.take(emit_first(emit_to));
        let levels = events.levels(self.call.window, self.call.mode, self.call.conditions);
        Ok(Arc::new(Int32Array::from_iter_values(
            levels.into_iter().map(|l| l as i32),
        )))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        events_to_state(&self.groups.take(emit_first(emit_to)))
    }

    /// Each row on its own: a one-event state (none for a row that is not used).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let rows = values.first().map(|v| v.len()).unwrap_or(0);
        let mut groups = FunnelGroups::new();
        groups.ensure_groups(rows);
        for (i, ts, mask) in self.call.rows(values, opt_filter)? {
            groups
                .push(i, ts, mask, self.call.mode)
                .map_err(funnel_error)?;
        }
        events_to_state(&groups.take(None))
    }

    fn size(&self) -> usize {
        self.groups.allocated_bytes() + std::mem::size_of::<Self>()
    }
}

fn emit_first(emit_to: EmitTo) -> Option<usize> {
    match emit_to {
        EmitTo::All => None,
        EmitTo::First(n) => Some(n),
    }
}

/// One group (an aggregate without GROUP BY).
#[derive(Debug)]
struct FunnelAccumulator {
    call: FunnelCall,
    state: FunnelState,
}

impl Accumulator for FunnelAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (call, state) = (self.call, &mut self.state);
        for (_, ts, mask) in call.rows(values, None)? {
            state.push(ts, mask, call.mode);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (ts, masks) = (states[0].as_list::<i32>(), states[1].as_list::<i32>());
        for row in 0..ts.len() {
            if ts.is_null(row) {
                continue;
            }
            let t = ts.value(row);
            let m = masks.value(row);
            let t: Vec<i64> = t.as_primitive::<Int64Type>().values().to_vec();
            let m: Vec<u32> = m.as_primitive::<UInt32Type>().values().to_vec();
            self.state.merge_parts(&t, &m).map_err(funnel_error)?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let (ts, masks) = self.state.to_parts();
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(
                &ts.into_iter()
                    .map(|t| ScalarValue::Int64(Some(t)))
                    .collect::<Vec<_>>(),
                &DataType::Int64,
            )),
            ScalarValue::List(ScalarValue::new_list_nullable(
                &masks
                    .into_iter()
                    .map(|m| ScalarValue::UInt32(Some(m)))
                    .collect::<Vec<_>>(),
                &DataType::UInt32,
            )),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let level = self
            .state
            .evaluate(self.call.window, self.call.mode, self.call.conditions);
        Ok(ScalarValue::Int32(Some(level as i32)))
    }

    fn size(&self) -> usize {
        self.state.allocated_bytes() + std::mem::size_of::<Self>()
    }
}

// ---------------------------------------------------------------------------------------
// retention

/// `retention(cond1, ..., condN) → integer[]`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Retention {
    signature: Signature,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn retention_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Int32, true)))
}

impl AggregateUDFImpl for Retention {
    fn name(&self) -> &str {
        "retention"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        retention::check_condition_count(arg_types.len())
            .map_err(|e| user_error(sqlstate::UNDEFINED_FUNCTION, e.to_string()))?;
        condition_types("retention", 0, arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(retention_type())
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[met]", args.name),
            DataType::UInt32,
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(RetentionAccumulator {
            conditions: args.exprs.len(),
            state: RetentionState::new(),
        }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(RetentionGroupsAccumulator {
            conditions: args.exprs.len(),
            met: Vec::new(),
        }))
    }
}

/// The condition mask of each usable row (no NULL condition, passing the `FILTER`).
fn retention_masks<'a>(
    values: &'a [ArrayRef],
    filter: Option<&'a BooleanArray>,
) -> impl Iterator<Item = (usize, u32)> + 'a {
    let conditions: Vec<&BooleanArray> = values.iter().map(|c| c.as_boolean()).collect();
    let rows = values.first().map(|v| v.len()).unwrap_or(0);
    (0..rows).filter_map(move |i| {
        if filter.is_some_and(|f| !f.is_valid(i) || !f.value(i)) {
            return None;
        }
        let mut mask = 0u32;
        for (k, c) in conditions.iter().enumerate() {
            if c.is_null(i) {
                return None;
            }
            if c.value(i) {
                mask |= 1 << k;
            }
        }
        Some((i, mask))
    })
}

/// The result arrays of many groups.
fn retention_result(met: &[u32], conditions: usize) -> ArrayRef {
    let n = conditions.min(retention::MAX_RETENTION_CONDITIONS);
    let mut values = Vec::with_capacity(met.len() * n);
    for &m in met {
        let bits = RetentionState::from_bits(m).result_bits(n);
        values.extend((0..n).map(|i| (bits >> i & 1) as i32));
    }
    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(n, met.len()));
    Arc::new(ListArray::new(
        Arc::new(Field::new("item", DataType::Int32, true)),
        offsets,
        Arc::new(Int32Array::from(values)),
        None,
    ))
}

struct RetentionGroupsAccumulator {
    conditions: usize,
    met: Vec<u32>,
}

impl RetentionGroupsAccumulator {
    fn take(&mut self, emit_to: EmitTo) -> Vec<u32> {
        emit_to.take_needed(&mut self.met)
    }
}

impl GroupsAccumulator for RetentionGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.met.resize(total_num_groups, 0);
        for (i, mask) in retention_masks(values, opt_filter) {
            self.met[group_indices[i]] |= mask;
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.met.resize(total_num_groups, 0);
        let partial = values[0].as_primitive::<UInt32Type>();
        for (row, &group) in group_indices.iter().enumerate() {
            if partial.is_valid(row) {
                self.met[group] |= partial.value(row);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let met = self.take(emit_to);
        Ok(retention_result(&met, self.conditions))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let met = self.take(emit_to);
        Ok(vec![Arc::new(UInt32Array::from(met))])
    }

    /// Each row on its own: the conditions it met (none for a row that is not used).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let rows = values.first().map(|v| v.len()).unwrap_or(0);
        let mut met = vec![0u32; rows];
        for (i, mask) in retention_masks(values, opt_filter) {
            met[i] = mask;
        }
        Ok(vec![Arc::new(UInt32Array::from(met))])
    }

    fn size(&self) -> usize {
        self.met.capacity() * std::mem::size_of::<u32>() + std::mem::size_of::<Self>()
    }
}

#[derive(Debug)]
struct RetentionAccumulator {
    conditions: usize,
    state: RetentionState,
}

impl Accumulator for RetentionAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for (_, mask) in retention_masks(values, None) {
            self.state.push(mask);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let partial = states[0].as_primitive::<UInt32Type>();
        for row in 0..partial.len() {
            if partial.is_valid(row) {
                self.state
                    .merge(RetentionState::from_bits(partial.value(row)));
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::UInt32(Some(self.state.bits()))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let array = retention_result(&[self.state.bits()], self.conditions);
        ScalarValue::try_from_array(&array, 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

/// Register `window_funnel` and `retention`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udaf(AggregateUDF::new_from_impl(WindowFunnel::default()));
    ctx.register_udaf(AggregateUDF::new_from_impl(Retention::default()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{RecordBatch, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::Schema;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionConfig;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    type Row = (i64, Option<i64>, Option<u8>);

    /// The rows split into `parts` partitions of batches of `batch` rows.
    fn table(rows: &[Row], parts: usize, batch: usize) -> MemTable {
        let schema = Arc::new(Schema::new(vec![
            Field::new("uid", DataType::Int64, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("step", DataType::Int32, true),
        ]));
        let mut partitions = vec![Vec::new(); parts];
        for (n, chunk) in rows.chunks(batch.max(1)).enumerate() {
            let b = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.0))),
                    Arc::new(TimestampMicrosecondArray::from(
                        chunk.iter().map(|r| r.1).collect::<Vec<_>>(),
                    )),
                    Arc::new(Int32Array::from(
                        chunk.iter().map(|r| r.2.map(i32::from)).collect::<Vec<_>>(),
                    )),
                ],
            )
            .unwrap();
            partitions[n % parts].push(b);
        }
        MemTable::try_new(schema, partitions).unwrap()
    }

    async fn run(
        rows: &[Row],
        parts: usize,
        batch: usize,
        target: usize,
        mode: &str,
    ) -> Vec<(i64, i32, String)> {
        let config = SessionConfig::new()
            .with_target_partitions(target)
            .with_batch_size(batch.max(1));
        let ctx = SessionContext::new_with_config(config);
        register(&ctx);
        ctx.register_table("e", Arc::new(table(rows, parts, batch)))
            .unwrap();
        let sql = format!(
            "SELECT uid, window_funnel(60, '{mode}', ts, step = 1, step = 2, step = 3 OR step = 1, step = 4), \
             CAST(retention(step = 1, step = 2, step = 4) AS VARCHAR) FROM e GROUP BY uid ORDER BY uid"
        );
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let mut out = Vec::new();
        for b in batches {
            let uid = b.column(0).as_primitive::<Int64Type>();
            let level = b
                .column(1)
                .as_primitive::<datafusion::arrow::datatypes::Int32Type>();
            let kept = datafusion::arrow::compute::cast(b.column(2), &DataType::Utf8).unwrap();
            let kept = kept.as_string::<i32>();
            for i in 0..b.num_rows() {
                out.push((uid.value(i), level.value(i), kept.value(i).to_string()));
            }
        }
        out
    }

    /// The same answers straight from the cores, one group at a time.
    fn direct(rows: &[Row], mode: &str) -> Vec<(i64, i32, String)> {
        let mode = FunnelMode::parse(mode).unwrap();
        let mut groups: BTreeMap<i64, (FunnelState, RetentionState)> = BTreeMap::new();
        for &(uid, ts, step) in rows {
            let entry = groups.entry(uid).or_default();
            // A NULL condition drops the row from both; a NULL ts only from the funnel.
            let Some(step) = step else {
                continue;
            };
            let retention_mask =
                u32::from(step == 1) | u32::from(step == 2) << 1 | u32::from(step == 4) << 2;
            entry.1.push(retention_mask);
            let Some(ts) = ts else {
                continue;
            };
            let funnel_mask = u32::from(step == 1)
                | u32::from(step == 2) << 1
                | u32::from(step == 3 || step == 1) << 2
                | u32::from(step == 4) << 3;
            entry.0.push(ts, funnel_mask, mode);
        }
        groups
            .into_iter()
            .map(|(uid, (mut f, r))| {
                let flags: Vec<String> = r.evaluate(3).iter().map(|v| v.to_string()).collect();
                (
                    uid,
                    f.evaluate(60_000_000, mode, 4) as i32,
                    format!("[{}]", flags.join(", ")),
                )
            })
            .collect()
    }

    fn rows() -> impl Strategy<Value = Vec<Row>> {
        proptest::collection::vec(
            (
                0i64..8,
                proptest::option::weighted(0.95, 0i64..200_000_000),
                proptest::option::weighted(0.95, 0u8..6),
            ),
            0..120,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// However DataFusion splits the input (partitions, batch sizes, partial states
        /// merged in a second phase), the answers are the cores' answers.
        #[test]
        fn answers_do_not_depend_on_partitioning(
            rows in rows(),
            parts in 1usize..5,
            batch in 1usize..40,
            target in 1usize..5,
            mode in prop_oneof![
                Just(""),
                Just("strict_order"),
                Just("strict_deduplication"),
                Just("strict_increase"),
                Just("strict_once"),
                Just("strict_order, allow_reentry"),
            ],
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got = rt.block_on(run(&rows, parts, batch, target, mode));
            let want = direct(&rows, mode);
            prop_assert_eq!(got, want);
        }
    }

    #[tokio::test]
    async fn global_aggregates_over_no_rows() {
        let ctx = SessionContext::new();
        register(&ctx);
        ctx.register_table("e", Arc::new(table(&[], 1, 1))).unwrap();
        let b = ctx
            .sql("SELECT window_funnel(60, ts, step = 1), CAST(retention(step = 1, step = 2) AS VARCHAR) FROM e")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(
            b[0].column(0)
                .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                .value(0),
            0
        );
        let flags = datafusion::arrow::compute::cast(b[0].column(1), &DataType::Utf8).unwrap();
        assert_eq!(flags.as_string::<i32>().value(0), "[0, 0]");
    }
}
