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
    let from_cluster = text_rows(&c, sql).await;
    assert!(
        jobs(scheduler).await > before,
        "the query did not run on the cluster"
    );
    assert!(!from_cluster.is_empty());
    assert_eq!(from_cluster, text_rows(&h, sql).await);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_its_timeout_cancels_its_job_on_the_cluster() {
    let scheduler = cluster();
    let server = support::start(cluster_config());
    let c = server.connect().await;
    let cancelled = || async {
        http_get(scheduler, "/api/jobs")
            .await
            .matches("Cancelled")
            .count()
    };
    let before = cancelled().await;
    c.simple_query("SET statement_timeout = '1s'")
        .await
        .expect("set");
    // Orders against orders against orders: hours of work.
    let e = c
        .simple_query(
            "SELECT count(*) FROM public.orders a, public.orders b, public.orders c \
             WHERE a.amount + b.amount > c.amount",
        )
        .await
        .expect_err("the statement times out");
    assert_eq!(e.code().map(|c| c.code()), Some("57014"), "{e}");
    // Only this test cancels jobs on the shared cluster.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while cancelled().await == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the job ran on after its statement timed out: {}",
            http_get(scheduler, "/api/jobs").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The session and the cluster serve the next statement.
    c.simple_query("RESET statement_timeout")
        .await
        .expect("reset");
    assert!(
        !text_rows(&c, "SELECT count(*) FROM public.orders")
            .await
            .is_empty()
    );
    server.stop();
}

/// Rows of a simple query, as text.
async fn text_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<String>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// `rows` as an inline `oneid` input query.
fn identity_query(rows: &[(String, &str, String)]) -> String {
    let values: Vec<String> = rows
        .iter()
        .map(|(r, t, v)| format!("(''{r}'', ''{t}'', ''{v}'')"))
        .collect();
    format!(
        "SELECT column1 AS record_id, column2 AS id_type, column3 AS id_value FROM (VALUES {}) t",
        values.join(", ")
    )
}

/// Random identity graphs: records sharing phones, emails, member numbers and devices,
/// a few values junk or shared widely, and chains that take many rounds to settle.
fn random_identities(seed: u64) -> Vec<(String, &'static str, String)> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut rows = Vec::new();
    let records = rng.gen_range(20..120);
    for _ in 0..rng.gen_range(30..200) {
        let r = format!("r{}", rng.gen_range(0..records));
        let (t, v) = match rng.gen_range(0..5) {
            0 => ("phone", format!("1380013{:04}", rng.gen_range(0..40))),
            1 => ("email", format!("U{}@x.com", rng.gen_range(0..40))),
            2 => ("member_no", format!("m{}", rng.gen_range(0..30))),
            3 => ("device_id", format!("d{}", rng.gen_range(0..8))),
            _ => ("device_id", "00000000".to_string()),
        };
        rows.push((r, t, v));
    }
    // A chain: c0 - c1 - ... each pair sharing one value, in shuffled hash order.
    let chain = rng.gen_range(30..120);
    for i in 0..chain {
        rows.push((format!("c{i}"), "openid", format!("o{i}")));
        rows.push((format!("c{}", i + 1), "openid", format!("o{i}")));
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneid_on_a_cluster_finds_the_customers_and_ids_of_one_machine() {
    let scheduler = cluster();
    let on_cluster = support::start(cluster_config());
    let here = support::start(support::demo_config());
    let (c, h) = (on_cluster.connect().await, here.connect().await);
    // The demo's identities (channel files): the keys are written by the executors.
    let demo = "SELECT record_id, one_id, component_size FROM oneid('identities') \
                ORDER BY one_id, record_id";
    let before = jobs(scheduler).await;
    let from_cluster = text_rows(&c, demo).await;
    assert!(
        jobs(scheduler).await >= before + 4,
        "oneid did not run its rounds on the cluster"
    );
    assert!(from_cluster.len() > 1000);
    assert_eq!(from_cluster, text_rows(&h, demo).await);

    // Random graphs with long chains, under type limits, a small junk threshold,
    // overrides and earlier ids.
    for seed in 0..5u64 {
        let rows = random_identities(seed);
        let settings = [
            "SET userql.oneid_max_records_per_value = 4".to_string(),
            "SET userql.oneid_type_limits = 'member_no:1,phone:2'".to_string(),
            format!(
                "SET userql.oneid_overrides = 'SELECT * FROM (VALUES (''r1'', ''r2'', ''link''), \
                 (''c3'', ''c{}'', ''split''), (''r5'', ''c0'', ''link'')) t(record_a, record_b, action)'",
                10 + seed
            ),
            "SET userql.oneid_previous = 'SELECT * FROM (VALUES (''r1'', 7), (''c2'', 7), \
             (''r3'', 9)) t(record_id, one_id)'"
                .to_string(),
        ];
        for s in &settings {
            c.simple_query(s).await.expect("setting");
            h.simple_query(s).await.expect("setting");
        }
        let sql = format!(
            "SELECT record_id, one_id, component_size FROM oneid('{}') ORDER BY one_id, record_id",
            identity_query(&rows)
        );
        let (there, here_rows) = (text_rows(&c, &sql).await, text_rows(&h, &sql).await);
        assert!(!there.is_empty());
        assert_eq!(there, here_rows, "seed {seed}");
    }
    on_cluster.stop();
    here.stop();
}
