//! Real clients against the demo server: psql's backslash commands, every catalog query
//! psql 15 sends (captured from a real PostgreSQL, `tests/clients/psql-15.sql`), psql's
//! `\copy`, the `sql/` examples run with `psql -f`, and dbt-postgres's statements.

use std::process::Command;

use crate::support;

fn psql_path() -> Option<&'static str> {
    ["/usr/bin/psql", "/usr/local/bin/psql"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

/// Runs one psql command (`-c`).
fn run_psql(addr: std::net::SocketAddr, command: &str) -> (bool, String, String) {
    run_psql_with(addr, &["-c", command])
}

/// Runs psql with `what` (`-c SQL` or `-f FILE`), stopping at the first error.
fn run_psql_with(addr: std::net::SocketAddr, what: &[&str]) -> (bool, String, String) {
    let psql = psql_path().expect("psql is installed");
    let out = Command::new(psql)
        .args([
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            &addr.ip().to_string(),
            "-p",
            &addr.port().to_string(),
            "-U",
            "analyst",
            "-d",
            "userql",
        ])
        .args(what)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("run psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn psql_backslash_commands() {
    if psql_path().is_none() {
        // CI installs psql; a developer machine without it skips loudly.
        eprintln!("SKIPPED: psql not installed");
        return;
    }
    let server = support::demo_server();
    let cases: &[(&str, &[&str])] = &[
        ("\\l", &["userql"]),
        ("\\dn", &["channels", "public"]),
        ("\\dt channels.*", &["tmall", "pos"]),
        ("\\d channels.tmall", &["buyer_nick"]),
        ("\\dv", &["identities", "orders", "events"]),
        ("\\d identities", &["record_id", "id_value"]),
        ("\\df", &[]),
        ("\\di", &[]),
        ("\\dt", &[]),
        ("SELECT version()", &["PostgreSQL 15", "userql"]),
        (
            "SELECT current_database(), current_schema()",
            &["userql", "public"],
        ),
    ];
    let mut failures = Vec::new();
    for (cmd, expected) in cases {
        let (ok, stdout, stderr) = run_psql(server.addr, cmd);
        if !ok || stderr.contains("ERROR") {
            failures.push(format!("{cmd}: exit ok={ok}\n{stderr}"));
            continue;
        }
        for word in *expected {
            if !stdout.contains(word) {
                failures.push(format!("{cmd}: output lacks {word:?}:\n{stdout}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

/// The statements of a captured client log (`;` at a line end ends one; `--` lines are
/// comments).
fn statements_of(text: &str) -> Vec<String> {
    text.split(";\n")
        .map(|stmt| {
            stmt.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|sql| !sql.trim().is_empty())
        .collect()
}

/// Every statement psql 15 sends for its describe commands runs without error.
#[tokio::test]
async fn psql_catalog_queries_all_run() {
    let client = support::demo_server().connect().await;
    let text = include_str!("../clients/psql-15.sql");
    let mut failures = Vec::new();
    for sql in statements_of(text) {
        if let Err(e) = client.simple_query(&sql).await {
            failures.push(format!("{e:?}\n  in: {}", sql.lines().next().unwrap_or("")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// psql's `\copy` both ways: a file into a stored table and a query out to a file.
#[test]
fn psql_copy_round_trip() {
    if psql_path().is_none() {
        eprintln!("SKIPPED: psql not installed");
        return;
    }
    let server = support::start(support::demo_config());
    let dir = support::fresh_dir("copy");
    let input = dir.join("in.csv");
    let output = dir.join("out.csv");
    std::fs::write(&input, "1,Ann,12.50\n2,\"Bo, Jr\",\n3,,7\n").expect("write csv");
    let steps = [
        "CREATE TABLE buyers (id int, name text, spent numeric(8,2))".to_string(),
        format!("\\copy buyers FROM '{}' WITH (FORMAT csv)", input.display()),
        format!(
            "\\copy (SELECT id, name, spent FROM buyers ORDER BY id) TO '{}' WITH (FORMAT csv, HEADER)",
            output.display()
        ),
    ];
    for step in &steps {
        let (ok, stdout, stderr) = run_psql(server.addr, step);
        assert!(ok && !stderr.contains("ERROR"), "{step}: {stdout}{stderr}");
    }
    let written = std::fs::read_to_string(&output).expect("psql wrote the file");
    assert_eq!(
        written,
        "id,name,spent\n1,Ann,12.50\n2,\"Bo, Jr\",\n3,,7.00\n"
    );
    server.stop();
}

/// The runnable examples in `sql/` run from psql as their headers say: the tour (every
/// OneID function and setting on the demo) and the customer-360 model. The model then
/// merges profiles by its stated rules: one row per customer, the highest member level
/// of any of its records, and points summed after each channel's conversion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_examples_run_from_psql() {
    if psql_path().is_none() {
        eprintln!("SKIPPED: psql not installed");
        return;
    }
    let server = support::start(support::demo_config());
    for file in ["sql/tour.sql", "sql/customer_360.sql"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let path = path.to_string_lossy().into_owned();
        let addr = server.addr;
        let (ok, stdout, stderr) =
            tokio::task::spawn_blocking(move || run_psql_with(addr, &["-f", path.as_str()]))
                .await
                .expect("psql ran");
        assert!(
            ok && !stderr.contains("ERROR"),
            "{file}: {stderr}\n{stdout}"
        );
        assert!(
            stdout.contains("rows)"),
            "{file} printed no result:\n{stdout}"
        );
    }
    let client = server.connect().await;
    let customers =
        support::count_of(&client, "SELECT count(DISTINCT one_id) FROM customer_ids").await;
    assert!(customers > 1000, "demo customers: {customers}");
    assert_eq!(
        support::count_of(&client, "SELECT count(*) FROM customer_360").await,
        customers
    );
    assert_eq!(
        support::count_of(
            &client,
            "SELECT count(DISTINCT customer_id) FROM customer_360"
        )
        .await,
        customers
    );
    // No customer shows a level below one its records hold.
    let below = support::count_of(
        &client,
        "SELECT count(*) FROM customer_360 c \
         JOIN customer_ids i ON i.one_id = c.customer_id \
         JOIN member_profiles m ON m.record_id = i.record_id \
         WHERE CASE c.member_level WHEN 'basic' THEN 1 WHEN 'silver' THEN 2 WHEN 'gold' THEN 3 \
                 WHEN 'platinum' THEN 4 WHEN 'diamond' THEN 5 ELSE 0 END < m.level_rank",
    )
    .await;
    assert_eq!(below, 0);
    // Points: each customer's total is its records' converted points, rounded once.
    let off = support::count_of(
        &client,
        "SELECT count(*) FROM customer_360 c JOIN ( \
           SELECT i.one_id, sum(m.brand_points) AS points FROM member_profiles m \
           JOIN customer_ids i ON i.record_id = m.record_id GROUP BY i.one_id) e \
         ON e.one_id = c.customer_id WHERE abs(c.points - e.points) > 0.5",
    )
    .await;
    assert_eq!(off, 0);
    // Some customers really do span channels, so the merge is exercised.
    let merged = support::count_of(
        &client,
        "SELECT count(*) FROM customer_360 WHERE records > 1 AND channels LIKE '%,%'",
    )
    .await;
    assert!(merged > 100, "customers spanning channels: {merged}");
    server.stop();
}

/// The crowd-pack pipeline (`sql/crowd_packs.sql`) runs from psql, twice: every step
/// replaces what the last run built, so the second run gives the same audiences. Each
/// audience holds only customers its rule admits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crowd_packs_run_twice_with_the_same_audiences() {
    if psql_path().is_none() {
        eprintln!("SKIPPED: psql not installed");
        return;
    }
    let server = support::start(support::demo_config());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/crowd_packs.sql");
    let path = path.to_string_lossy().into_owned();
    let client = server.connect().await;
    let sizes = || async {
        client
            .query(
                "SELECT audience, customers, phones, emails FROM crowd.audience_sizes \
                 ORDER BY audience",
                &[],
            )
            .await
            .expect("audience sizes")
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, i64>(1),
                    r.get::<_, i64>(2),
                    r.get::<_, i64>(3),
                )
            })
            .collect::<Vec<_>>()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let addr = server.addr;
        let file = path.clone();
        let (ok, stdout, stderr) =
            tokio::task::spawn_blocking(move || run_psql_with(addr, &["-f", file.as_str()]))
                .await
                .expect("psql ran");
        assert!(ok && !stderr.contains("ERROR"), "{stderr}\n{stdout}");
        runs.push(sizes().await);
    }
    assert_eq!(runs[0], runs[1], "the second run changed the audiences");
    assert_eq!(runs[0].len(), 5, "{:?}", runs[0]);
    for (audience, customers, phones, _) in &runs[0] {
        assert!(*customers > 0, "{audience} is empty");
        assert!(*phones > 0, "{audience} uploads no phones");
    }
    assert_eq!(
        support::count_of(&client, "SELECT count(*) FROM crowd.customer_tags").await,
        support::count_of(&client, "SELECT count(DISTINCT one_id) FROM customer_ids").await,
        "one tag row per customer"
    );
    let broken = [
        "SELECT count(*) FROM crowd.aud_high_value_fading \
         WHERE NOT (p_alive < 0.5) OR p_alive IS NULL",
        "SELECT count(*) FROM crowd.aud_champions_lapsed WHERE recency_days < 45",
        "SELECT count(*) FROM crowd.aud_important_at_risk WHERE stage <> 'at_risk'",
        "SELECT count(*) FROM crowd.contacts WHERE length(id_hash) <> 64",
        "SELECT count(*) FROM crowd.aud_new_viewed_never_paid a \
         JOIN customer_orders o ON o.customer_id = a.customer_id",
    ];
    for sql in broken {
        assert_eq!(support::count_of(&client, sql).await, 0, "{sql}");
    }
    server.stop();
}

/// Every statement dbt-postgres sent to PostgreSQL for `dbt debug, seed, run, test, run`
/// (a seed, a view, a table and an incremental model) runs in order, and the models hold
/// what dbt built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dbt_statements_all_run() {
    let server = support::start(support::demo_config());
    let client = server.connect().await;
    client.batch_execute("CREATE SCHEMA marts").await.unwrap();
    let text = include_str!("../clients/dbt-postgres.sql");
    let mut failures = Vec::new();
    for sql in statements_of(text) {
        if let Err(e) = client.simple_query(&sql).await {
            failures.push(format!("{e:?}\n  in: {}", sql.trim()));
            // Leave an aborted block the way dbt would.
            let _ = client.simple_query("ROLLBACK").await;
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let names: Vec<String> = client
        .query("SELECT name FROM marts.t_people ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, vec!["A", "B"]);
    let backups: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts' AND table_name LIKE '%dbt%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(backups, 0, "dbt's tmp and backup relations are gone");
    drop(client);
    server.stop();
}
