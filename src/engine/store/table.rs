//! A table users write: a Delta table behind a DataFusion `TableProvider`.
//!
//! Every write (`INSERT`, `COPY FROM`, `DELETE`, `UPDATE`, `TRUNCATE`) is one Delta commit,
//! so a crash mid-write leaves the table as it was. Writes to one table take its write
//! lock and start from its latest version: two sessions writing the same table both land,
//! one after the other, and no write is lost to a conflict. Reads never wait: a scan uses
//! the version current when it was planned.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, collect};
use deltalake::DeltaTable;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::SaveMode;
use tokio::sync::{Mutex, MutexGuard};

/// Why a stored table could not be created, opened or written.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The Delta library refused.
    #[error("table {path}: {source}")]
    Delta {
        path: PathBuf,
        source: Box<deltalake::DeltaTableError>,
    },
    /// The directory is not usable.
    #[error("table {path}: {message}")]
    Location { path: PathBuf, message: String },
}

/// The loaded version of a table and a provider scanning exactly that version.
struct Version {
    table: DeltaTable,
    provider: Arc<dyn TableProvider>,
}

impl Version {
    /// This version's files as a plain Parquet scan, for a cluster: Delta's scan node
    /// cannot be sent to an executor (it has no codec), a Parquet scan of local paths
    /// can. The same rows while the table has no deletion vectors, column mapping or
    /// partition columns (userql creates none); `None` otherwise, or when it has no
    /// files, and the scan runs here.
    fn plain_parquet(&self) -> Option<ListingTable> {
        let metadata = self.table.snapshot().ok()?.metadata();
        let setting = |key: &str| metadata.configuration().get(key).map(|v| v.to_lowercase());
        let mapped = setting("delta.columnMapping.mode").is_some_and(|m| m != "none");
        let deletion_vectors = setting("delta.enableDeletionVectors").is_some_and(|v| v == "true");
        if mapped || deletion_vectors || !metadata.partition_columns().is_empty() {
            return None;
        }
        let files: Vec<ListingTableUrl> = self
            .table
            .get_file_uris()
            .ok()?
            .map(ListingTableUrl::parse)
            .collect::<Result<_>>()
            .ok()?;
        if files.is_empty() {
            return None;
        }
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()));
        let config = ListingTableConfig::new_with_multi_paths(files)
            .with_listing_options(options)
            .with_schema(self.provider.schema());
        ListingTable::try_new(config).ok()
    }
}

/// A Delta table the users write, registered in the catalog under its name. Cheap to
/// clone: clones share the table (a running `INSERT`'s sink holds one).
#[derive(Clone)]
pub struct StoredTable(Arc<Shared>);

struct Shared {
    current: RwLock<Arc<Version>>,
    /// Held for the whole of a write, from reading the latest version to committing.
    writes: Mutex<()>,
    /// Small INSERTs waiting for the write lock, committed together by whichever of
    /// them gets it first (group commit).
    waiting: std::sync::Mutex<Vec<Waiting>>,
    /// Numbers the waiting INSERTs, so one that is cancelled can take itself out.
    next_waiting: std::sync::atomic::AtomicU64,
    /// How long a data file stays on disk after a commit stopped using it.
    retention: Duration,
}

/// A small INSERT's rows waiting for a group commit, and where to say how it went.
struct Waiting {
    id: u64,
    batches: Vec<RecordBatch>,
    done: tokio::sync::oneshot::Sender<Result<()>>,
}

impl std::fmt::Debug for StoredTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTable")
            .field("location", &self.location())
            .finish()
    }
}

fn table_url(dir: &Path) -> Result<url::Url, TableError> {
    url::Url::from_directory_path(dir).map_err(|_| TableError::Location {
        path: dir.to_path_buf(),
        message: "not an absolute directory path".into(),
    })
}

fn delta_err(dir: &Path) -> impl Fn(deltalake::DeltaTableError) -> TableError + '_ {
    move |source| TableError::Delta {
        path: dir.to_path_buf(),
        source: Box::new(source),
    }
}

