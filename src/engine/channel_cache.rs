//! Small channel files kept decoded in memory.
//!
//! A channel is a file (or folder, or glob) read through DataFusion's `ListingTable`,
//! which lists, opens and parses the files again for every query. For a dashboard's
//! point lookup on a 1000-row CSV that re-read is most of the statement's cost. A
//! [`CachedChannel`] keeps the decoded batches of a channel whose files together are no
//! larger than `[server] channel_cache_mb`, and serves scans from memory while the files
//! are unchanged: every scan lists them again and compares each one's path, length and
//! modification time with what was read, so an edited, added or removed file is read
//! afresh by the next query — the cache never answers from data the files no longer hold.
//! Larger channels are scanned from the files as before.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Result, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

/// Which files a channel reads, as its config names them.
#[derive(Debug, Clone)]
pub enum ChannelFiles {
    /// One file.
    File(PathBuf),
    /// Every file under a folder whose name ends with the extension.
    Folder { dir: PathBuf, extension: String },
    /// The files a glob pattern matches.
    Glob(String),
}

/// One file as last seen: what a change to it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

impl ChannelFiles {
    /// The files now, sorted by path; `None` when they cannot be listed (the scan then
    /// goes to the files and reports what is wrong).
    fn stamps(&self) -> Option<Vec<FileStamp>> {
        let mut paths = Vec::new();
        match self {
            ChannelFiles::File(path) => paths.push(path.clone()),
            ChannelFiles::Folder { dir, extension } => {
                collect_files(dir, extension, &mut paths).ok()?;
            }
            ChannelFiles::Glob(pattern) => {
                for entry in glob::glob(pattern).ok()? {
                    let path = entry.ok()?;
                    if path.is_file() {
                        paths.push(path);
                    }
                }
            }
        }
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let meta = std::fs::metadata(&path).ok()?;
                Some(FileStamp {
                    len: meta.len(),
                    modified: meta.modified().ok(),
                    path,
                })
            })
            .collect()
    }
}

fn collect_files(dir: &Path, extension: &str, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(&path, extension, out)?;
        } else if path.to_string_lossy().ends_with(extension) {
            out.push(path);
        }
    }
    Ok(())
}

/// Decoded rows and the files they were read from.
struct Decoded {
    stamps: Vec<FileStamp>,
    batches: Arc<Vec<RecordBatch>>,
}

/// A channel's files as a scan of them saw them ([`CachedChannel::data_stamp`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelStamp(Vec<FileStamp>);

impl ChannelStamp {
    /// The files' total size.
    pub fn bytes(&self) -> u64 {
        self.0.iter().map(|s| s.len).sum()
    }
}

/// A channel's file table, answered from memory while its (small) files are unchanged.
pub struct CachedChannel {
    files: Arc<dyn TableProvider>,
    listing: ChannelFiles,
    max_bytes: u64,
    decoded: Mutex<Option<Arc<Decoded>>>,
}

impl std::fmt::Debug for CachedChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedChannel")
            .field("listing", &self.listing)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl CachedChannel {
    /// `files` (the table over the files) cached when they total at most `max_bytes`;
    /// `max_bytes == 0` turns caching off.
    pub fn new(files: Arc<dyn TableProvider>, listing: ChannelFiles, max_bytes: u64) -> Self {
        Self {
            files,
            listing,
            max_bytes,
            decoded: Mutex::new(None),
        }
    }

    /// What a scan planned now reads, to tell whether a scan planned before still reads
    /// the files as they are: their stamps, when they are small enough to keep in memory
    /// (the scan then serves rows decoded from exactly those files); `None` when the scan
    /// goes to the files, which it lists while it is planned.
    pub fn data_stamp(&self) -> Option<ChannelStamp> {
        if self.max_bytes == 0 {
            return None;
        }
        let stamps = self.listing.stamps()?;
        (stamps.iter().map(|s| s.len).sum::<u64>() <= self.max_bytes)
            .then_some(ChannelStamp(stamps))
    }

    /// The decoded rows of the files as they are now, reading them when they changed;
    /// `None` when they are too large to keep (or cannot be listed).
    async fn current(&self, state: &dyn Session) -> Result<Option<Arc<Decoded>>> {
        if self.max_bytes == 0 {
            return Ok(None);
        }
        let Some(stamps) = self.listing.stamps() else {
            return Ok(None);
        };
        if stamps.iter().map(|s| s.len).sum::<u64>() > self.max_bytes {
            return Ok(None);
        }
        let held = self.decoded.lock().ok().and_then(|d| d.clone());
        if let Some(held) = held.filter(|d| d.stamps == stamps) {
            return Ok(Some(held));
        }
        let plan = self.files.scan(state, None, &[], None).await?;
        let batches = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
        let decoded = Arc::new(Decoded {
            stamps,
            batches: Arc::new(batches),
        });
        // Kept only if no file changed while it was read: otherwise the rows may mix
        // the old and the new contents, good for this query's snapshot but not beyond.
        if self.listing.stamps().as_ref() == Some(&decoded.stamps)
            && let Ok(mut slot) = self.decoded.lock()
        {
            *slot = Some(decoded.clone());
        }
        Ok(Some(decoded))
    }
}

#[async_trait]
impl TableProvider for CachedChannel {
    fn schema(&self) -> SchemaRef {
        self.files.schema()
    }

    fn table_type(&self) -> TableType {
        self.files.table_type()
    }

    fn statistics(&self) -> Option<Statistics> {
        self.files.statistics()
    }

