//! Column types of stored tables: the Arrow type a PostgreSQL column type is kept as in
//! Delta, so it comes back to clients as the same PostgreSQL type.
//!
//! DataFusion's planner already maps SQL types to Arrow (`integer` → Int32, `numeric(p,s)`
//! → Decimal128, `text`/`varchar(n)` → a string type, `int[]` → List). Delta has fewer
//! types than Arrow, so the planned types are narrowed to the one Arrow type per Delta
//! type that reads back unchanged: strings → Utf8, timestamps → microseconds (`timestamp`
//! without a zone is Delta's `timestamp_ntz`, `timestamptz` is Delta's UTC `timestamp`),
//! dictionaries → their values. Types Delta cannot hold are refused with 0A000 when the
//! table is created, never silently changed later.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::error::UserqlError;

/// The schema a new stored table gets for the planned schema `schema`.
pub fn storage_schema(schema: &Schema) -> Result<SchemaRef, UserqlError> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| storage_field(f))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

fn storage_field(field: &Field) -> Result<Field, UserqlError> {
    let data_type = storage_type(field.data_type()).map_err(|t| {
        UserqlError::unsupported(format!(
            "column \"{}\" has type {t}, which stored tables cannot hold",
            field.name()
        ))
        .with_hint(
            "use bigint, integer, smallint, real, double precision, numeric(p,s) (p ≤ 38), \
             text, varchar, boolean, date, timestamp, timestamptz, bytea or arrays of them",
        )
    })?;
    Ok(Field::new(field.name(), data_type, field.is_nullable()))
}

/// The Delta-compatible Arrow type for `t`, or the type's name when there is none.
fn storage_type(t: &DataType) -> Result<DataType, String> {
    use DataType::*;
    Ok(match t {
        Boolean | Int8 | Int16 | Int32 | Int64 | Float32 | Float64 | Date32 | Binary => t.clone(),
        // Unsigned integers widen to the next signed type (PostgreSQL has none).
        UInt8 => Int16,
        UInt16 => Int32,
        UInt32 => Int64,
        UInt64 => Decimal128(20, 0),
        Float16 => Float32,
        Utf8 | Utf8View | LargeUtf8 => Utf8,
        BinaryView | LargeBinary | FixedSizeBinary(_) => Binary,
        // `SELECT NULL AS x`: PostgreSQL calls such a column text.
        Null => Utf8,
        Date64 => Date32,
        Timestamp(_, None) => Timestamp(TimeUnit::Microsecond, None),
        Timestamp(_, Some(_)) => Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Decimal128(p, s) if *p <= 38 => Decimal128(*p, *s),
        Decimal256(p, s) if *p <= 38 => Decimal128(*p, *s),
        List(item) | LargeList(item) | ListView(item) | LargeListView(item) => List(Arc::new(
            Field::new("element", storage_type(item.data_type())?, true),
        )),
        FixedSizeList(item, _) => List(Arc::new(Field::new(
            "element",
            storage_type(item.data_type())?,
            true,
        ))),
        Struct(fields) => Struct(
            fields
                .iter()
                .map(|f| {
                    Ok(Field::new(
                        f.name(),
                        storage_type(f.data_type())?,
                        f.is_nullable(),
                    ))
                })
                .collect::<Result<Fields, String>>()?,
        ),
        Dictionary(_, values) => storage_type(values)?,
        other => return Err(pg_name(other)),
    })
}

/// What a PostgreSQL user would call an Arrow type we cannot store.
fn pg_name(t: &DataType) -> String {
    match t {
        DataType::Time32(_) | DataType::Time64(_) => "time".into(),
        DataType::Interval(_) | DataType::Duration(_) => "interval".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("numeric({p},{s})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_types_map_to_storable_arrow_types() {
        let planned = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8View, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new(
                "at_tz",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("+00:00".into())),
                true,
            ),
            Field::new("amount", DataType::Decimal128(12, 2), true),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8View, true))),
                true,
            ),
        ]);
        let stored = storage_schema(&planned).unwrap();
        let types: Vec<_> = stored.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(types[0], &DataType::Int64);
        assert!(!stored.field(0).is_nullable());
        assert_eq!(types[1], &DataType::Utf8);
        assert_eq!(types[2], &DataType::Timestamp(TimeUnit::Microsecond, None));
        assert_eq!(
            types[3],
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(types[4], &DataType::Decimal128(12, 2));
        assert!(matches!(types[5], DataType::List(f) if f.data_type() == &DataType::Utf8));
    }

    #[test]
    fn unstorable_types_are_refused_naming_the_column() {
        let planned = Schema::new(vec![Field::new(
            "opens_at",
            DataType::Time64(TimeUnit::Microsecond),
            true,
        )]);
        let e = storage_schema(&planned).unwrap_err();
        assert_eq!(e.code, "0A000");
        assert!(e.message.contains("opens_at") && e.message.contains("time"));
    }
}
