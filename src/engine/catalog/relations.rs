//! Catalog tables computed from the live catalog when scanned: `pg_tables` (base tables
//! only) and `pg_views` (with their SQL), each column's PostgreSQL type (for `pg_attribute`),
//! and `pg_settings` from the scanning session's own settings.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int16Array, Int32Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{CatalogProviderList, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::engine::pg_settings::{self, PgSettings};
use crate::engine::settings::{self as userql_settings};

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// `pg_tables`.
    Tables,
    /// `pg_views`.
    Views,
    /// `(nspname, relname, attnum, typid, typmod)` of every column.
    ColumnTypes,
}

/// One of the listings, computed at scan time from the catalog.
#[derive(Debug)]
pub struct RelationListing {
    catalogs: Arc<dyn CatalogProviderList>,
    database: String,
    listing: Listing,
    schema: SchemaRef,
}

impl RelationListing {
    /// The listing `listing` of database `database`.
    pub fn new(catalogs: Arc<dyn CatalogProviderList>, database: &str, listing: Listing) -> Self {
        let text = |n: &str| Field::new(n, DataType::Utf8, true);
        let flag = |n: &str| Field::new(n, DataType::Boolean, false);
        let schema = Arc::new(Schema::new(match listing {
            Listing::Tables => vec![
                Field::new("schemaname", DataType::Utf8, false),
                Field::new("tablename", DataType::Utf8, false),
                Field::new("tableowner", DataType::Utf8, false),
                text("tablespace"),
                flag("hasindexes"),
                flag("hasrules"),
                flag("hastriggers"),
                flag("rowsecurity"),
            ],
            Listing::Views => vec![
                text("schemaname"),
                text("viewname"),
                text("viewowner"),
                text("definition"),
            ],
            Listing::ColumnTypes => vec![
                Field::new("nspname", DataType::Utf8, false),
                Field::new("relname", DataType::Utf8, false),
                Field::new("attnum", DataType::Int16, false),
                Field::new("typid", DataType::Int32, false),
                Field::new("typmod", DataType::Int32, false),
            ],
        }));
        Self {
            catalogs,
            database: database.to_string(),
            listing,
            schema,
        }
    }

