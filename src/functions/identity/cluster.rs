//! `oneid()` on a cluster (`serve --cluster`): the plain components are found by
//! distributed SQL, then resolved here part by part ([`partwise`](super::partwise)).
//!
//! 1. **Keys**: every input row with its record's node (its stable hash as an
//!    order-keeping `bigint`, [`node_of`]) and its linking key (the family and SHA-256
//!    of the normal form, so a raw phone meets its hash; as a 128-bit digest,
//!    [`key_digest`]) is written to Parquet in a work folder the executors share
//!    (`oneid_row` gives the whole row).
//! 2. **Edges**: each usable key (not junk, held by 2..=`oneid_max_records_per_value`
//!    records) links its holders to its smallest node; link overrides add theirs.
//! 3. **Large-star / small-star** (Kiveris et al., "Connected Components in MapReduce
//!    and Beyond", SoCC 2014), one statement each, until the edges form stars: every
//!    edge points from a node to its component's smallest node. O(log² n) rounds at
//!    worst, a handful on customer graphs; each round's edges are written to Parquet
//!    (a recursive CTE cannot be shipped).
//! 4. **Parts**: the rows of usable keys, labelled with their component and sorted by
//!    it, stream back here, and whole components at a time are resolved by the same
//!    resolver as on one machine; the `one_id`s are then assigned across all of them.
//!
//! Same customers and ids as one machine on the same input (`partwise` says why).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanBuilder, Int64Array, Int64Builder, RecordBatch, StringArray,
    StructArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemoryCatalogProviderList, Session,
};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::graph::OverrideAction;
use super::keys::RowKeys;
use super::partwise::{PartwiseResolution, PartwiseRow};
use super::stable_ids::record_hash;
use super::table::OneIdSettings;
use crate::cluster::ClusterWork;
use crate::engine::settings::UserqlSettings;
use crate::error::sqlstate;
use crate::functions::input::{self, user_error};

/// Rounds after which the loop gives up (large-star / small-star needs O(log² n)).
const MAX_ROUNDS: usize = 200;

/// Rows resolved at once: whole components are gathered until a part holds this many.
const PART_ROWS: usize = 1 << 20;

/// What a distributed resolution did, for the log and the benchmark.
#[derive(Debug, Default, Clone, Copy)]
struct ClusterStats {
    rounds: usize,
    edges_written: u64,
    parts: usize,
    bytes_written: u64,
}

/// Bytes of the files under `dir`.
fn folder_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => folder_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Removes the work folder of one call, whatever way the call ends.
struct WorkFolder(PathBuf);

impl Drop for WorkFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A folder name no other call (of this or another server on the work folder) uses.
fn call_folder_name() -> String {
    crate::cluster::unique_name("oneid")
}

