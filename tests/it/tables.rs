//! Tables that last, beyond what the `.slt` files show: COPY through the wire, writers
//! racing on one table, and a server killed in the middle of a large write.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::SinkExt;

use crate::support;

async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap_or_else(|e| panic!("count {table}: {e}"))
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_stdin_and_to_stdout() {
    let server = support::start(support::demo_config());
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE buyers (id bigint, name text, vip boolean, spent numeric(10,2))",
        )
        .await
        .unwrap();

    // Text format, as psql's \copy sends it.
    let sink = client.copy_in("COPY buyers FROM STDIN").await.unwrap();
    let mut sink = Box::pin(sink);
    let mut data = String::new();
    for i in 0..10_000 {
        data.push_str(&format!(
            "{i}\tbuyer {i}\t{}\t{}.25\n",
            if i % 2 == 0 { "t" } else { "f" },
            i
        ));
    }
    sink.send(bytes::Bytes::from(data)).await.unwrap();
    let rows = sink.as_mut().finish().await.unwrap();
    assert_eq!(rows, 10_000);

    // CSV with a header and a column list.
    let sink = client
        .copy_in("COPY buyers (name, id) FROM STDIN WITH (FORMAT csv, HEADER true)")
        .await
        .unwrap();
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from_static(
        b"name,id\n\"Smith, J\",20000\n,20001\n",
    ))
    .await
    .unwrap();
    assert_eq!(sink.as_mut().finish().await.unwrap(), 2);
    assert_eq!(count(&client, "buyers").await, 10_002);
    let row = client
        .query_one("SELECT name, vip FROM buyers WHERE id = 20000", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("Smith, J"));
    assert_eq!(row.get::<_, Option<bool>>(1), None);

    // A malformed row fails the whole COPY (22P02) and writes nothing.
    let sink = client.copy_in("COPY buyers FROM STDIN").await.unwrap();
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from_static(
        b"1\ta\tt\t1.00\nnot-a-number\tb\tt\t2.00\n",
    ))
    .await
    .unwrap();
    let err = sink.as_mut().finish().await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("22P02"), "{err}");
    assert_eq!(count(&client, "buyers").await, 10_002);

    // A COPY the client abandons (CopyFail) writes nothing either.
    let sink = client.copy_in("COPY buyers FROM STDIN").await.unwrap();
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from_static(b"7\tx\tt\t1.00\n"))
        .await
        .unwrap();
    drop(sink);
    assert_eq!(count(&client, "buyers").await, 10_002);

    // COPY TO STDOUT, text format.
    let stream = client
        .copy_out("COPY (SELECT id, name, vip FROM buyers WHERE id < 3 ORDER BY id) TO STDOUT")
        .await
        .unwrap();
    use futures::TryStreamExt;
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    let text: String = chunks
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    assert_eq!(text, "0\tbuyer 0\tt\n1\tbuyer 1\tf\n2\tbuyer 2\tt\n");
    drop(client);
    server.stop();
}

