//! Objects users create that outlive the server: schemas, tables (Delta, under
//! `<data_dir>/<schema>/<table>`) and views, recorded in the [`manifest`].
//!
//! The store is the only code that changes the catalog after start. Each change takes
//! the store's lock, does the file work, then saves the manifest — the commit point —
//! and finally updates the DataFusion catalog every session reads. A crash at any step
//! leaves the previous state (plus, at worst, an unreferenced directory cleaned later).
//!
//! Views bind late: a view is kept as SQL and re-planned whenever a table or view
//! changes, so a view over `t` follows the new `t` after dbt swaps tables. A view whose
//! tables are gone stays listed and reports why when queried.

pub mod manifest;
pub mod table;
pub mod types;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::ViewTable;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, cast, col};
use datafusion::physical_plan::collect;
use tokio::sync::Mutex;

use crate::error::{UserqlError, sqlstate};
use manifest::{Manifest, ManifestError, TableEntry, ViewEntry};
use table::{StoredTable, TableError};

/// How many tables are opened at the same time when the server starts.
const OPEN_CONCURRENCY: usize = 16;

/// Why the store could not open.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The manifest is unreadable.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A table listed in the manifest could not be opened.
    #[error(transparent)]
    Table(#[from] TableError),
    /// Another server holds the data dir.
    #[error("data dir {0} is in use by another userql server (lock file .userql.lock)")]
    Locked(PathBuf),
    /// File-system failure.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A relation's place in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelName {
    pub schema: String,
    pub name: String,
}

impl std::fmt::Display for RelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// What `CREATE TABLE` asks for.
pub struct NewTable {
    pub name: RelName,
    /// Columns as planned (narrowed to storable types here).
    pub schema: SchemaRef,
    /// `CREATE TABLE ... AS query`: the rows to fill it with.
    pub input: Option<LogicalPlan>,
    pub if_not_exists: bool,
}

/// The user-created objects and the lock that orders changes to them.
pub struct Store {
    data_dir: PathBuf,
    catalog: Arc<dyn CatalogProvider>,
    inner: Mutex<Inner>,
    /// How long a table's data files stay on disk after its commits stop using them.
    retention: Duration,
    /// Held while the server runs: one server per data dir.
    _lock: File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

struct Inner {
    manifest: Manifest,
    tables: HashMap<RelName, Arc<StoredTable>>,
    /// The plan each view currently has (absent while it cannot be planned).
    view_plans: HashMap<RelName, LogicalPlan>,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn user_err(e: impl std::fmt::Display) -> UserqlError {
    UserqlError::new(sqlstate::IO_ERROR, e.to_string())
}

fn undefined_table(name: &RelName, kind: &str) -> UserqlError {
    UserqlError::new(
        sqlstate::UNDEFINED_TABLE,
        format!("{kind} \"{}\" does not exist", name),
    )
}

impl Store {
    /// Open the data dir: lock it, finish an interrupted rename, create the recorded
    /// schemas and open every table. Views are planned later by [`Store::plan_views`],
    /// once functions are registered. A table's data files stay on disk for `retention`
    /// after its commits stop using them.
    pub async fn open(
        data_dir: &Path,
        catalog: Arc<dyn CatalogProvider>,
        retention: Duration,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
        let data_dir = std::fs::canonicalize(data_dir).map_err(io_err(data_dir))?;
        let lock_path = data_dir.join(".userql.lock");
        let lock = File::create(&lock_path).map_err(io_err(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Locked(data_dir));
        }
        let mut manifest = Manifest::load(&data_dir)?;
        let mut finished_move = false;
        for t in &mut manifest.tables {
            if let Some(from) = t.moved_from.take() {
                let (from, to) = (data_dir.join(&from), data_dir.join(&t.dir));
                if !to.exists() && from.exists() {
                    std::fs::rename(&from, &to).map_err(io_err(&to))?;
                }
                finished_move = true;
            }
        }
        if finished_move {
            manifest.save(&data_dir)?;
        }
        for schema in &manifest.schemas {
            if catalog.schema(schema).is_none() {
                register_schema(&catalog, schema).map_err(|e| StoreError::Io {
                    path: data_dir.clone(),
                    source: std::io::Error::other(e.message),
                })?;
            }
        }
        // Opening a table reads its Delta log; many at once keep the disk busy.
        let opened: Vec<Arc<StoredTable>> = {
            use futures::{StreamExt, TryStreamExt};
            futures::stream::iter(manifest.tables.iter().map(|t| data_dir.join(&t.dir)))
                .map(|dir| async move { StoredTable::open(&dir, retention).await })
                .buffered(OPEN_CONCURRENCY)
                .try_collect()
                .await?
        };
        let mut tables = HashMap::new();
        for (t, table) in manifest.tables.iter().zip(opened) {
            let name = RelName {
                schema: t.schema.clone(),
                name: t.name.clone(),
            };
            if let Some(schema) = catalog.schema(&t.schema) {
                let _ = schema.register_table(t.name.clone(), table.clone());
            }
            tables.insert(name, table);
        }
        tracing::info!(
            tables = tables.len(),
            views = manifest.views.len(),
            schemas = manifest.schemas.len(),
            "opened stored objects in {}",
            data_dir.display()
        );
        Ok(Self {
            data_dir,
            catalog,
            inner: Mutex::new(Inner {
                manifest,
                tables,
                view_plans: HashMap::new(),
            }),
            retention,
            _lock: lock,
        })
    }

