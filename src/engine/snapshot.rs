//! The DataFusion state a session's statements run with, built once per change of the
//! session's settings rather than once per statement.
//!
//! `SessionContext::state()` copies the whole `SessionState` — every function registry
//! map, hundreds of entries — and building a `TaskContext` from it copies them again.
//! Measured on `SELECT 1`, those copies (and freeing them) cost more CPU than planning
//! and running the statement. A [`Snapshot`] is one such copy with its task context,
//! shared by every statement until a `SET` changes the session's options; what varies per
//! statement (the time `now()` answers, the alias generator) is supplied per statement by
//! [`StatementConfig`] instead of by a fresh copy.
//!
//! Statements that read no table and call only pure built-in functions (`SELECT 1`, the
//! keep-alive probe of every connection pool) are kept in the snapshot by their text,
//! planned, with their physical plan: the same text again skips parsing, planning, the
//! optimiser and the physical planner.
//!
//! Queries that also read tables whose scans look at the data when they run — stored
//! tables, channels, and views over them (a dashboard sends the same text again at every
//! refresh) — are kept by their text too, with their optimised plan, as long as the
//! catalog has not changed since they were planned ([`catalog_changed`]: every statement
//! that may change what a name means — DDL, `ALTER ... RENAME`, `SET` — counts as a
//! change). Their physical plan is kept as well, and run again only while every table
//! it reads would be scanned as it was when planned — a stored table still at the same
//! Delta version, a channel kept in memory with its files unchanged (the same checks a
//! scan makes); otherwise it is planned physically again, so every scan reads the data
//! as it is then. Anything that calls a function whose answer can change (`now()`,
//! `current_user`, the catalog functions), reads the catalog's own tables, or calls a
//! table function is planned afresh every time.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::alias::AliasGenerator;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchemaRef, Result};
use datafusion::config::ConfigOptions;
use datafusion::execution::context::SessionState;
use datafusion::execution::{FunctionRegistry, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan, ScalarUDF, Volatility};
use datafusion::optimizer::OptimizerConfig;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::DataFrame;
use futures::TryStreamExt;

use super::channel_cache::{CachedChannel, ChannelStamp};
use super::session::Planned;
use super::store::table::StoredTable;
use datafusion::catalog::TableProvider;

/// How many statements a session keeps planned in each of its maps (texts, table-free
/// physical plans, plans over tables); beyond it a map starts over.
const KEPT_PLANS: usize = 64;

/// A kept physical plan holds the rows of the channels it reads, decoded, and keeps them
/// after the files change until the statement runs again: only plans over channels of
/// files up to this size are kept (planning is a small part of reading larger ones), so
/// idle sessions hold little.
const KEPT_CHANNEL_BYTES: u64 = 1 << 20;

/// Counts changes of the catalog (in any session of any engine in this process; a
/// change elsewhere only costs a kept plan).
static CATALOG_GENERATION: AtomicU64 = AtomicU64::new(0);

/// The catalog's generation now: read it before planning a statement to keep.
pub fn catalog_generation() -> u64 {
    CATALOG_GENERATION.load(Ordering::Acquire)
}