    async fn rows(&self) -> Result<RecordBatch> {
        let mut schemas = Vec::new();
        let mut names = Vec::new();
        let mut definitions = Vec::new();
        let mut attnums = Vec::new();
        let mut typids = Vec::new();
        let mut typmods = Vec::new();
        if let Some(catalog) = self.catalogs.catalog(&self.database) {
            let mut schema_names = catalog.schema_names();
            schema_names.sort();
            for schema_name in schema_names {
                if schema_name == "information_schema" {
                    continue;
                }
                if self.listing == Listing::ColumnTypes && schema_name == "pg_catalog" {
                    continue;
                }
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                let mut table_names = schema.table_names();
                table_names.sort();
                for table_name in table_names {
                    let Ok(Some(table)) = schema.table(&table_name).await else {
                        continue;
                    };
                    let is_view = table.table_type() == TableType::View;
                    match self.listing {
                        Listing::Tables if !is_view => {
                            schemas.push(schema_name.clone());
                            names.push(table_name.clone());
                        }
                        Listing::Views if is_view => {
                            schemas.push(schema_name.clone());
                            names.push(table_name.clone());
                            definitions.push(table.get_table_definition().map(str::to_string));
                        }
                        Listing::ColumnTypes => {
                            for (i, field) in table.schema().fields().iter().enumerate() {
                                let (typid, typmod) = pg_type_of(field.data_type());
                                schemas.push(schema_name.clone());
                                names.push(table_name.clone());
                                attnums.push(i as i16 + 1);
                                typids.push(typid);
                                typmods.push(typmod);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        let n = names.len();
        let columns: Vec<ArrayRef> = match self.listing {
            Listing::Tables => vec![
                Arc::new(StringArray::from(schemas)),
                Arc::new(StringArray::from(names)),
                Arc::new(StringArray::from(vec!["userql"; n])),
                Arc::new(StringArray::from(vec![None::<&str>; n])),
                Arc::new(BooleanArray::from(vec![false; n])),
                Arc::new(BooleanArray::from(vec![false; n])),
                Arc::new(BooleanArray::from(vec![false; n])),
                Arc::new(BooleanArray::from(vec![false; n])),
            ],
            Listing::Views => vec![
                Arc::new(StringArray::from(schemas)),
                Arc::new(StringArray::from(names)),
                Arc::new(StringArray::from(vec!["userql"; n])),
                Arc::new(StringArray::from(definitions)),
            ],
            Listing::ColumnTypes => vec![
                Arc::new(StringArray::from(schemas)),
                Arc::new(StringArray::from(names)),
                Arc::new(Int16Array::from(attnums)),
                Arc::new(Int32Array::from(typids)),
                Arc::new(Int32Array::from(typmods)),
            ],
        };
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[async_trait]
impl TableProvider for RelationListing {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
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
        let batch = self.rows().await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

/// PostgreSQL's type OID and typmod for a column of Arrow type `t`.
pub fn pg_type_of(t: &DataType) -> (i32, i32) {
    use DataType::*;
    let typid = match t {
        Boolean => 16,
        Int8 | Int16 | UInt8 => 21,
        Int32 | UInt16 => 23,
        Int64 | UInt32 => 20,
        UInt64 => 1700,
        Float16 | Float32 => 700,
        Float64 => 701,
        Decimal128(_, _) | Decimal256(_, _) => 1700,
        Utf8 | LargeUtf8 | Utf8View => 25,
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => 17,
        Date32 | Date64 => 1082,
        Timestamp(_, None) => 1114,
        Timestamp(_, Some(_)) => 1184,
        Time32(_) | Time64(_) => 1083,
        Interval(_) | Duration(_) => 1186,
        List(item) | LargeList(item) | FixedSizeList(item, _) => {
            match pg_type_of(item.data_type()).0 {
                16 => 1000,
                17 => 1001,
                21 => 1005,
                23 => 1007,
                20 => 1016,
                25 => 1009,
                700 => 1021,
                701 => 1022,
                1082 => 1182,
                1114 => 1115,
                1184 => 1185,
                1186 => 1187,
                1700 => 1231,
                _ => 2277,
            }
        }
        Struct(_) => 2249,
        Dictionary(_, values) => return pg_type_of(values),
        _ => 25,
    };
    let typmod = match t {
        Decimal128(p, s) | Decimal256(p, s) => (((*p as i32) << 16) | (*s as i32 & 0xffff)) + 4,
        Timestamp(TimeUnit::Second, _) => 0,
        Timestamp(TimeUnit::Millisecond, _) => 3,
        _ => -1,
    };
    (typid, typmod)
}

/// `pg_settings`: the scanning session's PostgreSQL and `userql.*` settings.
#[derive(Debug)]
pub struct SettingsTable {
    schema: SchemaRef,
}

impl SettingsTable {
    /// With the columns of the crate's `pg_settings` (`schema`).
    pub fn new(schema: SchemaRef) -> Self {
        Self { schema }
    }
}

#[async_trait]
impl TableProvider for SettingsTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let options = state.config().options();
        let pg = options
            .extensions
            .get::<PgSettings>()
            .cloned()
            .unwrap_or_default();
        let mut names = Vec::new();
        let mut values = Vec::new();
        let mut descriptions = Vec::new();
        for (name, default, description) in pg_settings::PG_SETTINGS {
            names.push(name.to_string());
            values.push(pg.get(name).unwrap_or(default).to_string());
            descriptions.push(description.to_string());
        }
        for (name, value, description) in userql_settings::of_session(options).entries_for_show() {
            names.push(name);
            values.push(value);
            descriptions.push(description);
        }
        let n = names.len();
        let columns: Vec<ArrayRef> = self
            .schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match f.name().as_str() {
                    "name" => Arc::new(StringArray::from(names.clone())),
                    "setting" | "reset_val" => Arc::new(StringArray::from(values.clone())),
                    "short_desc" => Arc::new(StringArray::from(descriptions.clone())),
                    "context" => Arc::new(StringArray::from(vec!["user"; n])),
                    "vartype" => Arc::new(StringArray::from(vec!["string"; n])),
                    "source" => Arc::new(StringArray::from(vec!["session"; n])),
                    _ => datafusion::arrow::array::new_null_array(f.data_type(), n),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}