    /// Plan every stored view (at start, and after every change).
    pub async fn plan_views(&self, state: &SessionState) {
        let mut inner = self.inner.lock().await;
        self.replan_views(&mut inner, state).await;
    }

    /// The catalog's provider of `schema`, or 3F000.
    /// Whether `name` is a stored view.
    pub async fn has_view(&self, name: &RelName) -> bool {
        self.inner
            .lock()
            .await
            .manifest
            .views
            .iter()
            .any(|v| v.schema == name.schema && v.name == name.name)
    }

    /// The stored table `name`, if there is one.
    pub async fn table(&self, name: &RelName) -> Option<Arc<StoredTable>> {
        self.inner.lock().await.tables.get(name).cloned()
    }

    pub fn schema_provider(&self, schema: &str) -> Result<Arc<dyn SchemaProvider>, UserqlError> {
        self.catalog.schema(schema).ok_or_else(|| {
            UserqlError::new(
                sqlstate::INVALID_SCHEMA_NAME,
                format!("schema \"{schema}\" does not exist"),
            )
        })
    }

    /// Refuse changes in schemas whose contents come from elsewhere.
    fn check_writable_schema(&self, schema: &str) -> Result<(), UserqlError> {
        if schema == super::CHANNELS_SCHEMA
            || schema == "pg_catalog"
            || schema == "information_schema"
        {
            return Err(UserqlError::new(
                sqlstate::INSUFFICIENT_PRIVILEGE,
                format!("schema \"{schema}\" is read-only"),
            )
            .with_hint(if schema == super::CHANNELS_SCHEMA {
                "channels come from userql.toml; create tables in public or your own schema"
            } else {
                "create tables in public or your own schema"
            }));
        }
        Ok(())
    }

    /// `CREATE SCHEMA [IF NOT EXISTS]`.
    pub async fn create_schema(&self, name: &str, if_not_exists: bool) -> Result<(), UserqlError> {
        let mut inner = self.inner.lock().await;
        if self.catalog.schema(name).is_some() {
            if if_not_exists {
                return Ok(());
            }
            return Err(UserqlError::new(
                sqlstate::DUPLICATE_SCHEMA,
                format!("schema \"{name}\" already exists"),
            ));
        }
        let mut next = inner.manifest.clone();
        next.schemas.push(name.to_string());
        next.save(&self.data_dir).map_err(user_err)?;
        inner.manifest = next;
        register_schema(&self.catalog, name)
    }