/// Say that a statement that may have changed the catalog (what names mean, views,
/// settings) has finished: statements planned before are planned again.
pub fn catalog_changed() {
    CATALOG_GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// A statement planned from a text, kept to run again without parsing and planning.
#[derive(Debug)]
pub struct PlannedText {
    pub planned: Arc<Planned>,
    /// [`catalog_generation`] before it was planned; it is stale once that moved on.
    generation: u64,
    /// The text as logs show it (literals redacted), filled by the first to log it.
    pub log_text: OnceLock<Arc<str>>,
    /// The result's columns as PostgreSQL labels them, worked out once.
    result_schema: OnceLock<Option<SchemaRef>>,
}

impl PlannedText {
    /// The result's columns as a Describe reports them.
    pub fn result_schema(&self) -> Option<SchemaRef> {
        self.result_schema
            .get_or_init(|| super::session::result_schema_of(&self.planned))
            .clone()
    }

    /// The statement as parsed, in SQL (only queries are kept).
    pub fn statement_text(&self) -> String {
        match self.planned.as_ref() {
            Planned::Query { statement, .. } => statement.to_string(),
            _ => String::new(),
        }
    }
}

/// A query that reads tables, planned: valid for a plan that reads the very same
/// `sources` while the catalog generation stays `generation`; its physical plan also
/// while every table it reads would be scanned as it was (`stamps`).
struct TablePlan {
    generation: u64,
    /// The tables (and views) the plan it was made from reads. Plans compare equal when
    /// they read tables of the same names, so a plan made before a table was dropped and
    /// made again could otherwise stand for one made after; held, so no other table can
    /// take an address compared here.
    sources: Vec<Arc<dyn TableProvider>>,
    optimized: LogicalPlan,
    physical: Option<(DataStamps, Arc<dyn ExecutionPlan>)>,
}

/// Each table a plan reads, with what a scan of it planned then read.
type DataStamps = Vec<(Arc<dyn TableProvider>, DataStamp)>;

/// What a scan of a table reads: a stored table's version, a kept channel's files.
#[derive(Debug, Clone, PartialEq)]
enum DataStamp {
    Stored(Option<u64>),
    Channel(ChannelStamp),
}

/// What a scan of `provider` planned now would read; `None` when that cannot be told
/// (a scan that lists files when planned, a table of another kind).
fn data_stamp(provider: &dyn TableProvider) -> Option<DataStamp> {
    let any: &dyn std::any::Any = provider;
    if let Some(table) = any.downcast_ref::<StoredTable>() {
        return Some(DataStamp::Stored(table.data_version()));
    }
    if let Some(channel) = any.downcast_ref::<CachedChannel>() {
        return channel
            .data_stamp()
            .filter(|s| s.bytes() <= KEPT_CHANNEL_BYTES)
            .map(DataStamp::Channel);
    }
    if let Some(masked) = any.downcast_ref::<super::masked_table::MaskedTable>() {
        return data_stamp(masked.inner().as_ref());
    }
    None
}

/// The tables an optimised plan reads with their [`data_stamp`]s; `None` when some table
/// has none.
fn data_stamps(plan: &LogicalPlan) -> Option<DataStamps> {
    let mut stamps = Some(Vec::new());
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let stamped = datafusion::datasource::source_as_provider(&scan.source)
                .ok()
                .and_then(|p| data_stamp(p.as_ref()).map(|s| (p, s)));
            match (stamped, stamps.as_mut()) {
                (Some(stamped), Some(all)) => all.push(stamped),
                _ => {
                    stamps = None;
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    stamps
}

/// Whether a physical plan gives the same rows when run again after
/// `reset_plan_states`. A dynamic filter (a TopK's bound, a hash join's build-side keys,
/// pushed into the scan below) is shared by the node that sets it and the scan that
/// applies it; resetting the plan gives the node a new one while the scan keeps the old,
/// already narrowed — `ORDER BY id LIMIT 4` run again lost its fourth row. Such plans are
/// planned physically at every run.
fn can_run_again(plan: &Arc<dyn ExecutionPlan>) -> bool {
    !datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string()
        .contains("DynamicFilter")
}

/// The tables (and views) `plan` scans, in plan order.
fn sources_of(plan: &LogicalPlan) -> Vec<Arc<dyn TableProvider>> {
    let mut sources = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = datafusion::datasource::source_as_provider(&scan.source)
        {
            sources.push(provider);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    sources
}

fn same_sources(a: &[Arc<dyn TableProvider>], b: &[Arc<dyn TableProvider>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| Arc::ptr_eq(a, b))
}

/// Whether every table in `stamps` would still be scanned as it was.
fn still_current(stamps: &DataStamps) -> bool {
    stamps
        .iter()
        .all(|(provider, stamp)| data_stamp(provider.as_ref()).as_ref() == Some(stamp))
}

/// A session's state at one setting of its options, shared by its statements.
pub struct Snapshot {
    state: SessionState,
    task: Arc<TaskContext>,
    /// Physical plans of statements that read no table and call only pure functions.
    pure_plans: Mutex<HashMap<LogicalPlan, Arc<dyn ExecutionPlan>>>,
    /// Queries that read tables (see the module docs), by their plan.
    table_plans: Mutex<HashMap<LogicalPlan, TablePlan>>,
    /// Such statements by their text.
    pure_texts: Mutex<HashMap<Box<str>, Arc<PlannedText>>>,
}

impl Snapshot {
    /// A snapshot of `state` (already a copy, taken by `SessionContext::state()`).
    pub fn new(state: SessionState) -> Self {
        let task = Arc::new(TaskContext::from(&state));
        Self {
            state,
            task,
            pure_plans: Mutex::new(HashMap::new()),
            table_plans: Mutex::new(HashMap::new()),
            pure_texts: Mutex::new(HashMap::new()),
        }
    }

    /// The statement planned before from exactly `sql` (see the module docs), unless the
    /// catalog changed since.
    pub fn planned_text(&self, sql: &str) -> Option<Arc<PlannedText>> {
        let known = self.pure_texts.lock().ok()?.get(sql).cloned()?;
        (known.generation == catalog_generation()).then_some(known)
    }

    /// Keep `planned`, planned from `sql` after reading [`catalog_generation`]
    /// (`generation`), when it can run again as it is planned: one query that calls only
    /// pure built-in functions and reads no table or only tables that read their data
    /// when they run (`set_config`, which planning applies and replaces by its value,
    /// must run through planning each time).
    pub fn keep_planned_text(&self, sql: &str, planned: &Arc<Planned>, generation: u64) {
        let Planned::Query { plan, .. } = planned.as_ref() else {
            return;
        };
        if !is_reusable(plan) || sql.to_ascii_lowercase().contains("set_config") {
            return;
        }
        if let Ok(mut texts) = self.pure_texts.lock() {
            if texts.len() >= KEPT_PLANS {
                texts.clear();
            }
            texts.insert(
                sql.into(),
                Arc::new(PlannedText {
                    planned: Arc::clone(planned),
                    generation,
                    log_text: OnceLock::new(),
                    result_schema: OnceLock::new(),
                }),
            );
        }
    }

    /// The state statements are planned with.
    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// Whether this snapshot was taken at the session's current options (`SET` replaces
    /// the options' `Arc`: while a snapshot holds the old one, a change makes a new one).
    pub fn is_current(&self, options: &Arc<ConfigOptions>) -> bool {
        Arc::ptr_eq(self.state.config().options(), options)
    }

    /// The physical plan of `plan`: optimised and planned now, or taken from the cache
    /// when `plan` is pure (see the module docs).
    async fn physical_plan(&self, plan: &LogicalPlan) -> Result<Arc<dyn ExecutionPlan>> {
        let pure = is_pure(plan);
        if pure
            && let Some(cached) = self
                .pure_plans
                .lock()
                .ok()
                .and_then(|c| c.get(plan).cloned())
        {
            // A plan keeps run state (a consumed placeholder row, a sort's buffers):
            // each run gets fresh nodes over the same planning.
            return datafusion::physical_plan::execution_plan::reset_plan_states(cached);
        }
        if !pure && is_reusable(plan) {
            return Box::pin(self.plan_reusable(plan)).await;
        }
        // Boxed: the physical planner's future is kilobytes, and inline it would make
        // every statement's future as large, kept plan or not (copied whole each time a
        // layer above moves it).
        let physical = Box::pin(self.plan_physically(plan)).await?;
        if pure
            && can_run_again(&physical)
            && let Ok(mut cache) = self.pure_plans.lock()
        {
            if cache.len() >= KEPT_PLANS {
                cache.clear();
            }
            cache.insert(plan.clone(), physical.clone());
        }
        Ok(physical)
    }

    /// The physical plan of a query that reads tables (see the module docs): optimised
    /// once while the catalog stays as it is; planned physically again unless every table
    /// it reads would be scanned as it was when planned (a stored table at the same
    /// version, a kept channel's files unchanged).
    async fn plan_reusable(&self, plan: &LogicalPlan) -> Result<Arc<dyn ExecutionPlan>> {
        let generation = catalog_generation();
        let sources = sources_of(plan);
        let (optimized, physical) = match self.table_plans.lock() {
            Ok(cache) => match cache
                .get(plan)
                .filter(|k| k.generation == generation && same_sources(&k.sources, &sources))
            {
                Some(kept) => (Some(kept.optimized.clone()), kept.physical.clone()),
                None => (None, None),
            },
            Err(_) => (None, None),
        };
        if let Some((stamps, physical)) = physical
            && still_current(&stamps)
        {
            // Fresh run state over the same planning, as for pure plans.
            return datafusion::physical_plan::execution_plan::reset_plan_states(physical);
        }
        // A statement seen for the first time may never come again (a text with a
        // literal that changes): only its optimised plan is kept. Run again, its
        // physical plan is kept too, when it can run again as planned.
        let again = optimized.is_some();
        let optimized = match optimized {
            Some(optimized) => optimized,
            None => self.optimize(plan)?,
        };
        // Read before planning: a table written meanwhile only makes the plan look stale.
        let stamps = if again { data_stamps(&optimized) } else { None };
        let physical = self
            .state
            .query_planner()
            .create_physical_plan(&optimized, &self.state)
            .await?;
        let physical_kept = stamps
            .filter(|_| can_run_again(&physical))
            .map(|s| (s, physical.clone()));
        if let Ok(mut cache) = self.table_plans.lock() {
            if cache.len() >= KEPT_PLANS {
                cache.clear();
            }
            cache.insert(
                plan.clone(),
                TablePlan {
                    generation,
                    sources,
                    optimized,
                    physical: physical_kept,
                },
            );
        }
        Ok(physical)
    }

    /// `plan` analysed and optimised.
    fn optimize(&self, plan: &LogicalPlan) -> Result<LogicalPlan> {
        let config = StatementConfig::new(&self.state);
        let analyzed = self.state.analyzer().execute_and_check(
            plan.clone(),
            self.state.config().options(),
            |_, _| {},
        )?;
        self.state
            .optimizer()
            .optimize(analyzed, &config, |_, _| {})
    }

    /// Optimise `plan` and plan it physically.
    async fn plan_physically(&self, plan: &LogicalPlan) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(match plan {
            // EXPLAIN records each optimiser pass; DataFusion's own path does that.
            LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) => {
                let mut state = self.state.clone();
                state.mark_start_execution();
                state.create_physical_plan(plan).await?
            }
            _ => {
                let optimized = self.optimize(plan)?;
                self.state
                    .query_planner()
                    .create_physical_plan(&optimized, &self.state)
                    .await?
            }
        })
    }
}

/// What the optimiser asks of its configuration, for one statement: the snapshot's
/// options and functions, with this statement's start time (`now()`) and aliases.
struct StatementConfig<'a> {
    state: &'a SessionState,
    start: DateTime<Utc>,
    aliases: Arc<AliasGenerator>,
}

impl<'a> StatementConfig<'a> {
    fn new(state: &'a SessionState) -> Self {
        Self {
            state,
            start: Utc::now(),
            aliases: Arc::new(AliasGenerator::new()),
        }
    }
}

impl OptimizerConfig for StatementConfig<'_> {
    fn query_execution_start_time(&self) -> Option<DateTime<Utc>> {
        Some(self.start)
    }

    fn alias_generator(&self) -> &Arc<AliasGenerator> {
        &self.aliases
    }

    fn options(&self) -> Arc<ConfigOptions> {
        Arc::clone(self.state.config().options())
    }

    fn function_registry(&self) -> Option<&dyn FunctionRegistry> {
        Some(self.state)
    }
}

