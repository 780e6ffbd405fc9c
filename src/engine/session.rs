//! One client session: parses statements, answers the ones PostgreSQL clients send that
//! DataFusion does not know (SET/SHOW/RESET of PostgreSQL settings, BEGIN/COMMIT), and
//! hands everything else to DataFusion.
//!
//! Transactions: userql runs every statement in autocommit. `BEGIN`/`COMMIT`/`ROLLBACK`
//! are accepted so drivers and dbt work, and the wire status reflects the block, but a
//! `ROLLBACK` does not undo statements that already ran; it says so with a WARNING
//! notice when the block wrote anything.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::common::TableReference;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::{DdlStatement, DmlStatement, LogicalPlan, WriteOp};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, ObjectName, ObjectType, Reset, Set, Statement, Value,
};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use super::Engine;
use super::pg_settings::{self, PgSettings};
use super::settings::{self, UserqlSettings};
use super::snapshot::{Rows, Snapshot};
use crate::error::{UserqlError, sqlstate};

/// How long planning waits for another session's transaction block to finish a rename or
/// drop before going ahead with the catalog as it is.
const CATALOG_GATE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A statement ready to execute (the result of Parse in the extended protocol).
#[derive(Debug, Clone)]
pub enum Planned {
    /// Planned by DataFusion.
    Query {
        /// The parsed statement, for its command tag.
        statement: Box<Statement>,
        /// The logical plan, possibly with `$n` placeholders.
        plan: LogicalPlan,
    },
    /// Answered by the session itself.
    Utility(Utility),
    /// `ALTER TABLE|VIEW name RENAME TO new_name`.
    Rename {
        /// The relation as written.
        from: TableReference,
        /// Its new name (same schema).
        to: String,
        /// `ALTER TABLE IF EXISTS`.
        if_exists: bool,
    },
    /// `COPY ... FROM STDIN` / `COPY ... TO STDOUT`.
    Copy(super::copy::CopyStatement),
}

/// Statements the session answers without DataFusion.
#[derive(Debug, Clone, PartialEq)]
pub enum Utility {
    /// `SET name = value` (`None`: `DEFAULT`).
    Set { name: String, value: Option<String> },
    /// `SET SESSION AUTHORIZATION` / `SET ROLE` (`None`: DEFAULT / NONE).
    SetIdentity {
        name: &'static str,
        value: Option<String>,
    },
    /// `RESET name` / `RESET ALL` (`None`).
    Reset(Option<String>),
    /// `SHOW name` / `SHOW ALL`.
    Show(String),
    /// `BEGIN` / `START TRANSACTION`.
    Begin,
    /// `COMMIT` / `END`.
    Commit,
    /// `ROLLBACK` / `ABORT`.
    Rollback,
    /// Accepted and ignored, answering with this command tag.
    Noop(&'static str),
}

/// What running a statement produced.
pub enum Outcome {
    /// Rows to stream to the client.
    Rows(Rows),
    /// A small result computed in memory (SHOW).
    Batches(SchemaRef, Vec<RecordBatch>),
    /// A command that returns no rows: its tag (`CREATE TABLE`, `INSERT 0 5`).
    Command(CommandTag),
    /// `BEGIN`.
    TransactionStart,
    /// `COMMIT` / `ROLLBACK`, with the tag to answer.
    TransactionEnd(&'static str),
    /// `COPY ... FROM STDIN`: the client sends rows next; write them with
    /// [`Session::copy_writer`] (or [`Session::copy_in`] when they are all at hand).
    CopyIn(super::copy::CopyIn),
    /// `COPY ... TO STDOUT`: rows to send as copy data in this format.
    CopyOut(Rows, super::copy::CopyFormat),
}

/// A PostgreSQL command-completion tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTag {
    /// The command word(s), e.g. `INSERT`, `CREATE TABLE`.
    pub command: String,
    /// Rows affected, for DML.
    pub rows: Option<usize>,
}

impl CommandTag {
    pub(super) fn new(command: &str) -> Self {
        Self {
            command: command.to_string(),
            rows: None,
        }
    }
}

/// A client session.
pub struct Session {
    pub(super) engine: Arc<Engine>,
    pub(super) ctx: SessionContext,
    user: String,
    /// The user's role and the masks applied to its reads.
    access: crate::security::Access,
    /// Where the client connects from (for the audit log; unspecified in process).
    client_addr: std::net::SocketAddr,
    in_block: bool,
    block_wrote: bool,
    parser: Arc<PostgresCompatibilityParser>,
    /// `CREATE TEMPORARY TABLE`s of this session: in memory, dropped when it ends.
    pub(super) temp_tables: Vec<super::store::RelName>,
    /// Held from the first rename or drop inside a transaction block to its end: other
    /// sessions see the catalog before or after the block's changes, never between.
    catalog_hold: Option<tokio::sync::OwnedRwLockWriteGuard<()>>,
    /// The state statements run with, until a setting changes (see `snapshot.rs`).
    snapshot: std::sync::Mutex<Option<Arc<Snapshot>>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        for t in &self.temp_tables {
            if let Some(schema) = self
                .ctx
                .catalog(self.engine.database())
                .and_then(|c| c.schema(&t.schema))
            {
                let _ = schema.deregister_table(&t.name);
            }
        }
    }
}

impl Session {
    pub(super) fn new(
        engine: Arc<Engine>,
        ctx: SessionContext,
        user: &str,
        access: crate::security::Access,
    ) -> Self {
        {
            let state_ref = ctx.state_ref();
            let mut state = state_ref.write();
            let options = state.config_mut().options_mut();
            let mut pg = options
                .extensions
                .get::<PgSettings>()
                .cloned()
                .unwrap_or_default();
            pg.set_user(user);
            options.extensions.insert(pg);
            options
                .extensions
                .insert(super::notices::Notices::default());
            if !access.mask.is_empty() {
                state.config_mut().set_extension(access.mask.clone());
            }
        }
        Self {
            engine,
            ctx,
            user: user.to_string(),
            access,
            client_addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            in_block: false,
            block_wrote: false,
            parser: shared_parser(),
            temp_tables: Vec::new(),
            catalog_hold: None,
            snapshot: std::sync::Mutex::new(None),
        }
    }

