//! What makes small statements fast must never make them wrong: a channel kept in memory
//! answers with what its files hold now, a statement kept planned answers as if planned
//! again, and INSERTs that share a commit all land, also after compaction and a restart.

use crate::support;

async fn total(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// The one value `sql` answers, as text (simple protocol).
async fn text_of(client: &tokio_postgres::Client, sql: &str) -> String {
    let rows = client.simple_query(sql).await.unwrap();
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .expect("a row")
}

/// Rewrite a file so that its modification time moves even on coarse clocks.
fn rewrite(path: &std::path::Path, contents: &str) {
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(path, contents).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_channel_answers_with_what_its_files_hold_now() {
    let dir = support::fresh_dir("channel-cache");
    std::fs::create_dir(dir.join("shop")).unwrap();
    std::fs::write(dir.join("pos.csv"), "member,amount\nm1,10\nm2,20\n").unwrap();
    std::fs::write(dir.join("shop/a.csv"), "member,amount\nm1,1\n").unwrap();
    let server = support::start(support::config_in(
        &dir,
        "[[channels]]\nname = \"pos\"\npath = \"pos.csv\"\nrecord_key = \"member\"\n\
         [[channels]]\nname = \"shop\"\npath = \"shop\"\nformat = \"csv\"\nrecord_key = \"member\"\n",
    ));
    let client = server.connect().await;
    let pos = "SELECT CAST(sum(amount) AS bigint) FROM channels.pos";
    let shop = "SELECT CAST(sum(amount) AS bigint) FROM channels.shop";
    assert_eq!(total(&client, pos).await, 30);
    assert_eq!(total(&client, pos).await, 30, "answered again, from memory");
    // Same length, other contents.
    rewrite(&dir.join("pos.csv"), "member,amount\nm1,70\nm2,20\n");
    assert_eq!(total(&client, pos).await, 90);
    rewrite(&dir.join("pos.csv"), "member,amount\nm1,70\nm2,20\nm3,5\n");
    assert_eq!(total(&client, pos).await, 95);
    // A folder channel: a file added, then one removed.
    assert_eq!(total(&client, shop).await, 1);
    std::fs::write(dir.join("shop/b.csv"), "member,amount\nm2,2\n").unwrap();
    assert_eq!(total(&client, shop).await, 3);
    std::fs::remove_file(dir.join("shop/a.csv")).unwrap();
    assert_eq!(total(&client, shop).await, 2);
    // A malformed edit is the query's error, and the fix is read again.
    rewrite(&dir.join("pos.csv"), "member,amount\nm1,70\nm2,abc,extra\n");
    assert!(client.query_one(pos, &[]).await.is_err());
    rewrite(&dir.join("pos.csv"), "member,amount\nm1,1\n");
    assert_eq!(total(&client, pos).await, 1);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_kept_planned_answers_as_if_planned_again() {
    let server = support::start(support::demo_config());
    let client = server.connect().await;
    // Pure: the same answer, whichever protocol and however often.
    for _ in 0..3 {
        let row = client.query_one("SELECT 2 AS two", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 2);
        assert_eq!(text_of(&client, "SELECT 40 + 2 AS x").await, "42");
    }
    // Not pure: now() moves between statements of one session.
    let now = "SELECT CAST(now() AS VARCHAR)";
    let first = text_of(&client, now).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_ne!(first, text_of(&client, now).await);
    // A setting changed between two runs of one statement is seen by the second.
    let setting = "SELECT current_setting('search_path')";
    let before = text_of(&client, setting).await;
    client
        .batch_execute("SET search_path = channels")
        .await
        .unwrap();
    let after = text_of(&client, setting).await;
    assert_ne!(before, after);
    assert!(after.contains("channels"), "{after}");
    // A table created after a statement first failed is found the next time.
    let sql = "SELECT count(*) FROM public.late";
    assert!(client.query_one(sql, &[]).await.is_err());
    client
        .batch_execute("CREATE TABLE public.late (n int); INSERT INTO public.late VALUES (1), (2)")
        .await
        .unwrap();
    assert_eq!(total(&client, sql).await, 2);
    server.stop();
}

/// A query that reads tables is kept planned by its text too: run again it reads the
/// rows as they are then, and anything another session changes in the catalog — a table
/// dropped and made again, a view replaced, a table renamed away — is planned again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_query_over_tables_follows_writes_and_catalog_changes() {
    let server = support::start(support::demo_config());
    let reader = server.connect().await;
    let writer = server.connect().await;
    writer
        .batch_execute("CREATE TABLE kept_t (n bigint); INSERT INTO kept_t VALUES (1), (2)")
        .await
        .unwrap();
    let sum = "SELECT CAST(sum(n) AS bigint) FROM kept_t";
    // Both protocols, each twice: the second run of each is the kept plan.
    for _ in 0..2 {
        assert_eq!(text_of(&reader, sum).await, "3");
        assert_eq!(total(&reader, sum).await, 3);
    }
    // Plans with run state shared between nodes (a TopK's bound pushed into the scan)
    // give every row again, whichever protocol and however often.
    let top = "SELECT n FROM kept_t ORDER BY n LIMIT 2";
    for _ in 0..3 {
        assert_eq!(text_of(&reader, top).await, "1");
        let rows = reader.query(top, &[]).await.unwrap();
        assert_eq!(
            rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>(),
            [1, 2]
        );
    }
    let joined = "SELECT CAST(count(*) AS bigint) FROM kept_t a JOIN kept_t b ON a.n = b.n";
    for _ in 0..3 {
        assert_eq!(total(&reader, joined).await, 2);
    }
    writer
        .batch_execute("INSERT INTO kept_t VALUES (3)")
        .await
        .unwrap();
    assert_eq!(text_of(&reader, sum).await, "6");
    assert_eq!(total(&reader, sum).await, 6);
    // Another table under the same name.
    writer
        .batch_execute(
            "DROP TABLE kept_t; CREATE TABLE kept_t (m bigint, n bigint); INSERT INTO kept_t VALUES (1, 10)",
        )
        .await
        .unwrap();
    assert_eq!(text_of(&reader, sum).await, "10");
    assert_eq!(total(&reader, sum).await, 10);
    // A view replaced.
    let through_view = "SELECT CAST(sum(n) AS bigint) FROM kept_v";
    writer
        .batch_execute("CREATE VIEW kept_v AS SELECT n FROM kept_t")
        .await
        .unwrap();
    assert_eq!(text_of(&reader, through_view).await, "10");
    writer
        .batch_execute("CREATE OR REPLACE VIEW kept_v AS SELECT n * 2 AS n FROM kept_t")
        .await
        .unwrap();
    assert_eq!(text_of(&reader, through_view).await, "20");
    // Renamed away: the name no longer means a table.
    writer
        .batch_execute("DROP VIEW kept_v; ALTER TABLE kept_t RENAME TO kept_old")
        .await
        .unwrap();
    let gone = reader.simple_query(sum).await.unwrap_err();
    let message = gone.as_db_error().map(|e| e.message().to_string());
    assert!(
        message.as_deref().is_some_and(|m| m.contains("kept_t")),
        "{message:?}"
    );
    assert!(reader.query_one(sum, &[]).await.is_err());
    server.stop();
}

/// Many clients inserting single rows into one table at once: every row lands once, the
/// table is compacted as it goes, and it reopens whole from its checkpoint after a
/// restart (the commit files the checkpoint replaced are gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_single_row_inserts_all_land_through_compaction_and_restart() {
    let config = support::demo_config();
    let data_dir = config.server.data_dir.clone();
    let server = support::start(config.clone());
    let setup = server.connect().await;
    setup
        .batch_execute("CREATE TABLE hits (writer int, n int)")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let client = server.connect().await;
        tasks.push(tokio::spawn(async move {
            for n in 0..30 {
                client
                    .execute("INSERT INTO hits VALUES ($1, $2)", &[&writer, &n])
                    .await
                    .expect("insert");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let distinct = "SELECT count(DISTINCT writer * 1000 + n) FROM hits";
    assert_eq!(total(&setup, "SELECT count(*) FROM hits").await, 240);
    assert_eq!(total(&setup, distinct).await, 240);
    // Then one writer alone: one commit each, so the table passes 64 files (compacted)
    // and 100 versions (checkpointed, older commit files deleted).
    for n in 0..100 {
        setup
            .execute("INSERT INTO hits VALUES (8, $1)", &[&n])
            .await
            .expect("insert");
    }
    assert_eq!(total(&setup, distinct).await, 340);
    let log = data_dir.join("public").join("hits").join("_delta_log");
    let entries: Vec<String> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        entries.iter().any(|e| e.ends_with(".checkpoint.parquet")),
        "no checkpoint in {entries:?}"
    );
    drop(setup);
    server.stop();

    let server = support::start(config);
    let client = server.connect().await;
    assert_eq!(total(&client, "SELECT count(*) FROM hits").await, 340);
    assert_eq!(total(&client, distinct).await, 340);
    let sum = "SELECT CAST(sum(n) AS bigint) FROM hits";
    assert_eq!(total(&client, sum).await, 8 * (29 * 30 / 2) + 99 * 100 / 2);
    server.stop();
}
