//! `pg_catalog` as `datafusion-pg-catalog` builds it, with what it lacks or types unlike
//! PostgreSQL put right, table by table:
//!
//! - `pg_proc` / `pg_description` also list userql's own functions (in schema `public`,
//!   with their argument and result types and descriptions from the code's docs), so
//!   `\df` and `\df+` show them;
//! - `pg_index.indkey` / `indoption` are `int2[]` and `indclass` / `indcollation` `oid[]`,
//!   `pg_constraint.conkey` / `confkey` `int2[]`, as clients `unnest` them (the crate
//!   keeps them as text);
//! - `pg_class` has `reloptions` (always NULL: userql has no storage parameters);
//! - `pg_database` lists only the database clients can connect to;
//! - `pg_tables` lists base tables only and `pg_views` the views with their SQL (the crate
//!   lists views as tables and no views), which dbt reads to know what it is replacing;
//! - `pg_attribute` gives each column its real type and modifier (`numeric(10,2)`,
//!   `bigint[]`);
//! - `pg_settings` lists the session's settings (`userql.*` too).
//!
//! Each corrected table is a view over the crate's table, planned once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Int16Array, Int16Builder, Int32Array, Int32Builder,
    ListBuilder, RecordBatch, StringArray, new_null_array,
};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::catalog::{CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::{MemTable, ViewTable, provider_as_source};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlanBuilder, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility, col, lit,
};

use super::relations::{Listing, RelationListing, SettingsTable};
use crate::functions::docs::{self, FunctionDoc, FunctionKind};

/// OIDs of userql's functions: `USERQL_PROC_OID + i` for the i-th of [`docs::all`], far
/// from PostgreSQL's own and from the OIDs the catalog hands out to relations.
pub const USERQL_PROC_OID: i32 = 1_900_000_000;

/// `pg_proc`'s own OID, the `classoid` of a function's description.
const PG_PROC_CLASS_OID: i32 = 1255;

/// The userql function with this OID.
pub fn doc_of_oid(oid: i64) -> Option<FunctionDoc> {
    let i = oid.checked_sub(USERQL_PROC_OID as i64)?;
    docs::all().get(usize::try_from(i).ok()?).copied()
}

/// The `pg_catalog` schema clients read.
#[derive(Debug)]
pub struct PgCatalogSchema {
    inner: Arc<dyn SchemaProvider>,
    catalogs: Arc<dyn CatalogProviderList>,
    database: String,
    /// The configured users (`pg_roles`); empty: the crate's own rows.
    users: Vec<(String, crate::security::Role)>,
    /// Views built so far, by table name.
    views: Mutex<HashMap<String, Arc<dyn TableProvider>>>,
}

impl PgCatalogSchema {
    /// Wrap the crate's `pg_catalog` for the database `database`.
    pub fn new(
        inner: Arc<dyn SchemaProvider>,
        catalogs: Arc<dyn CatalogProviderList>,
        database: &str,
        users: Vec<(String, crate::security::Role)>,
    ) -> Self {
        Self {
            inner,
            catalogs,
            database: database.to_string(),
            users,
            views: Mutex::new(HashMap::new()),
        }
    }