    /// Record the client's address (the server does, at startup).
    pub fn set_client_addr(&mut self, addr: std::net::SocketAddr) {
        self.client_addr = addr;
    }

    /// The client's address.
    pub fn client_addr(&self) -> std::net::SocketAddr {
        self.client_addr
    }

    /// The session's role and masks.
    pub fn access(&self) -> &crate::security::Access {
        &self.access
    }

    /// The DataFusion context behind the session.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The engine the session belongs to.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The connected user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// This session's PostgreSQL settings.
    pub fn pg_settings(&self) -> PgSettings {
        self.options()
            .extensions
            .get::<PgSettings>()
            .cloned()
            .unwrap_or_default()
    }

    /// Read this session's PostgreSQL settings in place (no copy of every setting).
    fn with_pg_settings<R>(&self, read: impl FnOnce(&PgSettings) -> R) -> R {
        pg_settings_in(&self.options(), read)
    }

    /// `statement_timeout`, or `None` when disabled.
    pub fn statement_timeout(&self) -> Option<std::time::Duration> {
        self.with_pg_settings(PgSettings::statement_timeout)
    }

    /// Record the connection's process id (`pg_backend_pid()` answers it).
    pub fn set_backend_pid(&self, pid: i32) {
        let state_ref = self.ctx.state_ref();
        let mut state = state_ref.write();
        let options = state.config_mut().options_mut();
        let mut pg = options
            .extensions
            .get::<PgSettings>()
            .cloned()
            .unwrap_or_default();
        pg.set_backend_pid(pid);
        options.extensions.insert(pg);
    }

    /// Notices raised by the statements run so far, taken (the server sends them).
    pub fn take_notices(&self) -> Vec<String> {
        self.options()
            .extensions
            .get::<super::notices::Notices>()
            .map(|n| n.take())
            .unwrap_or_default()
    }