/// Writers on different tables never interfere; writers on the same table all land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_nothing() {
    let server = support::start(support::demo_config());
    let setup = server.connect().await;
    setup
        .batch_execute("CREATE TABLE shared (writer int, n int); CREATE TABLE own_a (n int); CREATE TABLE own_b (n int)")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for writer in 0..4 {
        let client = server.connect().await;
        tasks.push(tokio::spawn(async move {
            for n in 0..15 {
                client
                    .execute(&format!("INSERT INTO shared VALUES ({writer}, {n})"), &[])
                    .await
                    .expect("insert into the shared table");
                let own = if writer % 2 == 0 { "own_a" } else { "own_b" };
                client
                    .execute(&format!("INSERT INTO {own} VALUES ({n})"), &[])
                    .await
                    .expect("insert into an own table");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(count(&setup, "shared").await, 60);
    assert_eq!(count(&setup, "own_a").await, 30);
    assert_eq!(count(&setup, "own_b").await, 30);
    let distinct: i64 = setup
        .query_one("SELECT count(DISTINCT writer * 100 + n) FROM shared", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(distinct, 60);
    drop(setup);
    server.stop();
}

/// A `userql serve` child process on the demo config and `data_dir`.
fn spawn_server(data_dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_userql"))
        .args(["serve", "--config"])
        .arg(support::demo_dir().join("userql.toml"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start userql serve")
}

async fn connect_when_up(port: u16) -> tokio_postgres::Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let conn = format!("host=127.0.0.1 port={port} user=analyst dbname=userql");
        match tokio_postgres::connect(&conn, tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                return client;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("server on port {port} did not come up: {e}"),
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Kill -9 the server while an `INSERT ... SELECT` of a large result runs: after a
/// restart the table holds exactly the old rows or the old plus all the new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_insert_leaves_old_or_new_contents() {
    const OLD: i64 = 1_000;
    const NEW: i64 = 3_000_000;
    let data_dir = support::fresh_dir("crash");
    let port = free_port();
    let mut child = spawn_server(&data_dir, port);
    let client = connect_when_up(port).await;
    client
        .batch_execute(&format!(
            "CREATE TABLE big AS SELECT value AS id, 'row ' || CAST(value AS TEXT) AS label FROM generate_series(1, {OLD})"
        ))
        .await
        .unwrap();
    let insert_sql = format!(
        "INSERT INTO big SELECT value + {OLD} AS id, 'row ' || CAST(value AS TEXT) AS label FROM generate_series(1, {NEW})"
    );
    // One undisturbed run tells how long the write takes on this machine.
    let started = Instant::now();
    client.execute(&insert_sql, &[]).await.unwrap();
    let full = started.elapsed();
    assert_eq!(count(&client, "big").await, OLD + NEW);
    client
        .batch_execute(&format!("DELETE FROM big WHERE id > {OLD}"))
        .await
        .unwrap();
    let mut seen = Vec::new();
    for fraction in [0.2, 0.5, 0.8] {
        let insert = tokio::spawn({
            let sql = insert_sql.clone();
            async move {
                connect_when_up(port)
                    .await
                    .execute(&sql, &[])
                    .await
                    .map(|_| ())
            }
        });
        tokio::time::sleep(full.mul_f64(fraction)).await;
        child.kill().expect("kill the server");
        let _ = child.wait();
        let _ = insert.await;
        child = spawn_server(&data_dir, port);
        let after = connect_when_up(port).await;
        let rows = count(&after, "big").await;
        assert!(
            rows == OLD || rows == OLD + NEW,
            "killed {fraction} of the way into the insert, the table has {rows} rows: neither old nor new"
        );
        seen.push(rows);
        // The next round starts from the old contents again.
        after
            .batch_execute(&format!("DELETE FROM big WHERE id > {OLD}"))
            .await
            .unwrap();
        assert_eq!(count(&after, "big").await, OLD);
    }
    assert!(
        seen.contains(&OLD),
        "no kill landed before the commit (full write took {full:?}): {seen:?}"
    );
    drop(client);
    child.kill().ok();
    let _ = child.wait();
    eprintln!("rows seen after each kill: {seen:?}");
}

/// dbt's swap inside BEGIN ... COMMIT: another session querying the table meanwhile
/// waits for the block and then reads the new table — never "does not exist".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_a_half_swapped_table() {
    let server = support::start(support::demo_config());
    let writer = server.connect().await;
    let reader = server.connect().await;
    writer
        .batch_execute(
            "CREATE TABLE x AS SELECT value AS id FROM generate_series(1, 10); \
             CREATE TABLE x__dbt_tmp AS SELECT value AS id FROM generate_series(1, 20)",
        )
        .await
        .unwrap();
    writer
        .batch_execute("BEGIN; ALTER TABLE x RENAME TO x__dbt_backup")
        .await
        .unwrap();
    let read = tokio::spawn(async move { count(&reader, "x").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!read.is_finished(), "the reader must wait for the block");
    writer
        .batch_execute("ALTER TABLE x__dbt_tmp RENAME TO x; COMMIT")
        .await
        .unwrap();
    assert_eq!(read.await.unwrap(), 20);
    writer
        .batch_execute("DROP TABLE x__dbt_backup CASCADE")
        .await
        .unwrap();
    drop(writer);
    server.stop();
}

/// Every 100 commits write a Delta checkpoint, and the table reopens from it with every
/// row (a server started again on the same data dir).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_checkpointed_and_reopen_whole() {
    let config = support::demo_config();
    let data_dir = config.server.data_dir.clone();
    let server = support::start(config.clone());
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE ticks (n bigint)")
        .await
        .unwrap();
    // Version 0 created the table, then one commit per INSERT and one per compaction
    // (at 64 files): more than 100 versions, so a checkpoint was written.
    for n in 1..=100 {
        client
            .execute(&format!("INSERT INTO ticks VALUES ({n})"), &[])
            .await
            .unwrap();
    }
    let log = data_dir.join("public").join("ticks").join("_delta_log");
    let checkpoints = std::fs::read_dir(&log)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".checkpoint.parquet")
        })
        .count();
    assert!(checkpoints >= 1, "no checkpoint in {}", log.display());
    assert!(log.join("_last_checkpoint").exists());
    drop(client);
    server.stop();

    let server = support::start(config);
    let client = server.connect().await;
    assert_eq!(count(&client, "ticks").await, 100);
    let sum: i64 = client
        .query_one("SELECT CAST(sum(n) AS bigint) FROM ticks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sum, 5050);
    server.stop();
}

/// The data files in a table's folder, and how many of them its latest version reads.
async fn data_files(table_dir: &std::path::Path) -> (usize, usize) {
    let on_disk = std::fs::read_dir(table_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.ends_with(".parquet") && !name.starts_with(['_', '.']))
        .count();
    let url = url::Url::from_directory_path(table_dir).unwrap();
    let table = deltalake::open_table(url).await.unwrap();
    let used = table.snapshot().unwrap().log_data().num_files();
    (on_disk, used)
}

/// Data files a table's commits stopped using (compacted away, rewritten by a DELETE) are
/// deleted at a checkpoint once `vacuum_retention_secs` have passed, and not before: with
/// the default hour every replaced file stays on disk; with 0 the folder holds exactly the
/// files the latest version reads. Every row stays, also after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_files_are_deleted_after_the_retention_period() {
    for retention in [3600, 0] {
        let mut config = support::demo_config();
        config.server.vacuum_retention_secs = retention;
        let table_dir = config.server.data_dir.join("public").join("kept");
        let server = support::start(config.clone());
        let client = server.connect().await;
        client
            .batch_execute("CREATE TABLE kept (n bigint)")
            .await
            .unwrap();
        // One commit per INSERT: compacted at 64 files, checkpoints at versions 100 and
        // 200; the DELETE rewrites the compacted file in between.
        for n in 1..=100 {
            client
                .execute(&format!("INSERT INTO kept VALUES ({n})"), &[])
                .await
                .unwrap();
        }
        client
            .execute("DELETE FROM kept WHERE n <= 50", &[])
            .await
            .unwrap();
        for n in 101..=200 {
            client
                .execute(&format!("INSERT INTO kept VALUES ({n})"), &[])
                .await
                .unwrap();
        }
        let (on_disk, used) = data_files(&table_dir).await;
        if retention == 0 {
            assert_eq!(on_disk, used, "files no version reads are still on disk");
        } else {
            assert!(
                on_disk >= used + 128,
                "replaced files deleted before the retention period: {on_disk} on disk, {used} used"
            );
        }
        drop(client);
        server.stop();

        let server = support::start(config);
        let client = server.connect().await;
        let row = client
            .query_one("SELECT count(*), CAST(sum(n) AS bigint) FROM kept", &[])
            .await
            .unwrap();
        let (rows, sum): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(
            (rows, sum),
            (150, (51..=200).sum::<i64>()),
            "retention {retention}"
        );
        server.stop();
    }
}
