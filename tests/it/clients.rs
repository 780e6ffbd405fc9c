//! Real clients against the demo server: psql's backslash commands, and every catalog
//! query psql 15 sends (captured from a real PostgreSQL, `tests/clients/psql-15.sql`).

use std::process::Command;

use crate::support;

fn psql_path() -> Option<&'static str> {
    ["/usr/bin/psql", "/usr/local/bin/psql"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

fn run_psql(addr: std::net::SocketAddr, command: &str) -> (bool, String, String) {
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
            "-c",
            command,
        ])
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

/// Every statement psql 15 sends for its describe commands runs without error.
#[tokio::test]
async fn psql_catalog_queries_all_run() {
    let client = support::demo_server().connect().await;
    let text = include_str!("../clients/psql-15.sql");
    let mut failures = Vec::new();
    for stmt in text.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        let sql: String = stmt
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        if sql.trim().is_empty() {
            continue;
        }
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