impl StoredTable {
    /// Create an empty Delta table with `schema` (already narrowed by
    /// [`super::types::storage_schema`]) in `dir`, which must not hold a table. Files its
    /// commits stop using are deleted `retention` later (see [`Self::vacuumed`]).
    pub async fn create(
        dir: &Path,
        name: &str,
        schema: &Schema,
        retention: Duration,
    ) -> Result<Arc<Self>, TableError> {
        std::fs::create_dir_all(dir).map_err(|e| TableError::Location {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let kernel: deltalake::kernel::StructType =
            schema
                .try_into_kernel()
                .map_err(
                    |e: deltalake::arrow::error::ArrowError| TableError::Location {
                        path: dir.to_path_buf(),
                        message: e.to_string(),
                    },
                )?;
        let table = DeltaTable::try_from_url(table_url(dir)?)
            .await
            .map_err(delta_err(dir))?
            .create()
            .with_table_name(name)
            .with_columns(kernel.fields().cloned())
            .with_save_mode(SaveMode::ErrorIfExists)
            .await
            .map_err(delta_err(dir))?;
        Self::from_table(table, dir, retention).await
    }

    /// Open the table in `dir` at its latest version; as [`Self::create`] for `retention`.
    pub async fn open(dir: &Path, retention: Duration) -> Result<Arc<Self>, TableError> {
        let table = deltalake::open_table(table_url(dir)?)
            .await
            .map_err(delta_err(dir))?;
        Self::from_table(table, dir, retention).await
    }

    async fn from_table(
        table: DeltaTable,
        dir: &Path,
        retention: Duration,
    ) -> Result<Arc<Self>, TableError> {
        let version = Self::version_of(table, dir).await?;
        Ok(Arc::new(Self(Arc::new(Shared {
            current: RwLock::new(Arc::new(version)),
            writes: Mutex::new(()),
            waiting: std::sync::Mutex::new(Vec::new()),
            next_waiting: std::sync::atomic::AtomicU64::new(0),
            retention,
        }))))
    }

    async fn version_of(table: DeltaTable, dir: &Path) -> Result<Version, TableError> {
        let provider = table
            .table_provider()
            .await
            .map_err(|e| TableError::Location {
                path: dir.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(Version { table, provider })
    }

    fn current(&self) -> Arc<Version> {
        self.0
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The version a scan planned now reads (a scan reads one version's files).
    pub fn data_version(&self) -> Option<u64> {
        self.current().table.version()
    }

    /// Where the table lives.
    pub fn location(&self) -> String {
        self.current().table.table_url().to_string()
    }

    /// Wait until no other write runs on this table, and keep others out until the guard
    /// drops. Catalog changes (rename, drop) take it too, so they never cut a write short.
    pub async fn lock_writes(&self) -> MutexGuard<'_, ()> {
        self.0.writes.lock().await
    }

    /// Make `table` (just committed, or reopened after a move) the version scans see.
    /// The caller holds the write lock.
    pub async fn install(&self, table: DeltaTable, dir: &Path) -> Result<(), TableError> {
        let version = Self::version_of(table, dir).await?;
        *self.0.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(version);
        Ok(())
    }

    /// Reopen after the directory moved to `dir`. The caller holds the write lock.
    pub async fn relocate(&self, dir: &Path) -> Result<(), TableError> {
        let table = deltalake::open_table(table_url(dir)?)
            .await
            .map_err(delta_err(dir))?;
        self.install(table, dir).await
    }

    /// Write a checkpoint of `table` at `version`, then delete the commit files (and
    /// older checkpoints) it makes unnecessary. Every commit lists the log directory (a
    /// local directory cannot be listed from an offset), so each file left there makes
    /// every commit slower; userql offers no time travel to keep them for. None is kept
    /// for a reader catching up from an older version either: only this server reads
    /// the log (the data dir is locked), and it reads it when a table opens or under the
    /// table's write lock, which this runs under. Failures are logged, never a failed
    /// write: the commit is already durable.
    async fn checkpoint(&self, table: &DeltaTable, version: u64) {
        let result = async {
            deltalake::checkpoints::create_checkpoint(table, None).await?;
            let cutoff = chrono::Utc::now().timestamp_millis();
            deltalake::checkpoints::cleanup_expired_logs_for(
                version as _,
                table.log_store().as_ref(),
                cutoff,
                None,
            )
            .await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(
                table = %self.local_dir().display(),
                version,
                error = %e,
                "could not write a Delta checkpoint"
            );
        }
    }

    /// `table` with its small files compacted when there are [`COMPACT_AT`] or more;
    /// `table` itself when there are fewer or compaction fails.
    async fn compacted(&self, table: DeltaTable) -> DeltaTable {
        let files = table
            .snapshot()
            .map(|s| s.log_data().num_files())
            .unwrap_or(0);
        if files < COMPACT_AT {
            return table;
        }
        let compacted = table.clone().optimize().await.map(|(compacted, metrics)| {
            tracing::debug!(
                table = %self.local_dir().display(),
                removed = metrics.num_files_removed,
                added = metrics.num_files_added,
                "compacted small files"
            );
            compacted
        });
        self.or_unchanged(compacted, table, "could not compact the table's files")
    }

    /// The table a maintenance step after a commit (compaction, vacuum) gave, or `table`
    /// as it was when the step failed: logged, and the write it followed stands.
    fn or_unchanged(
        &self,
        result: Result<DeltaTable, deltalake::DeltaTableError>,
        table: DeltaTable,
        failure: &str,
    ) -> DeltaTable {
        result.unwrap_or_else(|e| {
            tracing::warn!(table = %self.local_dir().display(), error = %e, "{failure}");
            table
        })
    }

    /// `table` after deleting the data files no version from `retention` ago on uses:
    /// those an optimize, DELETE, UPDATE or overwrite removed at least `retention` ago,
    /// and files no commit ever named (left by a write that crashed) at least that old.
    /// A scan reads the files of the version it started with, so one that runs longer
    /// than `retention` after a later commit removed its files could miss them; the
    /// default (an hour) is far beyond any statement's run. Delta's vacuum in its full
    /// mode, run under the write lock, so no write is in flight to lose its new files.
    /// It adds two commits (start and end) when it deletes anything; a failure is
    /// logged, and the files are tried again at the next checkpoint.
    async fn vacuumed(&self, table: DeltaTable) -> DeltaTable {
        let retention =
            chrono::Duration::from_std(self.0.retention).unwrap_or(chrono::Duration::MAX);
        let vacuum = table
            .clone()
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_mode(VacuumMode::Full);
        let vacuumed = vacuum.await.map(|(vacuumed, metrics)| {
            if !metrics.files_deleted.is_empty() {
                tracing::debug!(
                    table = %self.local_dir().display(),
                    deleted = metrics.files_deleted.len(),
                    "deleted data files no longer used"
                );
            }
            vacuumed
        });
        self.or_unchanged(
            vacuumed,
            table,
            "could not delete the data files no longer used",
        )
    }

    fn local_dir(&self) -> PathBuf {
        self.current()
            .table
            .table_url()
            .to_file_path()
            .unwrap_or_default()
    }

    /// Delete the rows matching all `filters` (every row when empty) in one commit.
    async fn delete_rows(&self, filters: Vec<Expr>) -> Result<u64> {
        let _guard = self.lock_writes().await;
        let mut op = self.current().table.clone().delete();
        if let Some(predicate) = predicate_of(filters)? {
            op = op.with_predicate(predicate);
        }
        let (table, metrics) = op.await.map_err(external)?;
        self.install_committed(table).await?;
        Ok(metrics.num_deleted_rows.unwrap_or(0) as u64)
    }

    /// Set `assignments` on the rows matching all `filters` in one commit.
    async fn update_rows(
        &self,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> Result<u64> {
        let _guard = self.lock_writes().await;
        let mut op = self.current().table.clone().update();
        for (column, value) in assignments {
            // DataFusion passes unchanged columns as plain references to themselves.
            if matches!(&value, Expr::Column(c) if c.name == column) {
                continue;
            }
            op = op.with_update(column, unqualified(value)?);
        }
        if let Some(predicate) = predicate_of(filters)? {
            op = op.with_predicate(predicate);
        }
        let (table, metrics) = op.await.map_err(external)?;
        self.install_committed(table).await?;
        Ok(metrics.num_updated_rows as u64)
    }

    /// Replace every row with `input`'s in one commit (readers see the old rows or the
    /// new, never a mix). The caller holds the write lock and planned `input` after
    /// taking it, so `input` read the latest version.
    pub async fn overwrite_locked(
        &self,
        input: Arc<dyn ExecutionPlan>,
        context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let version = self.current();
        let session = SessionStateBuilder::new()
            .with_config(context.session_config().clone())
            .with_runtime_env(context.runtime_env())
            .build();
        let sink = version
            .provider
            .insert_into(&session, single_partition(input), InsertOp::Overwrite)
            .await?;
        let written = collect(sink, context.clone()).await?;
        let rows = crate::engine::session::affected_rows(&written) as u64;
        let mut table = version.table.clone();
        table.update_state().await.map_err(external)?;
        self.install_committed(table).await?;
        Ok(rows)
    }

    /// `DELETE` of the rows where `predicate` is true (every row for `None`), one commit.
    pub async fn delete_where(&self, predicate: Option<Expr>) -> Result<u64> {
        self.delete_rows(predicate.into_iter().collect()).await
    }

    /// `UPDATE` setting `assignments` where `predicate` is true, one commit.
    pub async fn update_where(
        &self,
        assignments: Vec<(String, Expr)>,
        predicate: Option<Expr>,
    ) -> Result<u64> {
        self.update_rows(assignments, predicate.into_iter().collect())
            .await
    }

    /// Make a version this table just committed current. The caller holds the write lock.
    ///
    /// Every [`CHECKPOINT_EVERY`] commits the table's state is written as a Delta
    /// checkpoint (as Delta writers do), so opening the table reads one checkpoint and a
    /// short tail of commits, not the whole history. The commit is durable before this; a
    /// checkpoint that fails is logged and tried again at the next interval, never
    /// reported as a failed write.
    ///
    /// Checkpoints alone do not keep small commits fast: every commit replays the table's
    /// file list, so its cost grows with the number of data files, and each single-row
    /// INSERT adds one. Once the table holds [`COMPACT_AT`] files they are compacted
    /// (Delta's optimize: rewritten as few large files in a commit that changes no rows),
    /// still under the write lock. Readers are never blocked: a scan reads the version
    /// it started with, whose files stay on disk for the retention period; at each
    /// checkpoint the files unused for longer are deleted ([`Self::vacuumed`]). A failed
    /// compaction is logged and the write stands.
    async fn install_committed(&self, table: DeltaTable) -> Result<()> {
        let mut table = self.compacted(table).await;
        // A compaction adds a commit of its own: checkpoint when the versions since the
        // one installed crossed a multiple of the interval, not only when one lands on it.
        let installed = self.current().table.version().unwrap_or(0);
        if let Some(version) = table.version()
            && version > 0
            && version / CHECKPOINT_EVERY > installed / CHECKPOINT_EVERY
        {
            table = self.vacuumed(table).await;
            let version = table.version().unwrap_or(version);
            self.checkpoint(&table, version).await;
        }
        self.install(table, &self.local_dir())
            .await
            .map_err(external)
    }
}

/// Commits between two Delta checkpoints (Delta's own default interval).
const CHECKPOINT_EVERY: u64 = 100;

/// Data files at which a table is compacted after a commit.
const COMPACT_AT: usize = 64;

/// Predicates arrive qualified with the table's name as written in the statement; Delta
/// resolves columns against the table alone.
fn unqualified(expr: Expr) -> Result<Expr> {
    expr.transform(|e| match e {
        Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
            Column::new_unqualified(c.name),
        ))),
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

/// All `filters` as one predicate, `None` for every row.
fn predicate_of(filters: Vec<Expr>) -> Result<Option<Expr>> {
    let filters = filters
        .into_iter()
        .map(unqualified)
        .collect::<Result<Vec<_>>>()?;
    Ok(conjunction(filters))
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// A one-row `count` result, what DataFusion expects back from DML.
fn count_plan(count: u64) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(UInt64Array::from(vec![count]))],
    )?;
    MemorySourceConfig::try_new_exec(&[vec![batch]], schema, None)
        .map(|e| e as Arc<dyn ExecutionPlan>)
}

#[async_trait]
impl TableProvider for StoredTable {
    fn schema(&self) -> SchemaRef {
        self.current().provider.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let version = self.current();
        if crate::cluster::ClusterWork::of(state).is_some()
            && let Some(files) = version.plain_parquet()
        {
            return files.scan(state, projection, filters, limit).await;
        }
        version
            .provider
            .scan(state, projection, filters, limit)
            .await
    }

    /// Delta's answers, with exact ones made inexact: DataFusion then keeps the filter
    /// above the scan, which the plain Parquet scan of a cluster needs (it prunes, it
    /// does not filter).
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(crate::engine::kept_above(
            self.current().provider.supports_filters_pushdown(filters)?,
        ))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return Err(DataFusionError::NotImplemented(format!(
                "{insert_op} into a stored table"
            )));
        }
        let sink = StoredTableSink {
            table: self.clone(),
            schema: self.schema(),
        };
        Ok(Arc::new(DataSinkExec::new(
            single_partition(input),
            Arc::new(sink),
            None,
        )))
    }

    // DELETE and UPDATE never come this way: the filters DataFusion would pass are taken
    // from the optimised plan, where a subquery or a constant-false condition may no
    // longer be a filter. The session runs them from the statement's plan (`engine::dml`).
    async fn delete_from(
        &self,
        _state: &dyn Session,
        _filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Internal(
            "DELETE on a stored table must run through engine::dml".into(),
        ))
    }

    async fn update(
        &self,
        _state: &dyn Session,
        _assignments: Vec<(String, Expr)>,
        _filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Internal(
            "UPDATE on a stored table must run through engine::dml".into(),
        ))
    }