    /// How this session prints values as text (`extra_float_digits`, `TimeZone`).
    pub fn text_options(&self) -> super::pg_text::TextOptions {
        let options = self.options();
        let extra_float_digits = pg_settings_in(&options, |pg| {
            pg.get("extra_float_digits")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1)
        });
        super::pg_text::TextOptions {
            extra_float_digits,
            time_zone: super::pg_text::session_zone(&options),
        }
    }

    /// This session's `userql.*` settings.
    pub fn userql_settings(&self) -> UserqlSettings {
        settings::of_session(&self.options())
    }

    /// The session's config, shared rather than copied: cloning the whole `SessionState`
    /// (function registries included) per statement costs more than a `SELECT 1` runs.
    fn options(&self) -> Arc<datafusion::config::ConfigOptions> {
        self.ctx.state_ref().read().config().options().clone()
    }

    /// The state to plan and run the next statement with: the current snapshot, or a new
    /// one when the session's options changed since it was taken.
    pub(super) fn snapshot(&self) -> Arc<Snapshot> {
        let mut slot = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        let options = self.ctx.state_ref().read().config().options().clone();
        if let Some(current) = slot.as_ref().filter(|s| s.is_current(&options)) {
            return current.clone();
        }
        let fresh = Arc::new(Snapshot::new(self.ctx.state()));
        *slot = Some(fresh.clone());
        fresh
    }

    /// The statement planned before from exactly `sql` at the session's current settings,
    /// when it runs again as planned (a table-free query of pure functions: `SELECT 1`).
    pub fn planned_before(&self, sql: &str) -> Option<Arc<super::snapshot::PlannedText>> {
        self.snapshot().planned_text(sql)
    }

    /// Keep `planned`, planned from the whole text `sql` after reading
    /// [`super::snapshot::catalog_generation`] (`generation`), for
    /// [`Session::planned_before`] when it can run again as planned.
    pub fn keep_planned(&self, sql: &str, planned: &Arc<Planned>, generation: u64) {
        self.snapshot().keep_planned_text(sql, planned, generation);
    }

    /// Apply a startup parameter (`application_name`, `client_encoding`, `DateStyle`...).
    /// Unknown ones are ignored, as PostgreSQL ignores none but clients send many.
    pub fn apply_startup_parameter(&mut self, name: &str, value: &str) {
        let canonical = pg_settings::canonical_name(name);
        if (pg_settings::is_known(&canonical) || canonical.starts_with("userql."))
            && let Err(e) = self.set(&canonical, Some(value))
        {
            tracing::debug!("ignoring startup parameter {name}={value}: {e}");
        }
    }

    /// Split SQL text into statements (PostgreSQL dialect, with the rewrites that make
    /// client catalog queries plannable).
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>, UserqlError> {
        let sql = super::literal_casts::protect_array_literal_casts(sql);
        let sql = sql.as_ref();
        let parsed = match self.parser.parse(sql) {
            Ok(statements) => Ok(statements),
            // The SQL parser knows only `ALTER VIEW name AS query`; PostgreSQL's
            // `ALTER VIEW name RENAME TO new` is the same statement as for a table.
            Err(e) => match alter_view_rename_as_table(sql) {
                Some(rewritten) => Ok(self.parser.parse(&rewritten)?),
                None => Err(e),
            },
        }?;
        Ok(parsed.into_iter().map(super::sql_compat::rewrite).collect())
    }

    /// Plan one statement.
    pub async fn plan(&self, statement: Statement) -> Result<Planned, UserqlError> {
        let statement = self.apply_set_config(statement)?;
        if let Some(utility) = utility_of(&statement)? {
            return Ok(Planned::Utility(utility));
        }
        // Wait while another session's transaction block is swapping relations — but not
        // forever: a block left open must not stop every other session.
        let _gate = match self.catalog_hold {
            Some(_) => None,
            None => {
                let wait = self.engine.catalog_gate().read();
                match tokio::time::timeout(CATALOG_GATE_WAIT, wait).await {
                    Ok(guard) => Some(guard),
                    Err(_) => {
                        tracing::warn!(
                            "planning without waiting further for a transaction block that \
                             renames or drops relations"
                        );
                        None
                    }
                }
            }
        };
        if let Some(planned) = self.plan_store_statement(&statement).await? {
            return Ok(planned);
        }
        let snapshot = self.snapshot();
        let state = snapshot.state();
        let plan = match temporary_as_plain(&statement) {
            // DataFusion plans no temporary tables: plan it as a plain one, then mark it
            // so the session keeps it in memory instead of storing it.
            Some(plain) => match state
                .statement_to_plan(DFStatement::Statement(Box::new(plain)))
                .await?
            {
                LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(mut create)) => {
                    create.temporary = true;
                    LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create))
                }
                other => other,
            },
            None => {
                match state
                    .statement_to_plan(DFStatement::Statement(Box::new(statement.clone())))
                    .await
                {
                    Ok(plan) => plan,
                    // PostgreSQL allows two output columns with one name (`count`,
                    // `count`); DataFusion needs unique names, so name them apart and
                    // label them back for the client (see `pg_label`).
                    Err(e) if e.to_string().contains("unique expression names") => {
                        match alias_unnamed_outputs(&statement) {
                            Some(aliased) => {
                                state
                                    .statement_to_plan(DFStatement::Statement(Box::new(aliased)))
                                    .await?
                            }
                            None => return Err(e.into()),
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let plan = type_cast_placeholders(plan)?;
        let plan = type_array_placeholders(plan)?;
        let plan = super::pg_aggregates::integer_avg_as_numeric(plan)?;
        let plan = integer_literals_as_int4(plan)?;
        Ok(Planned::Query {
            statement: Box::new(statement),
            plan,
        })
    }

    /// `set_config(name, value, is_local)` in a query: applied like `SET name = value`
    /// (for the session, also when `is_local`: userql has no transaction-scoped
    /// settings), and the call replaced by the value it returns. Its arguments must be
    /// constants; drivers (asyncpg turning `jit` off) send them so.
    fn apply_set_config(&self, mut statement: Statement) -> Result<Statement, UserqlError> {
        use datafusion::sql::sqlparser::ast::{
            FunctionArg, FunctionArgExpr, FunctionArguments, VisitMut, VisitorMut,
        };
        use std::ops::ControlFlow;
        struct Calls<'a> {
            session: &'a Session,
            error: Option<UserqlError>,
        }
        impl VisitorMut for Calls<'_> {
            type Break = ();
            fn post_visit_expr(&mut self, expr: &mut SqlExpr) -> ControlFlow<()> {
                let SqlExpr::Function(f) = expr else {
                    return ControlFlow::Continue(());
                };
                let is_set_config = f
                    .name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .is_some_and(|i| i.value.eq_ignore_ascii_case("set_config"));
                if !is_set_config {
                    return ControlFlow::Continue(());
                }
                let texts: Vec<Option<String>> = match &f.args {
                    FunctionArguments::List(list) => list
                        .args
                        .iter()
                        .map(|a| match a {
                            FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Value(v))) => {
                                match &v.value {
                                    Value::SingleQuotedString(s) => Some(s.clone()),
                                    Value::Boolean(b) => Some(b.to_string()),
                                    _ => None,
                                }
                            }
                            _ => None,
                        })
                        .collect(),
                    _ => vec![],
                };
                let (Some(Some(name)), Some(Some(value)), 3) =
                    (texts.first(), texts.get(1), texts.len())
                else {
                    self.error = Some(UserqlError::unsupported(
                        "set_config(name, value, is_local) needs three constant arguments",
                    ));
                    return ControlFlow::Break(());
                };
                if let Err(e) = self.session.set(name, Some(value)) {
                    self.error = Some(e);
                    return ControlFlow::Break(());
                }
                *expr = SqlExpr::value(Value::SingleQuotedString(value.clone()));
                ControlFlow::Continue(())
            }
        }
        let mut calls = Calls {
            session: self,
            error: None,
        };
        let _ = statement.visit(&mut calls);
        match calls.error {
            Some(e) => Err(e),
            None => Ok(statement),
        }
    }

    /// Whether the session is inside `BEGIN ... COMMIT`.
    pub fn in_transaction_block(&self) -> bool {
        self.in_block
    }

    /// Run a planned statement with bound parameters.
    pub async fn execute(
        &mut self,
        planned: &Planned,
        params: Option<ParamValues>,
    ) -> Result<Outcome, UserqlError> {
        self.check_privileges(planned)?;
        // Whatever may change what a name means, or the settings, makes statements kept
        // planned stale once it is done (or failed part way).
        let changes_catalog = match planned {
            // BEGIN/COMMIT around every statement (SQLAlchemy's default) must not
            // unsettle every session's kept plans; SHOW and no-ops change nothing.
            Planned::Utility(u) => matches!(
                u,
                Utility::Set { .. } | Utility::SetIdentity { .. } | Utility::Reset(_)
            ),
            Planned::Rename { .. } => true,
            Planned::Copy(_) => false,
            Planned::Query { plan, .. } => {
                matches!(plan, LogicalPlan::Ddl(_) | LogicalPlan::Statement(_))
            }
        };
        let outcome = self.execute_unchecked(planned, params).await;
        if changes_catalog {
            super::snapshot::catalog_changed();
        }
        outcome
    }

    async fn execute_unchecked(
        &mut self,
        planned: &Planned,
        params: Option<ParamValues>,
    ) -> Result<Outcome, UserqlError> {
        match planned {
            Planned::Utility(u) => self.execute_utility(u),
            Planned::Rename {
                from,
                to,
                if_exists,
            } => {
                self.hold_catalog_in_block().await;
                let outcome = Box::pin(self.rename(from, to, *if_exists)).await?;
                self.note_write();
                Ok(outcome)
            }
            Planned::Copy(copy) => Box::pin(self.execute_copy(copy)).await,
            Planned::Query { statement, plan } => {
                let plan = match params {
                    Some(p) => plan.clone().replace_params_with_values(&p)?,
                    None => plan.clone(),
                };
                self.execute_plan(statement, plan).await
            }
        }
    }

    /// Parse, plan and run SQL text that holds exactly one statement.
    pub async fn run(&mut self, sql: &str) -> Result<Outcome, UserqlError> {
        let mut statements = self.parse(sql)?;
        if statements.len() != 1 {
            return Err(UserqlError::new(
                sqlstate::SYNTAX_ERROR,
                format!("expected one statement, found {}", statements.len()),
            ));
        }
        let planned = self.plan(statements.remove(0)).await?;
        self.execute(&planned, None).await
    }

    /// Run a planned statement. A query only becomes [`Rows`] (it runs when they are
    /// read); writes, DDL and DataFusion's own statements run here, each in a boxed future
    /// of its own: their state is kilobytes, and inline it would make every statement's
    /// future that large — copied whole each time a layer above moves it.
    async fn execute_plan(
        &mut self,
        statement: &Statement,
        plan: LogicalPlan,
    ) -> Result<Outcome, UserqlError> {
        match plan {
            LogicalPlan::Dml(dml) => Box::pin(self.execute_dml(dml)).await,
            LogicalPlan::Ddl(ddl) => Box::pin(self.execute_ddl(statement, ddl)).await,
            // DataFusion's context runs its own statements (PREPARE, EXECUTE, ...).
            plan @ LogicalPlan::Statement(_) => Ok(Outcome::Rows(
                Box::pin(self.ctx.execute_logical_plan(plan)).await?.into(),
            )),
            plan => Ok(Outcome::Rows(Rows::planned(plan, self.snapshot()))),
        }
    }

    /// `INSERT`, `UPDATE`, `DELETE`, `CREATE TABLE AS`, `TRUNCATE`.
    async fn execute_dml(&mut self, dml: DmlStatement) -> Result<Outcome, UserqlError> {
        self.check_writable(&dml.table_name)?;
        self.check_not_view(&dml.table_name).await?;
        if matches!(dml.op, WriteOp::Delete | WriteOp::Update) {
            let rel = self.rel_name(&dml.table_name)?;
            if let Some(table) = self.engine.store().table(&rel).await {
                let rows =
                    super::dml::run(&table, &rel.to_string(), &dml, &self.ctx.state()).await?;
                self.note_write();
                return Ok(Outcome::Command(CommandTag {
                    command: if dml.op == WriteOp::Delete {
                        "DELETE"
                    } else {
                        "UPDATE"
                    }
                    .to_string(),
                    rows: Some(rows as usize),
                }));
            }
        }
        let verb = match dml.op {
            WriteOp::Insert(_) => "INSERT",
            WriteOp::Delete => "DELETE",
            WriteOp::Update => "UPDATE",
            WriteOp::Ctas => "SELECT",
            WriteOp::Truncate => "TRUNCATE TABLE",
            _ => "UPDATE",
        };
        let df = self.ctx.execute_logical_plan(LogicalPlan::Dml(dml)).await?;
        let batches = df.collect().await?;
        let rows = affected_rows(&batches);
        self.note_write();
        Ok(Outcome::Command(CommandTag {
            command: verb.to_string(),
            rows: Some(rows),
        }))
    }

    /// `CREATE`/`DROP` of tables, views, schemas and the rest of DDL.
    async fn execute_ddl(
        &mut self,
        statement: &Statement,
        ddl: DdlStatement,
    ) -> Result<Outcome, UserqlError> {
        if let Some(outcome) = self.execute_store_ddl(&ddl, statement).await? {
            self.note_write();
            return Ok(outcome);
        }
        let tag = ddl_tag(&ddl, statement);
        self.ctx
            .execute_logical_plan(LogicalPlan::Ddl(ddl))
            .await?
            .collect()
            .await?;
        self.note_write();
        Ok(Outcome::Command(CommandTag::new(&tag)))
    }

    /// Inside a transaction block, close the catalog gate until the block ends (a no-op
    /// outside a block or when already held).
    pub(super) async fn hold_catalog_in_block(&mut self) {
        if self.in_block && self.catalog_hold.is_none() {
            self.catalog_hold = Some(self.engine.catalog_gate().clone().write_owned().await);
        }
    }

    /// Something was written (inside a block, `ROLLBACK` then warns it undoes nothing);
    /// the server calls it when a streamed `COPY FROM STDIN` finished.
    pub fn note_write(&mut self) {
        if self.in_block {
            self.block_wrote = true;
        }
    }

    fn execute_utility(&mut self, utility: &Utility) -> Result<Outcome, UserqlError> {
        match utility {
            Utility::Set { name, value } => {
                self.set(name, value.as_deref())?;
                Ok(Outcome::Command(CommandTag::new("SET")))
            }
            Utility::Reset(None) => {
                let defaults = self.engine.template.config().options().as_ref().clone();
                let state_ref = self.ctx.state_ref();
                *state_ref.write().config_mut().options_mut() = defaults;
                Ok(Outcome::Command(CommandTag::new("RESET")))
            }
            Utility::Reset(Some(name)) => {
                self.set(name, None)?;
                Ok(Outcome::Command(CommandTag::new("RESET")))
            }
            Utility::Show(name) => self.show(name),
            Utility::Begin => {
                self.in_block = true;
                self.block_wrote = false;
                Ok(Outcome::TransactionStart)
            }
            Utility::Commit => {
                self.in_block = false;
                self.catalog_hold = None;
                Ok(Outcome::TransactionEnd("COMMIT"))
            }
            Utility::Rollback => {
                self.in_block = false;
                self.catalog_hold = None;
                Ok(Outcome::TransactionEnd("ROLLBACK"))
            }
            Utility::SetIdentity { name, value } => {
                self.check_identity_setting(name, value.as_deref())?;
                Ok(Outcome::Command(CommandTag::new("SET")))
            }
            Utility::Noop(tag) => Ok(Outcome::Command(CommandTag::new(tag))),
        }
    }

    /// Whether the transaction block being rolled back had written anything (the server
    /// warns: autocommit already made those writes durable).
    pub fn take_block_wrote(&mut self) -> bool {
        std::mem::take(&mut self.block_wrote)
    }

    /// Set (or, with `None`, reset to default) one setting.
    pub fn set(&self, name: &str, value: Option<&str>) -> Result<(), UserqlError> {
        let lower = name.to_ascii_lowercase();
        let state_ref = self.ctx.state_ref();
        let mut state = state_ref.write();
        let options = state.config_mut().options_mut();
        if let Some(key) = lower.strip_prefix("userql.") {
            let spec = settings::spec(key).ok_or_else(|| {
                UserqlError::new(
                    sqlstate::UNDEFINED_OBJECT,
                    format!("unrecognized configuration parameter \"{name}\""),
                )
                .with_hint(format!(
                    "userql settings: {}",
                    settings::SETTINGS
                        .iter()
                        .map(|s| s.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            let default = self
                .engine
                .template_setting(&format!("userql.{}", spec.name))
                .unwrap_or_else(|| spec.default.to_string());
            let value = value.map(str::to_string).unwrap_or(default);
            let mut ext = options
                .extensions
                .get::<UserqlSettings>()
                .cloned()
                .unwrap_or_default();
            ext.set_value(key, &value).map_err(invalid_value)?;
            options.extensions.insert(ext);
            return Ok(());
        }
        if lower.starts_with("datafusion.") {
            let value = match value {
                Some(v) => v.to_string(),
                None => self.engine.template_setting(&lower).ok_or_else(|| {
                    UserqlError::new(
                        sqlstate::UNDEFINED_OBJECT,
                        format!("unrecognized configuration parameter \"{name}\""),
                    )
                })?,
            };
            options.set(&lower, &value).map_err(invalid_value)?;
            return Ok(());
        }
        let canonical = pg_settings::canonical_name(&lower);
        self.check_identity_setting(&canonical, value)?;
        if !pg_settings::is_known(&canonical) {
            return Err(UserqlError::new(
                sqlstate::UNDEFINED_OBJECT,
                format!("unrecognized configuration parameter \"{name}\""),
            ));
        }
        let default = pg_settings::PG_SETTINGS
            .iter()
            .find(|(n, _, _)| *n == canonical)
            .map(|(_, d, _)| d.to_string())
            .unwrap_or_default();
        let value = value.map(str::to_string).unwrap_or(default);
        let mut pg = options
            .extensions
            .get::<PgSettings>()
            .cloned()
            .unwrap_or_default();
        pg.set_value(&canonical, &value).map_err(invalid_value)?;
        match canonical.as_str() {
            "search_path" => {
                options.catalog.default_schema = first_schema(&value);
            }
            "timezone" => {
                let tz = value.trim().to_string();
                if tz.eq_ignore_ascii_case("utc") || tz.eq_ignore_ascii_case("gmt") {
                    options.execution.time_zone = Some("+00:00".into());
                } else {
                    options.execution.time_zone = Some(tz);
                }
            }
            _ => {}
        }
        options.extensions.insert(pg);
        Ok(())
    }

    fn show(&self, name: &str) -> Result<Outcome, UserqlError> {
        let lower = name.to_ascii_lowercase();
        let options = self.options();
        if lower == "all" {
            let mut names = Vec::new();
            let mut values = Vec::new();
            let mut descriptions = Vec::new();
            let pg = self.pg_settings();
            for (n, _, d) in pg_settings::PG_SETTINGS {
                names.push(n.to_string());
                values.push(pg.get(n).unwrap_or("").to_string());
                descriptions.push(d.to_string());
            }
            for e in self.userql_settings().entries_for_show() {
                names.push(e.0);
                values.push(e.1);
                descriptions.push(e.2);
            }
            let schema = show_schema("all");
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(names)) as ArrayRef,
                    Arc::new(StringArray::from(values)),
                    Arc::new(StringArray::from(descriptions)),
                ],
            )?;
            return Ok(Outcome::Batches(schema, vec![batch]));
        }
        let value = if let Some(key) = lower.strip_prefix("userql.") {
            self.userql_settings()
                .get(key)
                .map(str::to_string)
                .ok_or_else(|| unrecognized(name))?
        } else if lower.starts_with("datafusion.") {
            options
                .entries()
                .into_iter()
                .find(|e| e.key == lower)
                .map(|e| e.value.unwrap_or_default())
                .ok_or_else(|| unrecognized(name))?
        } else {
            let canonical = pg_settings::canonical_name(&lower);
            match canonical.as_str() {
                "session_authorization" | "session_user" => self.user.clone(),
                _ => self
                    .pg_settings()
                    .get(&canonical)
                    .map(str::to_string)
                    .ok_or_else(|| unrecognized(name))?,
            }
        };
        let schema = show_schema(&lower);
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![value])) as ArrayRef],
        )?;
        Ok(Outcome::Batches(schema, vec![batch]))
    }
}

