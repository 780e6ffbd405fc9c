//! Scalar SQL faces of the normaliser: `normalize_phone(text [, region])`,
//! `normalize_email(text)`, `hash_id(id_type, value)`, `mask_phone(text)`,
//! `mask_email(text)`. Phones without a region argument use `userql.default_region`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use super::normalize::{self, Region};
use crate::engine::settings::UserqlSettings;

/// Which function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    NormalizePhone,
    NormalizeEmail,
    HashId,
    MaskPhone,
    MaskEmail,
}

/// One text → text identity scalar.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IdentityScalar {
    kind: Kind,
    signature: Signature,
}

impl IdentityScalar {
    fn new(kind: Kind) -> Self {
        let text = DataType::Utf8;
        let sigs = match kind {
            Kind::NormalizePhone => vec![
                TypeSignature::Exact(vec![text.clone()]),
                TypeSignature::Exact(vec![text.clone(), text]),
            ],
            Kind::HashId => vec![TypeSignature::Exact(vec![text.clone(), text])],
            _ => vec![TypeSignature::Exact(vec![text])],
        };
        Self {
            kind,
            signature: Signature::one_of(sigs, Volatility::Stable),
        }
    }
}

fn region_of(text: &str) -> Result<Region> {
    normalize::parse_region(text).map_err(|e| DataFusionError::Configuration(e.to_string()))
}

impl ScalarUDFImpl for IdentityScalar {
    fn name(&self) -> &str {
        match self.kind {
            Kind::NormalizePhone => "normalize_phone",
            Kind::NormalizeEmail => "normalize_email",
            Kind::HashId => "hash_id",
            Kind::MaskPhone => "mask_phone",
            Kind::MaskEmail => "mask_email",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let default_region = args
            .config_options
            .extensions
            .get::<UserqlSettings>()
            .map(|s| s.text("default_region").to_string())
            .unwrap_or_else(|| "CN".into());
        let default_region = region_of(&default_region)?;
        let rows = args.number_rows;
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(if all_scalar { 1 } else { rows }))
            .collect::<Result<_>>()?;
        let strings: Vec<ArrayRef> = arrays
            .iter()
            .map(|a| cast(a, &DataType::Utf8).map_err(DataFusionError::from))
            .collect::<Result<_>>()?;
        let cols: Vec<&StringArray> = strings
            .iter()
            .map(|a| {
                a.as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| DataFusionError::Internal("expected text".into()))
            })
            .collect::<Result<_>>()?;
        let n = cols.first().map(|c| c.len()).unwrap_or(0);
        // One region argument usually repeats: parse each distinct one once.
        let mut last_region: Option<(String, Region)> = None;
        let mut out: Vec<Option<String>> = Vec::with_capacity(n);
        for i in 0..n {
            let arg = |k: usize| -> Option<&str> {
                let c = cols.get(k)?;
                (!c.is_null(i)).then(|| c.value(i))
            };
            let value = match self.kind {
                Kind::NormalizePhone => {
                    let region = match cols.get(1) {
                        None => Some(default_region),
                        Some(_) => match arg(1) {
                            None => None,
                            Some(code) => match &last_region {
                                Some((c, r)) if c == code => Some(*r),
                                _ => {
                                    let r = region_of(code)?;
                                    last_region = Some((code.to_string(), r));
                                    Some(r)
                                }
                            },
                        },
                    };
                    match (arg(0), region) {
                        (Some(v), Some(r)) => normalize::normalize_phone(v, r),
                        _ => None,
                    }
                }
                Kind::NormalizeEmail => arg(0).and_then(normalize::normalize_email),
                Kind::HashId => match (arg(0), arg(1)) {
                    (Some(t), Some(v)) => normalize::hash_id(t, v, default_region),
                    _ => None,
                },
                Kind::MaskPhone => arg(0).and_then(normalize::mask_phone),
                Kind::MaskEmail => arg(0).and_then(normalize::mask_email),
            };
            out.push(value);
        }
        let array = StringArray::from(out);
        if all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &array, 0,
            )?))
        } else {
            Ok(ColumnarValue::Array(Arc::new(array)))
        }
    }
}

/// Register the scalars.
pub fn register(ctx: &SessionContext) {
    for kind in [
        Kind::NormalizePhone,
        Kind::NormalizeEmail,
        Kind::HashId,
        Kind::MaskPhone,
        Kind::MaskEmail,
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(IdentityScalar::new(kind)));
    }
}

/// Used by the table functions to reject non-literal arguments consistently.
pub fn literal_text(expr: &datafusion::logical_expr::Expr, what: &str) -> Result<String> {
    use datafusion::logical_expr::Expr;
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(s)), _)
        | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _)
        | Expr::Literal(ScalarValue::Utf8View(Some(s)), _) => Ok(s.clone()),
        other => plan_err!(
            "{what} must be a text literal (a table name such as 'identities' or a query), got {other} (expected type text)"
        ),
    }
}
