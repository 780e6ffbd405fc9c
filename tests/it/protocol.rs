//! The extended query protocol from tokio-postgres: prepared statements, parameters,
//! binary results, type OIDs, errors with SQLSTATEs, cancel and statement timeout.

use tokio_postgres::types::Type;

use crate::support;

/// A statement that runs for seconds on the test data (hundreds of millions of rows).
const SLOW: &str =
    "SELECT sum(length(a.id_value) + length(b.id_value)) FROM identities a CROSS JOIN identities b";

#[tokio::test]
async fn prepared_statement_with_parameters_binary_results() {
    let client = support::demo_server().connect().await;
    let stmt = client
        .prepare("SELECT $1::BIGINT + 1 AS n, $2::TEXT AS t")
        .await
        .unwrap();
    assert_eq!(stmt.columns()[0].type_(), &Type::INT8);
    assert_eq!(stmt.columns()[1].type_(), &Type::TEXT);
    let row = client.query_one(&stmt, &[&41i64, &"hi"]).await.unwrap();
    let n: i64 = row.get(0);
    let t: &str = row.get(1);
    assert_eq!((n, t), (42, "hi"));
}

#[tokio::test]
async fn parameter_type_inferred_from_column() {
    let client = support::demo_server().connect().await;
    let rows = client
        .query(
            "SELECT count(*) FROM identities WHERE id_type = $1",
            &[&"phone"],
        )
        .await
        .unwrap();
    let n: i64 = rows[0].get(0);
    assert!(n > 0);
}

#[tokio::test]
async fn result_type_oids() {
    let client = support::demo_server().connect().await;
    let row = client
        .query_one(
            "SELECT 1::SMALLINT a, 1::INT b, 1::BIGINT c, 1.5::REAL d, 1.5::DOUBLE e, \
             'x'::TEXT f, true g, DATE '2025-01-02' h, TIMESTAMP '2025-01-02 03:04:05' i, \
             CAST(1.25 AS DECIMAL(10,2)) j",
            &[],
        )
        .await
        .unwrap();
    let types: Vec<Type> = row.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(
        types,
        vec![
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::FLOAT4,
            Type::FLOAT8,
            Type::TEXT,
            Type::BOOL,
            Type::DATE,
            Type::TIMESTAMP,
            Type::NUMERIC
        ]
    );
    // DATE in binary is days since 2000-01-01.
    let d: PgDate = row.get(7);
    assert_eq!(d.0, 9133);
}

/// A binary DATE read without pulling chrono into tokio-postgres.
struct PgDate(i32);

impl<'a> tokio_postgres::types::FromSql<'a> for PgDate {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let b: [u8; 4] = raw.try_into()?;
        Ok(PgDate(i32::from_be_bytes(b)))
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::DATE
    }
}

async fn code_of(client: &tokio_postgres::Client, sql: &str) -> String {
    let err = client.simple_query(sql).await.expect_err(sql);
    err.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| format!("not a db error: {err}"))
}

#[tokio::test]
async fn errors_carry_sqlstate_and_session_survives() {
    let client = support::demo_server().connect().await;
    assert_eq!(code_of(&client, "SELEC 1").await, "42601");
    assert_eq!(
        code_of(&client, "SELECT * FROM no_such_table").await,
        "42P01"
    );
    assert_eq!(
        code_of(&client, "SELECT no_such_column FROM orders").await,
        "42703"
    );
    assert_eq!(
        code_of(&client, "SELECT no_such_function(1)").await,
        "42883"
    );
    assert_eq!(code_of(&client, "SELECT 1/0").await, "22012");
    assert_eq!(
        code_of(&client, "SET userql.rfm_bins = 'many'").await,
        "22023"
    );
    assert_eq!(code_of(&client, "SET no_such_setting = 1").await, "42704");
    // extended protocol too
    let err = client.prepare("SELECT * FROM nowhere").await.unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "42P01");
    // the same connection still works
    let row = client.query_one("SELECT 1::INT", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}

#[tokio::test]
async fn statement_timeout_cancels_with_57014() {
    let client = support::demo_server().connect().await;
    client
        .simple_query("SET statement_timeout = '50ms'")
        .await
        .unwrap();
    let slow = SLOW;
    assert_eq!(code_of(&client, slow).await, "57014");
    client
        .simple_query("SET statement_timeout = 0")
        .await
        .unwrap();
    let row = client.query_one("SELECT 2::INT", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
}

/// A cross join of a million rows with itself: hours, and each batch read on its right
/// fans out to a million on its left (a long stretch of work between two reads).
const BUSY: &str = "SELECT sum(a + b) FROM generate_series(1, 1000000) a \
     CROSS JOIN generate_series(1, 1000000) b";

/// Two long queries on other connections keep both of the server's worker threads busy;
/// a third session's statement_timeout still ends its query on time, and theirs end at
/// their own deadlines. (A cross join used to compute for seconds per poll, so timers
/// went unserviced and every deadline waited for the joins: minutes or more.)
#[tokio::test]
async fn statement_timeout_holds_while_other_queries_keep_the_server_busy() {
    use std::time::{Duration, Instant};
    let server = support::start(support::demo_config());
    let mut busy = Vec::new();
    for _ in 0..2 {
        let client = server.connect().await;
        client
            .simple_query("SET statement_timeout = '5s'")
            .await
            .unwrap();
        busy.push(tokio::spawn(async move {
            let started = Instant::now();
            (code_of(&client, BUSY).await, started.elapsed())
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = server.connect().await;
    client
        .simple_query("SET statement_timeout = '50ms'")
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(code_of(&client, BUSY).await, "57014");
    let waited = started.elapsed();
    for task in busy {
        let (code, took) = task.await.unwrap();
        assert_eq!(code, "57014");
        assert!(
            took < Duration::from_secs(30),
            "a 5 s deadline took {took:?}"
        );
    }
    assert!(
        waited < Duration::from_secs(4),
        "a 50 ms deadline took {waited:?} beside two busy sessions"
    );
    drop(client);
    server.stop();
}

#[tokio::test]
async fn cancel_request_stops_a_running_query() {
    let client = support::demo_server().connect().await;
    let token = client.cancel_token();
    // A CancelRequest that arrives before the query starts is ignored (as in
    // PostgreSQL), and a busy machine can start it late: keep asking until it ends. A
    // request that fails to get through is sent again (an error here used to end the
    // loop, leaving the query to run to its end).
    let canceller = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let _ = token.cancel_query(tokio_postgres::NoTls).await;
        }
    });
    let slow = SLOW;
    assert_eq!(code_of(&client, slow).await, "57014");
    canceller.abort();
    // Let a request already on its way land while the session is idle.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let row = client.query_one("SELECT 3::INT", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 3);
}

#[tokio::test]
async fn transaction_block_and_aborted_state() {
    let client = support::demo_server().connect().await;
    client.simple_query("BEGIN").await.unwrap();
    assert_eq!(code_of(&client, "SELECT * FROM nope").await, "42P01");
    assert_eq!(code_of(&client, "SELECT 1").await, "25P02");
    client.simple_query("ROLLBACK").await.unwrap();
    let row = client.query_one("SELECT 4::INT", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 4);
}

#[tokio::test]
async fn wrong_database_is_refused_with_3d000() {
    let server = support::demo_server();
    let conn = format!(
        "host={} port={} user=analyst dbname=elsewhere",
        server.addr.ip(),
        server.addr.port()
    );
    let err = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
        .await
        .err()
        .expect("unknown database refused");
    assert_eq!(err.as_db_error().unwrap().code().code(), "3D000");
}
