//! Channels: the configured sources of customer records, registered as `channels.<name>`.
//!
//! A channel is a CSV / Parquet / NDJSON file, folder or glob, or a Delta table. The
//! schema of a CSV or NDJSON channel is inferred, then every identifier column is forced
//! to text: an inferred `Int64` would turn the junk phone `00000000000` into `0` and drop
//! the leading zeros of member numbers. Parquet and Delta declare their types, which are
//! kept (a `bigint` key stays a `bigint`, grouped and joined as one).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::SessionState;

use super::channel_cache::{CachedChannel, ChannelFiles};
use crate::config::{ChannelConfig, ChannelFormat, Config};

/// Why a channel could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The path matches nothing.
    #[error("channel {channel}: path {path} does not exist or matches no files")]
    Missing { channel: String, path: String },
    /// The files could not be read or their schema inferred.
    #[error("channel {channel}: cannot read {path}: {message}")]
    Unreadable {
        channel: String,
        path: String,
        message: String,
    },
    /// A mapped column is not in the channel's files.
    #[error(
        "channel {channel}: {key} names column {column:?}, which is not in {path} (columns: {available})"
    )]
    MissingColumn {
        channel: String,
        key: String,
        column: String,
        path: String,
        available: String,
    },
}

/// A registered channel: its config and its table.
#[derive(Debug, Clone)]
pub struct Channel {
    /// The channel's config entry.
    pub config: ChannelConfig,
    /// The table provider behind `channels.<name>`.
    pub table: Arc<dyn TableProvider>,
}

/// Open every channel of the config.
pub async fn open_all(config: &Config, state: &SessionState) -> Result<Vec<Channel>, ChannelError> {
    let mut out = Vec::with_capacity(config.channels.len());
    for ch in &config.channels {
        let table = open(config, ch, state).await?;
        check_columns(ch, &table.schema(), &ch.path)?;
        out.push(Channel {
            config: ch.clone(),
            table,
        });
    }
    Ok(out)
}

async fn open(
    config: &Config,
    ch: &ChannelConfig,
    state: &SessionState,
) -> Result<Arc<dyn TableProvider>, ChannelError> {
    let full = config.resolve(&ch.path);
    let full_str = full.to_string_lossy().to_string();
    let unreadable = |message: String| ChannelError::Unreadable {
        channel: ch.name.clone(),
        path: ch.path.clone(),
        message,
    };
    let is_glob = full_str.contains(['*', '?', '[']);
    if !is_glob && !full.exists() {
        return Err(ChannelError::Missing {
            channel: ch.name.clone(),
            path: full_str,
        });
    }
    let format = ch
        .format
        .or_else(|| ChannelFormat::from_path(&ch.path))
        .or_else(|| {
            full.join("_delta_log")
                .is_dir()
                .then_some(ChannelFormat::Delta)
        })
        .ok_or_else(|| unreadable("unknown format; set format in the channel".into()))?;

    if format == ChannelFormat::Delta {
        return open_delta(&full, state).await.map_err(unreadable);
    }

    let (file_format, ext): (Arc<dyn FileFormat>, &str) = match format {
        ChannelFormat::Csv => (
            Arc::new(CsvFormat::default().with_has_header(true)),
            if full_str.ends_with(".gz") {
                ".csv.gz"
            } else {
                ".csv"
            },
        ),
        ChannelFormat::Parquet => (Arc::new(ParquetFormat::default()), ".parquet"),
        ChannelFormat::Ndjson => (Arc::new(JsonFormat::default()), ndjson_extension(&full_str)),
        ChannelFormat::Delta => unreachable!("handled above"),
    };
    // A folder takes every file with the format's extension; a file or glob is used as is.
    let url_text = if full.is_dir() && !full_str.ends_with('/') {
        format!("{full_str}/")
    } else {
        full_str.clone()
    };
    let url = ListingTableUrl::parse(&url_text).map_err(|e| unreadable(e.to_string()))?;
    let extension = if full.is_dir() { ext } else { "" };
    let options = ListingOptions::new(file_format).with_file_extension(extension);
    let inferred = match options.infer_schema(state, &url).await {
        Ok(schema) => schema,
        // A malformed row should fail the queries that read it (22P04), not the whole
        // server: fall back to the header with every column as text.
        Err(e) if format == ChannelFormat::Csv => {
            let header = csv_header(&full, &url_text).map_err(|_| unreadable(e.to_string()))?;
            tracing::warn!(
                channel = %ch.name,
                "cannot infer column types ({}); reading every column as text",
                crate::error::UserqlError::from(e).message
            );
            Arc::new(Schema::new(
                header
                    .into_iter()
                    .map(|name| Field::new(name, DataType::Utf8, true))
                    .collect::<Vec<_>>(),
            ))
        }
        Err(e) => return Err(unreadable(e.to_string())),
    };
    if inferred.fields().is_empty() {
        return Err(ChannelError::Missing {
            channel: ch.name.clone(),
            path: full_str,
        });
    }
    let schema = match format {
        ChannelFormat::Csv | ChannelFormat::Ndjson => {
            with_text_columns(&inferred, &ch.text_columns())
        }
        _ => inferred,
    };
    let table_config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(table_config).map_err(|e| unreadable(e.to_string()))?;
    let listing = if is_glob {
        ChannelFiles::Glob(full_str)
    } else if full.is_dir() {
        ChannelFiles::Folder {
            dir: full.clone(),
            extension: ext.to_string(),
        }
    } else {
        ChannelFiles::File(full.clone())
    };
    // On a cluster the executors read the files: data cached here would travel inside
    // every plan instead.
    let cache_bytes = match config.cluster.scheduler {
        Some(_) => 0,
        None => config.server.channel_cache_mb.saturating_mul(1 << 20),
    };
    Ok(Arc::new(CachedChannel::new(
        Arc::new(table),
        listing,
        cache_bytes,
    )))
}

