//! `oneid(input)`, `oneid_links(input)` and the server-maintained `customer_ids`.
//!
//! The settings are captured when the call is planned (from the calling session), the
//! input is read when it is scanned, and the graph is resolved on a blocking thread so a
//! ten-million-row resolution never stalls the server's other sessions.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanBuilder, Int64Array, Int64Builder, RecordBatch, RecordBatchOptions,
    StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::graph::{IdentityGraph, RecordOrder};
use super::ingest::{GraphBuilder, Reader, TextColumn};
use super::settings::{OverrideAction, ResolverConfig};
use super::udf::literal_text;
use crate::engine::settings::{self as userql_settings, UserqlSettings};
use crate::error::sqlstate;
use crate::functions::input::{self, Expect, user_error};

/// Which table function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Resolve,
    Links,
}

/// Everything a resolution depends on besides the input rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneIdSettings {
    resolver: ResolverConfig,
    overrides: Option<String>,
    previous: Option<String>,
}

impl OneIdSettings {
    /// Read from a session's `userql.*` settings.
    pub fn from_session(settings: &UserqlSettings) -> Result<Self> {
        let names = [
            "default_region",
            "oneid_max_records_per_value",
            "oneid_blocked_values",
            "oneid_type_limits",
            "oneid_type_priority",
        ];
        let mut resolver = ResolverConfig::default();
        for name in names {
            resolver
                .set(name, settings.text(name))
                .map_err(|e| user_error(sqlstate::INVALID_PARAMETER_VALUE, e.to_string()))?;
        }
        let table = |name: &str| {
            let t = settings.text(name).trim();
            (!t.is_empty()).then(|| t.to_string())
        };
        Ok(Self {
            resolver,
            overrides: table("oneid_overrides"),
            previous: table("oneid_previous"),
        })
    }

    /// The resolver's knobs.
    pub fn resolver(&self) -> &ResolverConfig {
        &self.resolver
    }

    /// The `userql.oneid_overrides` table, if set.
    pub fn overrides(&self) -> Option<&str> {
        self.overrides.as_deref()
    }

    /// The `userql.oneid_previous` table, if set.
    pub fn previous(&self) -> Option<&str> {
        self.previous.as_deref()
    }
}

/// The input columns of `oneid` and `oneid_links`.
pub(super) const INPUT_COLUMNS: [(&str, Expect); 3] = [
    ("record_id", Expect::Text),
    ("id_type", Expect::Text),
    ("id_value", Expect::Text),
];

fn output_schema(kind: Kind) -> SchemaRef {
    Arc::new(match kind {
        Kind::Resolve => Schema::new(vec![
            Field::new("record_id", DataType::Utf8, false),
            Field::new("one_id", DataType::Int64, false),
            Field::new("component_size", DataType::Int64, false),
        ]),
        Kind::Links => Schema::new(vec![
            Field::new("record_id", DataType::Utf8, false),
            Field::new("linked_record_id", DataType::Utf8, false),
            Field::new("id_type", DataType::Utf8, true),
            Field::new("id_value", DataType::Utf8, true),
            Field::new("used", DataType::Boolean, false),
            Field::new("reason", DataType::Utf8, false),
        ]),
    })
}

/// `oneid(...)` / `oneid_links(...)` as table functions.
#[derive(Debug)]
struct OneIdFunction {
    kind: Kind,
}

impl TableFunctionImpl for OneIdFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let name = match self.kind {
            Kind::Resolve => "oneid",
            Kind::Links => "oneid_links",
        };
        let [arg] = args.exprs() else {
            return Err(user_error(
                sqlstate::UNDEFINED_FUNCTION,
                format!(
                    "{name}(input) takes one argument, got {}",
                    args.exprs().len()
                ),
            ));
        };
        let input = literal_text(arg, &format!("{name}(input)"))?;
        let settings = userql_settings::of_session(args.session().config().options());
        Ok(Arc::new(OneIdTable {
            kind: self.kind,
            input,
            settings: OneIdSettings::from_session(&settings)?,
            schema: output_schema(self.kind),
        }))
    }
}

