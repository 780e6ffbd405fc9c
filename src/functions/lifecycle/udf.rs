//! `lifecycle_stage(first_order_ts, last_order_ts, order_count, as_of)`: one customer's
//! stage under the session's `userql.lifecycle_*` settings.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use super::table::rules_of;

#[derive(Debug, PartialEq, Eq, Hash)]
struct LifecycleStage {
    signature: Signature,
}

impl ScalarUDFImpl for LifecycleStage {
    fn name(&self) -> &str {
        "lifecycle_stage"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let is_time = |t: &DataType| {
            matches!(
                t,
                DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 | DataType::Null
            )
        };
        let ok = arg_types.len() == 4
            && is_time(&arg_types[0])
            && is_time(&arg_types[1])
            && (arg_types[2].is_integer() || arg_types[2] == DataType::Null)
            && is_time(&arg_types[3]);
        if !ok {
            return Err(crate::functions::input::user_error(
                crate::error::sqlstate::UNDEFINED_FUNCTION,
                format!(
                    "lifecycle_stage({}) does not exist: expected lifecycle_stage(first_order_ts timestamp, last_order_ts timestamp, order_count bigint, as_of timestamp)",
                    arg_types
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rules = rules_of(&args.config_options);
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
        let strip = |a: &ArrayRef| -> Result<ArrayRef> {
            // An instant's zone does not change the durations compared.
            let a = match a.data_type() {
                DataType::Timestamp(unit, Some(_)) => {
                    cast(a, &DataType::Timestamp(*unit, Some("UTC".into())))?
                }
                _ => a.clone(),
            };
            let a = match a.data_type() {
                DataType::Timestamp(unit, Some(_)) => cast(
                    &cast(&a, &DataType::Int64)?,
                    &DataType::Timestamp(*unit, None),
                )?,
                _ => a,
            };
            Ok(cast(&a, &micros)?)
        };
        let first = strip(&arrays[0])?;
        let last = strip(&arrays[1])?;
        let count = cast(&arrays[2], &DataType::Int64)?;
        let as_of = strip(&arrays[3])?;
        let (first, last, as_of) = (
            first.as_primitive::<TimestampMicrosecondType>(),
            last.as_primitive::<TimestampMicrosecondType>(),
            as_of.as_primitive::<TimestampMicrosecondType>(),
        );
        let count = count.as_primitive::<Int64Type>();
        let out: StringArray = (0..args.number_rows)
            .map(|i| {
                if first.is_null(i) || last.is_null(i) || count.is_null(i) || as_of.is_null(i) {
                    return None;
                }
                if count.value(i) < 1 || last.value(i) > as_of.value(i) {
                    return None;
                }
                Some(
                    rules
                        .stage(
                            first.value(i),
                            last.value(i),
                            count.value(i),
                            as_of.value(i),
                        )
                        .code(),
                )
            })
            .collect();
        let out: ArrayRef = Arc::new(out);
        Ok(if all_scalar {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

/// Register `lifecycle_stage`.
pub fn register(ctx: &SessionContext) {
    // Any timestamp precision or zone, or a date: checked in `return_type`.
    let signature = Signature::any(4, Volatility::Stable);
    ctx.register_udf(ScalarUDF::new_from_impl(LifecycleStage { signature }));
}
