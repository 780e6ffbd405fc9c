//! What PostgreSQL clients read about the database: `pg_catalog` (from the
//! `datafusion-pg-catalog` crate) plus the functions it lacks or answers with fixed values
//! where the session knows better (`current_schema()` follows `search_path`,
//! `current_setting()` reads the session's settings, `version()` says what we are).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;

use super::pg_settings::{self, PgSettings};
use super::settings::UserqlSettings;

mod functions;
pub mod relations;
mod roles;
pub mod tables;

/// The version string `version()` returns; clients parse the leading `PostgreSQL 15.0`.
pub fn version_string() -> String {
    format!(
        "PostgreSQL 15.0 (userql {} on Apache DataFusion {}), 64-bit",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION
    )
}

/// Install `pg_catalog` and the client-facing functions into a context.
pub fn install(
    ctx: &SessionContext,
    database: &str,
    users: Vec<(String, crate::security::Role)>,
) -> Result<()> {
    datafusion_pg_catalog::setup_pg_catalog(ctx, database, EmptyContextProvider).map_err(|e| *e)?;
    if let Some(catalog) = ctx.catalog(database)
        && let Some(inner) = catalog.schema("pg_catalog")
    {
        catalog.register_schema(
            "pg_catalog",
            Arc::new(tables::PgCatalogSchema::new(
                inner,
                ctx.state().catalog_list().clone(),
                database,
                users,
            )),
        )?;
    }
    for udf in [
        SessionFn::new("version", vec![], DataType::Utf8, |_, _| {
            Ok(Some(version_string()))
        }),
        SessionFn::new("current_schema", vec![], DataType::Utf8, |config, _| {
            Ok(Some(config.catalog.default_schema.clone()))
        }),
        SessionFn::new("current_user", vec![], DataType::Utf8, |config, _| {
            Ok(Some(session_user(config)))
        }),
        SessionFn::new("session_user", vec![], DataType::Utf8, |config, _| {
            Ok(Some(session_user(config)))
        }),
        SessionFn::new("user", vec![], DataType::Utf8, |config, _| {
            Ok(Some(session_user(config)))
        }),
        SessionFn::new(
            "current_setting",
            vec![
                vec![DataType::Utf8],
                vec![DataType::Utf8, DataType::Boolean],
            ],
            DataType::Utf8,
            current_setting,
        ),
        SessionFn::new(
            "pg_get_function_result",
            vec![vec![DataType::Int64]],
            DataType::Utf8,
            |_, args| Ok(userql_function(args).map(|d| d.result.to_string())),
        ),
        SessionFn::new(
            "pg_get_function_arguments",
            vec![vec![DataType::Int64]],
            DataType::Utf8,
            |_, args| Ok(userql_function(args).map(|d| d.arguments.to_string())),
        ),
        SessionFn::new(
            "pg_get_function_identity_arguments",
            vec![vec![DataType::Int64]],
            DataType::Utf8,
            |_, args| {
                Ok(userql_function(args).map(|d| {
                    d.parsed_arguments()
                        .iter()
                        .map(|a| {
                            let variadic = if a.variadic { "VARIADIC " } else { "" };
                            format!("{variadic}{} {}", a.name, a.pg_type)
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                }))
            },
        ),
        SessionFn::new(
            "pg_get_function_sqlbody",
            vec![vec![DataType::Int64]],
            DataType::Utf8,
            |_, _| Ok(None),
        ),
        SessionFn::new(
            "pg_get_indexdef",
            vec![
                vec![DataType::Int64],
                vec![DataType::Int64, DataType::Int64, DataType::Boolean],
            ],
            DataType::Utf8,
            |_, _| Ok(None),
        ),
        SessionFn::new(
            "obj_description",
            vec![vec![DataType::Int64], vec![DataType::Int64, DataType::Utf8]],
            DataType::Utf8,
            |_, args| {
                let catalog = args.get(1).cloned().flatten();
                if catalog.is_some_and(|c| c != "pg_proc") {
                    return Ok(None);
                }
                Ok(userql_function(args).map(|d| d.description.to_string()))
            },
        ),
        SessionFn::new(
            "col_description",
            vec![vec![DataType::Int64, DataType::Int64]],
            DataType::Utf8,
            |_, _| Ok(None),
        ),
        // userql has no sequences: no column is serial.
        SessionFn::new(
            "pg_get_serial_sequence",
            vec![vec![DataType::Utf8, DataType::Utf8]],
            DataType::Utf8,
            |_, _| Ok(None),
        ),
        SessionFn::new(
            "pg_get_ruledef",
            vec![
                vec![DataType::Int64],
                vec![DataType::Int64, DataType::Boolean],
            ],
            DataType::Utf8,
            |_, _| Ok(None),
        ),
        SessionFn::new(
            "pg_get_userbyid",
            vec![vec![DataType::Int64]],
            DataType::Utf8,
            |config, args| {
                Ok(args
                    .first()
                    .cloned()
                    .flatten()
                    .map(|_| session_user(config)))
            },
        ),
        SessionFn::new(
            "like_escape",
            vec![vec![DataType::Utf8, DataType::Utf8]],
            DataType::Utf8,
            |_, args| match (
                args.first().cloned().flatten(),
                args.get(1).cloned().flatten(),
            ) {
                (Some(pattern), Some(escape)) => super::sql_compat::like_escape(&pattern, &escape)
                    .map(Some)
                    .map_err(|m| {
                        datafusion::error::DataFusionError::External(Box::new(
                            crate::error::UserqlError::new(
                                crate::error::sqlstate::INVALID_ESCAPE_SEQUENCE,
                                m,
                            ),
                        ))
                    }),
                _ => Ok(None),
            },
        ),
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(udf));
    }
    ctx.register_udf(ScalarUDF::new_from_impl(functions::BackendPid::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(functions::JsonBuildObject::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(functions::ExpandArray::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(functions::TypeOf::new()));
    for name in [
        "pg_function_is_visible",
        "pg_type_is_visible",
        "pg_opclass_is_visible",
        "pg_collation_is_visible",
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(AlwaysVisible::new(name)));
    }
    Ok(())
}

/// The userql function whose OID is the first argument.
fn userql_function(args: &[Option<String>]) -> Option<crate::functions::docs::FunctionDoc> {
    let oid: i64 = args.first()?.as_deref()?.parse().ok()?;
    tables::doc_of_oid(oid)
}

fn session_user(config: &ConfigOptions) -> String {
    config
        .extensions
        .get::<PgSettings>()
        .and_then(|p| p.get("session_authorization").map(str::to_string))
        .unwrap_or_else(|| "userql".to_string())
}

fn current_setting(config: &ConfigOptions, args: &[Option<String>]) -> Result<Option<String>> {
    let Some(Some(name)) = args.first() else {
        return Ok(None);
    };
    let missing_ok = args
        .get(1)
        .and_then(|v| v.as_deref())
        .is_some_and(|v| v == "true");
    let lower = name.to_ascii_lowercase();
    let found = if let Some(key) = lower.strip_prefix("userql.") {
        config
            .extensions
            .get::<UserqlSettings>()
            .and_then(|u| u.get(key).map(str::to_string))
    } else if lower.starts_with("datafusion.") {
        config
            .entries()
            .into_iter()
            .find(|e| e.key == lower)
            .and_then(|e| e.value)
    } else if lower == "search_path" || pg_settings::is_known(&pg_settings::canonical_name(&lower))
    {
        config.extensions.get::<PgSettings>().and_then(|p| {
            p.get(&pg_settings::canonical_name(&lower))
                .map(str::to_string)
        })
    } else {
        None
    };
    match found {
        Some(v) => Ok(Some(v)),
        None if missing_ok => Ok(None),
        None => Err(datafusion::error::DataFusionError::Configuration(format!(
            "unrecognized configuration parameter \"{name}\""
        ))),
    }
}

type SessionFnBody = fn(&ConfigOptions, &[Option<String>]) -> Result<Option<String>>;

/// A text-returning function of the session's config and constant text arguments.
#[derive(Debug)]
struct SessionFn {
    name: &'static str,
    signature: Signature,
    return_type: DataType,
    body: SessionFnBody,
}

impl SessionFn {
    fn new(
        name: &'static str,
        arg_sets: Vec<Vec<DataType>>,
        return_type: DataType,
        body: SessionFnBody,
    ) -> Self {
        let signature = if arg_sets.is_empty() {
            Signature::exact(vec![], Volatility::Stable)
        } else {
            Signature::one_of(
                arg_sets.into_iter().map(TypeSignature::Exact).collect(),
                Volatility::Stable,
            )
        };
        Self {
            name,
            signature,
            return_type,
            body,
        }
    }
}

impl PartialEq for SessionFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for SessionFn {}
impl std::hash::Hash for SessionFn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

fn scalar_text(v: &ScalarValue) -> Option<String> {
    if v.is_null() {
        None
    } else {
        match v {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
}

impl ScalarUDFImpl for SessionFn {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.return_type.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let config = args.config_options.clone();
        if args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            let values: Vec<Option<String>> = args
                .args
                .iter()
                .map(|a| match a {
                    ColumnarValue::Scalar(s) => scalar_text(s),
                    ColumnarValue::Array(_) => None,
                })
                .collect();
            let out = (self.body)(&config, &values)?;
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(out)));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let rows = args.number_rows;
        let mut out: Vec<Option<String>> = Vec::with_capacity(rows);
        for i in 0..rows {
            let values: Vec<Option<String>> = arrays
                .iter()
                .map(|a| {
                    ScalarValue::try_from_array(a, i)
                        .ok()
                        .and_then(|v| scalar_text(&v))
                })
                .collect();
            out.push((self.body)(&config, &values)?);
        }
        Ok(ColumnarValue::Array(
            Arc::new(StringArray::from(out)) as ArrayRef
        ))
    }
}

/// `pg_*_is_visible(oid)`: every object userql lists is on the search path.
#[derive(Debug, PartialEq, Eq, Hash)]
struct AlwaysVisible {
    name: &'static str,
    signature: Signature,
}

impl AlwaysVisible {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            signature: Signature::any(1, Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for AlwaysVisible {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.first() {
            Some(ColumnarValue::Scalar(s)) => Ok(ColumnarValue::Scalar(ScalarValue::Boolean(
                (!s.is_null()).then_some(true),
            ))),
            Some(ColumnarValue::Array(a)) => {
                let out: BooleanArray = (0..a.len())
                    .map(|i| (!a.is_null(i)).then_some(true))
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
            None => exec_err!("{} takes one argument", self.name),
        }
    }
}