/// A planned `oneid` call: resolved when scanned.
#[derive(Debug)]
struct OneIdTable {
    kind: Kind,
    input: String,
    settings: OneIdSettings,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for OneIdTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let columns = Columns::of(&self.schema, projection);
        let batch =
            compute_here_or_on_cluster(state, self.kind, &self.input, &self.settings, &columns)
                .await?;
        memory_exec(batch)
    }
}

/// The output columns a scan asked for (DataFusion's projection), so that
/// work only they need is skipped: a query that counts customers never
/// builds the record id column or sorts records by id.
#[derive(Debug, Clone)]
struct Columns {
    /// Indices into the function's output schema, in the order wanted.
    indices: Vec<usize>,
    /// Their schema.
    schema: SchemaRef,
}

impl Columns {
    fn of(schema: &SchemaRef, projection: Option<&Vec<usize>>) -> Self {
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..schema.fields().len()).collect(),
        };
        let fields: Vec<Field> = indices.iter().map(|&i| schema.field(i).clone()).collect();
        Columns {
            indices,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    fn wants(&self, i: usize) -> bool {
        self.indices.contains(&i)
    }
}

/// [`compute`], or on a cluster-mode server `oneid` as distributed connected components
/// ([`cluster`](super::cluster)); `oneid_links` explains on this machine (its pairs are
/// per shared value, not per component).
async fn compute_here_or_on_cluster(
    state: &dyn Session,
    kind: Kind,
    input: &str,
    settings: &OneIdSettings,
    columns: &Columns,
) -> Result<RecordBatch> {
    match crate::cluster::ClusterWork::of(state) {
        Some(work) if kind == Kind::Resolve => {
            let rows = super::cluster::resolve(state, input, settings, &work).await?;
            partwise_output(&rows, columns)
        }
        _ => compute(state, kind, input, settings, columns).await,
    }
}

/// Build the graph from the input (and the overrides / previous tables) and
/// resolve it into the `columns` asked for.
async fn compute(
    state: &dyn Session,
    kind: Kind,
    input: &str,
    settings: &OneIdSettings,
    columns: &Columns,
) -> Result<RecordBatch> {
    let function = match kind {
        Kind::Resolve => "oneid",
        Kind::Links => "oneid_links",
    };
    let reading = crate::threads::CpuClock::start();
    let mut builder = GraphBuilder::new(settings.resolver.thread_count());
    // Relation names are read unmasked (OneID resolves on real values for every role);
    // then identifier values this function returns are masked for a masked session.
    let (streams, lifted) =
        input::read_partitions_resolving(state, function, input, &INPUT_COLUMNS).await?;
    let mask = lifted
        .then(|| crate::engine::masked_table::session_mask(state))
        .flatten();
    // Each partition of the input is read and routed by a task of its own; the record
    // ids are interned by the builder's shards on threads of their own (the debug
    // log's "routing" is the reading tasks' share).
    let mut tasks = tokio::task::JoinSet::new();
    for stream in streams {
        let reader = builder.reader();
        tasks.spawn(read_partition(stream, reader));
    }
    let mut readers = Vec::with_capacity(tasks.len());
    let (mut routing, mut routing_cpu) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    while let Some(done) = tasks.join_next().await {
        let (reader, wall, cpu) = done.map_err(|e| DataFusionError::External(Box::new(e)))??;
        routing = routing.max(wall);
        routing_cpu += cpu;
        readers.push(reader);
    }
    let started = std::time::Instant::now();
    let partitions = readers.len();
    let mut graph = builder.finish(readers).map_err(oneid_error)?;
    let joining = started.elapsed();
    for (a, b, action) in read_overrides(state, settings).await? {
        graph.add_override(&a, &b, action).map_err(oneid_error)?;
    }
    for (record, one_id) in read_previous(state, settings).await? {
        graph.add_previous(&record, one_id).map_err(oneid_error)?;
    }
    graph.shrink_to_fit();
    // The readers' and shards' buffers, freed on their threads' arenas (with many
    // threads, hundreds of megabytes that would otherwise stay resident through the
    // resolution).
    crate::threads::release_free_memory();
    let (read, read_cpu_per_wall) = reading.read();
    let resolving = crate::threads::CpuClock::start();
    let resolver = settings.resolver.clone();
    let columns = columns.clone();
    let out = tokio::task::spawn_blocking(move || {
        let out = build_output(&graph, kind, &resolver, &columns, mask.as_deref());
        drop(graph);
        // Off the statement's path: the answer does not wait for it.
        tokio::task::spawn_blocking(crate::threads::release_free_memory);
        out
    })
    .await
    .map_err(|e| DataFusionError::Execution(format!("OneID resolution failed: {e}")))?;
    let (resolved, resolve_cpu_per_wall) = resolving.read();
    let ratio = |r: Option<f64>| r.map_or(String::new(), |r| format!(" (cpu/wall {r:.2})"));
    tracing::debug!(
        "{function}: read and interned the input in {:.3} s{} ({partitions} partitions; \
         routing {:.3} s in the slowest, {:.3} s CPU in all; waiting for the shards and \
         joining them {:.3} s), resolved and built the output in {:.3} s{}",
        read.as_secs_f64(),
        ratio(read_cpu_per_wall),
        routing.as_secs_f64(),
        routing_cpu.as_secs_f64(),
        joining.as_secs_f64(),
        resolved.as_secs_f64(),
        ratio(resolve_cpu_per_wall),
    );
    out
}

