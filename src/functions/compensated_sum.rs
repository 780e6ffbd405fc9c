//! Sums of doubles that do not depend on the order of the addends.
//!
//! A plain floating-point sum rounds after every addition, so the same amounts added in
//! another order (another split between threads, another file layout) can differ in the
//! last bit — and two customers who spent the same stop tying in a ranking. Neumaier's
//! compensated sum keeps each addition's rounding error (exactly: the error of one
//! addition is itself a double) and adds the errors back at the end, which gives the
//! exact sum rounded once for any realistic list of amounts, whatever their order.
//!
//! [`CompensatedSum`] is the plain algorithm; [`compensated_sum`] wraps it as an internal
//! aggregate for plans built in Rust (not a SQL function).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

/// A running sum and the rounding error it has lost so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CompensatedSum {
    sum: f64,
    error: f64,
}

impl CompensatedSum {
    pub fn add(&mut self, value: f64) {
        let sum = self.sum + value;
        self.error += if self.sum.abs() >= value.abs() {
            (self.sum - sum) + value
        } else {
            (value - sum) + self.sum
        };
        self.sum = sum;
    }

    /// Adds another partial sum (of other addends).
    pub fn merge(&mut self, other: CompensatedSum) {
        self.add(other.sum);
        self.error += other.error;
    }

    /// The sum of the addends.
    pub fn value(&self) -> f64 {
        self.sum + self.error
    }
}

/// The aggregate `compensated_sum(double precision) → double precision`: like `sum`, NULL
/// for no (non-NULL) values, but order-independent (see the module docs).
pub fn compensated_sum() -> AggregateUDF {
    AggregateUDF::from(CompensatedSumUdaf {
        signature: Signature::exact(vec![DataType::Float64], Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CompensatedSumUdaf {
    signature: Signature,
}

impl AggregateUDFImpl for CompensatedSumUdaf {
    fn name(&self) -> &str {
        "compensated_sum"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[sum]", args.name),
                DataType::Float64,
                true,
            )),
            Arc::new(Field::new(
                format!("{}[error]", args.name),
                DataType::Float64,
                true,
            )),
        ])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(RowAccumulator::default()))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(GroupsSums::default()))
    }
}

/// The non-NULL values of `array` (a `Float64` column) that pass `filter`, by row.
fn rows<'a>(
    array: &'a ArrayRef,
    filter: Option<&'a BooleanArray>,
) -> impl Iterator<Item = (usize, f64)> + 'a {
    let values = array.as_primitive::<Float64Type>();
    (0..values.len()).filter_map(move |i| {
        let kept = filter.is_none_or(|f| f.is_valid(i) && f.value(i));
        (kept && values.is_valid(i)).then(|| (i, values.value(i)))
    })
}

/// One group's sum, for the row-at-a-time path: the vectorised one with a single group.
#[derive(Debug, Default)]
struct RowAccumulator(GroupsSums);

impl RowAccumulator {
    /// The sum, `None` before any value.
    fn sum(&self) -> Option<CompensatedSum> {
        (self.0.seen.first() == Some(&true)).then(|| self.0.sums[0])
    }
}

impl Accumulator for RowAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let groups = vec![0; values[0].len()];
        self.0.update_batch(values, &groups, None, 1)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let groups = vec![0; states[0].len()];
        self.0.merge_batch(states, &groups, 1)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let sum = self.sum();
        Ok(vec![
            ScalarValue::Float64(sum.map(|s| s.sum)),
            ScalarValue::Float64(sum.map(|s| s.error)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(self.sum().map(|s| s.value())))
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.0.size()
    }
}

/// Every group's sum, for the vectorised path.
#[derive(Debug, Default)]
struct GroupsSums {
    sums: Vec<CompensatedSum>,
    seen: Vec<bool>,
}

impl GroupsSums {
    fn grow(&mut self, groups: usize) {
        self.sums.resize(groups, CompensatedSum::default());
        self.seen.resize(groups, false);
    }

    /// The groups `emit_to` names, taken out.
    fn take(&mut self, emit_to: EmitTo) -> (Vec<CompensatedSum>, Vec<bool>) {
        (
            emit_to.take_needed(&mut self.sums),
            emit_to.take_needed(&mut self.seen),
        )
    }
}

fn doubles(values: impl Iterator<Item = f64>, seen: &[bool]) -> ArrayRef {
    let nulls = NullBuffer::from(seen.to_vec());
    Arc::new(Float64Array::new(values.collect(), Some(nulls)))
}

impl GroupsAccumulator for GroupsSums {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        for (i, v) in rows(&values[0], opt_filter) {
            let g = group_indices[i];
            self.sums[g].add(v);
            self.seen[g] = true;
        }
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let errors = values[1].as_primitive::<Float64Type>();
        for (i, sum) in rows(&values[0], None) {
            let g = group_indices[i];
            self.sums[g].merge(CompensatedSum {
                sum,
                error: errors.value(i),
            });
            self.seen[g] = true;
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (sums, seen) = self.take(emit_to);
        Ok(doubles(sums.iter().map(CompensatedSum::value), &seen))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (sums, seen) = self.take(emit_to);
        Ok(vec![
            doubles(sums.iter().map(|s| s.sum), &seen),
            doubles(sums.iter().map(|s| s.error), &seen),
        ])
    }

