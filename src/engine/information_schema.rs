//! `information_schema` as PostgreSQL clients read it.
//!
//! DataFusion's own `information_schema` names column types the Arrow way (`Int64`,
//! `Utf8View`); dbt (`get_columns_in_relation`), Grafana's query builder and people
//! reading `information_schema.columns` expect PostgreSQL's names (`bigint`, `text`,
//! `timestamp with time zone`, `ARRAY`) with precision and scale. This schema keeps
//! DataFusion's tables (`tables`, `views`, `schemata`, `routines`, ...) and answers
//! `columns` itself.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int32Builder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::{CatalogProviderList, SchemaProvider, Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// The `information_schema` schema: DataFusion's, with a PostgreSQL `columns` table.
#[derive(Debug)]
pub struct PgInformationSchema {
    datafusion: InformationSchemaProvider,
    columns: Arc<PgColumns>,
}

impl PgInformationSchema {
    /// Over every catalog of `catalogs`.
    pub fn new(catalogs: Arc<dyn CatalogProviderList>) -> Self {
        Self {
            datafusion: InformationSchemaProvider::new(catalogs.clone()),
            columns: Arc::new(PgColumns { catalogs }),
        }
    }
}

#[async_trait]
impl SchemaProvider for PgInformationSchema {
    fn table_names(&self) -> Vec<String> {
        self.datafusion.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if name.eq_ignore_ascii_case("columns") {
            return Ok(Some(self.columns.clone()));
        }
        self.datafusion.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.datafusion.table_exist(name)
    }
}

/// `information_schema.columns` with PostgreSQL type names.
#[derive(Debug)]
struct PgColumns {
    catalogs: Arc<dyn CatalogProviderList>,
}

fn columns_schema() -> SchemaRef {
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let int = |n: &str| Field::new(n, DataType::Int32, true);
    Arc::new(Schema::new(vec![
        text("table_catalog"),
        text("table_schema"),
        text("table_name"),
        text("column_name"),
        int("ordinal_position"),
        text("column_default"),
        text("is_nullable"),
        text("data_type"),
        int("character_maximum_length"),
        int("character_octet_length"),
        int("numeric_precision"),
        int("numeric_precision_radix"),
        int("numeric_scale"),
        int("datetime_precision"),
        text("udt_catalog"),
        text("udt_schema"),
        text("udt_name"),
        text("is_identity"),
        text("is_generated"),
    ]))
}

/// How PostgreSQL's `information_schema.columns` describes a column type.
#[derive(Debug, PartialEq, Eq)]
pub struct PgColumnType {
    pub data_type: &'static str,
    pub udt_name: String,
    pub numeric_precision: Option<i32>,
    pub numeric_precision_radix: Option<i32>,
    pub numeric_scale: Option<i32>,
    pub datetime_precision: Option<i32>,
}

/// The PostgreSQL description of an Arrow type, as userql sends it on the wire.
pub fn pg_column_type(t: &DataType) -> PgColumnType {
    use DataType::*;
    let simple = |data_type: &'static str, udt: &str| PgColumnType {
        data_type,
        udt_name: udt.to_string(),
        numeric_precision: None,
        numeric_precision_radix: None,
        numeric_scale: None,
        datetime_precision: None,
    };
    let binary_number = |data_type, udt, bits| PgColumnType {
        numeric_precision: Some(bits),
        numeric_precision_radix: Some(2),
        numeric_scale: matches!(udt, "int2" | "int4" | "int8").then_some(0),
        ..simple(data_type, udt)
    };
    let temporal = |data_type, udt| PgColumnType {
        datetime_precision: Some(6),
        ..simple(data_type, udt)
    };
    match t {
        Boolean => simple("boolean", "bool"),
        Int8 | Int16 | UInt8 => binary_number("smallint", "int2", 16),
        Int32 | UInt16 => binary_number("integer", "int4", 32),
        Int64 | UInt32 | UInt64 => binary_number("bigint", "int8", 64),
        Float16 | Float32 => binary_number("real", "float4", 24),
        Float64 => binary_number("double precision", "float8", 53),
        Decimal128(p, s) | Decimal256(p, s) => PgColumnType {
            numeric_precision: Some(i32::from(*p)),
            numeric_precision_radix: Some(10),
            numeric_scale: Some(i32::from(*s)),
            ..simple("numeric", "numeric")
        },
        Utf8 | LargeUtf8 | Utf8View => simple("text", "text"),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => simple("bytea", "bytea"),
        Date32 | Date64 => PgColumnType {
            datetime_precision: Some(0),
            ..simple("date", "date")
        },
        Timestamp(_, None) => temporal("timestamp without time zone", "timestamp"),
        Timestamp(_, Some(_)) => temporal("timestamp with time zone", "timestamptz"),
        Time32(_) | Time64(_) => temporal("time without time zone", "time"),
        Interval(_) | Duration(_) => temporal("interval", "interval"),
        List(item)
        | LargeList(item)
        | ListView(item)
        | LargeListView(item)
        | FixedSizeList(item, _) => PgColumnType {
            udt_name: format!("_{}", pg_column_type(item.data_type()).udt_name),
            ..simple("ARRAY", "")
        },
        Dictionary(_, values) => pg_column_type(values),
        _ => simple("USER-DEFINED", "json"),
    }
}