/// Whether a plan's result depends on nothing but its text and the session's options: it
/// reads no table, has no extension or recursive node, and every function it calls is
/// one of DataFusion's own immutable ones (the catalog and session functions userql and
/// the compatibility layer add are not, whatever volatility they declare).
fn is_pure(plan: &LogicalPlan) -> bool {
    reads_only(plan, &|_| false)
}

/// Whether a plan can be kept while the catalog stays as it is: as [`is_pure`], but it
/// may read tables whose scans read their data when they run — stored tables, channels
/// (in memory or not), and views whose plans are such too — so a later run sees the
/// data as they are then. The catalog's own tables, the settings table and table
/// functions (which may compute their rows while planned) are not such tables.
fn is_reusable(plan: &LogicalPlan) -> bool {
    reads_only(plan, &|scan| {
        datafusion::datasource::source_as_provider(&scan.source)
            .is_ok_and(|provider| reads_when_run(provider.as_ref()))
    })
}

fn reads_when_run(provider: &dyn datafusion::catalog::TableProvider) -> bool {
    use datafusion::datasource::listing::ListingTable;
    use datafusion::datasource::view::ViewTable;
    let any: &dyn std::any::Any = provider;
    if let Some(view) = any.downcast_ref::<ViewTable>() {
        return is_reusable(view.logical_plan());
    }
    if let Some(masked) = any.downcast_ref::<super::masked_table::MaskedTable>() {
        return reads_when_run(masked.inner().as_ref());
    }
    any.is::<super::store::table::StoredTable>()
        || any.is::<super::channel_cache::CachedChannel>()
        || any.is::<ListingTable>()
}