    /// `DROP SCHEMA [IF EXISTS] name [CASCADE]`.
    pub async fn drop_schema(
        &self,
        name: &str,
        if_exists: bool,
        cascade: bool,
        state: &SessionState,
    ) -> Result<(), UserqlError> {
        let mut inner = self.inner.lock().await;
        if !inner.manifest.has_schema(name) {
            if self.catalog.schema(name).is_some() {
                return Err(UserqlError::new(
                    sqlstate::INSUFFICIENT_PRIVILEGE,
                    format!("schema \"{name}\" is built in and cannot be dropped"),
                ));
            }
            if if_exists {
                return Ok(());
            }
            return Err(UserqlError::new(
                sqlstate::INVALID_SCHEMA_NAME,
                format!("schema \"{name}\" does not exist"),
            ));
        }
        let tables: Vec<RelName> = inner
            .tables
            .keys()
            .filter(|t| t.schema == name)
            .cloned()
            .collect();
        let views: Vec<RelName> = inner
            .manifest
            .views
            .iter()
            .filter(|v| v.schema == name)
            .map(rel_of)
            .collect();
        if !cascade && (!tables.is_empty() || !views.is_empty()) {
            let first = tables.first().or(views.first()).map(|t| t.to_string());
            return Err(dependent_objects(
                &format!("schema {name}"),
                first.as_deref().unwrap_or_default(),
            ));
        }
        let mut dropped = tables.clone();
        dropped.extend(views.iter().cloned());
        let dependents = self.dependents_of(&inner, &dropped);
        let mut next = inner.manifest.clone();
        next.schemas.retain(|s| s != name);
        next.tables.retain(|t| t.schema != name);
        next.views
            .retain(|v| v.schema != name && !dependents.contains(&rel_of(v)));
        next.save(&self.data_dir).map_err(user_err)?;
        inner.manifest = next;
        for t in &tables {
            self.forget_table(&mut inner, t).await;
        }
        self.forget_views(&mut inner, views.iter().chain(dependents.iter()));
        let _ = self.catalog.deregister_schema(name, true);
        let dir = self.data_dir.join(manifest::file_safe(name));
        let _ = std::fs::remove_dir_all(dir);
        self.replan_views(&mut inner, state).await;
        Ok(())
    }