/// `oneid(input)`'s rows, resolved on the cluster.
pub(super) async fn resolve(
    session: &dyn Session,
    input: &str,
    settings: &OneIdSettings,
    work: &ClusterWork,
) -> Result<Vec<PartwiseRow>> {
    let started = std::time::Instant::now();
    let (frame, _) =
        input::frame_resolving(session, "oneid", input, &super::table::INPUT_COLUMNS).await?;
    let folder = WorkFolder(work.dir.join(call_folder_name()));
    std::fs::create_dir_all(&folder.0).map_err(|e| {
        user_error(
            sqlstate::IO_ERROR,
            format!(
                "oneid: cannot create the cluster work folder {}: {e}",
                folder.0.display()
            ),
        )
    })?;
    let ctx = scratch_context(session)?;
    ctx.register_table("oneid_input", Arc::new(InputTable::new(frame)))?;
    let overrides = super::table::read_overrides(session, settings).await?;
    let previous = super::table::read_previous(session, settings).await?;
    let mut stats = ClusterStats::default();

    // 1. Keys. `oneid_row` is called once per row: its struct is written whole and
    // read through a view. (Selecting its fields in the writing statement had the
    // optimiser push each field access, and so a call of the function, into the scan:
    // one call per field.)
    let keys = folder.0.join("keys");
    let rows = copy_to(
        &ctx,
        "SELECT oneid_row(record_id, id_type, id_value) AS x \
         FROM oneid_input WHERE record_id IS NOT NULL",
        &keys,
    )
    .await?;
    if !register_written(&ctx, "keys_written", &keys, rows).await? {
        return Ok(Vec::new());
    }
    ctx.sql(
        "CREATE VIEW keys AS SELECT x['record_id'] AS record_id, x['node'] AS node, \
                x['id_type'] AS id_type, x['id_value'] AS id_value, x['key_hi'] AS key_hi, \
                x['key_lo'] AS key_lo, x['junk'] AS junk FROM keys_written",
    )
    .await?;
    step(&started, "keys written", rows);
    // Two record ids with one 64-bit hash (about 1 in 10⁷ at 10⁶ records) would leave
    // the node order not the canonical one. Grouped by node (min and max, no distinct
    // count: that would gather every record id in one place).
    let (shared, _) = two_counts(
        &ctx,
        "SELECT count(*), 0 FROM (SELECT node FROM keys GROUP BY node \
                                  HAVING min(record_id) <> max(record_id))",
    )
    .await?;
    if shared > 0 {
        return Err(user_error(
            sqlstate::FEATURE_NOT_SUPPORTED,
            "oneid on the cluster: two record ids share a stable hash; run it on one machine \
             (serve without --cluster)"
                .into(),
        ));
    }
    let max = settings.resolver().max_records_per_value;
    // Each usable key with its smallest holder, written once: the edges and the parts
    // both read it. Grouped by (key, node) first, then by key: a node stands for its
    // record (no two share one, checked above), so counting the groups counts the
    // holders without a distinct count per key.
    let usable = folder.0.join("usable");
    let rows = copy_to(
        &ctx,
        &format!(
            "SELECT key_hi, key_lo, min(node) AS first, count(*) AS holders \
             FROM (SELECT key_hi, key_lo, node, bool_or(junk) AS junk FROM keys \
                   WHERE key_hi IS NOT NULL GROUP BY key_hi, key_lo, node) \
             GROUP BY key_hi, key_lo HAVING NOT bool_or(junk) AND count(*) <= {max}"
        ),
        &usable,
    )
    .await?;
    step(&started, "usable keys written", rows);
    if !register_written(&ctx, "usable", &usable, rows).await? {
        ctx.sql(
            "CREATE VIEW usable AS SELECT key_hi, key_lo, CAST(NULL AS BIGINT) AS first, \
             CAST(NULL AS BIGINT) AS holders FROM keys WHERE false",
        )
        .await?;
    }

    // 2. Edges: each usable key's holders to its smallest node, and the link overrides.
    let links = link_edges(&ctx, &overrides, &folder.0).await?;
    let edges = folder.0.join("edges-0");
    let mut edges_sql = "SELECT DISTINCT k.node AS src, u.first AS dst FROM keys k \
         JOIN usable u ON k.key_hi = u.key_hi AND k.key_lo = u.key_lo \
         WHERE u.holders > 1 AND k.node <> u.first"
        .to_string();
    if links {
        edges_sql = format!(
            "SELECT DISTINCT src, dst FROM ({edges_sql} UNION ALL SELECT src, dst FROM links)"
        );
    }
    let mut current = write_edges(&ctx, &mut stats, "edges_0", &edges_sql, &edges)
        .await?
        .then(|| "edges_0".to_string());
    step(&started, "first edges written", stats.edges_written);

    // 3. Large-star / small-star until every edge points at a root.
    while let Some(e) = current.clone() {
        // Settled when every node has at most one edge, to a node that has none: each
        // component is then a star around its smallest node.
        let (chained, forked) = two_counts(
            &ctx,
            &format!(
                "SELECT x.chained, y.forked FROM \
                   (SELECT count(*) AS chained FROM {e} a JOIN {e} b ON a.dst = b.src) x \
                 CROSS JOIN (SELECT count(*) AS forked FROM \
                   (SELECT src FROM {e} GROUP BY src HAVING count(*) > 1)) y"
            ),
        )
        .await?;
        if chained == 0 && forked == 0 {
            break;
        }
        if stats.rounds == MAX_ROUNDS {
            return Err(user_error(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                format!("oneid on the cluster: components not settled after {MAX_ROUNDS} rounds"),
            ));
        }
        stats.rounds += 1;
        let r = stats.rounds;
        let neighbours =
            "SELECT src AS u, dst AS v FROM {e} UNION ALL SELECT dst AS u, src AS v FROM {e}";
        let large = format!(
            "WITH n AS ({}), m AS (SELECT u, least(u, min(v)) AS m FROM n GROUP BY u) \
             SELECT DISTINCT n.v AS src, m.m AS dst FROM n JOIN m ON n.u = m.u \
             WHERE n.v > n.u AND n.v <> m.m",
            neighbours.replace("{e}", &e)
        );
        let large_name = format!("large_{r}");
        let large_path = folder.0.join(&large_name);
        if !write_edges(&ctx, &mut stats, &large_name, &large, &large_path).await? {
            // Each edge (v, u) gives (v, m(u)) with m(u) <= u < v: never none.
            return Err(DataFusionError::Internal(
                "oneid on the cluster: large-star wrote no edges".into(),
            ));
        }
        let small = format!(
            "WITH n AS ({}), m AS (SELECT u, min(v) AS m FROM n WHERE v < u GROUP BY u) \
             SELECT DISTINCT src, dst FROM ( \
               SELECT n.v AS src, m.m AS dst FROM n JOIN m ON n.u = m.u \
               WHERE n.v < n.u AND n.v <> m.m \
               UNION ALL SELECT u AS src, m AS dst FROM m)",
            neighbours.replace("{e}", &large_name)
        );
        let small_name = format!("small_{r}");
        let small_path = folder.0.join(&small_name);
        current = write_edges(&ctx, &mut stats, &small_name, &small, &small_path)
            .await?
            .then_some(small_name);
        step(&started, &format!("round {r} done"), stats.edges_written);
    }

    // 4. Parts: usable rows by component, resolved whole components at a time.
    let labels = match &current {
        Some(e) => format!("SELECT src AS node, dst AS label FROM {e}"),
        None => "SELECT CAST(NULL AS BIGINT) AS node, CAST(NULL AS BIGINT) AS label WHERE false"
            .to_string(),
    };
    let parts = ctx
        .sql(&format!(
            "WITH labels AS ({labels}) \
             SELECT coalesce(l.label, k.node) AS part, k.record_id, \
                    CASE WHEN u.first IS NULL THEN NULL ELSE k.id_type END AS id_type, \
                    CASE WHEN u.first IS NULL THEN NULL ELSE k.id_value END AS id_value \
             FROM keys k LEFT JOIN usable u ON k.key_hi = u.key_hi AND k.key_lo = u.key_lo \
                         LEFT JOIN labels l ON k.node = l.node \
             ORDER BY part"
        ))
        .await?;
    let mut stream = parts.execute_stream().await?;
    let mut resolution = PartwiseResolution::new(settings.resolver().clone(), overrides);
    let mut chunk = PartRows::default();
    let mut last_part: Option<i64> = None;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if last_part.is_none() {
            step(&started, "parts streaming", batch.num_rows() as u64);
        }
        let part = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| DataFusionError::Internal("oneid: part is not bigint".into()))?;
        let (records, types, values) = (
            super::table::text(&batch, 1)?,
            super::table::text(&batch, 2)?,
            super::table::text(&batch, 3)?,
        );
        for i in 0..batch.num_rows() {
            let p = part.value(i);
            if last_part != Some(p) && chunk.len() >= PART_ROWS {
                resolution = resolve_part(resolution, std::mem::take(&mut chunk)).await?;
                stats.parts += 1;
            }
            last_part = Some(p);
            let identifier = (!types.is_null(i) && !values.is_null(i))
                .then(|| (types.value(i), values.value(i)));
            chunk.push(records.value(i), identifier);
        }
    }
    if chunk.len() > 0 {
        resolution = resolve_part(resolution, chunk).await?;
        stats.parts += 1;
    }
    step(&started, "parts resolved", stats.parts as u64);
    let rows = input::blocking(move || resolution.finish(&previous)).await?;
    stats.bytes_written = folder_bytes(&folder.0);
    tracing::info!(
        "oneid on the cluster: {} records in {:.3} s; {} rounds, {} edges written, {} parts, \
         {} bytes written",
        rows.len(),
        started.elapsed().as_secs_f64(),
        stats.rounds,
        stats.edges_written,
        stats.parts,
        stats.bytes_written,
    );
    Ok(rows)
}