/// Whether `plan` calls only DataFusion's own immutable functions, has no extension,
/// recursive, write or statement node, and reads only tables `scan_ok` accepts.
fn reads_only(
    plan: &LogicalPlan,
    scan_ok: &dyn Fn(&datafusion::logical_expr::TableScan) -> bool,
) -> bool {
    let mut pure = true;
    let _ = plan.apply_with_subqueries(|node| {
        let node_ok = match node {
            LogicalPlan::TableScan(scan) => scan_ok(scan),
            _ => true,
        } && !matches!(
            node,
            LogicalPlan::Extension(_)
                | LogicalPlan::RecursiveQuery(_)
                | LogicalPlan::Dml(_)
                | LogicalPlan::Ddl(_)
                | LogicalPlan::Copy(_)
                | LogicalPlan::Statement(_)
                | LogicalPlan::DescribeTable(_)
                | LogicalPlan::Explain(_)
                | LogicalPlan::Analyze(_)
        );
        pure = node_ok
            && node
                .expressions()
                .iter()
                .all(|e| !e.exists(|e| Ok(!is_pure_expr(e))).unwrap_or(true));
        Ok(if pure {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    pure
}

fn is_pure_expr(expr: &Expr) -> bool {
    match expr {
        Expr::ScalarFunction(f) => {
            f.func.signature().volatility == Volatility::Immutable && is_builtin(&f.func)
        }
        Expr::Placeholder(_) | Expr::ScalarVariable(..) => false,
        // Subquery plans are walked by `apply_with_subqueries`.
        _ => true,
    }
}

/// Whether `func` is DataFusion's own function of that name (the same shared instance,
/// not a replacement registered under its name).
fn is_builtin(func: &Arc<ScalarUDF>) -> bool {
    static BUILTIN: OnceLock<HashSet<usize>> = OnceLock::new();
    let builtin = BUILTIN.get_or_init(|| {
        datafusion::functions::all_default_functions()
            .into_iter()
            .chain(datafusion::functions_nested::all_default_nested_functions())
            .map(|f| Arc::as_ptr(&f) as *const () as usize)
            .collect()
    });
    builtin.contains(&(Arc::as_ptr(func) as *const () as usize))
}

/// Rows a statement will produce: its plan and the state to run it with. Nothing runs
/// until [`Rows::execute_stream`].
pub struct Rows {
    source: Source,
}

enum Source {
    /// Planned against a session snapshot.
    Planned {
        plan: LogicalPlan,
        snapshot: Arc<Snapshot>,
    },
    /// A DataFusion frame (statements DataFusion's context runs itself).
    Frame(DataFrame),
}

impl Rows {
    /// Rows of `plan`, run with `snapshot`.
    pub fn planned(plan: LogicalPlan, snapshot: Arc<Snapshot>) -> Self {
        Self {
            source: Source::Planned { plan, snapshot },
        }
    }

    /// The logical plan.
    pub fn logical_plan(&self) -> &LogicalPlan {
        match &self.source {
            Source::Planned { plan, .. } => plan,
            Source::Frame(df) => df.logical_plan(),
        }
    }

    /// The output schema.
    pub fn schema(&self) -> &DFSchemaRef {
        self.logical_plan().schema()
    }

    /// Plan physically and start running.
    pub async fn execute_stream(self) -> Result<SendableRecordBatchStream> {
        match self.source {
            Source::Planned { plan, snapshot } => {
                let physical = snapshot.physical_plan(&plan).await?;
                execute_stream(physical, Arc::clone(&snapshot.task))
            }
            Source::Frame(df) => df.execute_stream().await,
        }
    }

    /// Run to the end and keep every batch.
    pub async fn collect(self) -> Result<Vec<RecordBatch>> {
        self.execute_stream().await?.try_collect().await
    }
}

impl From<DataFrame> for Rows {
    fn from(df: DataFrame) -> Self {
        Self {
            source: Source::Frame(df),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn plan_of(ctx: &SessionContext, sql: &str) -> LogicalPlan {
        ctx.state().create_logical_plan(sql).await.unwrap()
    }

    #[tokio::test]
    async fn only_table_free_statements_of_pure_functions_are_pure() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t (a INT)").await.unwrap();
        for sql in [
            "SELECT 1",
            "SELECT 1 + 2 AS x, 'a' || 'b', abs(-3)",
            "SELECT * FROM (VALUES (1), (2)) v(a) ORDER BY a",
        ] {
            assert!(is_pure(&plan_of(&ctx, sql).await), "{sql}");
        }
        for sql in [
            "SELECT a FROM t",
            "SELECT now()",
            "SELECT random()",
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM t)",
            "SELECT (SELECT max(a) FROM t)",
            "SELECT $1",
        ] {
            assert!(!is_pure(&plan_of(&ctx, sql).await), "{sql}");
        }
    }

    #[tokio::test]
    async fn a_cached_plan_runs_again_with_the_same_rows() {
        let ctx = SessionContext::new();
        let snapshot = Arc::new(Snapshot::new(ctx.state()));
        let plan = plan_of(&ctx, "SELECT x * 2 AS y FROM (VALUES (1), (2), (3)) v(x)").await;
        let first = Rows::planned(plan.clone(), snapshot.clone())
            .collect()
            .await
            .unwrap();
        assert_eq!(snapshot.pure_plans.lock().unwrap().len(), 1);
        let second = Rows::planned(plan, snapshot).collect().await.unwrap();
        let rows = |b: &[RecordBatch]| b.iter().map(|b| b.num_rows()).sum::<usize>();
        assert_eq!(rows(&first), 3);
        assert_eq!(first, second);
    }

    /// A plan kept for a table is not used for another table of the same name: plans
    /// over either compare equal, and a statement planned just before the table was
    /// made again may run (and be kept) after the catalog's generation moved on.
    #[tokio::test]
    async fn a_kept_table_plan_stands_only_for_the_same_table() {
        let dir = std::env::temp_dir().join(format!("userql-snapshot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (old, new) = (dir.join("old.csv"), dir.join("new.csv"));
        std::fs::write(&old, "n\n1\n2\n").unwrap();
        std::fs::write(&new, "n\n10\n").unwrap();
        let ctx = SessionContext::new();
        let sql = "SELECT CAST(sum(n) AS BIGINT) AS s FROM t";
        let options = datafusion::prelude::CsvReadOptions::new();
        ctx.register_csv("t", old.to_str().unwrap(), options.clone())
            .await
            .unwrap();
        let before = plan_of(&ctx, sql).await;
        ctx.deregister_table("t").unwrap();
        ctx.register_csv("t", new.to_str().unwrap(), options)
            .await
            .unwrap();
        let after = plan_of(&ctx, sql).await;
        assert_eq!(before, after, "equal plans over different tables");
        assert!(is_reusable(&after));
        let snapshot = Arc::new(Snapshot::new(ctx.state()));
        let sum = |batches: Vec<RecordBatch>| {
            use datafusion::arrow::array::AsArray;
            use datafusion::arrow::datatypes::Int64Type;
            batches[0].column(0).as_primitive::<Int64Type>().value(0)
        };
        let first = Rows::planned(before, snapshot.clone()).collect().await;
        assert_eq!(sum(first.unwrap()), 3);
        let second = Rows::planned(after, snapshot).collect().await;
        assert_eq!(sum(second.unwrap()), 10);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn now_is_the_statement_start_not_the_snapshot_time() {
        let ctx = SessionContext::new();
        let snapshot = Arc::new(Snapshot::new(ctx.state()));
        let plan = plan_of(&ctx, "SELECT CAST(now() AS VARCHAR) AS t").await;
        let first = Rows::planned(plan.clone(), snapshot.clone())
            .collect()
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let second = Rows::planned(plan, snapshot.clone())
            .collect()
            .await
            .unwrap();
        assert_ne!(first, second, "now() must move between statements");
        assert!(snapshot.pure_plans.lock().unwrap().is_empty());
    }
}
