//! Crash safety: the real binary is killed with SIGKILL in the middle of a stream of
//! INSERTs, COPYs and CREATE TABLE ASs, several times; after each restart every
//! acknowledged statement is there in full, no unacknowledged one is partly there, and
//! every table reads. `USERQL_CRASH_ROUNDS` runs more rounds (CI: 3).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::SinkExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::support;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Insert,
    Copy,
    Ctas,
}

/// One write: its kind, batch id and row count.
#[derive(Debug, Clone, Copy)]
struct Write {
    kind: Kind,
    batch: i64,
    rows: i64,
}

async fn run(client: &tokio_postgres::Client, w: Write) -> Result<(), tokio_postgres::Error> {
    match w.kind {
        Kind::Insert => {
            let values: Vec<String> = (1..=w.rows)
                .map(|i| format!("({}, {i})", w.batch))
                .collect();
            client
                .batch_execute(&format!("INSERT INTO crash_t VALUES {}", values.join(", ")))
                .await
        }
        Kind::Copy => {
            let sink = client.copy_in("COPY crash_t FROM STDIN").await?;
            let mut sink = Box::pin(sink);
            let data: String = (1..=w.rows)
                .map(|i| format!("{}\t{i}\n", w.batch))
                .collect();
            sink.send(Bytes::from(data)).await?;
            sink.as_mut().finish().await.map(|_| ())
        }
        Kind::Ctas => {
            client
                .batch_execute(&format!(
                    "CREATE TABLE crash_ctas_{} AS SELECT CAST({} AS BIGINT) AS batch, g AS i \
                     FROM generate_series(1, {}) AS t(g)",
                    w.batch, w.batch, w.rows
                ))
                .await
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_write_and_leaves_no_partial_one() {
    let rounds: usize = std::env::var("USERQL_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = support::fresh_dir("crash");
    let data = dir.join("data");
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut acked: Vec<Write> = Vec::new();
    let mut unknown: Vec<Write> = Vec::new();
    let mut batch = 0i64;
    for round in 0..rounds {
        let port = support::free_port();
        let mut child = support::spawn_binary(port, &data);
        let (client, _conn) = support::connect_port(port).await;
        if round == 0 {
            client
                .batch_execute("CREATE TABLE crash_t (batch BIGINT, i BIGINT)")
                .await
                .unwrap();
        }
        // Write until the kill, which comes at a random moment.
        let kill_after = Duration::from_millis(rng.gen_range(300..2500));
        let deadline = tokio::time::Instant::now() + kill_after;
        let mut writes = Vec::new();
        loop {
            batch += 1;
            let w = Write {
                kind: [Kind::Insert, Kind::Copy, Kind::Ctas][rng.gen_range(0..3)],
                batch,
                rows: rng.gen_range(1..2000),
            };
            writes.push(w);
            let outcome = tokio::select! {
                r = run(&client, w) => Some(r),
                _ = tokio::time::sleep_until(deadline) => None,
            };
            match outcome {
                Some(Ok(())) => acked.push(w),
                Some(Err(e)) => panic!("round {round}: {w:?} failed before the kill: {e}"),
                None => {
                    // Killed with this statement in flight: its outcome is unknown.
                    child.kill().expect("kill -9");
                    let _ = child.wait();
                    unknown.push(w);
                    break;
                }
            }
        }
        drop(client);
        let _ = child.kill();
        let _ = child.wait();
    }
    // Restart once more and check everything.
    let port = support::free_port();
    let mut child = support::spawn_binary(port, &data);
    let (client, _conn) = support::connect_port(port).await;
    let counts: BTreeMap<i64, i64> = client
        .query("SELECT batch, count(*) FROM crash_t GROUP BY batch", &[])
        .await
        .expect("crash_t reads")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let all: BTreeMap<i64, Write> = acked
        .iter()
        .chain(&unknown)
        .map(|w| (w.batch, *w))
        .collect();
    for w in &acked {
        match w.kind {
            Kind::Insert | Kind::Copy => {
                assert_eq!(counts.get(&w.batch), Some(&w.rows), "acknowledged {w:?}");
            }
            Kind::Ctas => {
                let n: i64 = client
                    .query_one(&format!("SELECT count(*) FROM crash_ctas_{}", w.batch), &[])
                    .await
                    .unwrap_or_else(|e| panic!("acknowledged {w:?}: {e}"))
                    .get(0);
                assert_eq!(n, w.rows, "acknowledged {w:?}");
            }
        }
    }
    for (b, n) in &counts {
        let w = all
            .get(b)
            .unwrap_or_else(|| panic!("batch {b} was never written"));
        assert_eq!(*n, w.rows, "batch {b} is partly there: {n} of {}", w.rows);
    }
    for w in unknown.iter().filter(|w| w.kind == Kind::Ctas) {
        if let Ok(row) = client
            .query_one(&format!("SELECT count(*) FROM crash_ctas_{}", w.batch), &[])
            .await
        {
            let n: i64 = row.get(0);
            assert_eq!(n, w.rows, "in-flight {w:?} is partly there");
        }
    }
    // Every table reads.
    let tables: Vec<String> = client
        .query(
            "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in &tables {
        client
            .query(&format!("SELECT count(*) FROM {t}"), &[])
            .await
            .unwrap_or_else(|e| panic!("{t} does not read after the crashes: {e}"));
    }
    eprintln!(
        "crash: {rounds} kill -9 rounds, {} acknowledged writes ({} rows) all there in full, \
         {} in flight at a kill (all or nothing), {} tables read",
        acked.len(),
        acked.iter().map(|w| w.rows).sum::<i64>(),
        unknown.len(),
        tables.len()
    );
    let _ = child.kill();
    let _ = child.wait();
}