    /// `CREATE TABLE` / `CREATE TABLE AS`; returns the rows written.
    pub async fn create_table(
        &self,
        new: NewTable,
        state: &SessionState,
    ) -> Result<u64, UserqlError> {
        self.check_writable_schema(&new.name.schema)?;
        let schema_provider = self.schema_provider(&new.name.schema)?;
        let mut inner = self.inner.lock().await;
        if schema_provider.table_exist(&new.name.name) {
            if new.if_not_exists {
                return Ok(0);
            }
            return Err(UserqlError::new(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{}\" already exists", new.name),
            ));
        }
        let storage = types::storage_schema(&new.schema)?;
        let rel_dir = Manifest::table_dir(&new.name.schema, &new.name.name);
        let dir = self.data_dir.join(&rel_dir);
        if dir.exists() {
            // Not in the manifest, so never finished (a crash mid-create): discard it.
            std::fs::remove_dir_all(&dir).map_err(user_err)?;
        }
        let table = StoredTable::create(&dir, &new.name.name, &storage, self.retention)
            .await
            .map_err(user_err)?;
        let rows = match new.input {
            Some(input) => {
                let written = write_query(&table, input, &storage, state).await;
                match written {
                    Ok(rows) => rows,
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&dir);
                        return Err(e);
                    }
                }
            }
            None => 0,
        };
        let mut next = inner.manifest.clone();
        next.tables.push(TableEntry {
            schema: new.name.schema.clone(),
            name: new.name.name.clone(),
            dir: rel_dir,
            moved_from: None,
        });
        next.save(&self.data_dir).map_err(user_err)?;
        inner.manifest = next;
        schema_provider
            .register_table(new.name.name.clone(), table.clone())
            .map_err(UserqlError::from)?;
        inner.tables.insert(new.name, table);
        self.replan_views(&mut inner, state).await;
        Ok(rows)
    }

    /// `DROP TABLE [IF EXISTS] name [CASCADE]`. `Ok(false)`: no such stored table (the
    /// caller may know another kind of table by that name).
    pub async fn drop_table(
        &self,
        name: &RelName,
        cascade: bool,
        state: &SessionState,
    ) -> Result<bool, UserqlError> {
        let mut inner = self.inner.lock().await;
        if !inner.tables.contains_key(name) {
            return Ok(false);
        }
        let dependents = self.dependents_unless_cascade(&inner, name, "table", cascade)?;
        let mut next = inner.manifest.clone();
        next.tables
            .retain(|t| !(t.schema == name.schema && t.name == name.name));
        next.views.retain(|v| !dependents.contains(&rel_of(v)));
        next.save(&self.data_dir).map_err(user_err)?;
        inner.manifest = next;
        self.forget_views(&mut inner, dependents.iter());
        self.forget_table(&mut inner, name).await;
        self.replan_views(&mut inner, state).await;
        Ok(true)
    }

    /// Take views out of the catalog (the manifest no longer lists them).
    fn forget_views<'a>(&self, inner: &mut Inner, views: impl Iterator<Item = &'a RelName>) {
        for v in views {
            inner.view_plans.remove(v);
            if let Some(s) = self.catalog.schema(&v.schema) {
                let _ = s.deregister_table(&v.name);
            }
        }
    }

    /// Take a table out of the catalog and delete its files (the manifest no longer
    /// lists it).
    async fn forget_table(&self, inner: &mut Inner, name: &RelName) {
        if let Some(table) = inner.tables.remove(name) {
            let _writes = table.lock_writes().await;
            if let Some(s) = self.catalog.schema(&name.schema) {
                let _ = s.deregister_table(&name.name);
            }
            let dir = self
                .data_dir
                .join(Manifest::table_dir(&name.schema, &name.name));
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!("could not remove {}: {e}", dir.display());
            }
        }
    }

    /// `CREATE [OR REPLACE] VIEW name AS sql`.
    pub async fn create_view(
        &self,
        name: &RelName,
        sql: &str,
        or_replace: bool,
        state: &SessionState,
    ) -> Result<(), UserqlError> {
        self.check_writable_schema(&name.schema)?;
        let schema_provider = self.schema_provider(&name.schema)?;
        let mut inner = self.inner.lock().await;
        let default_schema = state.config().options().catalog.default_schema.clone();
        let entry = ViewEntry {
            schema: name.schema.clone(),
            name: name.name.clone(),
            sql: sql.to_string(),
            default_schema,
        };
        // Plan now: a view that does not plan is an error at creation, as in PostgreSQL.
        let plan = plan_view(&entry, state).await?;
        let exists = inner.manifest.view(&name.schema, &name.name).is_some();
        if schema_provider.table_exist(&name.name) && !(exists && or_replace) {
            return Err(UserqlError::new(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{name}\" already exists"),
            ));
        }
        let mut next = inner.manifest.clone();
        match next
            .views
            .iter_mut()
            .find(|v| v.schema == name.schema && v.name == name.name)
        {
            // A replaced view keeps its place, so views created after it still plan
            // after it.
            Some(v) => *v = entry,
            None => next.views.push(entry),
        }
        next.save(&self.data_dir).map_err(user_err)?;
        inner.manifest = next;
        register_view(&schema_provider, &name.name, plan.clone(), sql)?;
        inner.view_plans.insert(name.clone(), plan);
        self.replan_views(&mut inner, state).await;
        Ok(())
    }

    /// `DROP VIEW [IF EXISTS] name [CASCADE]`. `Ok(false)`: no such stored view.
    pub async fn drop_view(
        &self,
        name: &RelName,
        cascade: bool,
        state: &SessionState,
    ) -> Result<bool, UserqlError> {
        let mut inner = self.inner.lock().await;
        if inner.manifest.view(&name.schema, &name.name).is_none() {
            return Ok(false);
        }
        let dependents = self.dependents_unless_cascade(&inner, name, "view", cascade)?;
        let mut next = inner.manifest.clone();
        next.views.retain(|v| {
            let rel = rel_of(v);
            rel != *name && !dependents.contains(&rel)
        });
        next.save(&self.data_dir).map_err(user_err)?;
        inner.manifest = next;
        self.forget_views(&mut inner, dependents.iter().chain(std::iter::once(name)));
        self.replan_views(&mut inner, state).await;
        Ok(true)
    }

    /// `ALTER TABLE|VIEW name RENAME TO new_name` (same schema, as in PostgreSQL).
    /// `Ok(false)`: no stored table or view has that name.
    pub async fn rename(
        &self,
        name: &RelName,
        new_name: &str,
        state: &SessionState,
    ) -> Result<bool, UserqlError> {
        let mut inner = self.inner.lock().await;
        let is_table = inner.tables.contains_key(name);
        let is_view = inner.manifest.view(&name.schema, &name.name).is_some();
        if !is_table && !is_view {
            return Ok(false);
        }
        let schema_provider = self.schema_provider(&name.schema)?;
        if schema_provider.table_exist(new_name) {
            return Err(UserqlError::new(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{}.{new_name}\" already exists", name.schema),
            ));
        }
        let to = RelName {
            schema: name.schema.clone(),
            name: new_name.to_string(),
        };
        let mut next = inner.manifest.clone();
        if is_table {
            let table = inner
                .tables
                .get(name)
                .cloned()
                .ok_or_else(|| undefined_table(name, "table"))?;
            let _writes = table.lock_writes().await;
            let from_dir = Manifest::table_dir(&name.schema, &name.name);
            let to_dir = Manifest::table_dir(&to.schema, &to.name);
            let to_path = self.data_dir.join(&to_dir);
            if to_path.exists() {
                // Left over from an unfinished create: nothing refers to it.
                std::fs::remove_dir_all(&to_path).map_err(user_err)?;
            }
            for t in &mut next.tables {
                if t.schema == name.schema && t.name == name.name {
                    t.name = to.name.clone();
                    t.dir = to_dir.clone();
                    t.moved_from = Some(from_dir.clone());
                }
            }
            // Commit point: once saved, a restart finishes the move.
            next.save(&self.data_dir).map_err(user_err)?;
            std::fs::rename(self.data_dir.join(&from_dir), &to_path).map_err(user_err)?;
            table.relocate(&to_path).await.map_err(user_err)?;
            for t in &mut next.tables {
                t.moved_from = None;
            }
            next.save(&self.data_dir).map_err(user_err)?;
            let _ = schema_provider.deregister_table(&name.name);
            schema_provider
                .register_table(to.name.clone(), table.clone())
                .map_err(UserqlError::from)?;
            inner.tables.remove(name);
            inner.tables.insert(to.clone(), table.clone());
        } else {
            for v in &mut next.views {
                if v.schema == name.schema && v.name == name.name {
                    v.name = to.name.clone();
                }
            }
            next.save(&self.data_dir).map_err(user_err)?;
            if let Ok(Some(view)) = schema_provider.deregister_table(&name.name) {
                schema_provider
                    .register_table(to.name.clone(), view)
                    .map_err(UserqlError::from)?;
            }
            if let Some(plan) = inner.view_plans.remove(name) {
                inner.view_plans.insert(to.clone(), plan);
            }
        }
        inner.manifest = next;
        self.replan_views(&mut inner, state).await;
        Ok(true)
    }

    /// The views a `DROP` of `name` takes along: 2BP01 when there are some and the
    /// statement did not say `CASCADE`.
    fn dependents_unless_cascade(
        &self,
        inner: &Inner,
        name: &RelName,
        kind: &str,
        cascade: bool,
    ) -> Result<Vec<RelName>, UserqlError> {
        let dependents = self.dependents_of(inner, std::slice::from_ref(name));
        match dependents.first() {
            Some(first) if !cascade => Err(dependent_objects(
                &format!("{kind} {name}"),
                &format!("view {first}"),
            )),
            _ => Ok(dependents),
        }
    }

    /// Views (recursively) whose plans read any of `names`, excluding `names` themselves.
    fn dependents_of(&self, inner: &Inner, names: &[RelName]) -> Vec<RelName> {
        let mut found: Vec<RelName> = Vec::new();
        let mut frontier: Vec<RelName> = names.to_vec();
        while let Some(target) = frontier.pop() {
            for v in &inner.manifest.views {
                let rel = rel_of(v);
                if names.contains(&rel) || found.contains(&rel) {
                    continue;
                }
                let Some(plan) = inner.view_plans.get(&rel) else {
                    continue;
                };
                if reads(plan, &v.default_schema, &target) {
                    found.push(rel.clone());
                    frontier.push(rel);
                }
            }
        }
        found
    }

    /// Re-plan every view in creation order against the current catalog.
    async fn replan_views(&self, inner: &mut Inner, state: &SessionState) {
        for entry in inner.manifest.views.clone() {
            let rel = rel_of(&entry);
            let Some(schema) = self.catalog.schema(&entry.schema) else {
                continue;
            };
            let _ = schema.deregister_table(&entry.name);
            match plan_view(&entry, state).await {
                Ok(plan) => {
                    if let Err(e) = register_view(&schema, &entry.name, plan.clone(), &entry.sql) {
                        tracing::warn!("view {rel}: {e}");
                    }
                    inner.view_plans.insert(rel, plan);
                }
                Err(e) => {
                    tracing::warn!("view {rel} cannot be planned: {}", e.message);
                    let _ = schema.register_table(
                        entry.name.clone(),
                        Arc::new(BrokenView {
                            name: rel.to_string(),
                            error: e,
                        }),
                    );
                    inner.view_plans.remove(&rel);
                }
            }
        }
    }
}