/// Reads one partition of the input into `reader`: the reader, and the wall and CPU
/// time spent routing its rows (decoding the input not included).
async fn read_partition(
    mut stream: SendableRecordBatchStream,
    mut reader: Reader,
) -> Result<(Reader, std::time::Duration, std::time::Duration)> {
    let (mut wall, mut cpu) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let (records, types, values) = (text(&batch, 0)?, text(&batch, 1)?, text(&batch, 2)?);
        let mut rows = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            if records.is_null(i) {
                continue;
            }
            let identifier = (!types.is_null(i) && !values.is_null(i))
                .then(|| (types.value(i), values.value(i)));
            rows.push((i as u32, identifier));
        }
        let started = std::time::Instant::now();
        let then = crate::threads::thread_cpu_time();
        let column: Arc<dyn TextColumn> = Arc::new(records.clone());
        reader.add_batch(&column, &rows).map_err(oneid_error)?;
        wall += started.elapsed();
        if let Some((then, now)) = then.zip(crate::threads::thread_cpu_time()) {
            cpu += now.saturating_sub(then);
        }
    }
    Ok((reader, wall, cpu))
}

fn build_output(
    graph: &IdentityGraph,
    kind: Kind,
    cfg: &ResolverConfig,
    wanted: &Columns,
    mask: Option<&crate::security::MaskPolicy>,
) -> Result<RecordBatch> {
    let (all, rows): (Vec<ArrayRef>, usize) = match kind {
        Kind::Resolve => {
            let with_records = wanted.wants(0);
            let order = if with_records {
                RecordOrder::ById
            } else {
                RecordOrder::Any
            };
            let resolution = graph.resolve_with(cfg, order).map_err(oneid_error)?;
            let n = resolution.len();
            let mut one = Int64Builder::with_capacity(n);
            let mut size = Int64Builder::with_capacity(n);
            // Unwanted, the record id column stays empty: it is not returned.
            let mut ids = StringBuilder::new();
            if with_records {
                ids = StringBuilder::with_capacity(n, graph.record_text_len());
                for row in resolution.iter() {
                    ids.append_value(row.record_id);
                    one.append_value(row.one_id);
                    size.append_value(row.component_size);
                }
            } else {
                for (one_id, component_size) in resolution.customers_of_rows() {
                    one.append_value(one_id);
                    size.append_value(component_size);
                }
            }
            let all: Vec<ArrayRef> = vec![
                Arc::new(ids.finish()),
                Arc::new(one.finish()),
                Arc::new(size.finish()),
            ];
            (all, n)
        }
        Kind::Links => {
            let explanation = graph.explain(cfg).map_err(oneid_error)?;
            let mut a = StringBuilder::new();
            let mut b = StringBuilder::new();
            let mut t = StringBuilder::new();
            let mut v = StringBuilder::new();
            let mut used = BooleanBuilder::new();
            let mut reason = StringBuilder::new();
            for row in explanation.links() {
                a.append_value(row.record_id);
                b.append_value(row.linked_record_id);
                t.append_option(row.id_type);
                match (mask, row.id_type) {
                    (Some(policy), Some(id_type)) => match policy.for_type(id_type) {
                        Some(f) => v.append_option(row.id_value.and_then(|x| f.apply(x))),
                        None => v.append_option(row.id_value),
                    },
                    _ => v.append_option(row.id_value),
                }
                used.append_value(row.used);
                reason.append_value(row.reason.as_str());
            }
            let all: Vec<ArrayRef> = vec![
                Arc::new(a.finish()),
                Arc::new(b.finish()),
                Arc::new(t.finish()),
                Arc::new(v.finish()),
                Arc::new(used.finish()),
                Arc::new(reason.finish()),
            ];
            let n = all[0].len();
            (all, n)
        }
    };
    let columns: Vec<ArrayRef> = wanted.indices.iter().map(|&i| all[i].clone()).collect();
    // A projection can be empty (`SELECT count(*)`): the row count says it.
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        wanted.schema.clone(),
        columns,
        &options,
    )?)
}