    async fn truncate(&self, _state: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        count_plan(self.delete_rows(vec![]).await?)
    }
}

/// Streams an `INSERT`'s rows into one Delta commit, under the table's write lock.
struct StoredTableSink {
    table: StoredTable,
    schema: SchemaRef,
}

impl std::fmt::Debug for StoredTableSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredTableSink({})", self.table.location())
    }
}

impl DisplayAs for StoredTableSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredTableSink: {}", self.table.location())
    }
}

#[async_trait]
impl DataSink for StoredTableSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        context: &Arc<TaskContext>,
    ) -> Result<u64> {
        match small_write(data, GROUP_COMMIT_ROWS).await? {
            Write::Small(batches) => self.table.commit_grouped(batches, context).await,
            Write::Large(stream) => {
                let _guard = self.table.lock_writes().await;
                self.table.commit_locked(stream, context).await
            }
        }
    }
}

/// An INSERT of at most this many rows may share its commit with others (group commit);
/// a larger one streams into a commit of its own.
const GROUP_COMMIT_ROWS: usize = 10_000;

/// An INSERT's rows: all of them, when few; else the stream (with what was read of it).
enum Write {
    Small(Vec<RecordBatch>),
    Large(SendableRecordBatchStream),
}

/// Read `data` until it ends or passes `max_rows` rows.
async fn small_write(mut data: SendableRecordBatchStream, max_rows: usize) -> Result<Write> {
    use futures::StreamExt;
    let mut head = Vec::new();
    let mut rows = 0;
    while let Some(batch) = data.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        head.push(batch);
        if rows > max_rows {
            let schema = data.schema();
            let whole = futures::stream::iter(head.into_iter().map(Ok)).chain(data);
            return Ok(Write::Large(Box::pin(RecordBatchStreamAdapter::new(
                schema, whole,
            ))));
        }
    }
    Ok(Write::Small(head))
}

