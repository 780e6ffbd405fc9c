//! Runs every `tests/slt/*.slt` file through the wire protocol (tokio-postgres, simple
//! query protocol, text results), so a test file reads like a psql session.
//!
//! Errors are reported as `SQLSTATE: message`, so `statement error 42P01` checks the code.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};
use tokio_postgres::SimpleQueryMessage;

use crate::support;

/// An error as the slt file sees it.
#[derive(Debug)]
pub struct WireError(String);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

impl From<tokio_postgres::Error> for WireError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => WireError(format!("{}: {}", db.code().code(), db.message())),
            None => WireError(e.to_string()),
        }
    }
}

/// The server a test file runs against; `RESTART SERVER` replaces it with a new one on
/// the same config and data dir.
type ServerSlot = Arc<std::sync::Mutex<Option<support::Running>>>;

/// One wire connection.
pub struct Wire {
    client: Option<tokio_postgres::Client>,
    server: ServerSlot,
    config: userql::config::Config,
}

async fn connect(addr: std::net::SocketAddr) -> Result<tokio_postgres::Client, WireError> {
    let conn = format!(
        "host={} port={} user=analyst dbname=userql",
        addr.ip(),
        addr.port()
    );
    let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

impl Wire {
    /// Stop the server (after closing this connection) and start a new one on the same
    /// data dir: what the files wrote must all be back.
    async fn restart(&mut self) -> Result<(), WireError> {
        self.client = None;
        let server = self.server.clone();
        let config = self.config.clone();
        let addr = tokio::task::spawn_blocking(move || {
            let mut slot = server.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(old) = slot.take() {
                old.stop();
            }
            let new = support::start(config);
            let addr = new.addr;
            *slot = Some(new);
            addr
        })
        .await
        .map_err(|e| WireError(e.to_string()))?;
        self.client = Some(connect(addr).await?);
        Ok(())
    }
}

#[async_trait]
impl AsyncDB for Wire {
    type Error = WireError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, WireError> {
        if sql.trim().eq_ignore_ascii_case("RESTART SERVER") {
            self.restart().await?;
            return Ok(DBOutput::StatementComplete(0));
        }
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| WireError("not connected".into()))?;
        let messages = client.simple_query(sql).await?;
        let mut rows = Vec::new();
        let mut columns = None;
        let mut count = 0;
        for m in messages {
            match m {
                SimpleQueryMessage::RowDescription(cols) => columns = Some(cols.len()),
                SimpleQueryMessage::Row(r) => {
                    columns.get_or_insert(r.len());
                    rows.push(
                        (0..r.len())
                            .map(|i| match r.get(i) {
                                None => "NULL".to_string(),
                                Some("") => "(empty)".to_string(),
                                Some(v) => v.to_string(),
                            })
                            .collect(),
                    );
                }
                SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(count),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "userql"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await
    }
}

pub fn slt_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    files
}

/// Each file runs against a server of its own, so files cannot disturb each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files() {
    let failures = run_files(&slt_files(), support::demo_config).await;
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Runs `files`, each against a fresh server for `config()`; the failures.
pub async fn run_files(
    files: &[PathBuf],
    config: impl Fn() -> userql::config::Config,
) -> Vec<String> {
    assert!(!files.is_empty(), "no .slt files found");
    let mut failures = Vec::new();
    for file in files {
        let config = config();
        let server: ServerSlot =
            Arc::new(std::sync::Mutex::new(Some(support::start(config.clone()))));
        let slot = server.clone();
        let mut runner = sqllogictest::Runner::new(move || {
            let server = slot.clone();
            let config = config.clone();
            async move {
                let addr = server
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .map(|s| s.addr)
                    .ok_or_else(|| WireError("server stopped".into()))?;
                let client = connect(addr).await?;
                Ok::<_, WireError>(Wire {
                    client: Some(client),
                    server,
                    config,
                })
            }
        });
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}:\n{e}", file.display()));
        }
        drop(runner);
        let last = server.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(s) = last {
            s.stop();
        }
    }
    failures
}