fn rel_of(view: &ViewEntry) -> RelName {
    RelName {
        schema: view.schema.clone(),
        name: view.name.clone(),
    }
}

/// Stream a query's rows into a new table (one commit); the rows written.
async fn write_query(
    table: &Arc<StoredTable>,
    input: LogicalPlan,
    storage: &Schema,
    state: &SessionState,
) -> Result<u64, UserqlError> {
    // Cast each column to its stored type by position (a CTAS names the columns).
    let exprs = input
        .schema()
        .fields()
        .iter()
        .zip(storage.fields())
        .map(|(from, to)| {
            cast(
                col(datafusion::common::Column::new_unqualified(from.name())),
                to.data_type().clone(),
            )
            .alias(to.name())
        })
        .collect::<Vec<_>>();
    let plan = LogicalPlanBuilder::from(input).project(exprs)?.build()?;
    let plan = state.optimize(&plan)?;
    let physical = state.create_physical_plan(&plan).await?;
    let sink = table.insert_into(state, physical, InsertOp::Append).await?;
    let batches = collect(sink, state.task_ctx()).await?;
    Ok(super::session::affected_rows(&batches) as u64)
}

async fn plan_view(entry: &ViewEntry, state: &SessionState) -> Result<LogicalPlan, UserqlError> {
    let mut state = state.clone();
    state.config_mut().options_mut().catalog.default_schema = entry.default_schema.clone();
    let statement = state.sql_to_statement(&entry.sql, &datafusion::config::Dialect::PostgreSQL)?;
    Ok(state.statement_to_plan(statement).await?)
}