impl StoredTable {
    /// Commit a small INSERT's rows, together with any others waiting for the write lock
    /// by then. Whoever gets the lock commits every waiting INSERT in one Delta commit
    /// and tells each how it went; each is acknowledged only once that commit is
    /// durable. Under many concurrent single-row INSERTs the table then takes one commit
    /// per turn of the lock instead of one per row.
    ///
    /// The commit runs on the commit runtime ([`commits`]), not on the statement's task:
    /// a commit is milliseconds of synchronous CPU (Delta log replay), which on the
    /// server's few workers would keep the other sessions from even reaching the queue,
    /// and a statement cancelled mid-commit must not cut short a commit that carries
    /// other sessions' rows.
    async fn commit_grouped(
        &self,
        batches: Vec<RecordBatch>,
        context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        let id = self
            .0
            .next_waiting
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (done, outcome) = tokio::sync::oneshot::channel();
        self.waiting().push(Waiting { id, batches, done });
        // A cancelled INSERT leaves the queue unless its commit already began.
        let _leave = LeaveOnDrop { table: self, id };
        let table = self.clone();
        let context = context.clone();
        commits().spawn(async move { table.commit_waiting(&context).await });
        outcome.await.map_err(|_| {
            DataFusionError::Internal("a group commit ended without a word".into())
        })??;
        Ok(rows)
    }

