//! Config and data mistakes: a clear message naming the key, column or file, a non-zero
//! exit for the CLI, an SQLSTATE for queries — and the server keeps serving.

use std::process::Command;

use userql::Engine;

use crate::support;

#[tokio::test]
async fn missing_channel_file_names_channel_and_path() {
    let dir = support::fresh_dir("missing");
    let config = support::config_in(
        &dir,
        "[[channels]]\nname = \"shop\"\npath = \"nowhere.csv\"\nrecord_key = \"id\"\n",
    );
    let err = Engine::open(config).await.unwrap_err().to_string();
    assert!(
        err.contains("channel shop") && err.contains("nowhere.csv"),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_mapped_column_is_named() {
    let dir = support::fresh_dir("column");
    std::fs::write(dir.join("a.csv"), "id,phone\n1,13800138000\n").unwrap();
    let config = support::config_in(
        &dir,
        "[[channels]]\nname = \"shop\"\npath = \"a.csv\"\nrecord_key = \"id\"\nids = { email = \"mail\" }\n",
    );
    let err = Engine::open(config).await.unwrap_err().to_string();
    assert!(
        err.contains("ids.email") && err.contains("\"mail\"") && err.contains("id, phone"),
        "{err}"
    );
}

#[tokio::test]
async fn identifier_columns_are_text_even_when_numeric() {
    let dir = support::fresh_dir("text");
    std::fs::write(dir.join("a.csv"), "id,phone,amount,ts\n1,00000000000,1.5,2025-01-01 10:00:00\n2,13800138000,2,2025-01-02 10:00:00\n").unwrap();
    let config = support::config_in(
        &dir,
        "[[channels]]\nname = \"shop\"\npath = \"a.csv\"\nrecord_key = \"id\"\nids = { phone = \"phone\" }\n[channels.orders]\nts = \"ts\"\namount = \"amount\"\n",
    );
    let engine = Engine::open(config).await.unwrap();
    let mut session = engine.session("t");
    let outcome = session
        .run("SELECT id_value FROM identities ORDER BY id_value")
        .await
        .unwrap();
    let userql::engine::session::Outcome::Rows(df) = outcome else {
        panic!("rows expected")
    };
    let batches = df.collect().await.unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(text.contains("00000000000"), "{text}");
}

#[tokio::test]
async fn malformed_csv_row_is_22p04_and_server_keeps_serving() {
    let dir = support::fresh_dir("malformed");
    std::fs::write(
        dir.join("a.csv"),
        "id,phone\n1,13800138000\n2,13800138001,unexpected,extra\n3,13800138002\n",
    )
    .unwrap();
    let mut config = support::config_in(
        &dir,
        "[[channels]]\nname = \"shop\"\npath = \"a.csv\"\nrecord_key = \"id\"\nids = { phone = \"phone\" }\n",
    );
    config.server.data_dir = dir.join("data");
    let server = support::start(config);
    let client = server.connect().await;
    let err = client
        .simple_query("SELECT * FROM channels.shop")
        .await
        .unwrap_err();
    let db = err.as_db_error().expect("a database error");
    assert_eq!(db.code().code(), "22P04", "{}", db.message());
    // another session, and the same one, still work
    let other = server.connect().await;
    other.simple_query("SELECT 1").await.unwrap();
    client.simple_query("SELECT 1").await.unwrap();
    drop((client, other));
    server.stop();
}

#[test]
fn cli_reports_config_errors_without_panicking() {
    let dir = support::fresh_dir("cli");
    let bad = dir.join("userql.toml");
    std::fs::write(&bad, "[server]\nlisten_on = \"x\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_userql"))
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("listen_on"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_userql"))
        .args(["serve", "--config"])
        .arg(dir.join("absent.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("absent.toml"), "{stderr}");
}
