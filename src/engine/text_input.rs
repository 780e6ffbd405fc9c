//! PostgreSQL's reading of text into typed values, wired into DataFusion's plans.
//!
//! DataFusion expresses "this string goes into a `text[]` / `bytea` / `numeric` /
//! `timestamp` column" as a cast, and Arrow's casts read text by Arrow's rules (a string
//! cast to a list is a one-element list). [`TextInputRule`] runs after type coercion and
//! turns every cast from a string type to a type [`pg_text::input`] handles into a call of
//! [`PgInput`], which reads the text by PostgreSQL's rules — for `INSERT ... VALUES`,
//! `UPDATE ... SET`, `'...'::type`, `CAST(... AS type)` and comparisons with literals alike.

use std::sync::Arc;

use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::{Cast, ScalarFunction};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use super::pg_text;

/// Reads a string column as `target` by PostgreSQL's input rules. One instance per target
/// type (and session time zone, for `timestamptz`); the planner creates them, users never
/// name it.
#[derive(Debug)]
pub struct PgInput {
    target: DataType,
    zone: Tz,
    zone_name: String,
    signature: Signature,
}

impl PartialEq for PgInput {
    fn eq(&self, other: &Self) -> bool {
        self.target == other.target && self.zone_name == other.zone_name
    }
}

impl Eq for PgInput {}

impl std::hash::Hash for PgInput {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.target.hash(state);
        self.zone_name.hash(state);
    }
}

impl PgInput {
    /// Reading text as `target`, with `zone` for zone-less `timestamptz` text.
    pub fn new(target: DataType, zone: Tz) -> Self {
        Self {
            zone_name: zone.to_string(),
            target,
            zone,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

/// A cast's replacement is named like the cast (a cast is named after its input), so the
/// plan's schema does not change.
fn cast_name(args: &[Expr]) -> String {
    args.first()
        .map(|a| a.schema_name().to_string())
        .unwrap_or_default()
}

/// The field of a cast to `target`: NULL exactly when its input is.
fn cast_field(name: &str, target: &DataType, args: &ReturnFieldArgs) -> FieldRef {
    let nullable = args.arg_fields.first().is_none_or(|f| f.is_nullable());
    Arc::new(Field::new(name, target.clone(), nullable))
}

/// The one argument of `function`, as an array, and whether it was a scalar.
fn only_argument(args: &ScalarFunctionArgs, function: &str) -> Result<(ArrayRef, bool)> {
    let [arg] = args.args.as_slice() else {
        return Err(DataFusionError::Internal(format!(
            "{function} takes one argument"
        )));
    };
    Ok(match arg {
        ColumnarValue::Array(a) => (a.clone(), false),
        ColumnarValue::Scalar(s) => (s.to_array_of_size(1)?, true),
    })
}

/// `result` as a scalar when the argument was one.
fn shaped_like_argument(result: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    Ok(if scalar {
        ColumnarValue::Scalar(ScalarValue::try_from_array(result.as_ref(), 0)?)
    } else {
        ColumnarValue::Array(result)
    })
}

impl ScalarUDFImpl for PgInput {
    fn name(&self) -> &str {
        "pg_input"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.target.clone())
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        let arg = args.first().map(|a| a.to_string()).unwrap_or_default();
        Ok(format!("CAST({arg} AS {})", self.target))
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(cast_name(args))
    }

    /// NULL exactly when the text is NULL (text that cannot be read is an error).
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(cast_field(self.name(), &self.target, &args))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (array, scalar) = only_argument(&args, self.name())?;
        let texts: Vec<Option<&str>> = match array.data_type() {
            DataType::Utf8 => array.as_string::<i32>().iter().collect(),
            DataType::LargeUtf8 => array.as_string::<i64>().iter().collect(),
            DataType::Utf8View => array.as_string_view().iter().collect(),
            other => {
                return Err(DataFusionError::Internal(format!(
                    "pg_input reads text, not {other}"
                )));
            }
        };
        let parsed = pg_text::input::parse_column(&texts, &self.target, &self.zone)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        shaped_like_argument(parsed, scalar)
    }
}

/// Writes a column as PostgreSQL's text (`pg_text::output`): what `x::text` gives for
/// the types whose Arrow text differs (timestamps with a `T` and nanoseconds, `1e20` in
/// full, `1 days`, arrays as `[1, 2]`, bytes as hex without `\\x`).
#[derive(Debug)]
pub struct PgOutput {
    target: DataType,
    options: pg_text::TextOptions,
    key: String,
    signature: Signature,
}

impl PartialEq for PgOutput {
    fn eq(&self, other: &Self) -> bool {
        self.target == other.target && self.key == other.key
    }
}

impl Eq for PgOutput {}

impl std::hash::Hash for PgOutput {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.target.hash(state);
        self.key.hash(state);
    }
}

