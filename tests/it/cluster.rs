//! The same SQL on a cluster: a scheduler and two executors started in this process
//! (each a userql node with its functions), and servers run with `[cluster] scheduler`
//! pointing at them. Every `.slt` file must give the single-machine answers it records.

use std::net::SocketAddr;
use std::sync::OnceLock;

use userql::cluster::SchedulerAddr;
use userql::cluster::nodes::{ExecutorOptions, Scheduler, run_executor};
use userql::config::Config;

use crate::slt;
use crate::support;

/// The scheduler of the cluster shared by this run's tests (started on first use, on a
/// thread and runtime of its own, and left running).
fn cluster() -> SocketAddr {
    static SCHEDULER: OnceLock<SocketAddr> = OnceLock::new();
    *SCHEDULER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            support::runtime().block_on(async move {
                let scheduler = Scheduler::bind("127.0.0.1:0".parse().unwrap())
                    .await
                    .expect("scheduler binds");
                let addr = scheduler.local_addr().expect("scheduler address");
                tokio::spawn(scheduler.run());
                for _ in 0..2 {
                    let options = ExecutorOptions {
                        scheduler: SchedulerAddr {
                            host: addr.ip().to_string(),
                            port: addr.port(),
                        },
                        listen: "127.0.0.1:0".parse().unwrap(),
                        work_dir: Some(support::fresh_dir("executor")),
                        tasks: 2,
                    };
                    tokio::spawn(run_executor(options));
                }
                wait_for_executors(addr, 2).await;
                tx.send(addr).unwrap();
                std::future::pending::<()>().await;
            });
        });
        rx.recv().expect("the cluster started")
    })
}

/// Waits until the scheduler's `/readyz` counts `n` executors (at most 30 s).
async fn wait_for_executors(scheduler: SocketAddr, n: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for _ in 0..300 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(scheduler).await {
            let request = "GET /readyz HTTP/1.1\r\nHost: scheduler\r\nConnection: close\r\n\r\n";
            let mut answer = String::new();
            if s.write_all(request.as_bytes()).await.is_ok()
                && s.read_to_string(&mut answer).await.is_ok()
                && answer.contains(&format!("ready: {n} executors"))
            {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{n} executors did not register with the scheduler at {scheduler}");
}

/// The demo config, its queries run on the test cluster.
fn cluster_config() -> Config {
    let mut config = support::demo_config();
    let scheduler = cluster();
    config.cluster.scheduler = Some(SchedulerAddr {
        host: scheduler.ip().to_string(),
        port: scheduler.port(),
    });
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files_give_the_same_answers_on_a_cluster() {
    let failures = slt::run_files(&slt::slt_files(), cluster_config).await;
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The scheduler's `GET path` body.
async fn http_get(scheduler: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(scheduler)
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: scheduler\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.expect("request");
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.expect("answer");
    answer
}

/// Jobs the scheduler has run or is running.
async fn jobs(scheduler: SocketAddr) -> usize {
    http_get(scheduler, "/api/jobs")
        .await
        .matches("\"job_id\"")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_over_channels_run_on_the_executors_and_errors_keep_their_sqlstate() {
    let scheduler = cluster();
    let on_cluster = support::start(cluster_config());
    let here = support::start(support::demo_config());
    let (c, h) = (on_cluster.connect().await, here.connect().await);
    let sql = "SELECT channel, count(*), count(DISTINCT record_id) FROM public.orders \
               GROUP BY channel ORDER BY channel";
    let before = jobs(scheduler).await;
    let rows = |rows: Vec<tokio_postgres::SimpleQueryMessage>| -> Vec<Vec<String>> {
        rows.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or("NULL").to_string())
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    };
    let from_cluster = rows(c.simple_query(sql).await.unwrap());
    assert!(
        jobs(scheduler).await > before,
        "the query did not run on the cluster"
    );
    assert!(!from_cluster.is_empty());
    assert_eq!(from_cluster, rows(h.simple_query(sql).await.unwrap()));
    // Raised on an executor, seen as on one machine.
    for (sql, code) in [
        (
            "SELECT sum(1 / (amount - amount)::int) FROM public.orders",
            "22012",
        ),
        (
            "SELECT sum(CAST(channel AS int)) FROM public.orders WHERE channel = 'pos'",
            "22P02",
        ),
    ] {
        let here = h.simple_query(sql).await.unwrap_err();
        let there = c.simple_query(sql).await.unwrap_err();
        let (here, there) = (here.as_db_error().unwrap(), there.as_db_error().unwrap());
        assert_eq!(there.code().code(), code, "{sql}: {}", there.message());
        assert_eq!(there.code(), here.code(), "{sql}");
        assert_eq!(there.message(), here.message(), "{sql}");
    }
    on_cluster.stop();
    here.stop();
}