    async fn corrected(
        &self,
        name: &str,
        inner: Arc<dyn TableProvider>,
    ) -> Result<Arc<dyn TableProvider>> {
        if let Some(v) = self
            .views
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(v.clone());
        }
        let view: Arc<dyn TableProvider> = match name {
            "pg_index" => retyped(
                name,
                inner,
                &[
                    ("indkey", DataType::Int16),
                    ("indoption", DataType::Int16),
                    ("indclass", DataType::Int32),
                    ("indcollation", DataType::Int32),
                ],
            )?,
            "pg_constraint" => retyped(
                name,
                inner,
                &[("conkey", DataType::Int16), ("confkey", DataType::Int16)],
            )?,
            "pg_class" => {
                let mut exprs: Vec<Expr> = inner
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| col(f.name()))
                    .collect();
                exprs.push(
                    lit(ScalarValue::try_from(DataType::List(Arc::new(
                        Field::new("item", DataType::Utf8, true),
                    )))?)
                    .alias("reloptions"),
                );
                let plan = LogicalPlanBuilder::scan(name, provider_as_source(inner), None)?
                    .project(exprs)?
                    .build()?;
                Arc::new(ViewTable::new(plan, None))
            }
            "pg_database" => {
                let plan = LogicalPlanBuilder::scan(name, provider_as_source(inner), None)?
                    .filter(col("datname").eq(lit(self.database.clone())))?
                    .build()?;
                Arc::new(ViewTable::new(plan, None))
            }
            "pg_roles" if !self.users.is_empty() => {
                super::roles::pg_roles(inner.schema(), &self.users)?
            }
            "pg_auth_members" => super::roles::pg_auth_members()?,
            "pg_proc" => {
                let namespaces = self.inner.table("pg_namespace").await?;
                with_userql_procs(inner, namespaces)?
            }
            "pg_description" => with_userql_descriptions(inner)?,
            "pg_tables" => Arc::new(RelationListing::new(
                self.catalogs.clone(),
                &self.database,
                Listing::Tables,
            )),
            "pg_views" => Arc::new(RelationListing::new(
                self.catalogs.clone(),
                &self.database,
                Listing::Views,
            )),
            "pg_settings" => Arc::new(SettingsTable::new(inner.schema())),
            "pg_attribute" => {
                let classes = self.inner.table("pg_class").await?;
                let namespaces = self.inner.table("pg_namespace").await?;
                match (classes, namespaces) {
                    (Some(classes), Some(namespaces)) => {
                        self.typed_attributes(inner, classes, namespaces).await?
                    }
                    _ => inner,
                }
            }
            _ => return Ok(inner),
        };
        // The dynamic tables (pg_class, pg_namespace) compute their rows at scan time,
        // so a view planned once stays current.
        self.views
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), view.clone());
        Ok(view)
    }
}

impl PgCatalogSchema {
    /// `pg_attribute` with each column's type and modifier from its Arrow type (the crate
    /// gives arrays the type `text` and no column a modifier: `numeric(10,2)` read as
    /// `numeric`).
    async fn typed_attributes(
        &self,
        attributes: Arc<dyn TableProvider>,
        classes: Arc<dyn TableProvider>,
        namespaces: Arc<dyn TableProvider>,
    ) -> Result<Arc<dyn TableProvider>> {
        let columns: Vec<String> = attributes
            .schema()
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "atttypid" => "COALESCE(ct.typid, a.atttypid) AS atttypid".to_string(),
                "atttypmod" => "COALESCE(ct.typmod, a.atttypmod) AS atttypmod".to_string(),
                name => format!("a.\"{name}\""),
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM a \
             LEFT JOIN c ON c.oid = a.attrelid \
             LEFT JOIN n ON n.oid = c.relnamespace \
             LEFT JOIN ct ON ct.nspname = n.nspname AND ct.relname = c.relname AND ct.attnum = a.attnum",
            columns.join(", ")
        );
        let types: Arc<dyn TableProvider> = Arc::new(RelationListing::new(
            self.catalogs.clone(),
            &self.database,
            Listing::ColumnTypes,
        ));
        let view = planned_view(
            &sql,
            vec![
                ("a", attributes),
                ("c", classes),
                ("n", namespaces),
                ("ct", types),
            ],
        )
        .await?;
        // The COALESCE above loses `atttypid`'s oid type: mark it again.
        let exprs: Vec<Expr> = view
            .schema()
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "atttypid" => crate::engine::oid_types::as_oid(col("atttypid"), f.is_nullable())
                    .alias("atttypid"),
                name => col(name),
            })
            .collect();
        let plan = LogicalPlanBuilder::scan("pg_attribute", provider_as_source(view), None)?
            .project(exprs)?
            .build()?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