fn register_view(
    schema: &Arc<dyn SchemaProvider>,
    name: &str,
    plan: LogicalPlan,
    sql: &str,
) -> Result<(), UserqlError> {
    let view = ViewTable::new(plan, Some(sql.to_string()));
    // Replacing: the schema provider refuses a name it already holds.
    let _ = schema.deregister_table(name);
    schema
        .register_table(name.to_string(), Arc::new(view))
        .map(|_| ())
        .map_err(UserqlError::from)
}

fn register_schema(catalog: &Arc<dyn CatalogProvider>, name: &str) -> Result<(), UserqlError> {
    catalog
        .register_schema(name, Arc::new(MemorySchemaProvider::new()))
        .map(|_| ())
        .map_err(UserqlError::from)
}

/// Whether `plan` scans `target` (names in it resolve against `default_schema`).
fn reads(plan: &LogicalPlan, default_schema: &str, target: &RelName) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let (schema, table) = match &scan.table_name {
                TableReference::Bare { table } => (default_schema, table.as_ref()),
                TableReference::Partial { schema, table } => (schema.as_ref(), table.as_ref()),
                TableReference::Full { schema, table, .. } => (schema.as_ref(), table.as_ref()),
            };
            if schema == target.schema && table == target.name {
                found = true;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn dependent_objects(what: &str, dependent: &str) -> UserqlError {
    UserqlError::new(
        sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
        format!("cannot drop {what} because other objects depend on it"),
    )
    .with_hint(format!(
        "{dependent} depends on it; use DROP ... CASCADE to drop the dependent objects too"
    ))
}

/// A stored view that no longer plans (a table it reads was dropped): listed, and
/// querying it says why.
#[derive(Debug)]
struct BrokenView {
    name: String,
    error: UserqlError,
}

#[async_trait::async_trait]
impl TableProvider for BrokenView {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::empty())
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn datafusion::catalog::Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[datafusion::logical_expr::Expr],
        _limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        Err(datafusion::error::DataFusionError::External(Box::new(
            UserqlError::new(
                self.error.code,
                format!(
                    "view \"{}\" cannot be read: {}",
                    self.name, self.error.message
                ),
            )
            .with_hint("recreate the tables it reads, or CREATE OR REPLACE the view"),
        )))
    }
}
