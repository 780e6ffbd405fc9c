//! LTV through SQL on the CDNOW sample (the data set of the BG/NBD paper), against the
//! published estimates and the Python `lifetimes` package's fits and predictions
//! (`tests/data/`, made by `tests/reference/ltv_reference.py`).

use std::collections::HashMap;

use futures::SinkExt;

use crate::support;

fn data(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn copy_csv(client: &tokio_postgres::Client, table: &str, csv: String) {
    let sink = client
        .copy_in(&format!(
            "COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)"
        ))
        .await
        .unwrap();
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from(csv)).await.unwrap();
    sink.as_mut().finish().await.unwrap();
}

/// lifetimes' fitted parameters: (dataset, param) → value.
fn lifetimes_params() -> HashMap<(String, String), f64> {
    data("cdnow_lifetimes_params.csv")
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            ((f[0].to_string(), f[2].to_string()), f[3].parse().unwrap())
        })
        .collect()
}

fn rel(ours: f64, theirs: f64) -> f64 {
    (ours - theirs).abs() / theirs.abs().max(1e-12)
}

fn floats(row: &tokio_postgres::Row) -> Vec<f64> {
    (0..row.len()).map(|i| row.get::<_, f64>(i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdnow_through_sql_matches_the_paper_and_lifetimes() {
    let server = support::start(support::demo_config());
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE cdnow_tx (customer_id bigint, order_date date, amount double precision);
             CREATE TABLE cdnow_summary (customer_id bigint, frequency bigint, recency double precision, t double precision, monetary_value double precision);
             CREATE TABLE reference (dataset text, customer_id bigint, horizon double precision, p_alive double precision, expected_purchases double precision, expected_avg_value double precision, clv double precision)",
        )
        .await
        .unwrap();
    copy_csv(&client, "cdnow_tx", data("cdnow_transactions.csv")).await;
    copy_csv(&client, "cdnow_summary", data("cdnow_summary.csv")).await;
    copy_csv(&client, "reference", data("cdnow_lifetimes_reference.csv")).await;
    let theirs = lifetimes_params();

    // The paper's estimates (Fader, Hardie & Lee 2005) on its own summary data, in weeks.
    let row = client
        .query_one(
            "SELECT get_field(f, 'r'), get_field(f, 'alpha'), get_field(f, 'a'), get_field(f, 'b'), get_field(f, 'log_likelihood')
             FROM (SELECT bgnbd_fit(frequency, recency, t) AS f FROM cdnow_summary)",
            &[],
        )
        .await
        .unwrap();
    let bg = floats(&row);
    // Published to three decimals: ours rounds to the same.
    let published = [0.243, 4.414, 0.793, 2.426];
    for (i, want) in published.iter().enumerate() {
        let rounded = (bg[i] * 1000.0).round() / 1000.0;
        assert!(
            (rounded - want).abs() < 1e-9,
            "param {i}: {} vs published {want}",
            bg[i]
        );
        let name = ["r", "alpha", "a", "b"][i];
        let lt = theirs[&("published".into(), name.into())];
        assert!(rel(bg[i], lt) < 1e-4, "{name}: {} vs lifetimes {lt}", bg[i]);
    }
    assert!((bg[4] - -9582.4).abs() < 0.1, "log-likelihood {}", bg[4]);
    let row = client
        .query_one(
            "SELECT get_field(g, 'p'), get_field(g, 'q'), get_field(g, 'v')
             FROM (SELECT gamma_gamma_fit(frequency, monetary_value) AS g FROM cdnow_summary)",
            &[],
        )
        .await
        .unwrap();
    for (i, name) in ["p", "q", "v"].iter().enumerate() {
        let lt = theirs[&("published".into(), name.to_string())];
        assert!(rel(row.get::<_, f64>(i), lt) < 1e-4, "{name}");
    }

    // From the raw transactions, by week to 1997-09-30: ltv_params equals lifetimes' fit.
    let input =
        "SELECT customer_id, CAST(order_date AS timestamp) AS order_ts, amount FROM cdnow_tx";
    let row = client
        .query_one(
            &format!(
                "SELECT r, alpha, a, b, p, q, v FROM ltv_params('{}', '1997-09-30', 'week')",
                input.replace('\'', "''")
            ),
            &[],
        )
        .await
        .unwrap();
    let fitted = floats(&row);
    for (i, name) in ["r", "alpha", "a", "b", "p", "q", "v"].iter().enumerate() {
        let lt = theirs[&("week@1997-09-30".into(), name.to_string())];
        assert!(
            rel(fitted[i], lt) < 1e-4,
            "week {name}: {} vs {lt}",
            fitted[i]
        );
    }

    // And every customer's predictions equal lifetimes' (12 months, 1 % a month).
    let worst = client
        .query_one(
            &format!(
                "SELECT max(abs(l.p_alive - r.p_alive) / r.p_alive),
                        max(abs(l.expected_avg_value - r.expected_avg_value) / r.expected_avg_value),
                        max(abs(l.clv - r.clv) / greatest(r.clv, 1e-9)),
                        count(*)
                 FROM ltv('{}', 12, 0.01, '1997-09-30', 'week') l
                 JOIN reference r ON r.customer_id = l.customer_id AND r.dataset = 'week@1997-09-30'",
                input.replace('\'', "''")
            ),
            &[],
        )
        .await
        .unwrap();
    let count: i64 = worst.get(3);
    assert_eq!(count, 2357);
    for (i, name) in ["p_alive", "expected_avg_value", "clv"].iter().enumerate() {
        let w: f64 = worst.get(i);
        assert!(w < 1e-4, "{name}: worst relative difference {w}");
    }
    // Expected purchases over the reference's own horizon, through the scalar.
    let worst: f64 = client
        .query_one(
            &format!(
                "WITH fit AS (SELECT bgnbd_fit(frequency, recency, t) AS f FROM clv_summary('{}', '1997-09-30', 'week')),
                 s AS (SELECT * FROM clv_summary('{}', '1997-09-30', 'week'))
                 SELECT max(abs(bgnbd_expected_purchases(fit.f, r.horizon, s.frequency, s.recency, s.t) - r.expected_purchases) / r.expected_purchases)
                 FROM s CROSS JOIN fit JOIN reference r ON r.customer_id = s.customer_id AND r.dataset = 'week@1997-09-30'",
                input.replace('\'', "''"),
                input.replace('\'', "''")
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(worst < 1e-4, "expected purchases: {worst}");
    drop(client);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ltv_on_the_demo_and_its_errors() {
    let server = support::start(support::demo_config());
    let client = server.connect().await;
    let row = client
        .query_one(
            "SELECT count(*), min(p_alive), max(p_alive), min(clv), min(expected_purchases) FROM ltv('customer_orders')",
            &[],
        )
        .await
        .unwrap();
    let n: i64 = row.get(0);
    assert!(n > 100, "{n} customers");
    let (lo, hi, clv, purchases): (f64, f64, f64, f64) =
        (row.get(1), row.get(2), row.get(3), row.get(4));
    assert!(
        (0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi),
        "p_alive {lo}..{hi}"
    );
    assert!(clv >= 0.0 && purchases >= 0.0);

    client
        .batch_execute(
            "CREATE TABLE few (customer_id bigint, order_ts timestamp, amount double precision);
             INSERT INTO few VALUES (1, '2024-01-01', 10), (1, '2024-02-01', 12), (2, '2024-01-05', 5)",
        )
        .await
        .unwrap();
    let code = |e: tokio_postgres::Error| e.code().map(|c| c.code().to_string());
    let e = client
        .query("SELECT * FROM ltv('few')", &[])
        .await
        .unwrap_err();
    assert_eq!(code(e).as_deref(), Some("22000"));
    client
        .batch_execute("INSERT INTO few VALUES (3, '2024-01-05', -5)")
        .await
        .unwrap();
    let e = client
        .query("SELECT * FROM clv_summary('few')", &[])
        .await
        .unwrap_err();
    assert_eq!(code(e).as_deref(), Some("22023"));
    let e = client
        .query("SELECT * FROM clv_summary('few', NULL, 'fortnight')", &[])
        .await
        .unwrap_err();
    assert_eq!(code(e).as_deref(), Some("22023"));
    let e = client
        .query("SELECT * FROM ltv('few', 1.5)", &[])
        .await
        .unwrap_err();
    assert_eq!(code(e).as_deref(), Some("22023"));
    let e = client
        .query("SELECT bgnbd_p_alive(1, 2, 3, 4)", &[])
        .await
        .unwrap_err();
    assert!(e.code().is_some(), "{e}");
    // No rows: the aggregates give NULL.
    let row = client
        .query_one(
            "SELECT bgnbd_fit(1, 1, 2) IS NULL FROM few WHERE false",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));

    // `bigint` ids take their own path (orders scattered into buckets by a hash of the
    // id, each bucket sorted by id); the same orders with text ids take DataFusion's
    // sort. Same summaries, NULL rows and orders after `as_of` left out alike, one row
    // per customer (in no particular order).
    client
        .batch_execute(
            "CREATE TABLE many AS SELECT CAST(value % 5003 AS BIGINT) * 1000003 - 2500000000 AS customer_id, \
               to_timestamp(1700000000 + (value * 7919) % 40000000) AS order_ts, \
               CAST((value * 104729) % 997 AS DOUBLE) / 4 AS amount FROM generate_series(1, 60000); \
             INSERT INTO many VALUES (NULL, '2024-01-01', 1), (7, NULL, 1), (7, '2024-01-01', NULL)",
        )
        .await
        .unwrap();
    for as_of in ["NULL", "'2024-06-01'"] {
        let summary = |key: &str| {
            format!(
                "SELECT customer_id, frequency, recency, t, monetary_value FROM clv_summary(\
                 'SELECT {key} AS customer_id, order_ts, amount FROM many', {as_of}, 'week')"
            )
        };
        let bigint = client.query(&summary("customer_id"), &[]).await.unwrap();
        let text = client
            .query(&summary("CAST(customer_id AS TEXT)"), &[])
            .await
            .unwrap();
        assert!(bigint.len() > 2000, "{} customers", bigint.len());
        assert_eq!(bigint.len(), text.len());
        let mut bigint: Vec<_> = bigint.iter().collect();
        bigint.sort_by_key(|r| r.get::<_, i64>(0));
        let ids: Vec<i64> = bigint.iter().map(|r| r.get(0)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "one row per customer");
        let mut text: Vec<_> = text.iter().collect();
        text.sort_by_key(|r| r.get::<_, String>(0).parse::<i64>().unwrap());
        for (b, t) in bigint.iter().zip(text) {
            assert_eq!(b.get::<_, i64>(0).to_string(), t.get::<_, String>(0));
            for c in 1..5 {
                let (x, y): (f64, f64) = if c == 1 {
                    (b.get::<_, i64>(c) as f64, t.get::<_, i64>(c) as f64)
                } else {
                    (b.get(c), t.get(c))
                };
                assert_eq!(x, y, "column {c} of customer {}", b.get::<_, i64>(0));
            }
        }
    }
    drop(client);
    server.stop();
}

/// The prediction scalars remember results per set of parameters between rows, batches
/// and statements: rows whose parameters alternate (each CDNOW customer scored with the
/// fit of its own half) get exactly what each half gets scored alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scalars_score_each_row_with_its_own_parameters() {
    let server = support::start(support::demo_config());
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE cdnow_summary (customer_id bigint, frequency bigint, recency double precision, t double precision, monetary_value double precision)",
        )
        .await
        .unwrap();
    copy_csv(&client, "cdnow_summary", data("cdnow_summary.csv")).await;
    let scores = |halves: &str| {
        format!(
            "WITH fits AS (SELECT customer_id % 2 AS half, bgnbd_fit(frequency, recency, t) AS bg,
                                  gamma_gamma_fit(frequency, monetary_value) AS gg
                           FROM cdnow_summary GROUP BY 1)
             SELECT s.customer_id,
                    bgnbd_p_alive(f.bg, s.frequency, s.recency, s.t),
                    bgnbd_expected_purchases(f.bg, 52, s.frequency, s.recency, s.t),
                    clv(f.bg, f.gg, s.frequency, s.recency, s.t, s.monetary_value, 12, 0.01, 'week')
             FROM cdnow_summary s JOIN fits f ON f.half = s.customer_id % 2
             WHERE s.customer_id % 2 IN ({halves})
             ORDER BY s.customer_id"
        )
    };
    let rows = |rows: Vec<tokio_postgres::Row>| -> Vec<(i64, Vec<f64>)> {
        rows.iter()
            .map(|r| (r.get(0), (1..4).map(|i| r.get::<_, f64>(i)).collect()))
            .collect()
    };
    let together = rows(client.query(&scores("0, 1"), &[]).await.unwrap());
    assert_eq!(together.len(), 2357);
    // The two halves' parameters differ, so a row scored with the other half's would show.
    let fits = client
        .query(
            "SELECT get_field(bgnbd_fit(frequency, recency, t), 'r') FROM cdnow_summary GROUP BY customer_id % 2",
            &[],
        )
        .await
        .unwrap();
    assert_ne!(fits[0].get::<_, f64>(0), fits[1].get::<_, f64>(0));
    let mut apart = rows(client.query(&scores("0"), &[]).await.unwrap());
    apart.extend(rows(client.query(&scores("1"), &[]).await.unwrap()));
    apart.sort_by_key(|(id, _)| *id);
    assert_eq!(together, apart);
    server.stop();
}