    /// Each row on its own: its value and no error (NULL for a NULL or filtered-out row).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let n = values[0].len();
        let mut seen = vec![false; n];
        let mut sums = vec![0.0; n];
        for (i, v) in rows(&values[0], opt_filter) {
            (seen[i], sums[i]) = (true, v);
        }
        Ok(vec![
            doubles(sums.into_iter(), &seen),
            doubles(std::iter::repeat_n(0.0, n), &seen),
        ])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * size_of::<CompensatedSum>() + self.seen.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::Schema;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{SessionConfig, SessionContext, col};
    use proptest::prelude::*;

    fn sum_of(values: &[f64]) -> f64 {
        let mut s = CompensatedSum::default();
        values.iter().for_each(|&v| s.add(v));
        s.value()
    }

    /// The exact sum of `values` (cents) rounded once.
    fn exact_cents(cents: &[i64]) -> f64 {
        cents.iter().sum::<i64>() as f64 / 100.0
    }

    #[test]
    fn a_plain_sum_depends_on_order_and_this_does_not() {
        let a = [0.1, 0.2, 0.3];
        let b = [0.3, 0.2, 0.1];
        assert_ne!(a.iter().sum::<f64>(), b.iter().sum::<f64>());
        assert_eq!(sum_of(&a), sum_of(&b));
        assert_eq!(sum_of(&a), 0.6);
        assert_eq!(sum_of(&[1e16, 1.0, -1e16]), 1.0);
        assert_eq!(sum_of(&[]), 0.0);
    }

    proptest! {
        /// Amounts in cents, in any order and split into any parts merged in any order:
        /// the exact sum rounded once.
        #[test]
        fn order_and_split_do_not_matter(
            (cents, shuffled) in proptest::collection::vec(-1_000_000i64..1_000_000, 0..60)
                .prop_flat_map(|cents| (Just(cents.clone()), Just(cents).prop_shuffle())),
            split in 0usize..60,
        ) {
            let values: Vec<f64> = cents.iter().map(|&c| c as f64 / 100.0).collect();
            let want = exact_cents(&cents);
            let shuffled: Vec<f64> = shuffled.iter().map(|&c| c as f64 / 100.0).collect();
            let whole = sum_of(&values);
            prop_assert_eq!(sum_of(&shuffled).to_bits(), whole.to_bits());
            let (left, right) = shuffled.split_at(split.min(shuffled.len()));
            let mut l = CompensatedSum::default();
            left.iter().for_each(|&v| l.add(v));
            let mut r = CompensatedSum::default();
            right.iter().for_each(|&v| r.add(v));
            r.merge(l);
            prop_assert_eq!(r.value().to_bits(), whole.to_bits());
            // Each amount was rounded when divided by 100: within that of the cents' sum.
            let magnitude: f64 = values.iter().map(|v| v.abs()).sum();
            prop_assert!((whole - want).abs() <= magnitude * 1e-15);
        }
    }

    #[test]
    fn the_row_path_sums_and_merges_like_the_groups_path() {
        let batch =
            |v: Vec<Option<f64>>| -> Vec<ArrayRef> { vec![Arc::new(Float64Array::from(v))] };
        let mut left = RowAccumulator::default();
        assert_eq!(left.evaluate().unwrap(), ScalarValue::Float64(None));
        left.update_batch(&batch(vec![Some(0.1), None, Some(0.2)]))
            .unwrap();
        let mut right = RowAccumulator::default();
        right.update_batch(&batch(vec![Some(0.3)])).unwrap();
        let state: Vec<ArrayRef> = left
            .state()
            .unwrap()
            .into_iter()
            .map(|v| v.to_array().unwrap())
            .collect();
        right.merge_batch(&state).unwrap();
        assert_eq!(right.evaluate().unwrap(), ScalarValue::Float64(Some(0.6)));
    }

    #[tokio::test]
    async fn groups_sum_alike_however_the_rows_are_partitioned() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new("v", DataType::Float64, true),
        ]));
        let rows: Vec<(i64, Option<f64>)> = (0..3000)
            .map(|i| {
                (
                    i % 7,
                    (i % 11 != 0).then(|| [0.1, 0.2, 0.3, 19.99][i as usize % 4]),
                )
            })
            .chain([(99, None)])
            .collect();
        let batch = |rows: &[(i64, Option<f64>)]| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                    Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.1))),
                ],
            )
            .unwrap()
        };
        let mut results = Vec::new();
        for parts in [1, 3, 8] {
            let per = rows.len().div_ceil(parts);
            let partitions: Vec<Vec<RecordBatch>> = rows
                .chunks(per)
                .rev()
                .map(|c| c.chunks(97).map(batch).collect())
                .collect();
            let ctx =
                SessionContext::new_with_config(SessionConfig::new().with_target_partitions(parts));
            let table = MemTable::try_new(schema.clone(), partitions).unwrap();
            let got = ctx
                .read_table(Arc::new(table))
                .unwrap()
                .aggregate(
                    vec![col("g")],
                    vec![compensated_sum().call(vec![col("v")]).alias("s")],
                )
                .unwrap()
                .sort(vec![col("g").sort(true, true)])
                .unwrap()
                .collect()
                .await
                .unwrap();
            let got: Vec<Option<u64>> = got
                .iter()
                .flat_map(|b| {
                    b.column(1)
                        .as_primitive::<Float64Type>()
                        .iter()
                        .collect::<Vec<_>>()
                })
                .map(|v| v.map(f64::to_bits))
                .collect();
            results.push(got);
        }
        assert_eq!(results[0].len(), 8);
        assert_eq!(results[0][7], None, "a group of NULLs sums to NULL");
        assert!(results.iter().all(|r| r == &results[0]), "{results:?}");
    }
}