/// Logs a step of the run (debug): how far into the call, and a count of what it wrote.
fn step(started: &std::time::Instant, what: &str, count: u64) {
    tracing::debug!(
        at_s = started.elapsed().as_secs_f64(),
        count,
        "oneid on the cluster: {what}"
    );
}

/// The rows of one part, their text kept in one buffer.
#[derive(Default)]
struct PartRows {
    text: String,
    /// Per row: where its record id, type and value end in `text` (type and value
    /// absent for a record without a usable identifier).
    rows: Vec<(usize, Option<(usize, usize)>)>,
}

impl PartRows {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn push(&mut self, record: &str, identifier: Option<(&str, &str)>) {
        self.text.push_str(record);
        let r = self.text.len();
        let id = identifier.map(|(t, v)| {
            self.text.push_str(t);
            let t_end = self.text.len();
            self.text.push_str(v);
            (t_end, self.text.len())
        });
        self.rows.push((r, id));
    }

    fn iter(&self) -> impl Iterator<Item = (&str, Option<(&str, &str)>)> + '_ {
        let mut start = 0usize;
        self.rows.iter().map(move |&(r, id)| {
            let record = &self.text[start..r];
            let identifier = id.map(|(t, v)| (&self.text[r..t], &self.text[t..v]));
            start = id.map_or(r, |(_, v)| v);
            (record, identifier)
        })
    }
}