impl PgColumns {
    async fn batch(&self) -> Result<RecordBatch> {
        let mut text: Vec<StringBuilder> = (0..19).map(|_| StringBuilder::new()).collect();
        let mut ints: Vec<Int32Builder> = (0..19).map(|_| Int32Builder::new()).collect();
        for catalog_name in self.catalogs.catalog_names() {
            let Some(catalog) = self.catalogs.catalog(&catalog_name) else {
                continue;
            };
            let mut schemas = catalog.schema_names();
            schemas.sort();
            for schema_name in schemas {
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                let mut tables = schema.table_names();
                tables.sort();
                for table_name in tables {
                    let Some(table) = schema.table(&table_name).await? else {
                        continue;
                    };
                    for (i, field) in table.schema().fields().iter().enumerate() {
                        let t = pg_column_type(field.data_type());
                        let row: [Option<&str>; 19] = [
                            Some(&catalog_name),
                            Some(&schema_name),
                            Some(&table_name),
                            Some(field.name()),
                            None,
                            None,
                            Some(if field.is_nullable() { "YES" } else { "NO" }),
                            Some(t.data_type),
                            None,
                            None,
                            None,
                            None,
                            None,
                            None,
                            Some(&catalog_name),
                            Some("pg_catalog"),
                            Some(&t.udt_name),
                            Some("NO"),
                            Some("NEVER"),
                        ];
                        let numbers: [Option<i32>; 19] = {
                            let mut n = [None; 19];
                            n[4] = Some(i as i32 + 1);
                            n[10] = t.numeric_precision;
                            n[11] = t.numeric_precision_radix;
                            n[12] = t.numeric_scale;
                            n[13] = t.datetime_precision;
                            n
                        };
                        for (c, value) in row.iter().enumerate() {
                            text[c].append_option(*value);
                            ints[c].append_option(numbers[c]);
                        }
                    }
                }
            }
        }
        let schema = columns_schema();
        let arrays: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(c, f)| match f.data_type() {
                DataType::Int32 => Arc::new(ints[c].finish()) as ArrayRef,
                _ => Arc::new(text[c].finish()) as ArrayRef,
            })
            .collect();
        Ok(RecordBatch::try_new(schema, arrays)?)
    }
}

#[async_trait]
impl TableProvider for PgColumns {
    fn schema(&self) -> SchemaRef {
        columns_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self.batch().await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            columns_schema(),
            projection.cloned(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;

    #[test]
    fn arrow_types_read_as_postgresql_types() {
        assert_eq!(pg_column_type(&DataType::Int64).data_type, "bigint");
        assert_eq!(pg_column_type(&DataType::Utf8View).data_type, "text");
        let n = pg_column_type(&DataType::Decimal128(10, 2));
        assert_eq!(
            (n.data_type, n.numeric_precision, n.numeric_scale),
            ("numeric", Some(10), Some(2))
        );
        assert_eq!(
            pg_column_type(&DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into())
            ))
            .data_type,
            "timestamp with time zone"
        );
        let list = pg_column_type(&DataType::List(Arc::new(Field::new(
            "element",
            DataType::Utf8,
            true,
        ))));
        assert_eq!((list.data_type, list.udt_name.as_str()), ("ARRAY", "_text"));
    }
}