    /// Take the write lock and commit every INSERT waiting by then (none: nothing to do,
    /// an earlier turn took them), answering each.
    async fn commit_waiting(&self, context: &Arc<TaskContext>) {
        let _guard = self.lock_writes().await;
        let group = std::mem::take(&mut *self.waiting());
        if group.is_empty() {
            return;
        }
        tracing::debug!(inserts = group.len(), "group commit");
        let schema = self.current().provider.schema();
        let (all, senders): (Vec<_>, Vec<_>) =
            group.into_iter().map(|w| (w.batches, w.done)).unzip();
        let stream = Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(all.into_iter().flatten().map(Ok)),
        ));
        let result = self.commit_locked(stream, context).await;
        let shared = result.err().map(Arc::new);
        for sender in senders {
            let _ = sender.send(match &shared {
                None => Ok(()),
                Some(e) => Err(DataFusionError::Shared(e.clone())),
            });
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.0.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write `data` into one commit and make it current. The caller holds the write
    /// lock, so the version read here is the latest and the commit cannot conflict.
    async fn commit_locked(
        &self,
        data: SendableRecordBatchStream,
        context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let version = self.current();
        let input = one_shot_exec(data)?;
        let session = SessionStateBuilder::new()
            .with_config(context.session_config().clone())
            .with_runtime_env(context.runtime_env())
            .build();
        let sink = version
            .provider
            .insert_into(&session, input, InsertOp::Append)
            .await?;
        let written = collect(sink, context.clone()).await?;
        let rows = crate::engine::session::affected_rows(&written) as u64;
        let mut table = version.table.clone();
        table.update_state().await.map_err(external)?;
        self.install_committed(table).await?;
        Ok(rows)
    }
}

