//! PostgreSQL functions clients call that need more than a text in, text out body:
//! `pg_backend_pid()`, `json_build_object(...)`, and `pg_expandarray(a)` (the record list
//! behind `information_schema._pg_expandarray`).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, ListArray, StringArray, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::super::pg_settings::PgSettings;

/// `pg_backend_pid()`: the process id this connection was given (CancelRequest's key).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BackendPid {
    signature: Signature,
}

impl BackendPid {
    pub fn new() -> Self {
        Self {
            signature: Signature::exact(vec![], Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for BackendPid {
    fn name(&self) -> &str {
        "pg_backend_pid"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let pid = args
            .config_options
            .extensions
            .get::<PgSettings>()
            .map(|p| p.backend_pid())
            .unwrap_or(0);
        Ok(ColumnarValue::Scalar(ScalarValue::Int32(Some(pid))))
    }
}

/// `json_build_object(key1, value1, ...)` as JSON text.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonBuildObject {
    signature: Signature,
}

impl JsonBuildObject {
    pub fn new() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

fn json_of(v: &ScalarValue) -> serde_json::Value {
    use serde_json::Value as J;
    if v.is_null() {
        return J::Null;
    }
    match v {
        ScalarValue::Boolean(Some(b)) => J::Bool(*b),
        ScalarValue::Int8(Some(n)) => J::from(*n),
        ScalarValue::Int16(Some(n)) => J::from(*n),
        ScalarValue::Int32(Some(n)) => J::from(*n),
        ScalarValue::Int64(Some(n)) => J::from(*n),
        ScalarValue::UInt8(Some(n)) => J::from(*n),
        ScalarValue::UInt16(Some(n)) => J::from(*n),
        ScalarValue::UInt32(Some(n)) => J::from(*n),
        ScalarValue::UInt64(Some(n)) => J::from(*n),
        ScalarValue::Float32(Some(f)) => serde_json::Number::from_f64(*f as f64)
            .map(J::Number)
            .unwrap_or(J::Null),
        ScalarValue::Float64(Some(f)) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .unwrap_or(J::Null),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => J::String(s.clone()),
        other => J::String(other.to_string()),
    }
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if !arg_types.len().is_multiple_of(2) {
            return Err(DataFusionError::Plan(
                "json_build_object: argument list must have even number of elements".into(),
            ));
        }
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            let mut object = serde_json::Map::new();
            for pair in arrays.chunks(2) {
                let key = ScalarValue::try_from_array(&pair[0], i)?;
                if key.is_null() {
                    return Err(DataFusionError::Execution(
                        "json_build_object: a key must not be null".into(),
                    ));
                }
                let key = match key {
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::LargeUtf8(Some(s))
                    | ScalarValue::Utf8View(Some(s)) => s,
                    other => other.to_string(),
                };
                object.insert(key, json_of(&ScalarValue::try_from_array(&pair[1], i)?));
            }
            out.push(serde_json::Value::Object(object).to_string());
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

/// `pg_expandarray(a)`: the list of `(x, n)` records — each element and its subscript.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ExpandArray {
    signature: Signature,
}

impl ExpandArray {
    pub fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }

    fn fields(element: &DataType) -> Fields {
        Fields::from(vec![
            Field::new("x", element.clone(), true),
            Field::new("n", DataType::Int32, true),
        ])
    }
}

fn element_of(t: &DataType) -> DataType {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            f.data_type().clone()
        }
        _ => DataType::Null,
    }
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        "pg_expandarray"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let element = element_of(&arg_types[0]);
        Ok(DataType::List(Arc::new(Field::new(
            "item",
            DataType::Struct(Self::fields(&element)),
            true,
        ))))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let list = datafusion::arrow::compute::cast(
            &arrays[0],
            &DataType::List(Arc::new(Field::new(
                "item",
                element_of(arrays[0].data_type()),
                true,
            ))),
        )?;
        let list = list.as_list::<i32>();
        let values = list.values().clone();
        let mut subscripts = Vec::with_capacity(values.len());
        for w in list.value_offsets().windows(2) {
            subscripts.extend((0..(w[1] - w[0])).map(|i| i + 1));
        }
        let element = values.data_type().clone();
        let records = StructArray::new(
            Self::fields(&element),
            vec![values, Arc::new(Int32Array::from(subscripts)) as ArrayRef],
            None,
        );
        let out = ListArray::new(
            Arc::new(Field::new(
                "item",
                DataType::Struct(Self::fields(&element)),
                true,
            )),
            OffsetBuffer::new(list.offsets().inner().clone()),
            Arc::new(records),
            list.nulls().cloned(),
        );
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// PostgreSQL's name for the type of a value of Arrow type `t`.
pub fn pg_type_name(t: &DataType) -> String {
    use DataType::*;
    match t {
        Boolean => "boolean".into(),
        Int8 | Int16 | UInt8 => "smallint".into(),
        Int32 | UInt16 => "integer".into(),
        Int64 | UInt32 => "bigint".into(),
        UInt64 | Decimal128(_, _) | Decimal256(_, _) => "numeric".into(),
        Float16 | Float32 => "real".into(),
        Float64 => "double precision".into(),
        Utf8 | LargeUtf8 | Utf8View => "text".into(),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "bytea".into(),
        Date32 | Date64 => "date".into(),
        Timestamp(_, None) => "timestamp without time zone".into(),
        Timestamp(_, Some(_)) => "timestamp with time zone".into(),
        Time32(_) | Time64(_) => "time without time zone".into(),
        Interval(_) | Duration(_) => "interval".into(),
        List(f) | LargeList(f) | FixedSizeList(f, _) => {
            format!("{}[]", pg_type_name(f.data_type()))
        }
        Struct(_) => "record".into(),
        Null => "unknown".into(),
        Dictionary(_, v) => pg_type_name(v),
        other => other.to_string(),
    }
}

/// `pg_typeof(value)`: the name of its type.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TypeOf {
    signature: Signature,
}

impl TypeOf {
    pub fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TypeOf {
    fn name(&self) -> &str {
        "pg_typeof"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let t = args
            .arg_fields
            .first()
            .map(|f| f.data_type().clone())
            .unwrap_or(DataType::Null);
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            pg_type_name(&t),
        ))))
    }
}