impl UserqlSettings {
    /// `(userql.name, value, description)` rows for `SHOW ALL`.
    pub fn entries_for_show(&self) -> Vec<(String, String, String)> {
        use datafusion::common::config::ExtensionOptions;
        self.entries()
            .into_iter()
            .map(|e| {
                (
                    e.key,
                    e.value.unwrap_or_default(),
                    e.description.to_string(),
                )
            })
            .collect()
    }
}

impl Engine {
    /// A setting's value in the template every session starts from (the server default).
    pub(crate) fn template_setting(&self, key: &str) -> Option<String> {
        let options = self.template.config().options();
        if let Some(name) = key.strip_prefix("userql.") {
            return options
                .extensions
                .get::<UserqlSettings>()
                .and_then(|u| u.get(name).map(str::to_string));
        }
        options
            .entries()
            .into_iter()
            .find(|e| e.key == key)
            .and_then(|e| e.value)
    }
}

/// The columns a planned statement returns, or `None` for a command.
pub fn result_schema_of(planned: &Planned) -> Option<SchemaRef> {
    match planned {
        Planned::Query { plan, .. } => {
            if matches!(plan, LogicalPlan::Ddl(_) | LogicalPlan::Dml(_)) {
                None
            } else {
                Some(pg_output_schema(plan))
            }
        }
        Planned::Utility(Utility::Show(name)) => Some(show_schema(&name.to_ascii_lowercase())),
        Planned::Utility(_) | Planned::Rename { .. } | Planned::Copy(_) => None,
    }
}

