//! `rfm_segment(r, f)` and `rfm_value_class(...)`: the labelling of `rfm` as scalars, in
//! the session's `userql.rfm_language`.

use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use super::labels::{Language, Segment, ValueClass};
use crate::engine::settings as userql_settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Segment,
    ValueClass,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct RfmScalar {
    kind: Kind,
    signature: Signature,
}

impl RfmScalar {
    fn new(kind: Kind) -> Self {
        let n = match kind {
            Kind::Segment => 2,
            Kind::ValueClass => 6,
        };
        let numeric = [DataType::Int64, DataType::Float64];
        let signature = match kind {
            Kind::Segment => Signature::one_of(
                vec![TypeSignature::Exact(vec![DataType::Int64; 2])],
                Volatility::Stable,
            ),
            Kind::ValueClass => Signature::one_of(
                vec![TypeSignature::Exact(vec![numeric[1].clone(); n])],
                Volatility::Stable,
            ),
        };
        Self { kind, signature }
    }
}

impl ScalarUDFImpl for RfmScalar {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Segment => "rfm_segment",
            Kind::ValueClass => "rfm_value_class",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let language = Language::from_setting(
            userql_settings::of_session(&args.config_options).text("rfm_language"),
        );
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let rows = args.number_rows;
        let out: StringArray = match self.kind {
            Kind::Segment => {
                let r = cast(&arrays[0], &DataType::Int64)?;
                let f = cast(&arrays[1], &DataType::Int64)?;
                let (r, f) = (r.as_primitive::<Int64Type>(), f.as_primitive::<Int64Type>());
                (0..rows)
                    .map(|i| {
                        if r.is_null(i) || f.is_null(i) {
                            return None;
                        }
                        Segment::of(r.value(i), f.value(i)).map(|s| s.label(language))
                    })
                    .collect()
            }
            Kind::ValueClass => {
                let cols: Vec<ArrayRef> = arrays
                    .iter()
                    .map(|a| cast(a, &DataType::Float64))
                    .collect::<std::result::Result<_, _>>()?;
                let v: Vec<_> = cols
                    .iter()
                    .map(|c| c.as_primitive::<Float64Type>())
                    .collect();
                (0..rows)
                    .map(|i| {
                        if v.iter().any(|c| c.is_null(i)) {
                            return None;
                        }
                        Some(
                            ValueClass::of(
                                v[0].value(i),
                                v[1].value(i),
                                v[2].value(i),
                                v[3].value(i),
                                v[4].value(i),
                                v[5].value(i),
                            )
                            .label(language),
                        )
                    })
                    .collect()
            }
        };
        let out: ArrayRef = Arc::new(out);
        if all_scalar {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// Register `rfm_segment` and `rfm_value_class`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(RfmScalar::new(Kind::Segment)));
    ctx.register_udf(ScalarUDF::new_from_impl(RfmScalar::new(Kind::ValueClass)));
}