async fn resolve_part(
    mut resolution: PartwiseResolution,
    rows: PartRows,
) -> Result<PartwiseResolution> {
    input::blocking(move || resolution.add_part(rows.iter()).map(|()| resolution))
        .await?
        .map_err(super::table::oneid_error)
}

/// The input as the rounds read it: its columns nullable, and its plan opaque to the
/// statements over it. Planned inline (a view), the input's union of a channel with
/// `NULL` columns reached the keys statement with a column taken as never `NULL`, and
/// writing it failed.
#[derive(Debug)]
struct InputTable {
    frame: datafusion::dataframe::DataFrame,
    schema: datafusion::arrow::datatypes::SchemaRef,
}

impl InputTable {
    fn new(frame: datafusion::dataframe::DataFrame) -> Self {
        let fields: Vec<Field> = frame
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        InputTable {
            frame,
            schema: Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
        }
    }
}

#[async_trait::async_trait]
impl datafusion::catalog::TableProvider for InputTable {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[datafusion::logical_expr::Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        // Planned as a part of the statement over it, not sent to the cluster on its
        // own: that statement then goes whole (the keys are made on the executors).
        let state = input::state_of(state)?;
        let logical = state.optimize(self.frame.logical_plan())?;
        let plan = DefaultPhysicalPlanner::default()
            .create_physical_plan(&logical, state)
            .await?;
        let columns = projection
            .cloned()
            .unwrap_or_else(|| (0..self.schema.fields().len()).collect());
        let exprs: Vec<(Arc<dyn datafusion::physical_expr::PhysicalExpr>, String)> = columns
            .iter()
            .map(|&i| {
                let name = self.schema.field(i).name().clone();
                let column: Arc<dyn datafusion::physical_expr::PhysicalExpr> = Arc::new(
                    datafusion::physical_expr::expressions::Column::new(&name, i),
                );
                (column, name)
            })
            .collect();
        Ok(Arc::new(
            datafusion::physical_plan::projection::ProjectionExec::try_new(exprs, plan)?,
        ))
    }
}

/// A context with the calling session's functions, settings and planner (so its
/// statements run on the cluster) and a catalog of its own for the rounds' tables.
fn scratch_context(session: &dyn Session) -> Result<SessionContext> {
    let state = input::state_of(session)?;
    let catalogs = Arc::new(MemoryCatalogProviderList::new());
    let state = SessionStateBuilder::new_from_existing(state.clone())
        .with_catalog_list(catalogs)
        .build();
    let options = state.config().options();
    let (catalog, schema) = (
        options.catalog.default_catalog.clone(),
        options.catalog.default_schema.clone(),
    );
    let ctx = SessionContext::new_with_state(state);
    let provider = Arc::new(MemoryCatalogProvider::new());
    provider.register_schema(
        &schema,
        Arc::new(datafusion::catalog::MemorySchemaProvider::new()),
    )?;
    ctx.register_catalog(catalog, provider);
    Ok(ctx)
}