/// The output schema with columns labelled as PostgreSQL labels them: an unaliased
/// function call is named after the function (`count`), any other unaliased expression
/// `?column?`; column references and aliases keep their names.
pub fn pg_output_schema(plan: &LogicalPlan) -> SchemaRef {
    let schema = super::oid_types::describe_oid_arrays(plan, plan.schema().as_arrow().clone());
    let Some((exprs, input)) = top_projection(plan) else {
        return Arc::new(schema);
    };
    if exprs.len() != schema.fields().len() {
        return Arc::new(schema);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(exprs)
        .map(|(f, e)| match pg_label(e, input) {
            Some(name) => f.as_ref().clone().with_name(name),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Prefix of the names given to unnamed output columns when two would share a name.
const OUTPUT_ALIAS: &str = "__userql_output_";

/// `statement` with every unnamed output column of its top SELECT given a unique alias,
/// or `None` when it is not a plain SELECT.
fn alias_unnamed_outputs(statement: &Statement) -> Option<Statement> {
    use datafusion::sql::sqlparser::ast::{Ident, SelectItem, SetExpr};
    let Statement::Query(query) = statement else {
        return None;
    };
    let mut query = query.clone();
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    for (i, item) in select.projection.iter_mut().enumerate() {
        if let SelectItem::UnnamedExpr(expr) = item {
            *item = SelectItem::ExprWithAlias {
                expr: expr.clone(),
                alias: Ident::new(format!("{OUTPUT_ALIAS}{i}")),
            };
        }
    }
    Some(Statement::Query(query))
}

/// The projection that produces a query's columns, and its input.
fn top_projection(plan: &LogicalPlan) -> Option<(&[Expr], &LogicalPlan)> {
    match plan {
        LogicalPlan::Projection(p) => Some((&p.expr, &p.input)),
        LogicalPlan::Sort(s) => top_projection(&s.input),
        LogicalPlan::Limit(l) => top_projection(&l.input),
        _ => None,
    }
}

fn pg_label(expr: &Expr, input: &LogicalPlan) -> Option<String> {
    match expr {
        // DataFusion names some expressions itself with an alias such as `count(*)`;
        // a user's alias has no parentheses unless quoted that way on purpose.
        Expr::Alias(alias) if alias.name.starts_with(OUTPUT_ALIAS) => {
            Some(match alias.expr.as_ref() {
                Expr::Column(c) => pg_label(&alias.expr, input).unwrap_or_else(|| c.name.clone()),
                inner => pg_label(inner, input).unwrap_or_else(|| "?column?".into()),
            })
        }
        Expr::Alias(alias) if alias.name.contains('(') => {
            Some(pg_label(&alias.expr, input).unwrap_or_else(|| "?column?".into()))
        }
        Expr::Alias(_) => None,
        // A column of an aggregate below is the aggregate's own expression.
        Expr::Column(c) => match input {
            LogicalPlan::Aggregate(agg) => agg
                .aggr_expr
                .iter()
                .find_map(|a| match a {
                    Expr::Alias(alias) if alias.name == c.name => Some(alias.expr.as_ref()),
                    other if other.schema_name().to_string() == c.name => Some(other),
                    _ => None,
                })
                .and_then(|a| pg_label(a, &agg.input)),
            _ => None,
        },
        Expr::ScalarFunction(f) => Some(f.name().to_string()),
        // A scalar subquery is labelled as its own output column (`count`).
        Expr::ScalarSubquery(q) => Some(
            pg_output_schema(&q.subquery)
                .fields()
                .first()
                .map(|f| f.name().clone())
                .unwrap_or_else(|| "?column?".into()),
        ),
        Expr::AggregateFunction(a) => Some(a.func.name().to_string()),
        Expr::Cast(c) => match c.expr.as_ref() {
            Expr::Column(col) => Some(col.name.clone()),
            inner => pg_label(inner, input),
        },
        _ => Some("?column?".to_string()),
    }
}

/// Types of the `$1..$n` parameters, in order (`None`: not inferable).
pub fn parameter_types_of(planned: &Planned) -> Result<Vec<Option<DataType>>, UserqlError> {
    let Planned::Query { plan, .. } = planned else {
        return Ok(vec![]);
    };
    let types = plan.get_parameter_types()?;
    let mut ordered: Vec<(usize, Option<DataType>)> = types
        .into_iter()
        .filter_map(|(k, v)| {
            k.trim_start_matches('$')
                .parse::<usize>()
                .ok()
                .map(|i| (i, v))
        })
        .collect();
    ordered.sort_by_key(|(i, _)| *i);
    let n = ordered.last().map(|(i, _)| *i).unwrap_or(0);
    let mut out = vec![None; n];
    for (i, t) in ordered {
        if i >= 1 {
            out[i - 1] = t;
        }
    }
    Ok(out)
}

/// `$1::BIGINT`: give an untyped placeholder the type it is cast to, as PostgreSQL infers
/// it, so clients that send no parameter types (tokio-postgres, asyncpg) learn it.
fn type_cast_placeholders(plan: LogicalPlan) -> Result<LogicalPlan, UserqlError> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::expr::{Cast, Placeholder};
    let rewritten = plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|e| {
            e.transform_up(|e| match e {
                Expr::Cast(Cast { expr, field }) => match *expr {
                    Expr::Placeholder(Placeholder { id, field: None }) => {
                        let typed = Expr::Placeholder(Placeholder {
                            id,
                            field: Some(field.clone()),
                        });
                        Ok(Transformed::yes(Expr::Cast(Cast {
                            expr: Box::new(typed),
                            field,
                        })))
                    }
                    other => Ok(Transformed::no(Expr::Cast(Cast {
                        expr: Box::new(other),
                        field,
                    }))),
                },
                other => Ok(Transformed::no(other)),
            })
        })
    })?;
    Ok(rewritten.data)
}