/// A view planned from `sql` over `tables` (registered under those names).
async fn planned_view(
    sql: &str,
    tables: Vec<(&str, Arc<dyn TableProvider>)>,
) -> Result<Arc<dyn TableProvider>> {
    let ctx = datafusion::prelude::SessionContext::new();
    for (name, table) in tables {
        ctx.register_table(name, table)?;
    }
    let plan = ctx.state().create_logical_plan(sql).await?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

#[async_trait]
impl SchemaProvider for PgCatalogSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(
        &self,
        name: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>, datafusion::error::DataFusionError> {
        let Some(inner) = self.inner.table(name).await? else {
            return Ok(None);
        };
        let lower = name.to_ascii_lowercase();
        Ok(Some(self.corrected(&lower, inner).await?))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// A view over `inner` with the text columns `columns` read as integer lists.
fn retyped(
    name: &str,
    inner: Arc<dyn TableProvider>,
    columns: &[(&str, DataType)],
) -> Result<Arc<dyn TableProvider>> {
    let exprs: Vec<Expr> = inner
        .schema()
        .fields()
        .iter()
        .map(|f| match columns.iter().find(|(c, _)| c == f.name()) {
            Some((c, element)) => Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(ScalarUDF::new_from_impl(IntListText::new(element.clone()))),
                vec![col(*c)],
            ))
            .alias(*c),
            None => col(f.name()),
        })
        .collect();
    let plan = LogicalPlanBuilder::scan(name, provider_as_source(inner), None)?
        .project(exprs)?
        .build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

/// `pg_proc` plus a row per userql function, in schema `public`.
fn with_userql_procs(
    inner: Arc<dyn TableProvider>,
    namespaces: Option<Arc<dyn TableProvider>>,
) -> Result<Arc<dyn TableProvider>> {
    let schema = inner.schema();
    let ours = userql_proc_rows(&schema)?;
    let ours_table = MemTable::try_new(schema.clone(), vec![vec![ours]])?;
    let mut ours_plan = LogicalPlanBuilder::scan(
        "userql_proc",
        provider_as_source(Arc::new(ours_table)),
        None,
    )?;
    if let Some(namespaces) = namespaces {
        // The namespace OID is the catalog's to hand out: take `public`'s.
        let public =
            LogicalPlanBuilder::scan("pg_namespace", provider_as_source(namespaces), None)?
                .filter(col("nspname").eq(lit("public")))?
                .project(vec![col("oid").alias("public_oid")])?
                .build()?;
        let exprs: Vec<Expr> = schema
            .fields()
            .iter()
            .map(|f| {
                if f.name() == "pronamespace" {
                    col("public_oid").alias("pronamespace")
                } else {
                    col(format!("userql_proc.{}", f.name())).alias(f.name())
                }
            })
            .collect();
        ours_plan = ours_plan.cross_join(public)?.project(exprs)?;
    }
    // `proacl` is `aclitem[]`: nobody has ACLs here, and `array_to_string(proacl, ...)`
    // (psql's \df+) needs an array.
    let acl = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    let exprs: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.name() == "proacl" {
                lit(ScalarValue::try_from(&acl).unwrap_or(ScalarValue::Null)).alias("proacl")
            } else {
                col(f.name())
            }
        })
        .collect();
    let plan = LogicalPlanBuilder::scan("pg_proc", provider_as_source(inner), None)?
        .union(ours_plan.build()?)?
        .project(exprs)?
        .build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

/// The `pg_proc` rows of userql's functions (namespace filled in by the view).
fn userql_proc_rows(schema: &SchemaRef) -> Result<RecordBatch> {
    let docs = docs::all();
    let n = docs.len();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> Result<ArrayRef> {
            let texts = |f: &dyn Fn(&FunctionDoc) -> Option<String>| -> ArrayRef {
                Arc::new(docs.iter().map(f).collect::<StringArray>())
            };
            Ok(match f.name().as_str() {
                "oid" => Arc::new(Int32Array::from_iter_values(
                    (0..n).map(|i| USERQL_PROC_OID + i as i32),
                )),
                "proname" => texts(&|d| Some(d.name.to_string())),
                "pronamespace" => Arc::new(Int32Array::from(vec![2200; n])),
                "proowner" => Arc::new(Int32Array::from(vec![10; n])),
                "prolang" => Arc::new(Int32Array::from(vec![12; n])),
                "procost" => Arc::new(Float32Array::from(vec![1.0; n])),
                "prorows" => Arc::new(Float32Array::from(
                    docs.iter()
                        .map(|d| {
                            if d.kind == FunctionKind::Table {
                                1000.0
                            } else {
                                0.0
                            }
                        })
                        .collect::<Vec<f32>>(),
                )),
                "provariadic" => Arc::new(Int32Array::from_iter_values(docs.iter().map(|d| {
                    d.parsed_arguments()
                        .iter()
                        .find(|a| a.variadic)
                        .map(|a| docs::type_oid(a.pg_type.trim_end_matches("[]")))
                        .unwrap_or(0)
                }))),
                "prosupport" => texts(&|_| Some("-".into())),
                "prokind" => texts(&|d| {
                    Some(
                        if d.kind == FunctionKind::Aggregate {
                            "a"
                        } else {
                            "f"
                        }
                        .into(),
                    )
                }),
                "prosecdef" | "proleakproof" => Arc::new(BooleanArray::from(vec![false; n])),
                "proisstrict" => Arc::new(BooleanArray::from(vec![false; n])),
                "proretset" => Arc::new(BooleanArray::from(
                    docs.iter()
                        .map(|d| d.kind == FunctionKind::Table)
                        .collect::<Vec<_>>(),
                )),
                "provolatile" => texts(&|d| Some(d.volatility.to_string())),
                "proparallel" => texts(&|_| Some("s".into())),
                "pronargs" => Arc::new(Int16Array::from_iter_values(
                    docs.iter().map(|d| d.parsed_arguments().len() as i16),
                )),
                "pronargdefaults" => Arc::new(Int16Array::from_iter_values(docs.iter().map(|d| {
                    d.parsed_arguments()
                        .iter()
                        .filter(|a| a.has_default)
                        .count() as i16
                }))),
                "prorettype" => Arc::new(Int32Array::from_iter_values(docs.iter().map(|d| {
                    if d.kind == FunctionKind::Table {
                        docs::type_oid("record")
                    } else {
                        docs::type_oid(d.result)
                    }
                }))),
                "proargtypes" => texts(&|d| {
                    Some(
                        d.parsed_arguments()
                            .iter()
                            .map(|a| docs::type_oid(&a.pg_type).to_string())
                            .collect::<Vec<_>>()
                            .join(" "),
                    )
                }),
                "proargnames" => texts(&|d| {
                    Some(format!(
                        "{{{}}}",
                        d.parsed_arguments()
                            .iter()
                            .map(|a| a.name.clone())
                            .collect::<Vec<_>>()
                            .join(",")
                    ))
                }),
                "prosrc" => texts(&|d| Some(d.name.to_string())),
                _ => new_null_array(f.data_type(), n),
            })
        })
        .collect::<Result<_>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// `pg_description` plus each userql function's description.
fn with_userql_descriptions(inner: Arc<dyn TableProvider>) -> Result<Arc<dyn TableProvider>> {
    let schema = inner.schema();
    let docs = docs::all();
    let n = docs.len();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            match f.name().as_str() {
                "objoid" => Arc::new(Int32Array::from_iter_values(
                    (0..n).map(|i| USERQL_PROC_OID + i as i32),
                )),
                "classoid" => Arc::new(Int32Array::from(vec![PG_PROC_CLASS_OID; n])),
                "objsubid" => Arc::new(Int32Array::from(vec![0; n])),
                "description" => Arc::new(
                    docs.iter()
                        .map(|d| Some(d.description))
                        .collect::<StringArray>(),
                ),
                _ => new_null_array(f.data_type(), n),
            }
        })
        .collect();
    let ours = MemTable::try_new(
        schema.clone(),
        vec![vec![RecordBatch::try_new(schema.clone(), columns)?]],
    )?;
    let plan = LogicalPlanBuilder::scan("pg_description", provider_as_source(inner), None)?
        .union(
            LogicalPlanBuilder::scan(
                "userql_description",
                provider_as_source(Arc::new(ours)),
                None,
            )?
            .build()?,
        )?
        .build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

