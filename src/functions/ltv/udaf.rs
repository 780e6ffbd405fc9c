//! `bgnbd_fit(frequency, recency, t)` and `gamma_gamma_fit(frequency, monetary_value)`:
//! maximum-likelihood fits as aggregates. The state is the customers' histories (equal
//! ones collapsed into counts before they travel), so partial states from any split of
//! the input merge into the same fit.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt64Type};
use datafusion::common::ScalarValue;
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use super::bgnbd::BgNbdData;
use super::gamma_gamma::GammaGammaData;
use super::sql::{bgnbd_fields, bgnbd_struct, gamma_gamma_fields, gamma_gamma_struct, ltv_error};
use crate::error::sqlstate;
use crate::functions::input::user_error;

/// Which model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Model {
    BgNbd,
    GammaGamma,
}

impl Model {
    fn name(self) -> &'static str {
        match self {
            Model::BgNbd => "bgnbd_fit",
            Model::GammaGamma => "gamma_gamma_fit",
        }
    }

    fn arguments(self) -> &'static [&'static str] {
        match self {
            Model::BgNbd => &["frequency", "recency", "t"],
            Model::GammaGamma => &["frequency", "monetary_value"],
        }
    }
}

/// A fitting aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Fit {
    model: Model,
    signature: Signature,
}

impl AggregateUDFImpl for Fit {
    fn name(&self) -> &str {
        self.model.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let names = self.model.arguments();
        if arg_types.len() != names.len() {
            return Err(user_error(
                sqlstate::UNDEFINED_FUNCTION,
                format!(
                    "{}({}) takes {} numeric arguments, got {}",
                    self.name(),
                    names.join(", "),
                    names.len(),
                    arg_types.len()
                ),
            ));
        }
        for (t, name) in arg_types.iter().zip(names) {
            if !(t.is_numeric() || t == &DataType::Null) {
                return Err(user_error(
                    sqlstate::DATATYPE_MISMATCH,
                    format!("{}: {name} is {t}, expected a number", self.name()),
                ));
            }
        }
        Ok(vec![DataType::Float64; names.len()])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(match self.model {
            Model::BgNbd => bgnbd_fields(),
            Model::GammaGamma => gamma_gamma_fields(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let list = |name: &str, item: DataType| {
            Arc::new(Field::new(
                format!("{}[{name}]", args.name),
                DataType::List(Arc::new(Field::new("item", item, true))),
                true,
            ))
        };
        let mut fields: Vec<FieldRef> = self
            .model
            .arguments()
            .iter()
            .map(|n| list(n, DataType::Float64))
            .collect();
        fields.push(list("count", DataType::UInt64));
        Ok(fields)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(match self.model {
            Model::BgNbd => Box::new(BgNbdAccumulator(BgNbdData::new())),
            Model::GammaGamma => Box::new(GammaGammaAccumulator(GammaGammaData::new())),
        })
    }
}

/// A partial state's column: one list scalar over the values, built as one array (a
/// million customers are a million values, not a million scalars).
fn f64_list(values: Vec<f64>) -> ScalarValue {
    SingleRowListArrayBuilder::new(Arc::new(Float64Array::from(values))).build_list_scalar()
}

fn u64_list(values: Vec<u64>) -> ScalarValue {
    SingleRowListArrayBuilder::new(Arc::new(UInt64Array::from(values))).build_list_scalar()
}

/// Calls `add` with the values of each row where every argument is not NULL.
fn for_each_row<const N: usize>(
    values: &[ArrayRef],
    mut add: impl FnMut([f64; N]) -> Result<()>,
) -> Result<()> {
    let columns: [&Float64Array; N] =
        std::array::from_fn(|c| values[c].as_primitive::<Float64Type>());
    let rows = columns.first().map_or(0, |c| c.len());
    let nullable = columns.iter().any(|c| c.null_count() > 0);
    for i in 0..rows {
        if nullable && columns.iter().any(|c| c.is_null(i)) {
            continue;
        }
        add(std::array::from_fn(|c| columns[c].value(i)))?;
    }
    Ok(())
}

fn partial_rows(states: &[ArrayRef]) -> Vec<(Vec<Vec<f64>>, Vec<u64>)> {
    let lists: Vec<&ListArray> = states.iter().map(|s| s.as_list::<i32>()).collect();
    let (values, counts) = lists.split_at(lists.len() - 1);
    let counts = counts[0];
    (0..counts.len())
        .filter(|&row| counts.is_valid(row))
        .map(|row| {
            let columns = values
                .iter()
                .map(|l| l.value(row).as_primitive::<Float64Type>().values().to_vec())
                .collect();
            let c = counts
                .value(row)
                .as_primitive::<UInt64Type>()
                .values()
                .to_vec();
            (columns, c)
        })
        .collect()
}

#[derive(Debug)]
struct BgNbdAccumulator(BgNbdData);

impl Accumulator for BgNbdAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for_each_row(values, |[x, t_x, t]| {
            self.0.add(x, t_x, t).map_err(ltv_error)
        })
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for (columns, counts) in partial_rows(states) {
            for (i, &c) in counts.iter().enumerate() {
                self.0
                    .add_count(columns[0][i], columns[1][i], columns[2][i], c)
                    .map_err(ltv_error)?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.collapse();
        let (mut x, mut tx, mut t, mut c) = (vec![], vec![], vec![], vec![]);
        for (a, b, d, n) in self.0.iter() {
            x.push(a);
            tx.push(b);
            t.push(d);
            c.push(n);
        }
        Ok(vec![f64_list(x), f64_list(tx), f64_list(t), u64_list(c)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.0.customers() == 0 {
            return ScalarValue::try_from(DataType::Struct(bgnbd_fields()));
        }
        let fit = self.0.fit().map_err(ltv_error)?;
        Ok(ScalarValue::Struct(Arc::new(bgnbd_struct(&fit))))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.0.len() * 32
    }
}

#[derive(Debug)]
struct GammaGammaAccumulator(GammaGammaData);

impl Accumulator for GammaGammaAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for_each_row(values, |[x, m]| {
            // The spend model is over customers with repeat purchases of positive value.
            if x > 0.0 && m > 0.0 {
                self.0.add(x, m).map_err(ltv_error)?;
            }
            Ok(())
        })
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for (columns, counts) in partial_rows(states) {
            for (i, &c) in counts.iter().enumerate() {
                self.0
                    .add_count(columns[0][i], columns[1][i], c)
                    .map_err(ltv_error)?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.collapse();
        let (mut x, mut m, mut c) = (vec![], vec![], vec![]);
        for (a, b, n) in self.0.iter() {
            x.push(a);
            m.push(b);
            c.push(n);
        }
        Ok(vec![f64_list(x), f64_list(m), u64_list(c)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.0.customers() == 0 {
            return ScalarValue::try_from(DataType::Struct(gamma_gamma_fields()));
        }
        let fit = self.0.fit().map_err(ltv_error)?;
        Ok(ScalarValue::Struct(Arc::new(gamma_gamma_struct(&fit))))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.0.len() * 24
    }
}

/// Register the fitting aggregates.
pub fn register(ctx: &SessionContext) {
    for model in [Model::BgNbd, Model::GammaGamma] {
        ctx.register_udaf(AggregateUDF::new_from_impl(Fit {
            model,
            signature: Signature::user_defined(Volatility::Immutable),
        }));
    }
}