/// An integer literal the query returns as is (`SELECT 2`) is an `integer` when it fits
/// one, as in PostgreSQL (DataFusion makes every integer literal a `bigint`; drivers then
/// hand out strings or big integers).
fn integer_literals_as_int4(plan: LogicalPlan) -> Result<LogicalPlan, UserqlError> {
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::Projection;
    let LogicalPlan::Projection(projection) = &plan else {
        return Ok(plan);
    };
    let narrowed = |e: &Expr| match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), meta) if i32::try_from(*v).is_ok() => Some(
            Expr::Literal(ScalarValue::Int32(Some(*v as i32)), meta.clone()),
        ),
        _ => None,
    };
    let mut changed = false;
    let exprs: Vec<Expr> = projection
        .expr
        .iter()
        .map(|e| match e {
            Expr::Alias(a) => match narrowed(&a.expr) {
                Some(n) => {
                    changed = true;
                    n.alias_qualified(a.relation.clone(), a.name.clone())
                }
                None => e.clone(),
            },
            other => match narrowed(other) {
                // Keep the column's name (`Int64(2)`) so nothing above it changes.
                Some(n) => {
                    changed = true;
                    n.alias(other.schema_name().to_string())
                }
                None => e.clone(),
            },
        })
        .collect();
    if !changed {
        return Ok(plan);
    }
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        projection.input.clone(),
    )?))
}