/// Reads the catalog's text forms of integer vectors (`1 2`, `{1,2}`, `[1, 2]`) as a
/// list of `element` (Int16 or Int32).
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntListText {
    element: DataType,
    signature: Signature,
}

impl IntListText {
    fn new(element: DataType) -> Self {
        Self {
            element,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }

    fn numbers(text: &str) -> Vec<i64> {
        text.split(|c: char| !(c.is_ascii_digit() || c == '-'))
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl ScalarUDFImpl for IntListText {
    fn name(&self) -> &str {
        "pg_int_vector"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new(
            "item",
            self.element.clone(),
            true,
        ))))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let text = text
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| datafusion::error::DataFusionError::Internal("expected text".into()))?;
        let out: ArrayRef = if self.element == DataType::Int16 {
            let mut b = ListBuilder::new(Int16Builder::new()).with_field(Arc::new(Field::new(
                "item",
                DataType::Int16,
                true,
            )));
            for v in text.iter() {
                match v {
                    Some(t) => {
                        for n in Self::numbers(t) {
                            b.values().append_value(n as i16);
                        }
                        b.append(true);
                    }
                    None => b.append(false),
                }
            }
            Arc::new(b.finish())
        } else {
            let mut b = ListBuilder::new(Int32Builder::new()).with_field(Arc::new(Field::new(
                "item",
                DataType::Int32,
                true,
            )));
            for v in text.iter() {
                match v {
                    Some(t) => {
                        for n in Self::numbers(t) {
                            b.values().append_value(n as i32);
                        }
                        b.append(true);
                    }
                    None => b.append(false),
                }
            }
            Arc::new(b.finish())
        };
        Ok(ColumnarValue::Array(out))
    }
}