impl PgOutput {
    fn new(target: DataType, options: pg_text::TextOptions) -> Self {
        Self {
            key: format!("{}/{}", options.time_zone, options.extra_float_digits),
            target,
            options,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PgOutput {
    fn name(&self) -> &str {
        "pg_output"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.target.clone())
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(cast_name(args))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(cast_field(self.name(), &self.target, &args))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (array, scalar) = only_argument(&args, self.name())?;
        let column = pg_text::ColumnText::new(&array, &self.options);
        let texts: datafusion::arrow::array::StringArray =
            (0..array.len()).map(|i| column.text(i)).collect();
        let texts = datafusion::arrow::compute::cast(&texts, &self.target)?;
        shaped_like_argument(texts, scalar)
    }
}

/// Whether Arrow's text for `t` differs from PostgreSQL's.
fn needs_pg_output(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(_, _)
            | DataType::Interval(_)
            | DataType::Duration(_)
            | DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(_, _)
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::Time32(_)
            | DataType::Time64(_)
    )
}

/// The scale PostgreSQL's `numeric` gives a literal: its digits after the point (less an
/// exponent's shift).
fn text_scale(text: &str) -> Option<i8> {
    let t = text.trim();
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i64>().ok()?),
        None => (t, 0),
    };
    let fraction = mantissa
        .split_once('.')
        .map(|(_, f)| f.len() as i64)
        .unwrap_or(0);
    i8::try_from((fraction - exponent).max(0)).ok()
}

/// The analyzer rule that routes text → type casts through [`PgInput`].
#[derive(Debug, Default)]
pub struct TextInputRule;

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Whether text cast to `target` must be read by PostgreSQL's rules here.
fn needs_pg_input(target: &DataType) -> bool {
    !is_string(target) && pg_text::input::handles(target)
}

impl AnalyzerRule for TextInputRule {
    fn name(&self) -> &str {
        "userql_text_input"
    }

    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        let zone = pg_text::session_zone(config);
        let output = pg_text::TextOptions {
            extra_float_digits: config
                .extensions
                .get::<super::pg_settings::PgSettings>()
                .and_then(|p| p.get("extra_float_digits").and_then(|v| v.parse().ok()))
                .unwrap_or(1),
            time_zone: zone,
        };
        plan.transform_up_with_subqueries(|node| {
            let schema = input_schema(&node);
            node.map_expressions(|e| e.transform_up(|e| rewrite_cast(e, &schema, &zone, &output)))
        })
        .map(|t| t.data)
    }
}

/// The schema a node's expressions are evaluated against.
pub(super) fn input_schema(node: &LogicalPlan) -> Arc<DFSchema> {
    let inputs = node.inputs();
    match inputs.as_slice() {
        [] => Arc::new(DFSchema::empty()),
        [one] => one.schema().clone(),
        many => {
            let mut merged = DFSchema::empty();
            for input in many {
                merged.merge(input.schema());
            }
            Arc::new(merged)
        }
    }
}

fn rewrite_cast(
    e: Expr,
    schema: &DFSchema,
    zone: &Tz,
    output: &pg_text::TextOptions,
) -> Result<Transformed<Expr>> {
    // TRY_CAST keeps Arrow's reading: it answers NULL where PostgreSQL's rules error.
    let (inner, target) = match &e {
        Expr::Cast(Cast { expr, field }) => (expr, field.data_type().clone()),
        _ => return Ok(Transformed::no(e)),
    };
    let Ok(source) = inner.get_type(schema) else {
        return Ok(Transformed::no(e));
    };
    // `::numeric` without precision: DataFusion plans it as numeric(38,10), which would
    // print `4.25` as `4.2500000000`. PostgreSQL keeps the value's own scale; so do we, for
    // decimals, integers and literals (a column declared `numeric` stays numeric(38,10)).
    if target == DataType::Decimal128(38, 10) {
        let scale = match (&source, inner.as_ref()) {
            (DataType::Decimal128(_, s), _) => Some(*s),
            (t, _) if t.is_integer() => Some(0),
            (
                _,
                Expr::Literal(
                    datafusion::common::ScalarValue::Utf8(Some(text))
                    | datafusion::common::ScalarValue::Utf8View(Some(text))
                    | datafusion::common::ScalarValue::LargeUtf8(Some(text)),
                    _,
                ),
            ) if is_string(&source) => text_scale(text),
            _ => None,
        };
        if let Some(scale) = scale.filter(|s| (0..=38).contains(s) && *s != 10) {
            let Expr::Cast(Cast { expr: inner, .. }) = e else {
                return Ok(Transformed::no(e));
            };
            let target = DataType::Decimal128(38, scale);
            let recast = Expr::Cast(Cast::new(inner, target));
            return rewrite_cast(recast, schema, zone, output).map(|t| Transformed::yes(t.data));
        }
    }
    if is_string(&target) && needs_pg_output(&source) {
        let Expr::Cast(Cast { expr: inner, .. }) = e else {
            return Ok(Transformed::no(e));
        };
        let udf = Arc::new(ScalarUDF::new_from_impl(PgOutput::new(
            target,
            output.clone(),
        )));
        return Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(udf, vec![*inner]),
        )));
    }
    if !needs_pg_input(&target) || !is_string(&source) {
        return Ok(Transformed::no(e));
    }
    let Expr::Cast(Cast { expr: inner, .. }) = e else {
        return Ok(Transformed::no(e));
    };
    let inner = *inner;
    let udf = Arc::new(ScalarUDF::new_from_impl(PgInput::new(target, *zone)));
    Ok(Transformed::yes(Expr::ScalarFunction(
        ScalarFunction::new_udf(udf, vec![inner]),
    )))
}