/// `x = ANY($1)` (planned as `array_has($1, x)`): `$1` is an array of `x`'s type, as
/// PostgreSQL infers it, so a driver that sends an untyped array parameter (node-postgres)
/// has it read as one.
fn type_array_placeholders(plan: LogicalPlan) -> Result<LogicalPlan, UserqlError> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::ExprSchemable;
    use datafusion::logical_expr::expr::{Placeholder, ScalarFunction};
    let rewritten = plan.transform_up_with_subqueries(|node| {
        let schema = super::text_input::input_schema(&node);
        node.map_expressions(|e| {
            e.transform_up(|e| match e {
                Expr::ScalarFunction(ScalarFunction { func, mut args })
                    if matches!(func.name(), "array_has" | "array_contains")
                        && args.len() == 2
                        && matches!(
                            &args[0],
                            Expr::Placeholder(Placeholder { field: None, .. })
                        ) =>
                {
                    let element = args[1].get_type(&schema).ok();
                    if let (Some(element), Expr::Placeholder(p)) = (element, &mut args[0]) {
                        let list = DataType::List(Arc::new(Field::new("item", element, true)));
                        p.field = Some(Arc::new(Field::new("", list, true)));
                    }
                    Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction {
                        func,
                        args,
                    })))
                }
                other => Ok(Transformed::no(other)),
            })
        })
    })?;
    Ok(rewritten.data)
}

/// Read the PostgreSQL settings held in `options` in place.
fn pg_settings_in<R>(
    options: &datafusion::config::ConfigOptions,
    read: impl FnOnce(&PgSettings) -> R,
) -> R {
    match options.extensions.get::<PgSettings>() {
        Some(pg) => read(pg),
        None => read(&PgSettings::default()),
    }
}

fn shared_parser() -> Arc<PostgresCompatibilityParser> {
    static PARSER: std::sync::OnceLock<Arc<PostgresCompatibilityParser>> =
        std::sync::OnceLock::new();
    PARSER
        .get_or_init(|| Arc::new(PostgresCompatibilityParser::new()))
        .clone()
}

fn invalid_value(e: datafusion::error::DataFusionError) -> UserqlError {
    UserqlError::from(e)
}

fn unrecognized(name: &str) -> UserqlError {
    UserqlError::new(
        sqlstate::UNDEFINED_OBJECT,
        format!("unrecognized configuration parameter \"{name}\""),
    )
}

/// The schema of a SHOW result: one text column named after the setting, or
/// `name, setting, description` for `SHOW ALL`.
fn show_schema(name: &str) -> SchemaRef {
    if name == "all" {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("setting", DataType::Utf8, false),
            Field::new("description", DataType::Utf8, false),
        ]))
    } else {
        let col = name.rsplit('.').next().unwrap_or(name).replace(' ', "_");
        Arc::new(Schema::new(vec![Field::new(col, DataType::Utf8, false)]))
    }
}

/// The first real schema of a search path (`"$user", public` → `public`).
fn first_schema(path: &str) -> String {
    path.split(',')
        .map(|s| s.trim().trim_matches('"').trim_matches('\'').to_string())
        .find(|s| !s.is_empty() && s != "$user" && s != "pg_catalog" && s != "pg_temp")
        .unwrap_or_else(|| "public".into())
}

pub(crate) fn affected_rows(batches: &[RecordBatch]) -> usize {
    batches
        .first()
        .and_then(|b| b.column_by_name("count"))
        .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
        .map(|a| a.iter().flatten().sum::<u64>() as usize)
        .unwrap_or(0)
}

pub(super) fn ddl_tag(ddl: &DdlStatement, statement: &Statement) -> String {
    match ddl {
        DdlStatement::CreateExternalTable(_) | DdlStatement::CreateMemoryTable(_) => {
            if matches!(statement, Statement::CreateTable(ct) if ct.query.is_some()) {
                "SELECT".into()
            } else {
                "CREATE TABLE".into()
            }
        }
        DdlStatement::CreateView(_) => "CREATE VIEW".into(),
        DdlStatement::CreateCatalogSchema(_) => "CREATE SCHEMA".into(),
        DdlStatement::CreateCatalog(_) => "CREATE DATABASE".into(),
        DdlStatement::CreateIndex(_) => "CREATE INDEX".into(),
        DdlStatement::DropTable(_) => "DROP TABLE".into(),
        DdlStatement::DropView(_) => "DROP VIEW".into(),
        DdlStatement::DropCatalogSchema(_) => "DROP SCHEMA".into(),
        DdlStatement::CreateFunction(_) => "CREATE FUNCTION".into(),
        DdlStatement::DropFunction(_) => "DROP FUNCTION".into(),
    }
}

fn value_text(expr: &SqlExpr) -> String {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s)
            | Value::DoubleQuotedString(s)
            | Value::EscapedStringLiteral(s) => s.clone(),
            Value::Number(n, _) => n.to_string(),
            Value::Boolean(b) => if *b { "on" } else { "off" }.to_string(),
            other => other.to_string(),
        },
        SqlExpr::Identifier(id) => id.value.clone(),
        SqlExpr::UnaryOp { op, expr } => format!("{op}{}", value_text(expr)),
        other => other.to_string(),
    }
}

