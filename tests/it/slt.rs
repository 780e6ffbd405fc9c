//! Runs every `tests/slt/*.slt` file through the wire protocol (tokio-postgres, simple
//! query protocol, text results), so a test file reads like a psql session.
//!
//! Errors are reported as `SQLSTATE: message`, so `statement error 42P01` checks the code.

use std::path::PathBuf;

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

/// One wire connection.
pub struct Wire {
    client: tokio_postgres::Client,
}

#[async_trait]
impl AsyncDB for Wire {
    type Error = WireError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, WireError> {
        let messages = self.client.simple_query(sql).await?;
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

fn slt_files() -> Vec<PathBuf> {
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
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files found");
    let mut failures = Vec::new();
    for file in files {
        let server = support::start(support::demo_config());
        let addr = server.addr;
        let mut runner = sqllogictest::Runner::new(move || async move {
            let conn = format!(
                "host={} port={} user=analyst dbname=userql",
                addr.ip(),
                addr.port()
            );
            let (client, connection) =
                tokio_postgres::connect(&conn, tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok::<_, WireError>(Wire { client })
        });
        if let Err(e) = runner.run_file_async(&file).await {
            failures.push(format!("{}:\n{e}", file.display()));
        }
        drop(runner);
        server.stop();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
