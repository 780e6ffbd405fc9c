//! The prediction scalars: `bgnbd_expected_purchases`, `bgnbd_p_alive`,
//! `gamma_gamma_expected_value` and `clv`, each taking the struct a fitting aggregate
//! returned.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use super::bgnbd;
use super::clv::{ClvSettings, customer_lifetime_value};
use super::gamma_gamma::conditional_expected_average_profit;
use super::sql::{bgnbd_params, gamma_gamma_params, ltv_error, unit_of};
use crate::error::sqlstate;
use crate::functions::input::user_error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    ExpectedPurchases,
    PAlive,
    ExpectedValue,
    Clv,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ExpectedPurchases => "bgnbd_expected_purchases",
            Kind::PAlive => "bgnbd_p_alive",
            Kind::ExpectedValue => "gamma_gamma_expected_value",
            Kind::Clv => "clv",
        }
    }

    fn signature(self) -> &'static str {
        match self {
            Kind::ExpectedPurchases => {
                "bgnbd_expected_purchases(params, horizon, frequency, recency, t)"
            }
            Kind::PAlive => "bgnbd_p_alive(params, frequency, recency, t)",
            Kind::ExpectedValue => "gamma_gamma_expected_value(params, frequency, monetary_value)",
            Kind::Clv => {
                "clv(bgnbd_params, gg_params, frequency, recency, t, monetary_value, horizon_months, monthly_discount_rate, unit)"
            }
        }
    }

    /// Argument count and which arguments are parameter structs (the rest numbers, and
    /// `clv`'s last one text).
    fn arity(self) -> usize {
        match self {
            Kind::ExpectedPurchases => 5,
            Kind::PAlive => 4,
            Kind::ExpectedValue => 3,
            Kind::Clv => 9,
        }
    }

    fn structs(self) -> usize {
        if self == Kind::Clv { 2 } else { 1 }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Prediction {
    kind: Kind,
    signature: Signature,
}

impl ScalarUDFImpl for Prediction {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let kind = self.kind;
        if arg_types.len() != kind.arity() {
            return Err(user_error(
                sqlstate::UNDEFINED_FUNCTION,
                format!(
                    "{} takes {} arguments, got {}: {}",
                    kind.name(),
                    kind.arity(),
                    arg_types.len(),
                    kind.signature()
                ),
            ));
        }
        arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if i < kind.structs() {
                    return match t {
                        DataType::Struct(_) | DataType::Null => Ok(t.clone()),
                        other => Err(user_error(
                            sqlstate::DATATYPE_MISMATCH,
                            format!(
                                "{}: argument {} is {other}, expected the struct a fit returns: {}",
                                kind.name(),
                                i + 1,
                                kind.signature()
                            ),
                        )),
                    };
                }
                if kind == Kind::Clv && i == 8 {
                    return match t {
                        DataType::Utf8
                        | DataType::Utf8View
                        | DataType::LargeUtf8
                        | DataType::Null => Ok(DataType::Utf8),
                        other => Err(user_error(
                            sqlstate::DATATYPE_MISMATCH,
                            format!(
                                "clv: unit is {other}, expected text ('day', 'week' or 'month')"
                            ),
                        )),
                    };
                }
                if t.is_numeric() || t == &DataType::Null {
                    Ok(DataType::Float64)
                } else {
                    Err(user_error(
                        sqlstate::DATATYPE_MISMATCH,
                        format!(
                            "{}: argument {} is {t}, expected a number: {}",
                            kind.name(),
                            i + 1,
                            kind.signature()
                        ),
                    ))
                }
            })
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let name = self.kind.name();
        let numbers: Vec<ArrayRef> = arrays[self.kind.structs()..]
            .iter()
            .take(if self.kind == Kind::Clv {
                6
            } else {
                usize::MAX
            })
            .map(|a| cast(a, &DataType::Float64))
            .collect::<std::result::Result<_, _>>()?;
        let n: Vec<_> = numbers
            .iter()
            .map(|a| a.as_primitive::<Float64Type>())
            .collect();
        let valid = |i: usize| n.iter().all(|c| c.is_valid(i));
        let out: Float64Array = match self.kind {
            Kind::ExpectedPurchases | Kind::PAlive => {
                let params = bgnbd_params(&arrays[0], name)?;
                (0..rows)
                    .map(|i| {
                        let Some(p) = params[i].filter(|_| valid(i)) else {
                            return Ok(None);
                        };
                        let v = if self.kind == Kind::PAlive {
                            bgnbd::p_alive(&p, n[0].value(i), n[1].value(i), n[2].value(i))
                        } else {
                            bgnbd::expected_purchases(
                                &p,
                                n[0].value(i),
                                n[1].value(i),
                                n[2].value(i),
                                n[3].value(i),
                            )
                        };
                        v.map(Some).map_err(ltv_error)
                    })
                    .collect::<Result<_>>()?
            }
            Kind::ExpectedValue => {
                let params = gamma_gamma_params(&arrays[0], name)?;
                (0..rows)
                    .map(|i| {
                        let Some(p) = params[i].filter(|_| valid(i)) else {
                            return Ok(None);
                        };
                        conditional_expected_average_profit(&p, n[0].value(i), n[1].value(i))
                            .map(Some)
                            .map_err(ltv_error)
                    })
                    .collect::<Result<_>>()?
            }
            Kind::Clv => {
                let bg = bgnbd_params(&arrays[0], name)?;
                let gg = gamma_gamma_params(&arrays[1], name)?;
                let units = cast(&arrays[8], &DataType::Utf8)?;
                let units = units.as_string::<i32>();
                (0..rows)
                    .map(|i| {
                        let (Some(b), Some(g)) = (bg[i], gg[i]) else {
                            return Ok(None);
                        };
                        if !valid(i) || units.is_null(i) {
                            return Ok(None);
                        }
                        let horizon = n[4].value(i);
                        if horizon.fract() != 0.0 || !(0.0..=1200.0).contains(&horizon) {
                            return Err(user_error(
                                sqlstate::INVALID_PARAMETER_VALUE,
                                format!("clv: horizon_months must be a whole number of months from 0 to 1200, got {horizon}"),
                            ));
                        }
                        let settings = ClvSettings {
                            horizon_months: horizon as u32,
                            monthly_discount_rate: n[5].value(i),
                            unit: unit_of(units.value(i), "clv")?,
                        };
                        customer_lifetime_value(
                            &b,
                            &g,
                            n[0].value(i),
                            n[1].value(i),
                            n[2].value(i),
                            n[3].value(i),
                            &settings,
                        )
                        .map(Some)
                        .map_err(ltv_error)
                    })
                    .collect::<Result<_>>()?
            }
        };
        let out: ArrayRef = Arc::new(out);
        Ok(if all_scalar {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

/// Register the prediction scalars.
pub fn register(ctx: &SessionContext) {
    for kind in [
        Kind::ExpectedPurchases,
        Kind::PAlive,
        Kind::ExpectedValue,
        Kind::Clv,
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(Prediction {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }));
    }
}
