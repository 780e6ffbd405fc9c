//! Statements that change what is stored: `CREATE`/`DROP` of schemas, tables and views,
//! `ALTER ... RENAME`, and the checks that keep writes out of read-only schemas. The
//! work itself is the [`Store`](super::store::Store)'s; this is the session's face of it.

use datafusion::common::TableReference;
use datafusion::logical_expr::DdlStatement;
use datafusion::sql::sqlparser::ast::{AlterTableOperation, RenameTableNameKind, Statement};

use super::session::{CommandTag, Outcome, Planned, Session};
use super::store::{NewTable, RelName};
use crate::error::{UserqlError, sqlstate};

impl Session {
    /// Resolve a relation name against the session's search path, within this database.
    pub(super) fn rel_name(&self, name: &TableReference) -> Result<RelName, UserqlError> {
        let state = self.ctx.state_ref();
        let state = state.read();
        let catalog = &state.config().options().catalog;
        let resolved = name
            .clone()
            .resolve(&catalog.default_catalog, &catalog.default_schema);
        if resolved.catalog.as_ref() != self.engine.database() {
            return Err(UserqlError::unsupported(format!(
                "cross-database references are not implemented: {name}"
            ))
            .with_hint(format!(
                "this server's database is \"{}\"",
                self.engine.database()
            )));
        }
        Ok(RelName {
            schema: resolved.schema.to_string(),
            name: resolved.table.to_string(),
        })
    }

    /// Rows are written to tables, not views: PostgreSQL's message for a view that
    /// cannot take writes.
    pub(super) async fn check_not_view(&self, table: &TableReference) -> Result<(), UserqlError> {
        let provider = self.ctx.table_provider(table.clone()).await;
        if let Ok(p) = provider
            && p.table_type() == datafusion::datasource::TableType::View
        {
            return Err(UserqlError::new(
                sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("cannot change rows of view \"{table}\""),
            )
            .with_hint("views show rows of their tables; write to the table instead"));
        }
        Ok(())
    }

    /// Writes into channels (files the config names) and the system schemas are refused.
    pub(super) fn check_writable(&self, table: &TableReference) -> Result<(), UserqlError> {
        let rel = self.rel_name(table)?;
        if rel.schema == super::CHANNELS_SCHEMA
            || rel.schema == "pg_catalog"
            || rel.schema == "information_schema"
        {
            return Err(UserqlError::new(
                sqlstate::INSUFFICIENT_PRIVILEGE,
                format!(
                    "cannot change \"{rel}\": schema \"{}\" is read-only",
                    rel.schema
                ),
            )
            .with_hint("copy the rows into a table of your own: CREATE TABLE t AS SELECT ..."));
        }
        Ok(())
    }

    /// Statements planned outside DataFusion: renames and COPY.
    pub(super) async fn plan_store_statement(
        &self,
        statement: &Statement,
    ) -> Result<Option<Planned>, UserqlError> {
        match statement {
            Statement::AlterTable(alter) => {
                let [AlterTableOperation::RenameTable { table_name }] = alter.operations.as_slice()
                else {
                    return Err(
                        UserqlError::unsupported("ALTER TABLE supports only RENAME TO").with_hint(
                            "to change columns, create a new table with CREATE TABLE AS",
                        ),
                    );
                };
                let (RenameTableNameKind::To(new) | RenameTableNameKind::As(new)) = table_name;
                let to = new
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map(|i| i.value.clone())
                    .ok_or_else(|| {
                        UserqlError::new(sqlstate::SYNTAX_ERROR, "RENAME TO needs a name")
                    })?;
                Ok(Some(Planned::Rename {
                    from: object_reference(&alter.name)?,
                    to,
                    if_exists: alter.if_exists,
                }))
            }
            Statement::Copy { .. } => Ok(Some(Planned::Copy(self.plan_copy(statement).await?))),
            _ => Ok(None),
        }
    }

    /// `ALTER TABLE|VIEW name RENAME TO new`.
    pub(super) async fn rename(
        &mut self,
        from: &TableReference,
        to: &str,
        if_exists: bool,
    ) -> Result<Outcome, UserqlError> {
        let rel = self.rel_name(from)?;
        self.check_writable(from)?;
        let state = self.ctx.state();
        let renamed = self.engine.store().rename(&rel, to, &state).await?;
        if !renamed && !if_exists {
            return Err(if self.ctx.table_exist(from.clone()).unwrap_or(false) {
                UserqlError::new(
                    sqlstate::INSUFFICIENT_PRIVILEGE,
                    format!("\"{rel}\" is built in and cannot be renamed"),
                )
            } else {
                UserqlError::new(
                    sqlstate::UNDEFINED_TABLE,
                    format!("relation \"{rel}\" does not exist"),
                )
            });
        }
        Ok(Outcome::Command(CommandTag::new("ALTER TABLE")))
    }

