//! Users, roles and masking through the wire: SCRAM-SHA-256 with PostgreSQL verifiers,
//! 28P01 alike for a wrong password and an unknown user, role `read` refused writes
//! (42501) but allowed temporary tables and SET, masked identifiers for role `read` while
//! OneID resolves on the real values.

use std::sync::OnceLock;

use tokio_postgres::NoTls;
use userql::security::Verifier;

use crate::support::{self, Running};

fn verifier(password: &str) -> String {
    Verifier::with_salt(password, password.as_bytes(), 4096).to_string()
}

fn server() -> &'static Running {
    static SERVER: OnceLock<Running> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = support::fresh_dir("security");
        let channels = std::fs::read_to_string(support::demo_dir().join("userql.toml")).unwrap();
        let text = format!(
            "[[users]]\nname = \"ana\"\nrole = \"read\"\npassword = \"{}\"\n\n\
             [[users]]\nname = \"wes\"\nrole = \"write\"\npassword = \"{}\"\n\n\
             [privacy]\nmask = {{ phone = \"mask_phone\", email = \"mask_email\" }}\n\n{channels}",
            verifier("ana-pw"),
            verifier("wes-pw"),
        );
        let path = support::demo_dir().join(format!("security-{}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let mut config = userql::config::Config::load(&path).expect("config loads");
        config.server.data_dir = dir.join("data");
        support::start(config)
    })
}