/// Writes `query`'s rows to Parquet files in the folder `path` (by the executors, when
/// the query runs on the cluster); returns the row count.
async fn copy_to(ctx: &SessionContext, query: &str, path: &Path) -> Result<u64> {
    let target = format!("{}/", path.display()).replace('\'', "''");
    let batches = ctx
        .sql(&format!("COPY ({query}) TO '{target}' STORED AS PARQUET"))
        .await?
        .collect()
        .await?;
    Ok(batches
        .iter()
        .filter_map(|b| b.column(0).as_any().downcast_ref::<UInt64Array>())
        .flat_map(|a| a.iter().flatten())
        .sum())
}

/// Writes one round's edges (`query`) to `path`, counts them, and registers them as
/// `name`; `false` when there are none.
async fn write_edges(
    ctx: &SessionContext,
    stats: &mut ClusterStats,
    name: &str,
    query: &str,
    path: &Path,
) -> Result<bool> {
    let written = copy_to(ctx, query, path).await?;
    stats.edges_written += written;
    register_written(ctx, name, path, written).await
}

/// Registers the Parquet folder `path`, where `rows` rows were written, as `name`;
/// `false` when there are none (nothing to read, perhaps not even a file).
async fn register_written(
    ctx: &SessionContext,
    name: &str,
    path: &Path,
    rows: u64,
) -> Result<bool> {
    if rows == 0 {
        return Ok(false);
    }
    ctx.register_parquet(
        name,
        &format!("{}/", path.display()),
        ParquetReadOptions::default(),
    )
    .await?;
    Ok(true)
}

/// The first row's two integer columns.
async fn two_counts(ctx: &SessionContext, sql: &str) -> Result<(i64, i64)> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let value = |c: usize| -> i64 {
        batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .and_then(|b| ScalarValue::try_from_array(b.column(c), 0).ok())
            .and_then(|v| v.cast_to(&DataType::Int64).ok())
            .and_then(|v| match v {
                ScalarValue::Int64(x) => x,
                _ => None,
            })
            .unwrap_or(0)
    };
    Ok((value(0), value(1)))
}

/// Writes the link overrides as edges (`links`); `false` when there are none.
async fn link_edges(
    ctx: &SessionContext,
    overrides: &[(String, String, OverrideAction)],
    folder: &Path,
) -> Result<bool> {
    let mut src = Int64Builder::new();
    let mut dst = Int64Builder::new();
    for (a, b, action) in overrides {
        let (na, nb) = (node_of(a), node_of(b));
        if *action == OverrideAction::Link && na != nb {
            src.append_value(na.max(nb));
            dst.append_value(na.min(nb));
        }
    }
    let (src, dst) = (src.finish(), dst.finish());
    if src.is_empty() {
        return Ok(false);
    }
    let batch = RecordBatch::try_from_iter([
        ("src", Arc::new(src) as ArrayRef),
        ("dst", Arc::new(dst) as ArrayRef),
    ])?;
    let rows = batch.num_rows() as u64;
    let path = folder.join("links");
    ctx.read_batch(batch)?
        .write_parquet(
            &format!("{}/", path.display()),
            datafusion::dataframe::DataFrameWriteOptions::new(),
            None,
        )
        .await?;
    register_written(ctx, "links", &path, rows).await
}

/// A record's node: its stable hash ([`record_hash`]) as a `bigint` in the same order
/// (the top bit flipped), so the smallest node of a customer is its anchor.
pub fn node_of(record_id: &str) -> i64 {
    (record_hash(record_id) ^ (1 << 63)) as i64
}

/// The 128-bit digest a linking key travels as: the first 16 bytes of the SHA-256 of
/// its text, as two `bigint`s. Two keys share one by chance with odds near n²/2¹²⁹
/// (10⁻²¹ at 10⁹ keys); grouping and joining two integers moves and hashes a fifth of
/// the bytes of the 70-character text.
fn key_digest(key: &str) -> (i64, i64) {
    let digest = Sha256::digest(key.as_bytes());
    let half = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[at..at + 8]);
        i64::from_be_bytes(bytes)
    };
    (half(0), half(8))
}

/// `oneid_row(record_id, id_type, id_value)`: the row as OneID on a cluster writes it,
/// struct(record_id, node, id_type, id_value, key_hi, key_lo, junk) — the linking key
/// ([`RowKeys::key_into`]) as its [`key_digest`], NULL with `junk` when the value does
/// not normalise. Every field is plain text or number and nullable (so no plan can take
/// a column of it for one that holds no NULL). Registered on every node for the
/// statements of a run, not listed among the documented functions (`\df`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct OneIdRow {
    signature: Signature,
}