/// The header row of a CSV channel (its first file when it is a folder or glob).
fn csv_header(full: &std::path::Path, pattern: &str) -> std::io::Result<Vec<String>> {
    use std::io::BufRead;
    let first = if full.is_file() {
        full.to_path_buf()
    } else {
        let pat = if full.is_dir() {
            format!("{}/*.csv", full.display())
        } else {
            pattern.to_string()
        };
        glob::glob(&pat)
            .map_err(std::io::Error::other)?
            .filter_map(Result::ok)
            .find(|p| p.is_file())
            .ok_or_else(|| std::io::Error::other("no files"))?
    };
    let mut line = String::new();
    std::io::BufReader::new(std::fs::File::open(first)?).read_line(&mut line)?;
    let mut reader = csv_line_fields(line.trim_end_matches(['\n', '\r']));
    reader.retain(|f| !f.is_empty());
    Ok(reader)
}

/// Split one CSV line into fields (RFC 4180 quoting).
fn csv_line_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

fn ndjson_extension(path: &str) -> &'static str {
    if path.ends_with(".jsonl") {
        ".jsonl"
    } else if path.ends_with(".json") {
        ".json"
    } else {
        ".ndjson"
    }
}

async fn open_delta(
    path: &std::path::Path,
    state: &SessionState,
) -> Result<Arc<dyn TableProvider>, String> {
    let abs = std::fs::canonicalize(path).map_err(|e| e.to_string())?;
    let url = url::Url::from_directory_path(&abs)
        .map_err(|_| format!("{} is not a usable directory path", abs.display()))?;
    let table = deltalake::open_table(url)
        .await
        .map_err(|e| e.to_string())?;
    table
        .update_datafusion_session(state)
        .map_err(|e| e.to_string())?;
    table.table_provider().await.map_err(|e| e.to_string())
}

/// The inferred schema with the named columns changed to `Utf8`.
fn with_text_columns(schema: &Schema, text_columns: &[&str]) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if text_columns.contains(&f.name().as_str()) && f.data_type() != &DataType::Utf8 {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Every mapped column must exist: a typo in the config is reported at start, naming it.
fn check_columns(ch: &ChannelConfig, schema: &SchemaRef, path: &str) -> Result<(), ChannelError> {
    for (key, column) in ch.mapped_columns() {
        if schema.field_with_name(column).is_err() {
            return Err(ChannelError::MissingColumn {
                channel: ch.name.clone(),
                key,
                column: column.to_string(),
                path: path.to_string(),
                available: schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_header_fields() {
        assert_eq!(
            csv_line_fields("a,\"b,c\",\"d\"\"e\""),
            vec!["a", "b,c", "d\"e"]
        );
    }

    #[test]
    fn text_columns_are_forced() {
        let schema = Schema::new(vec![
            Field::new("phone", DataType::Int64, true),
            Field::new("amount", DataType::Float64, true),
        ]);
        let out = with_text_columns(&schema, &["phone"]);
        assert_eq!(out.field(0).data_type(), &DataType::Utf8);
        assert_eq!(out.field(1).data_type(), &DataType::Float64);
    }
}