    /// Filters stay above the scan (the memory scan does not apply them); the file scan
    /// may still use them to skip data.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(crate::engine::kept_above(
            self.files.supports_filters_pushdown(filters)?,
        ))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(decoded) = self.current(state).await? else {
            return self.files.scan(state, projection, filters, limit).await;
        };
        let parts = state
            .config()
            .options()
            .execution
            .target_partitions
            .clamp(1, decoded.batches.len().max(1));
        // Contiguous runs of batches of about equal rows, in file order: a file logged in
        // time order reaches each partition in time order, and the customer functions
        // that gather a customer's rows from every partition then find them in time
        // order (partition by partition) without sorting.
        let rows: usize = decoded.batches.iter().map(|b| b.num_rows()).sum();
        let mut partitions = vec![Vec::new(); parts];
        let mut before = 0;
        for batch in decoded.batches.iter() {
            let part = (before * parts)
                .checked_div(rows)
                .unwrap_or(0)
                .min(parts - 1);
            partitions[part].push(batch.clone());
            before += batch.num_rows();
        }
        let source = MemorySourceConfig::try_new(&partitions, self.schema(), projection.cloned())?
            .with_limit(limit);
        Ok(datafusion::datasource::source::DataSourceExec::from_data_source(source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn cached_table(dir: &Path, max_bytes: u64) -> (SessionContext, Arc<CachedChannel>) {
        let ctx = SessionContext::new();
        let path = dir.join("c.csv");
        let url = datafusion::datasource::listing::ListingTableUrl::parse(path.to_str().unwrap())
            .unwrap();
        let options = datafusion::datasource::listing::ListingOptions::new(Arc::new(
            datafusion::datasource::file_format::csv::CsvFormat::default().with_has_header(true),
        ));
        let schema = options.infer_schema(&ctx.state(), &url).await.unwrap();
        let listing = datafusion::datasource::listing::ListingTable::try_new(
            datafusion::datasource::listing::ListingTableConfig::new(url)
                .with_listing_options(options)
                .with_schema(schema),
        )
        .unwrap();
        let table = Arc::new(CachedChannel::new(
            Arc::new(listing),
            ChannelFiles::File(path),
            max_bytes,
        ));
        ctx.register_table("c", table.clone()).unwrap();
        (ctx, table)
    }

    async fn total(ctx: &SessionContext) -> i64 {
        let batches = ctx
            .sql("SELECT sum(a) AS s FROM c WHERE a > 0")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .unwrap()
            .value(0)
    }

    #[tokio::test]
    async fn answers_from_memory_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.csv"), "a,b\n1,x\n2,y\n").unwrap();
        let (ctx, table) = cached_table(dir.path(), 1 << 20).await;
        assert_eq!(total(&ctx).await, 3);
        assert!(
            table.decoded.lock().unwrap().is_some(),
            "kept after the first read"
        );
        assert_eq!(total(&ctx).await, 3);
        // Same length, new contents: the modification time tells.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.path().join("c.csv"), "a,b\n5,x\n2,y\n").unwrap();
        assert_eq!(total(&ctx).await, 7);
        std::fs::write(dir.path().join("c.csv"), "a,b\n5,x\n2,y\n10,z\n").unwrap();
        assert_eq!(total(&ctx).await, 17);
    }

    #[tokio::test]
    async fn partitions_are_contiguous_runs_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let rows: String = (1..=100).map(|i| format!("{i},x\n")).collect();
        std::fs::write(dir.path().join("c.csv"), format!("a,b\n{rows}")).unwrap();
        let config = datafusion::prelude::SessionConfig::new()
            .with_batch_size(7)
            .with_target_partitions(3);
        let ctx = SessionContext::new_with_config(config);
        let (_, table) = cached_table(dir.path(), 1 << 20).await;
        ctx.register_table("c", table).unwrap();
        // Decoded on the first read; the second scan answers from memory.
        assert_eq!(
            ctx.sql("SELECT * FROM c")
                .await
                .unwrap()
                .count()
                .await
                .unwrap(),
            100
        );
        let plan = ctx
            .sql("SELECT a FROM c")
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let parts = datafusion::physical_plan::collect_partitioned(plan, ctx.task_ctx())
            .await
            .unwrap();
        let values: Vec<Vec<i64>> = parts
            .iter()
            .map(|batches| {
                batches
                    .iter()
                    .flat_map(|b| {
                        b.column(0)
                            .as_any()
                            .downcast_ref::<datafusion::arrow::array::Int64Array>()
                            .unwrap()
                            .values()
                            .to_vec()
                    })
                    .collect()
            })
            .collect();
        assert_eq!(values.len(), 3);
        // One after the other they are the file, and each holds about a third of it.
        assert_eq!(values.concat(), (1..=100).collect::<Vec<i64>>());
        for part in &values {
            assert!((28..=42).contains(&part.len()), "{} rows", part.len());
        }
    }

    #[tokio::test]
    async fn files_over_the_limit_are_read_each_time() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.csv"), "a,b\n1,x\n2,y\n").unwrap();
        let (ctx, table) = cached_table(dir.path(), 4).await;
        assert_eq!(total(&ctx).await, 3);
        assert!(table.decoded.lock().unwrap().is_none());
    }

    #[test]
    fn a_folder_lists_its_files_with_the_extension_recursively() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a.csv"), "x").unwrap();
        std::fs::write(dir.path().join("sub/b.csv"), "x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let listing = ChannelFiles::Folder {
            dir: dir.path().to_path_buf(),
            extension: ".csv".into(),
        };
        let names: Vec<_> = listing
            .stamps()
            .unwrap()
            .into_iter()
            .map(|s| s.path.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, ["a.csv", "b.csv"]);
    }
}