async fn connect(
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let s = server();
    let conn_str = format!("{} password={password}", s.conn_str(user));
    let (client, conn) = tokio_postgres::connect(&conn_str, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn code(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no code: {e}"))
}

async fn strings(client: &tokio_postgres::Client, sql: &str) -> Vec<Option<String>> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn wrong_password_and_unknown_user_fail_alike() {
    let ok = connect("ana", "ana-pw").await.expect("right password");
    assert_eq!(
        strings(&ok, "SELECT current_user").await,
        vec![Some("ana".into())]
    );
    let wrong = connect("ana", "nope").await.unwrap_err();
    let unknown = connect("nobody", "nope").await.unwrap_err();
    assert_eq!(code(&wrong), "28P01");
    assert_eq!(code(&unknown), "28P01");
    let message = |e: &tokio_postgres::Error| e.as_db_error().map(|d| d.message().to_string());
    assert_eq!(
        message(&wrong).unwrap().replace("ana", "X"),
        message(&unknown).unwrap().replace("nobody", "X")
    );
    // Trust is gone: no password at all is refused too.
    let s = server();
    assert!(
        tokio_postgres::connect(&s.conn_str("ana"), NoTls)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn read_role_cannot_write_but_may_use_temporary_tables() {
    let ana = connect("ana", "ana-pw").await.unwrap();
    for sql in [
        "CREATE TABLE t_read AS SELECT 1 AS a",
        "CREATE SCHEMA s_read",
        "CREATE VIEW v_read AS SELECT 1 AS a",
        "DROP VIEW customer_orders",
        "COPY (SELECT 1) TO '/tmp/userql-read-role.csv'",
    ] {
        let err = ana.batch_execute(sql).await.unwrap_err();
        assert_eq!(code(&err), "42501", "{sql}: {err}");
    }
    ana.batch_execute(
        "CREATE TEMP TABLE scratch AS SELECT 1 AS a; INSERT INTO scratch VALUES (2); \
         SET userql.rfm_bins = 4",
    )
    .await
    .unwrap();
    assert_eq!(
        support::count_of(&ana, "SELECT count(*) FROM scratch").await,
        2
    );
    // A write user creates, the read user reads but cannot change it.
    let wes = connect("wes", "wes-pw").await.unwrap();
    wes.batch_execute("CREATE TABLE IF NOT EXISTS shared_t AS SELECT 1 AS a")
        .await
        .unwrap();
    assert_eq!(
        support::count_of(&ana, "SELECT count(*) FROM shared_t").await,
        1
    );
    for sql in [
        "INSERT INTO shared_t VALUES (2)",
        "UPDATE shared_t SET a = 3",
        "DELETE FROM shared_t",
        "DROP TABLE shared_t",
        "ALTER TABLE shared_t RENAME TO other_t",
    ] {
        let err = ana.batch_execute(sql).await.unwrap_err();
        assert_eq!(code(&err), "42501", "{sql}: {err}");
    }
    // Who is connected cannot be changed to someone else.
    let err = ana
        .batch_execute("SET session_authorization = 'wes'")
        .await
        .unwrap_err();
    assert_eq!(code(&err), "42501");
    assert_eq!(
        strings(&ana, "SELECT session_user").await,
        vec![Some("ana".into())]
    );
    let roles = strings(
        &ana,
        "SELECT rolname || ':' || rolsuper::text FROM pg_roles ORDER BY 1",
    )
    .await;
    assert_eq!(
        roles,
        vec![Some("ana:false".into()), Some("wes:false".into())]
    );
}

#[tokio::test]
async fn read_role_sees_masked_identifiers_and_the_same_customers() {
    let ana = connect("ana", "ana-pw").await.unwrap();
    let wes = connect("wes", "wes-pw").await.unwrap();
    let raw = strings(
        &wes,
        "SELECT phone FROM channels.app_users WHERE phone IS NOT NULL ORDER BY user_id LIMIT 20",
    )
    .await;
    let masked = strings(
        &ana,
        "SELECT phone FROM channels.app_users WHERE phone IS NOT NULL ORDER BY user_id LIMIT 20",
    )
    .await;
    assert_eq!(raw.len(), masked.len());
    for (r, m) in raw.iter().zip(&masked) {
        let (r, m) = (r.as_deref().unwrap(), m.as_deref().unwrap());
        assert!(m.contains("****") && m != r, "{r} -> {m}");
    }
    // No query gets at a raw value: not a probe in WHERE, not an aggregate, not a view.
    let probe = raw[0].clone().unwrap();
    let probe_sql = format!("SELECT count(*) FROM channels.app_users WHERE phone = '{probe}'");
    assert!(support::count_of(&wes, &probe_sql).await >= 1);
    assert_eq!(support::count_of(&ana, &probe_sql).await, 0);
    let max = strings(&ana, "SELECT max(phone) FROM channels.app_users").await;
    assert!(max[0].as_deref().unwrap().contains("****"), "{max:?}");
    for sql in [
        "SELECT id_value FROM identities WHERE id_type IN ('phone', 'email') AND id_value IS NOT NULL AND id_value <> ''",
        "SELECT id_value FROM oneid_links('identities') WHERE id_type IN ('phone', 'email')",
        "SELECT upper(email) FROM channels.app_users WHERE email IS NOT NULL AND email <> ''",
    ] {
        let values = strings(&ana, sql).await;
        assert!(!values.is_empty(), "{sql}");
        for v in values.iter().flatten() {
            assert!(v.contains('*'), "{sql}: {v}");
        }
    }
    // A view a write user stored over the channels is masked for the read user too, and
    // OneID over its name still resolves on the real values.
    wes.batch_execute(
        "CREATE OR REPLACE VIEW contact_ids AS SELECT record_id, id_type, id_value FROM identities \
         WHERE id_type IN ('phone', 'email')",
    )
    .await
    .unwrap();
    for v in strings(
        &ana,
        "SELECT id_value FROM contact_ids WHERE id_value <> ''",
    )
    .await
    .iter()
    .flatten()
    {
        assert!(v.contains('*'), "view: {v}");
    }
    let q = "SELECT count(DISTINCT one_id) FROM oneid('contact_ids')";
    assert_eq!(
        support::count_of(&ana, q).await,
        support::count_of(&wes, q).await
    );
    // OneID resolves on the real values for everyone.
    for sql in [
        "SELECT count(DISTINCT one_id) FROM customer_ids",
        "SELECT count(DISTINCT one_id) FROM oneid('identities')",
        "SELECT count(DISTINCT customer_id) FROM customer_orders",
    ] {
        assert_eq!(
            support::count_of(&ana, sql).await,
            support::count_of(&wes, sql).await,
            "{sql}"
        );
    }
}