    /// Run the DDL the store owns; `None` leaves the statement to DataFusion (temporary
    /// tables, which live in memory for the session's server run).
    pub(super) async fn execute_store_ddl(
        &mut self,
        ddl: &DdlStatement,
        statement: &Statement,
    ) -> Result<Option<Outcome>, UserqlError> {
        let state = self.ctx.state();
        let engine = self.engine.clone();
        let store = engine.store();
        let cascade = matches!(statement, Statement::Drop { cascade: true, .. });
        match ddl {
            DdlStatement::CreateMemoryTable(create) if !create.temporary => {
                if create.or_replace {
                    return Err(UserqlError::unsupported("CREATE OR REPLACE TABLE")
                        .with_hint("DROP TABLE IF EXISTS first, then CREATE TABLE"));
                }
                let is_query =
                    matches!(statement, Statement::CreateTable(ct) if ct.query.is_some());
                let name = self.rel_name(&create.name)?;
                let input = create.input.as_ref().clone();
                let schema = with_declared_time_zones(input.schema().as_arrow(), statement);
                let schema = if is_query { nullable(&schema) } else { schema };
                let rows = store
                    .create_table(
                        NewTable {
                            name,
                            schema,
                            input: is_query.then_some(input),
                            if_not_exists: create.if_not_exists,
                        },
                        &state,
                    )
                    .await?;
                Ok(Some(Outcome::Command(if is_query {
                    CommandTag {
                        command: "SELECT".into(),
                        rows: Some(rows as usize),
                    }
                } else {
                    CommandTag::new("CREATE TABLE")
                })))
            }
            DdlStatement::CreateView(view) if !view.temporary => {
                let name = self.rel_name(&view.name)?;
                let Statement::CreateView(create) = statement else {
                    return Ok(None);
                };
                let query = create.query.to_string();
                let sql = if create.columns.is_empty() {
                    query
                } else {
                    let columns: Vec<String> =
                        create.columns.iter().map(|c| c.name.to_string()).collect();
                    format!("SELECT * FROM ({query}) AS v ({})", columns.join(", "))
                };
                store
                    .create_view(&name, &sql, view.or_replace, &state)
                    .await?;
                Ok(Some(Outcome::Command(CommandTag::new("CREATE VIEW"))))
            }
            DdlStatement::CreateCatalogSchema(create) => {
                let name = schema_part(&create.schema_name, self.engine.database())?;
                store.create_schema(&name, create.if_not_exists).await?;
                Ok(Some(Outcome::Command(CommandTag::new("CREATE SCHEMA"))))
            }
            DdlStatement::DropCatalogSchema(drop) => {
                self.hold_catalog_in_block().await;
                let name = schema_part(&drop.name.to_string(), self.engine.database())?;
                store
                    .drop_schema(&name, drop.if_exists, drop.cascade || cascade, &state)
                    .await?;
                Ok(Some(Outcome::Command(CommandTag::new("DROP SCHEMA"))))
            }
            DdlStatement::DropTable(drop) => {
                self.drop_relation("table", &drop.name, drop.if_exists, cascade)
                    .await
            }
            DdlStatement::DropView(drop) => {
                self.drop_relation("view", &drop.name, drop.if_exists, cascade)
                    .await
            }
            DdlStatement::CreateMemoryTable(create) => {
                // Temporary: kept in memory, dropped when the session ends.
                let name = self.rel_name(&create.name)?;
                let schema = self.engine.store().schema_provider(&name.schema)?;
                if schema.table_exist(&name.name) {
                    return Err(UserqlError::new(
                        sqlstate::DUPLICATE_TABLE,
                        format!("relation \"{name}\" already exists"),
                    ));
                }
                let input = create.input.as_ref().clone();
                let is_query =
                    matches!(statement, Statement::CreateTable(ct) if ct.query.is_some());
                let table_schema = match is_query {
                    true => nullable(input.schema().as_arrow()),
                    false => std::sync::Arc::new(input.schema().as_arrow().clone()),
                };
                let batches = self
                    .ctx
                    .execute_logical_plan(input)
                    .await?
                    .collect()
                    .await?
                    .into_iter()
                    .map(|b| b.with_schema(table_schema.clone()))
                    .collect::<Result<Vec<_>, _>>()?;
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                let table = datafusion::datasource::MemTable::try_new(table_schema, vec![batches])?;
                schema.register_table(name.name.clone(), std::sync::Arc::new(table))?;
                self.temp_tables.push(name);
                Ok(Some(Outcome::Command(if is_query {
                    CommandTag {
                        command: "SELECT".into(),
                        rows: Some(rows),
                    }
                } else {
                    CommandTag::new("CREATE TABLE")
                })))
            }
            _ => Ok(None),
        }
    }