fn object_name_text(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|p| match p.as_ident() {
            Some(id) => id.value.clone(),
            None => p.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A `CREATE TEMPORARY TABLE` without its `TEMPORARY`, or `None`.
fn temporary_as_plain(statement: &Statement) -> Option<Statement> {
    match statement {
        Statement::CreateTable(create) if create.temporary => {
            let mut plain = create.clone();
            plain.temporary = false;
            Some(Statement::CreateTable(plain))
        }
        _ => None,
    }
}

/// `ALTER VIEW x RENAME TO y` spelled as `ALTER TABLE x RENAME TO y`, or `None`.
fn alter_view_rename_as_table(sql: &str) -> Option<String> {
    let trimmed = sql.trim_start();
    let words: Vec<&str> = trimmed.split_whitespace().collect();
    let is_rename = words.len() >= 6
        && words[0].eq_ignore_ascii_case("alter")
        && words[1].eq_ignore_ascii_case("view")
        && words
            .windows(2)
            .any(|w| w[0].eq_ignore_ascii_case("rename") && w[1].eq_ignore_ascii_case("to"));
    if !is_rename {
        return None;
    }
    let after_alter = trimmed[5..].trim_start();
    Some(format!("ALTER TABLE {}", &after_alter[4..]))
}

/// Recognise the statements the session answers itself.
fn utility_of(statement: &Statement) -> Result<Option<Utility>, UserqlError> {
    Ok(Some(match statement {
        Statement::Set(set) => match set {
            Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = object_name_text(variable);
                let value = if values.len() == 1
                    && matches!(&values[0], SqlExpr::Identifier(id) if id.value.eq_ignore_ascii_case("default") && id.quote_style.is_none())
                {
                    None
                } else {
                    Some(values.iter().map(value_text).collect::<Vec<_>>().join(", "))
                };
                Utility::Set { name, value }
            }
            Set::SetTimeZone { value, .. } => Utility::Set {
                name: "timezone".into(),
                value: Some(value_text(value)),
            },
            Set::SetNames { charset_name, .. } => Utility::Set {
                name: "client_encoding".into(),
                value: Some(charset_name.value.clone()),
            },
            Set::SetNamesDefault {} => Utility::Set {
                name: "client_encoding".into(),
                value: None,
            },
            Set::SetTransaction { .. } => Utility::Noop("SET"),
            // Who is connected does not change: accepted for the session's own name (or
            // DEFAULT / NONE), refused for another when users are configured.
            Set::SetSessionAuthorization(param) => Utility::SetIdentity {
                name: "session_authorization",
                value: match &param.kind {
                    datafusion::sql::sqlparser::ast::SetSessionAuthorizationParamKind::User(u) => {
                        Some(u.value.clone())
                    }
                    _ => None,
                },
            },
            Set::SetRole { role_name, .. } => Utility::SetIdentity {
                name: "role",
                value: role_name.as_ref().map(|r| r.value.clone()),
            },
            other => {
                return Err(UserqlError::unsupported(format!(
                    "unsupported SET form: {other}"
                )));
            }
        },
        Statement::ShowVariable { variable } => {
            let parts: Vec<&str> = variable.iter().map(|i| i.value.as_str()).collect();
            // `SHOW userql.x` arrives as two identifiers; `SHOW TRANSACTION ISOLATION
            // LEVEL` as several words.
            let namespaced = parts.first().is_some_and(|p| {
                p.eq_ignore_ascii_case("userql") || p.eq_ignore_ascii_case("datafusion")
            });
            Utility::Show(parts.join(if namespaced { "." } else { " " }))
        }
        Statement::Reset(r) => match &r.reset {
            Reset::ALL => Utility::Reset(None),
            Reset::ConfigurationParameter(name) => Utility::Reset(Some(object_name_text(name))),
        },
        Statement::StartTransaction { .. } => Utility::Begin,
        Statement::Commit { .. } => Utility::Commit,
        Statement::Rollback {
            savepoint: None, ..
        } => Utility::Rollback,
        Statement::Rollback {
            savepoint: Some(_), ..
        } => Utility::Noop("ROLLBACK"),
        Statement::Savepoint { .. } => Utility::Noop("SAVEPOINT"),
        Statement::ReleaseSavepoint { .. } => Utility::Noop("RELEASE"),
        Statement::Discard { .. } => Utility::Noop("DISCARD ALL"),
        Statement::Deallocate { .. } => Utility::Noop("DEALLOCATE"),
        Statement::Comment { object_type, .. }
            if !matches!(
                object_type,
                datafusion::sql::sqlparser::ast::CommentObject::Column
            ) =>
        {
            Utility::Noop("COMMENT")
        }
        Statement::Drop {
            object_type: ObjectType::Index,
            ..
        } => Utility::Noop("DROP INDEX"),
        // Indexes are accepted and not kept: DataFusion scans, it does not look up.
        Statement::CreateIndex(_) => Utility::Noop("CREATE INDEX"),
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn columns_are_labelled_like_postgresql() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t (a INT, b VARCHAR)").await.unwrap();
        let names = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let plan = ctx.state().create_logical_plan(sql).await.unwrap();
                pg_output_schema(&plan)
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(names("SELECT 1").await, vec!["?column?"]);
        assert_eq!(
            names("SELECT count(*), max(a) AS m FROM t").await,
            vec!["count", "m"]
        );
        assert_eq!(
            names("SELECT a, upper(b), a + 1 FROM t ORDER BY a").await,
            vec!["a", "upper", "?column?"]
        );
        assert_eq!(
            names("SELECT b, count(*) FROM t GROUP BY b").await,
            vec!["b", "count"]
        );
    }

    #[test]
    fn search_path_first_schema() {
        assert_eq!(first_schema("\"$user\", public"), "public");
        assert_eq!(first_schema("marts, public"), "marts");
        assert_eq!(first_schema(""), "public");
    }

    fn utility(sql: &str) -> Option<Utility> {
        let stmts = shared_parser().parse(sql).unwrap();
        utility_of(&stmts[0]).unwrap()
    }

    #[test]
    fn recognises_utilities() {
        assert_eq!(
            utility("SET search_path TO marts, public"),
            Some(Utility::Set {
                name: "search_path".into(),
                value: Some("marts, public".into())
            })
        );
        assert_eq!(
            utility("SET userql.rfm_bins = 4"),
            Some(Utility::Set {
                name: "userql.rfm_bins".into(),
                value: Some("4".into())
            })
        );
        assert_eq!(
            utility("SET extra_float_digits = 3"),
            Some(Utility::Set {
                name: "extra_float_digits".into(),
                value: Some("3".into())
            })
        );
        assert_eq!(
            utility("SET statement_timeout = DEFAULT"),
            Some(Utility::Set {
                name: "statement_timeout".into(),
                value: None
            })
        );
        assert_eq!(
            utility("SHOW DateStyle"),
            Some(Utility::Show("DateStyle".into()))
        );
        assert_eq!(utility("BEGIN"), Some(Utility::Begin));
        assert_eq!(utility("COMMIT"), Some(Utility::Commit));
        assert_eq!(utility("ROLLBACK"), Some(Utility::Rollback));
        assert_eq!(utility("SELECT 1"), None);
    }
}