/// What a cluster node needs to rebuild one of this module's functions, which the
/// planner creates per target type and session (they are not in any registry): `None`
/// for any other function.
pub fn udf_definition(udf: &ScalarUDF) -> Option<String> {
    let inner = udf.inner();
    if let Some(input) = inner.downcast_ref::<PgInput>() {
        return Some(format!("pg_input\n{}\n{}", input.zone_name, input.target));
    }
    let output = inner.downcast_ref::<PgOutput>()?;
    Some(format!(
        "pg_output\n{}\n{}\n{}",
        output.options.time_zone, output.options.extra_float_digits, output.target
    ))
}

/// The function [`udf_definition`] describes.
pub fn udf_from_definition(definition: &str) -> Result<ScalarUDF> {
    let bad = || DataFusionError::Internal(format!("bad function definition {definition:?}"));
    let zone = |text: &str| text.parse::<Tz>().map_err(|_| bad());
    let target = |text: &str| text.parse::<DataType>().map_err(|_| bad());
    let parts: Vec<&str> = definition.splitn(4, '\n').collect();
    Ok(match parts.as_slice() {
        ["pg_input", zone_name, data_type] => {
            ScalarUDF::new_from_impl(PgInput::new(target(data_type)?, zone(zone_name)?))
        }
        ["pg_output", zone_name, digits, data_type] => {
            let options = pg_text::TextOptions {
                extra_float_digits: digits.parse().map_err(|_| bad())?,
                time_zone: zone(zone_name)?,
            };
            ScalarUDF::new_from_impl(PgOutput::new(target(data_type)?, options))
        }
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn planner_functions_round_trip_through_their_definitions() {
        let zone: Tz = "Asia/Shanghai".parse().unwrap();
        let types = [
            DataType::Timestamp(
                datafusion::arrow::datatypes::TimeUnit::Microsecond,
                Some("+08:00".into()),
            ),
            DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano),
            DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
            DataType::Decimal128(38, 10),
        ];
        for target in types {
            let input = ScalarUDF::new_from_impl(PgInput::new(target.clone(), zone));
            let options = pg_text::TextOptions {
                extra_float_digits: -3,
                time_zone: zone,
            };
            let output = ScalarUDF::new_from_impl(PgOutput::new(target, options));
            for udf in [input, output] {
                let definition = udf_definition(&udf).unwrap();
                let again = udf_from_definition(&definition).unwrap();
                assert_eq!(again, udf, "{definition}");
            }
        }
        assert!(udf_from_definition("pg_input\nnowhere\nInt64").is_err());
    }

    use super::*;
    use datafusion::arrow::array::ListArray;
    use datafusion::prelude::SessionContext;

    async fn ctx() -> SessionContext {
        let ctx = SessionContext::new();
        ctx.add_analyzer_rule(Arc::new(TextInputRule));
        ctx
    }

    #[tokio::test]
    async fn string_literals_read_as_postgresql_arrays() {
        let ctx = ctx().await;
        let batches = ctx
            .sql("SELECT CAST('{p,\"q r\",NULL}' AS VARCHAR[]) AS a")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let list = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<ListArray>()
            .unwrap();
        let values = list.value(0);
        assert_eq!(values.len(), 3);
        assert!(values.is_null(2));
    }

    #[tokio::test]
    async fn bad_text_is_an_error_not_a_value() {
        let ctx = ctx().await;
        let err = match ctx.sql("SELECT CAST('{a' AS VARCHAR[])").await {
            Ok(df) => df.collect().await.unwrap_err(),
            Err(e) => e,
        };
        let e = crate::error::UserqlError::from(err);
        assert_eq!(e.code, "22P02", "{e}");
    }
}