/// The runtime group commits run on: one thread of its own, beside the server's workers.
fn commits() -> &'static tokio::runtime::Handle {
    static COMMITS: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();
    COMMITS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("userql-commit")
            .enable_all()
            .build()
            .expect("the commit runtime starts");
        let handle = runtime.handle().clone();
        // Lives as long as the process: commits may be under way at any moment.
        std::mem::forget(runtime);
        handle
    })
}

/// Takes a waiting INSERT out of its table's queue when its statement ends first.
struct LeaveOnDrop<'a> {
    table: &'a StoredTable,
    id: u64,
}

impl Drop for LeaveOnDrop<'_> {
    fn drop(&mut self) {
        self.table.waiting().retain(|w| w.id != self.id);
    }
}

/// `input` as one partition. A sink reads partition 0 of its input only; the planner
/// merges partitions for the sinks it places itself, but a sink built around an already
/// optimised plan (`CREATE TABLE AS`, a COPY) must merge them here or silently keep the
/// first partition's rows.
pub(crate) fn single_partition(input: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    if input.properties().partitioning.partition_count() > 1 {
        Arc::new(CoalescePartitionsExec::new(input))
    } else {
        input
    }
}

/// A plan that yields `stream` once: rows that are already flowing (an `INSERT`'s input,
/// a COPY being decoded) as the input of a write.
pub(crate) fn one_shot_exec(stream: SendableRecordBatchStream) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = stream.schema();
    let exec = StreamingTableExec::try_new(
        schema.clone(),
        vec![Arc::new(OneShot {
            schema,
            stream: std::sync::Mutex::new(Some(stream)),
        })],
        None,
        vec![],
        false,
        None,
    )?;
    Ok(Arc::new(exec))
}

/// The rows of a write, handed once to the writer as a plan input.
struct OneShot {
    schema: SchemaRef,
    stream: std::sync::Mutex<Option<SendableRecordBatchStream>>,
}

impl std::fmt::Debug for OneShot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneShot")
    }
}

impl PartitionStream for OneShot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().unwrap_or_else(|p| p.into_inner()).take();
        match taken {
            Some(stream) => stream,
            None => Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::once(async {
                    Err(DataFusionError::Internal(
                        "insert input was read twice".into(),
                    ))
                }),
            )),
        }
    }
}
