//! Bounded fuzzing in CI: mutated SQL (from every statement in `tests/slt/`) through the
//! wire, and random bytes through the startup and message paths. No panic, no hang: every
//! statement ends with a result or an error with a SQLSTATE, every connection ends, and the
//! server keeps serving. `USERQL_FUZZ_CASES` and `USERQL_FUZZ_SEED` run it longer or
//! elsewhere (the defaults keep CI to seconds).

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{self, Running};

fn cases(default: usize) -> usize {
    std::env::var("USERQL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rng() -> ChaCha8Rng {
    let seed = std::env::var("USERQL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261130);
    ChaCha8Rng::seed_from_u64(seed)
}

/// Every statement and query of the sqllogictest files: the seed corpus.
fn corpus() -> Vec<String> {
    let mut out = Vec::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if !(line.starts_with("statement") || line.starts_with("query")) {
                continue;
            }
            let mut sql = Vec::new();
            while let Some(l) = lines.peek() {
                if l.trim().is_empty() || *l == "----" {
                    break;
                }
                sql.push(*l);
                lines.next();
            }
            if !sql.is_empty() {
                out.push(sql.join("\n"));
            }
        }
    }
    out
}

const FRAGMENTS: &[&str] = &[
    "(",
    ")",
    "'",
    "\"",
    ",",
    ";",
    "$1",
    "::text[]",
    "::int",
    "NULL",
    "'{",
    "}'",
    "\\",
    "--",
    "/*",
    " UNION SELECT ",
    " JOIN ",
    " WHERE ",
    " ORDER BY 1",
    " LIMIT -1",
    " E'\\x'",
    "ARRAY[",
    "]",
    "9999999999999999999999",
    "-0.0e999",
    "'NaN'",
    "oneid(",
    "rfm(",
    "window_funnel(",
    "retention(",
    "'2025-13-45'",
    "now()",
    "*",
    "",
    "ø",
    "😀",
];

/// One mutation of `sql`: a byte or fragment inserted, a span deleted, duplicated or
/// swapped with another statement's.
fn mutate(sql: &str, corpus: &[String], rng: &mut ChaCha8Rng) -> String {
    let mut s: Vec<char> = sql.chars().collect();
    // Zero mutations runs the statement as written (state for the next ones).
    for _ in 0..rng.gen_range(0..4) {
        let at = if s.is_empty() {
            0
        } else {
            rng.gen_range(0..=s.len())
        };
        match rng.gen_range(0..5) {
            0 => {
                let frag = FRAGMENTS[rng.gen_range(0..FRAGMENTS.len())];
                s.splice(at..at, frag.chars());
            }
            1 if !s.is_empty() => {
                let end = (at + rng.gen_range(1..12)).min(s.len());
                s.drain(at.min(end)..end);
            }
            2 if !s.is_empty() => {
                let end = (at + rng.gen_range(1..20)).min(s.len());
                let piece: Vec<char> = s[at.min(end)..end].to_vec();
                s.splice(at..at, piece);
            }
            3 => {
                let other: Vec<char> = corpus[rng.gen_range(0..corpus.len())].chars().collect();
                let from = rng.gen_range(0..=other.len());
                let to = (from + rng.gen_range(0..40)).min(other.len());
                s.splice(at..at, other[from..to].iter().copied());
            }
            _ => s.insert(at, char::from(rng.gen_range(0x20u8..0x7f))),
        }
    }
    s.into_iter().collect()
}

fn fuzz_server() -> Running {
    let mut config = support::demo_config();
    config.server.memory_limit = Some("1GB".into());
    support::start(config)
}

async fn client(server: &Running) -> tokio_postgres::Client {
    let c = server.connect().await;
    c.batch_execute("SET statement_timeout = '5s'")
        .await
        .unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_sql_gets_a_result_or_an_error() {
    let server = fuzz_server();
    let corpus = corpus();
    assert!(corpus.len() > 200, "corpus of {} statements", corpus.len());
    let mut rng = rng();
    let mut c = client(&server).await;
    let started = Instant::now();
    let n = cases(3000);
    let (mut ok, mut errors) = (0, 0);
    for i in 0..n {
        let seed = &corpus[rng.gen_range(0..corpus.len())];
        let sql = mutate(seed, &corpus, &mut rng);
        let outcome = tokio::time::timeout(Duration::from_secs(30), c.simple_query(&sql)).await;
        match outcome {
            Err(_) => panic!("case {i}: no answer within 30 s (statement_timeout is 5 s): {sql:?}"),
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => match e.code() {
                Some(_) => {
                    errors += 1;
                    let _ = c.batch_execute("ROLLBACK").await;
                }
                // The connection died: the server must still serve others, and this one
                // must have ended with an error (not hung).
                None if c.is_closed() => {
                    panic!("case {i}: the connection closed on {sql:?}: {e}");
                }
                None => panic!("case {i}: an error without SQLSTATE on {sql:?}: {e}"),
            },
        }
        // A failed block leaves the session aborted: end it, as a client would.
        if i % 50 == 49 {
            let _ = c.batch_execute("ROLLBACK").await;
            c = client(&server).await;
        }
    }
    let check = client(&server).await;
    let one: i32 = check.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    eprintln!(
        "fuzz sql: {n} cases from {} seed statements in {:.1} s: {ok} results, {errors} errors",
        corpus.len(),
        started.elapsed().as_secs_f64()
    );
    server.stop();
}

/// A StartupMessage for `user`, then `tail` (random bytes).
fn startup_then(tail: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196608i32.to_be_bytes());
    for s in ["user", "analyst", "database", "userql"] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg.extend_from_slice(tail);
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_end_every_connection() {
    let server = fuzz_server();
    let mut rng = rng();
    let n = cases(1000);
    let started = Instant::now();
    for i in 0..n {
        let len = rng.gen_range(0..200);
        let mut noise: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
        // Half the cases look like messages: a known type byte and a plausible length.
        if i % 2 == 1 && noise.len() >= 5 {
            noise[0] = b"QPBEDSHXCcdfp"[rng.gen_range(0..13)];
            let l = rng.gen_range(4i32..64).to_be_bytes();
            noise[1..5].copy_from_slice(&l);
        }
        let bytes = match i % 3 {
            0 => noise,                // the startup path
            _ => startup_then(&noise), // the message path, after a valid startup
        };
        let mut socket = TcpStream::connect(server.addr).await.unwrap();
        let _ = socket.write_all(&bytes).await;
        let _ = socket.shutdown().await;
        // The server must end the connection (error or EOF) once the input ends.
        let mut sink = vec![0u8; 4096];
        let ended = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match socket.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "case {i}: connection not ended: {bytes:?}");
    }
    let check = server.connect().await;
    let one: i32 = check.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    eprintln!(
        "fuzz wire: {n} connections of random bytes in {:.1} s, server still serving",
        started.elapsed().as_secs_f64()
    );
    server.stop();
}