/// `oneid()`'s columns from rows resolved part by part (on a cluster).
fn partwise_output(rows: &[super::partwise::PartwiseRow], wanted: &Columns) -> Result<RecordBatch> {
    let mut ids = StringBuilder::new();
    let mut one = Int64Builder::with_capacity(rows.len());
    let mut size = Int64Builder::with_capacity(rows.len());
    for row in rows {
        if wanted.wants(0) {
            ids.append_value(&row.record_id);
        }
        one.append_value(row.one_id);
        size.append_value(row.component_size);
    }
    let all: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(one.finish()),
        Arc::new(size.finish()),
    ];
    let columns: Vec<ArrayRef> = wanted.indices.iter().map(|&i| all[i].clone()).collect();
    let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
    Ok(RecordBatch::try_new_with_options(
        wanted.schema.clone(),
        columns,
        &options,
    )?)
}

/// A computed result as a scan.
fn memory_exec(batch: RecordBatch) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = batch.schema();
    MemorySourceConfig::try_new_exec(&[vec![batch]], schema, None)
        .map(|e| e as Arc<dyn ExecutionPlan>)
}

pub(super) fn oneid_error(e: super::error::OneIdError) -> DataFusionError {
    let state = match e {
        super::error::OneIdError::Internal(_) => sqlstate::INTERNAL_ERROR,
        _ => sqlstate::INVALID_PARAMETER_VALUE,
    };
    user_error(state, e.to_string())
}

impl TextColumn for StringArray {
    fn text(&self, row: usize) -> &str {
        self.value(row)
    }
}

/// The `userql.oneid_overrides` rows, `(record_a, record_b, action)`.
pub(super) async fn read_overrides(
    session: &dyn Session,
    settings: &OneIdSettings,
) -> Result<Vec<(String, String, OverrideAction)>> {
    let mut out = Vec::new();
    let columns = [
        ("record_a", Expect::Text),
        ("record_b", Expect::Text),
        ("action", Expect::Text),
    ];
    let table = settings.overrides();
    each_batch(
        session,
        "userql.oneid_overrides",
        table,
        &columns,
        |batch| {
            let (a, b, action) = (text(batch, 0)?, text(batch, 1)?, text(batch, 2)?);
            for i in 0..batch.num_rows() {
                if a.is_null(i) || b.is_null(i) || action.is_null(i) {
                    continue;
                }
                let act = OverrideAction::parse(action.value(i)).map_err(|e| {
                    let table = table.unwrap_or_default();
                    user_error(sqlstate::INVALID_PARAMETER_VALUE, format!("{table}: {e}"))
                })?;
                out.push((a.value(i).to_string(), b.value(i).to_string(), act));
            }
            Ok(())
        },
    )
    .await?;
    Ok(out)
}

