//! The prediction scalars: `bgnbd_expected_purchases`, `bgnbd_p_alive`,
//! `gamma_gamma_expected_value` and `clv`, each taking the struct a fitting aggregate
//! returned.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use super::bgnbd::{BgNbdParams, BgNbdPredictor};
use super::clv::{ClvPredictor, ClvSettings};
use super::error::LtvError;
use super::gamma_gamma::{GammaGammaParams, conditional_expected_average_profit};
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
    kept: Kept,
}

/// Kept predictors remember at most about this many results (each tens of bytes)
/// between batches; one that remembers more is dropped after its batch.
const KEPT_RESULTS: usize = 1 << 20;

/// The predictor of the parameters a batch last used, kept for the next batch (of
/// this statement or a later one): rows almost always carry one set of parameters (a
/// fit cross-joined to the customers), and what a predictor remembers per frequency
/// and age is the expensive part of a prediction. Taken out while a batch runs, so
/// batches on other threads make their own instead of waiting.
#[derive(Debug, Default)]
struct Kept {
    bgnbd: Mutex<Option<(BgNbdParams, BgNbdPredictor)>>,
    clv: Mutex<Option<(ClvKey, ClvPredictor)>>,
}

type ClvKey = (BgNbdParams, GammaGammaParams, ClvSettings);

impl Kept {
    fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
        slot.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn put<K, P>(
        slot: &Mutex<Option<(K, P)>>,
        kept: Option<(K, P)>,
        remembered: impl Fn(&P) -> usize,
    ) {
        if let Some(kept) = kept.filter(|(_, p)| remembered(p) <= KEPT_RESULTS) {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(kept);
        }
    }
}

/// What a function remembers does not make it a different function.
impl PartialEq for Kept {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Kept {}

impl std::hash::Hash for Kept {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
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
        // The predictor of the last row's parameters is used until they change (see
        // `Kept`).
        let out: Float64Array = match self.kind {
            Kind::ExpectedPurchases | Kind::PAlive => {
                let params = bgnbd_params(&arrays[0], name)?;
                let mut kept = Kept::take(&self.kept.bgnbd);
                let out = (0..rows)
                    .map(|i| {
                        let Some(p) = params[i].filter(|_| valid(i)) else {
                            return Ok(None);
                        };
                        let predictor = kept_for(&mut kept, p, |p| BgNbdPredictor::new(*p))?;
                        let v = if self.kind == Kind::PAlive {
                            predictor.p_alive(n[0].value(i), n[1].value(i), n[2].value(i))
                        } else {
                            predictor.expected_purchases(
                                n[0].value(i),
                                n[1].value(i),
                                n[2].value(i),
                                n[3].value(i),
                            )
                        };
                        v.map(Some).map_err(ltv_error)
                    })
                    .collect::<Result<_>>()?;
                Kept::put(&self.kept.bgnbd, kept, BgNbdPredictor::remembered);
                out
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
                let mut kept = Kept::take(&self.kept.clv);
                let out = (0..rows)
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
                        let predictor = kept_for(&mut kept, (b, g, settings), |(b, g, s)| {
                            ClvPredictor::new(*b, *g, *s)
                        })?;
                        predictor
                            .clv(n[0].value(i), n[1].value(i), n[2].value(i), n[3].value(i))
                            .map(Some)
                            .map_err(ltv_error)
                    })
                    .collect::<Result<_>>()?;
                Kept::put(&self.kept.clv, kept, ClvPredictor::remembered);
                out
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

/// The predictor kept in `slot` when it was made for `key`, else a new one made by
/// `make` (and kept instead).
fn kept_for<K: PartialEq, P>(
    slot: &mut Option<(K, P)>,
    key: K,
    make: impl FnOnce(&K) -> std::result::Result<P, LtvError>,
) -> Result<&mut P> {
    if slot.as_ref().is_none_or(|(kept, _)| *kept != key) {
        let predictor = make(&key).map_err(ltv_error)?;
        *slot = Some((key, predictor));
    }
    Ok(&mut slot.as_mut().expect("just kept").1)
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
            kept: Kept::default(),
        }));
    }
}