    /// `DROP TABLE` / `DROP VIEW` (`kind`): the store's, else a temporary table
    /// (`Ok(None)`: DataFusion drops it), else refused or missing.
    async fn drop_relation(
        &mut self,
        kind: &str,
        reference: &TableReference,
        if_exists: bool,
        cascade: bool,
    ) -> Result<Option<Outcome>, UserqlError> {
        self.hold_catalog_in_block().await;
        self.check_writable(reference)?;
        let name = self.rel_name(reference)?;
        let engine = self.engine.clone();
        let state = self.ctx.state();
        // DROP TABLE of a view, DROP VIEW of a table: PostgreSQL's 42809, whatever IF EXISTS.
        let is_view = engine.store().has_view(&name).await;
        let is_table = engine.store().table(&name).await.is_some();
        if (kind == "table" && is_view) || (kind == "view" && is_table) {
            let (actual, other) = if is_view {
                ("view", "a view")
            } else {
                ("table", "a table")
            };
            return Err(UserqlError::new(
                sqlstate::WRONG_OBJECT_TYPE,
                format!("\"{name}\" is not a {kind}"),
            )
            .with_hint(format!(
                "Use DROP {} to remove {other}.",
                actual.to_uppercase()
            )));
        }
        let dropped = match kind {
            "view" => engine.store().drop_view(&name, cascade, &state).await?,
            _ => engine.store().drop_table(&name, cascade, &state).await?,
        };
        let tag = || Outcome::Command(CommandTag::new(&format!("DROP {}", kind.to_uppercase())));
        if dropped {
            return Ok(Some(tag()));
        }
        Ok(self
            .refuse_built_in(reference, &name, if_exists, kind)?
            .map(|()| tag()))
    }

    /// A `DROP` of something the store does not keep: a temporary table goes to
    /// DataFusion (`Ok(None)`); the built-in views are refused; a missing relation is an
    /// error unless `IF EXISTS` (`Ok(Some(()))`: answer without doing anything).
    fn refuse_built_in(
        &mut self,
        reference: &TableReference,
        name: &RelName,
        if_exists: bool,
        kind: &str,
    ) -> Result<Option<()>, UserqlError> {
        let exists = self
            .ctx
            .state()
            .schema_for_ref(reference.clone())
            .is_ok_and(|s| s.table_exist(&name.name));
        if !exists {
            return if if_exists {
                Ok(Some(()))
            } else {
                Err(UserqlError::new(
                    sqlstate::UNDEFINED_TABLE,
                    format!("{kind} \"{name}\" does not exist"),
                ))
            };
        }
        if self.temp_tables.contains(name) {
            return Ok(None);
        }
        Err(UserqlError::new(
            sqlstate::INSUFFICIENT_PRIVILEGE,
            format!("\"{name}\" is built in and cannot be dropped"),
        )
        .with_hint("identities, orders, events and the customer_* views come from userql.toml"))
    }
}

/// `timestamptz` columns keep their zone: DataFusion plans `TIMESTAMP WITH TIME ZONE`
/// with the session's zone, which may be unset; a stored `timestamptz` is UTC.
/// `schema` with every column nullable: as in PostgreSQL, a table made from a query takes
/// its columns' types but no NOT NULL, so later INSERTs may hold NULLs.
fn nullable(
    schema: &datafusion::arrow::datatypes::Schema,
) -> datafusion::arrow::datatypes::SchemaRef {
    std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

fn with_declared_time_zones(
    schema: &datafusion::arrow::datatypes::Schema,
    statement: &Statement,
) -> datafusion::arrow::datatypes::SchemaRef {
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::sql::sqlparser::ast::{DataType as SqlType, TimezoneInfo};
    let Statement::CreateTable(create) = statement else {
        return std::sync::Arc::new(schema.clone());
    };
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let zoned = create.columns.iter().any(|c| {
                c.name.value == *f.name()
                    && matches!(
                        c.data_type,
                        SqlType::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz)
                    )
            });
            if zoned {
                f.as_ref().clone().with_data_type(DataType::Timestamp(
                    TimeUnit::Microsecond,
                    Some("UTC".into()),
                ))
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    std::sync::Arc::new(Schema::new(fields))
}

/// The relation a statement names, parts as written (quoted ones keep their case).
pub(super) fn object_reference(
    name: &datafusion::sql::sqlparser::ast::ObjectName,
) -> Result<TableReference, UserqlError> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| p.as_ident().map(|i| i.value.clone()))
        .collect::<Option<_>>()
        .ok_or_else(|| UserqlError::new(sqlstate::SYNTAX_ERROR, format!("bad name {name}")))?;
    Ok(match parts.as_slice() {
        [t] => TableReference::bare(t.as_str()),
        [s, t] => TableReference::partial(s.as_str(), t.as_str()),
        [c, s, t] => TableReference::full(c.as_str(), s.as_str(), t.as_str()),
        _ => {
            return Err(UserqlError::new(
                sqlstate::SYNTAX_ERROR,
                format!("improper relation name (too many dotted names): {name}"),
            ));
        }
    })
}

/// `userql.marts` or `marts` → `marts`; another database's schema is refused.
fn schema_part(name: &str, database: &str) -> Result<String, UserqlError> {
    match name.split_once('.') {
        Some((db, schema)) if db.trim_matches('"') == database => {
            Ok(schema.trim_matches('"').to_string())
        }
        Some(_) => Err(UserqlError::unsupported(format!(
            "cross-database references are not implemented: {name}"
        ))),
        None => Ok(name.trim_matches('"').to_string()),
    }
}
