//! The server's limits under pressure: `max_connections` (53300), the memory limit
//! (spilling where it can, 53200 where it cannot), a client that hangs up mid-query stops
//! the query, and SIGTERM lets a running statement finish while refusing new connections.

use std::process::Command;
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use crate::support;

fn code(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no code: {e}"))
}

#[tokio::test]
async fn max_connections_refuses_the_next_with_53300() {
    let mut config = support::demo_config();
    config.server.max_connections = 2;
    let server = support::start(config);
    let a = server.connect().await;
    let b = server.connect().await;
    let refused = match tokio_postgres::connect(&server.conn_str("x"), NoTls).await {
        Ok(_) => panic!("a third connection was accepted with max_connections = 2"),
        Err(e) => e,
    };
    assert_eq!(code(&refused), "53300", "{refused}");
    drop(b);
    // The freed slot is usable again (the server notices the close asynchronously).
    let mut again = None;
    for _ in 0..50 {
        if let Ok((c, conn)) = tokio_postgres::connect(&server.conn_str("x"), NoTls).await {
            tokio::spawn(conn);
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = again.expect("a slot frees when a client leaves");
    let n: i32 = again.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
    let n: i32 = a.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
    server.stop();
}

#[tokio::test]
async fn a_full_server_still_carries_out_cancel_requests() {
    let mut config = support::demo_config();
    config.server.max_connections = 1;
    let server = support::start(config);
    let client = server.connect().await;
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = token.cancel_query(NoTls).await;
        }
    });
    let slow = "SELECT sum(length(a.id_value) + length(b.id_value)) \
                FROM identities a CROSS JOIN identities b";
    let err = client
        .simple_query(slow)
        .await
        .expect_err("the query was cancelled while the server was full");
    canceller.abort();
    assert_eq!(code(&err), "57014", "{err}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_spills_sorts_and_refuses_what_cannot_spill() {
    let mut config = support::demo_config();
    config.server.memory_limit = Some("64MB".into());
    let server = support::start(config);
    let c = server.connect().await;
    // A window over 5M rows sorts more than 64 MB: it spills to disk and succeeds.
    let sum: i64 = c
        .query_one(
            "SELECT CAST(sum(r) AS BIGINT) FROM (SELECT row_number() OVER (ORDER BY value DESC) AS r \
             FROM generate_series(1, 5000000)) t",
            &[],
        )
        .await
        .expect("the sort spills")
        .get(0);
    assert_eq!(sum, 5_000_000 * 5_000_001 / 2);
    // rfm's per-customer tables for 2M customers do not fit in 64 MB: the spilling
    // aggregate takes over and every customer is still there, once.
    let row = c
        .query_one(
            "SELECT count(*), CAST(sum(frequency) AS BIGINT), count(DISTINCT customer_id) FROM rfm(\
             'SELECT value % 2000000 AS customer_id, to_timestamp(1700000000 + value) AS order_ts, \
             1.0 AS amount FROM generate_series(1, 4000000)')",
            &[],
        )
        .await
        .expect("rfm falls back to the spilling aggregate");
    let (customers, orders, distinct): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (customers, orders, distinct),
        (2_000_000, 4_000_000, 2_000_000)
    );
    // One array of 30M values cannot be spilled: 53200, and the server keeps serving.
    let err = c
        .query_one(
            "SELECT cardinality(array_agg(value)) FROM generate_series(1, 30000000)",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&err), "53200", "{err}");
    let n: i32 = c.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
    server.stop();
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// A query that keeps a core busy for many seconds.
const LONG_QUERY: &str = "SELECT sum(value % 7) FROM generate_series(1, 50000000000)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_stops_its_query() {
    let port = support::free_port();
    let data = support::fresh_dir("hangup").join("data");
    let mut child = support::spawn_binary(port, &data);
    let (client, task) = support::connect_port(port).await;
    let running = tokio::spawn(async move {
        let _ = client.simple_query(LONG_QUERY).await;
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let busy_from = cpu_seconds(child.id());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let busy = cpu_seconds(child.id()) - busy_from;
    assert!(
        busy > 0.3,
        "the query should be running: {busy} s CPU in 0.5 s"
    );
    // Hang up: the socket closes without a Terminate or CancelRequest.
    running.abort();
    task.abort();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let idle_from = cpu_seconds(child.id());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let idle = cpu_seconds(child.id()) - idle_from;
    assert!(
        idle < 0.3,
        "the query kept running after the client left: {idle} s CPU in 1.5 s"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_running_statements_and_refuses_new_connections() {
    let port = support::free_port();
    let data = support::fresh_dir("sigterm").join("data");
    let mut child = support::spawn_binary(port, &data);
    let (client, _task) = support::connect_port(port).await;
    client
        .batch_execute("CREATE TABLE drained (n BIGINT)")
        .await
        .unwrap();
    // A statement of about a second, under way when SIGTERM arrives.
    let running = tokio::spawn(async move {
        let r = client
            .batch_execute(
                "INSERT INTO drained SELECT value FROM generate_series(1, 3000000) \
                 WHERE value % 3 = 0 ORDER BY value DESC",
            )
            .await;
        (r, client)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=x dbname=userql connect_timeout=2"),
        NoTls,
    )
    .await;
    assert!(
        refused.is_err(),
        "a new connection was accepted after SIGTERM"
    );
    let (result, client) = running.await.unwrap();
    result.expect("the running INSERT finished and committed");
    drop(client);
    let started = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the server did not stop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "{exit:?}");
    // Restarted, the committed rows are all there.
    let mut child = support::spawn_binary(port, &data);
    let (c, _t) = support::connect_port(port).await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM drained", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1_000_000);
    let _ = child.kill();
    let _ = child.wait();
}

/// `[server] threads` is a statement's partition count (and the analytic functions'
/// threads). A process of its own: the setting is the process's.
#[tokio::test]
async fn threads_setting_sets_the_partitions() {
    let dir = support::fresh_dir("threads-setting");
    let config = dir.join("userql.toml");
    std::fs::write(&config, "[server]\nthreads = 3\n").expect("write the config");
    let port = support::free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_userql"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start userql");
    let (client, _connection) = support::connect_port(port).await;
    let shown = client
        .simple_query("SHOW datafusion.execution.target_partitions")
        .await
        .expect("SHOW the partitions");
    let value = shown.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    });
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(value.as_deref(), Some("3"));
}