/// The `userql.oneid_previous` rows, `(record_id, one_id)`.
pub(super) async fn read_previous(
    session: &dyn Session,
    settings: &OneIdSettings,
) -> Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    let columns = [("record_id", Expect::Text), ("one_id", Expect::BigInt)];
    each_batch(
        session,
        "userql.oneid_previous",
        settings.previous(),
        &columns,
        |batch| {
            let ids = text(batch, 0)?;
            let one = batch
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| DataFusionError::Internal("one_id is not bigint".into()))?;
            for i in 0..batch.num_rows() {
                if !ids.is_null(i) && !one.is_null(i) {
                    out.push((ids.value(i).to_string(), one.value(i)));
                }
            }
            Ok(())
        },
    )
    .await?;
    Ok(out)
}

/// Hands `each` every batch of `table` (the value of the setting `setting`), read with
/// `columns`; nothing when the setting is unset.
async fn each_batch(
    session: &dyn Session,
    setting: &str,
    table: Option<&str>,
    columns: &[(&str, Expect)],
    mut each: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    let Some(table) = table else {
        return Ok(());
    };
    let (mut s, _) = input::read_resolving(session, setting, table, columns).await?;
    while let Some(batch) = s.next().await {
        each(&batch?)?;
    }
    Ok(())
}

/// Column `i` as `Utf8` (a view or large string column is cast).
pub(super) fn text(batch: &RecordBatch, i: usize) -> Result<StringArray> {
    let column = datafusion::arrow::compute::cast(batch.column(i), &DataType::Utf8)?;
    column
        .as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal(format!("column {i} is not text")))
}

/// `customer_ids(record_id, one_id)`: `oneid('identities')` (plus every record that has
/// orders or events but no identifier) under the current settings, computed on first use
/// and cached until a `userql.oneid_*` setting or a channel file changes.
#[derive(Debug)]
pub struct CustomerIds {
    schema: SchemaRef,
    /// Paths whose modification times make up part of the cache key.
    channel_paths: Vec<std::path::PathBuf>,
    cache: Mutex<Option<(CacheKey, RecordBatch)>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CacheKey {
    settings: OneIdSettings,
    files: Vec<Option<std::time::SystemTime>>,
}

/// The query `customer_ids` resolves.
const CUSTOMER_IDS_INPUT: &str = "SELECT record_id, id_type, id_value FROM public.identities \
     UNION ALL SELECT DISTINCT record_id, CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR) FROM public.orders \
     UNION ALL SELECT DISTINCT record_id, CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR) FROM public.events";

impl CustomerIds {
    /// A provider whose cache also watches these channel paths.
    pub fn new(channel_paths: Vec<std::path::PathBuf>) -> Self {
        Self {
            schema: Arc::new(Schema::new(vec![
                Field::new("record_id", DataType::Utf8, false),
                Field::new("one_id", DataType::Int64, false),
            ])),
            channel_paths,
            cache: Mutex::new(None),
        }
    }

    fn key(&self, settings: OneIdSettings) -> CacheKey {
        CacheKey {
            settings,
            files: self
                .channel_paths
                .iter()
                .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
                .collect(),
        }
    }
}

#[async_trait]
impl TableProvider for CustomerIds {
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
        let settings =
            OneIdSettings::from_session(&userql_settings::of_session(state.config().options()))?;
        let key = self.key(settings);
        let cached = self.cache.lock().ok().and_then(|c| {
            c.as_ref()
                .filter(|(k, _)| *k == key)
                .map(|(_, b)| b.clone())
        });
        let batch = match cached {
            Some(b) => b,
            None => {
                let columns = Columns::of(&output_schema(Kind::Resolve), Some(&vec![0, 1]));
                let b = compute_here_or_on_cluster(
                    state,
                    Kind::Resolve,
                    CUSTOMER_IDS_INPUT,
                    &key.settings,
                    &columns,
                )
                .await?;
                if let Ok(mut c) = self.cache.lock() {
                    *c = Some((key, b.clone()));
                }
                b
            }
        };
        let batch = match projection {
            Some(p) => batch.project(p)?,
            None => batch,
        };
        memory_exec(batch)
    }
}

/// Register `oneid` and `oneid_links`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udtf(
        "oneid",
        Arc::new(OneIdFunction {
            kind: Kind::Resolve,
        }),
    );
    ctx.register_udtf("oneid_links", Arc::new(OneIdFunction { kind: Kind::Links }));
}