fn row_fields() -> Fields {
    Fields::from(vec![
        Field::new("record_id", DataType::Utf8, true),
        Field::new("node", DataType::Int64, true),
        Field::new("id_type", DataType::Utf8, true),
        Field::new("id_value", DataType::Utf8, true),
        Field::new("key_hi", DataType::Int64, true),
        Field::new("key_lo", DataType::Int64, true),
        Field::new("junk", DataType::Boolean, true),
    ])
}

impl ScalarUDFImpl for OneIdRow {
    fn name(&self) -> &str {
        "oneid_row"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(row_fields()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let texts: Vec<StringArray> = args
            .args
            .iter()
            .map(|a| {
                let a = a.to_array(rows)?;
                let a = datafusion::arrow::compute::cast(&a, &DataType::Utf8)?;
                a.as_any()
                    .downcast_ref::<StringArray>()
                    .cloned()
                    .ok_or_else(|| DataFusionError::Internal("not text".into()))
            })
            .collect::<Result<_>>()?;
        let settings = args
            .config_options
            .extensions
            .get::<UserqlSettings>()
            .cloned()
            .unwrap_or_default();
        let resolver = OneIdSettings::from_session(&settings)?.resolver().clone();
        let mut keys = RowKeys::new(&resolver);
        let (ids, types, values) = (&texts[0], &texts[1], &texts[2]);
        let mut key_hi = Int64Builder::with_capacity(rows);
        let mut key_lo = Int64Builder::with_capacity(rows);
        let mut junk_col = BooleanBuilder::with_capacity(rows);
        let mut key = String::with_capacity(80);
        for i in 0..rows {
            let junk = (!types.is_null(i) && !values.is_null(i))
                .then(|| keys.key_into(types.value(i), values.value(i), &mut key))
                .flatten();
            match junk {
                Some(junk) => {
                    let (hi, lo) = key_digest(&key);
                    key_hi.append_value(hi);
                    key_lo.append_value(lo);
                    junk_col.append_value(junk);
                }
                None => {
                    key_hi.append_null();
                    key_lo.append_null();
                    junk_col.append_null();
                }
            }
        }
        let nodes: Int64Array = (0..rows)
            .map(|i| (!ids.is_null(i)).then(|| node_of(ids.value(i))))
            .collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(ids.clone()),
            Arc::new(nodes),
            Arc::new(types.clone()),
            Arc::new(values.clone()),
            Arc::new(key_hi.finish()),
            Arc::new(key_lo.finish()),
            Arc::new(junk_col.finish()),
        ];
        let array = StructArray::try_new(row_fields(), columns, None)?;
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

/// Registers `oneid_row`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(OneIdRow {
        signature: Signature::uniform(3, vec![DataType::Utf8], Volatility::Stable),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_keep_the_hash_order() {
        let mut ids: Vec<String> = (0..1000).map(|i| format!("r{i}")).collect();
        ids.sort_by_key(|r| record_hash(r));
        let nodes: Vec<i64> = ids.iter().map(|r| node_of(r)).collect();
        assert!(nodes.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_raw_value_and_its_hash_share_a_key() {
        let mut keys = RowKeys::new(&Default::default());
        let (mut a, mut b) = (String::new(), String::new());
        let hashed = super::super::normalize::hash_id("phone", "13800138000", Default::default())
            .unwrap_or_default();
        assert_eq!(keys.key_into("Phone", "138 0013 8000", &mut a), Some(false));
        assert_eq!(
            keys.key_into("phone_sha256", &hashed.to_uppercase(), &mut b),
            Some(false)
        );
        assert_eq!(a, b);
        assert_eq!(keys.key_into("phone", "not a phone", &mut a), None);
        assert_eq!(keys.key_into("device_id", "00000000", &mut a), Some(true));
    }
}

#[cfg(test)]
mod part_rows_tests {
    use super::PartRows;

    #[test]
    fn rows_come_back_as_pushed() {
        let mut rows = PartRows::default();
        rows.push("a", Some(("phone", "1")));
        rows.push("b", None);
        rows.push("c", Some(("email", "x@y")));
        rows.push("c", None);
        let back: Vec<_> = rows.iter().collect();
        assert_eq!(
            back,
            vec![
                ("a", Some(("phone", "1"))),
                ("b", None),
                ("c", Some(("email", "x@y"))),
                ("c", None)
            ]
        );
    }
}
