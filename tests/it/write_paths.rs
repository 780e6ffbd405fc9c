//! Values written through every path come back unchanged: SQL literals (`INSERT`,
//! `UPDATE`), `COPY FROM STDIN` in text and CSV, and text-format bound parameters all
//! read text by PostgreSQL's rules, and results print PostgreSQL's text. A property test
//! writes random rows through each path and compares what comes back with the text
//! PostgreSQL prints for those values.

use std::sync::OnceLock;

use futures::SinkExt;
use proptest::prelude::*;
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};

use crate::support;

/// A parameter sent in text format, as psql-style drivers (node-postgres, psycopg 3 in
/// text mode, pgjdbc with strings) send them.
#[derive(Debug)]
struct TextParam(Option<String>);

impl ToSql for TextParam {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            Some(s) => {
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// One row of every stored type, as the values are meant (not as any path spells them).
#[derive(Debug, Clone)]
struct Row {
    big: i64,
    small: i16,
    /// A multiple of 1/4, so its shortest decimal form is short and exact.
    dbl_quarters: i32,
    cents: i64,
    text: String,
    flag: Option<bool>,
    day: i32,
    /// Microseconds since 2000-01-01.
    at_micros: i64,
    bytes: Vec<u8>,
    tags: Vec<Option<String>>,
    nums: Vec<i64>,
}

const COLUMNS: &str = "id bigint, big bigint, small smallint, dbl double precision, \
    amount numeric(14,2), txt text, flag boolean, day date, at timestamp, at_tz timestamptz, \
    raw bytea, tags text[], nums bigint[]";

fn text_strategy() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('a'),
            Just('Z'),
            Just(' '),
            Just(','),
            Just('"'),
            Just('\\'),
            Just('{'),
            Just('}'),
            Just('\''),
            Just('\t'),
            Just('\n'),
            Just('中'),
            Just('é'),
            Just('N'),
        ],
        0..8,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn row_strategy() -> impl Strategy<Value = Row> {
    (
        (any::<i64>(), any::<i16>(), -4_000_000..4_000_000i32),
        -100_000_000_000i64..100_000_000_000,
        text_strategy(),
        proptest::option::of(any::<bool>()),
        (-30_000..30_000i32, 0..1_000_000_000_000_000i64),
        proptest::collection::vec(any::<u8>(), 0..6),
        proptest::collection::vec(
            prop_oneof![
                3 => text_strategy().prop_map(Some),
                1 => Just(Some("NULL".to_string())),
                1 => Just(None),
            ],
            0..4,
        ),
        proptest::collection::vec(any::<i64>(), 0..4),
    )
        .prop_map(
            |(
                (big, small, dbl_quarters),
                cents,
                text,
                flag,
                (day, at_micros),
                bytes,
                tags,
                nums,
            )| {
                Row {
                    big,
                    small,
                    dbl_quarters,
                    cents,
                    text,
                    flag,
                    day,
                    at_micros,
                    bytes,
                    tags,
                    nums,
                }
            },
        )
}

fn dbl_text(quarters: i32) -> String {
    let v = quarters as f64 / 4.0;
    let s = format!("{v}");
    if s == "-0" { "0".into() } else { s }
}

fn cents_text(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

fn day_text(day: i32) -> String {
    let base = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
    (base + chrono::Duration::days(day as i64))
        .format("%Y-%m-%d")
        .to_string()
}

fn at_text(micros: i64) -> String {
    let base = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let t = base + chrono::Duration::microseconds(micros);
    let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let frac = micros.rem_euclid(1_000_000);
    if frac != 0 {
        s.push_str(format!(".{frac:06}").trim_end_matches('0'));
    }
    s
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::from("\\x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// An array element as PostgreSQL's `array_out` writes it.
fn array_element(v: &str) -> String {
    let plain = !v.is_empty()
        && !v.eq_ignore_ascii_case("null")
        && !v.chars().any(|c| {
            matches!(c, '{' | '}' | ',' | '"' | '\\' | ' ' | '\t' | '\n' | '\r')
                || c == '\u{b}'
                || c == '\u{c}'
        });
    if plain {
        return v.to_string();
    }
    let mut s = String::from("\"");
    for c in v.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

fn tags_text(tags: &[Option<String>]) -> String {
    let items: Vec<String> = tags
        .iter()
        .map(|t| match t {
            None => "NULL".to_string(),
            Some(v) => array_element(v),
        })
        .collect();
    format!("{{{}}}", items.join(","))
}

fn nums_text(nums: &[i64]) -> String {
    let items: Vec<String> = nums.iter().map(|n| n.to_string()).collect();
    format!("{{{}}}", items.join(","))
}

impl Row {
    /// Each column's value as PostgreSQL's text input (and, being canonical, its output).
    fn texts(&self, id: usize) -> Vec<Option<String>> {
        vec![
            Some(id.to_string()),
            Some(self.big.to_string()),
            Some(self.small.to_string()),
            Some(dbl_text(self.dbl_quarters)),
            Some(cents_text(self.cents)),
            Some(self.text.clone()),
            self.flag.map(|b| if b { "t" } else { "f" }.to_string()),
            Some(day_text(self.day)),
            Some(at_text(self.at_micros)),
            Some(format!("{}+00", at_text(self.at_micros))),
            Some(hex(&self.bytes)),
            Some(tags_text(&self.tags)),
            Some(nums_text(&self.nums)),
        ]
    }
}

fn sql_literal(v: &Option<String>) -> String {
    match v {
        None => "NULL".into(),
        Some(s) => format!("'{}'", s.replace('\'', "''")),
    }
}

fn copy_text_field(v: &Option<String>) -> String {
    match v {
        None => "\\N".into(),
        Some(s) => s
            .replace('\\', "\\\\")
            .replace('\t', "\\t")
            .replace('\n', "\\n")
            .replace('\r', "\\r"),
    }
}

fn copy_csv_field(v: &Option<String>) -> String {
    match v {
        None => String::new(),
        Some(s) => format!("\"{}\"", s.replace('"', "\"\"")),
    }
}

/// The rows of `table` as text, one vector per row (NULL as `None`).
async fn read_back(client: &tokio_postgres::Client, table: &str) -> Vec<Vec<Option<String>>> {
    let messages = client
        .simple_query(&format!("SELECT * FROM {table} ORDER BY id"))
        .await
        .unwrap_or_else(|e| panic!("read {table}: {e}"));
    messages
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

async fn write_and_check(client: &tokio_postgres::Client, case: usize, rows: &[Row]) {
    let expected: Vec<Vec<Option<String>>> =
        rows.iter().enumerate().map(|(i, r)| r.texts(i)).collect();
    let paths = ["literal", "update", "copy_text", "copy_csv", "text_params"];
    for path in paths {
        let table = format!("rt.{path}_{case}");
        client
            .batch_execute(&format!("CREATE TABLE {table} ({COLUMNS})"))
            .await
            .unwrap();
        match path {
            "literal" => {
                let values: Vec<String> = expected
                    .iter()
                    .map(|r| {
                        format!(
                            "({})",
                            r.iter().map(sql_literal).collect::<Vec<_>>().join(", ")
                        )
                    })
                    .collect();
                if !values.is_empty() {
                    client
                        .batch_execute(&format!("INSERT INTO {table} VALUES {}", values.join(", ")))
                        .await
                        .unwrap_or_else(|e| panic!("{path}: {e}"));
                }
            }
            "update" => {
                for r in &expected {
                    client
                        .batch_execute(&format!(
                            "INSERT INTO {table} (id) VALUES ({})",
                            r[0].as_deref().unwrap_or("0")
                        ))
                        .await
                        .unwrap();
                    let names = [
                        "big", "small", "dbl", "amount", "txt", "flag", "day", "at", "at_tz",
                        "raw", "tags", "nums",
                    ];
                    let sets: Vec<String> = names
                        .iter()
                        .zip(&r[1..])
                        .map(|(n, v)| format!("{n} = {}", sql_literal(v)))
                        .collect();
                    client
                        .batch_execute(&format!(
                            "UPDATE {table} SET {} WHERE id = {}",
                            sets.join(", "),
                            r[0].as_deref().unwrap_or("0")
                        ))
                        .await
                        .unwrap_or_else(|e| panic!("{path}: {e}"));
                }
            }
            "copy_text" | "copy_csv" => {
                let csv = path == "copy_csv";
                let mut data = String::new();
                for r in &expected {
                    let fields: Vec<String> = r
                        .iter()
                        .map(|v| {
                            if csv {
                                copy_csv_field(v)
                            } else {
                                copy_text_field(v)
                            }
                        })
                        .collect();
                    data.push_str(&fields.join(if csv { "," } else { "\t" }));
                    data.push('\n');
                }
                let statement = if csv {
                    format!("COPY {table} FROM STDIN WITH (FORMAT csv)")
                } else {
                    format!("COPY {table} FROM STDIN")
                };
                let sink = client.copy_in(&statement).await.unwrap();
                let mut sink = Box::pin(sink);
                sink.send(bytes::Bytes::from(data)).await.unwrap();
                let n = sink
                    .as_mut()
                    .finish()
                    .await
                    .unwrap_or_else(|e| panic!("{path}: {e}"));
                assert_eq!(n as usize, rows.len());
            }
            _ => {
                let insert = client
                    .prepare(&format!(
                        "INSERT INTO {table} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                    ))
                    .await
                    .unwrap();
                for r in &expected {
                    let params: Vec<TextParam> = r.iter().cloned().map(TextParam).collect();
                    let refs: Vec<&(dyn ToSql + Sync)> =
                        params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                    client
                        .execute(&insert, &refs)
                        .await
                        .unwrap_or_else(|e| panic!("{path}: {e}"));
                }
            }
        }
        let got = read_back(client, &table).await;
        assert_eq!(got, expected, "{path}: rows differ");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_write_path_reads_back_what_was_written(rows in proptest::collection::vec(row_strategy(), 0..12)) {
        static SERVER: OnceLock<support::Running> = OnceLock::new();
        static CASE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let server = SERVER.get_or_init(|| support::start(support::demo_config()));
        let case = CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        runtime().block_on(async {
            let client = server.connect().await;
            client.batch_execute("CREATE SCHEMA IF NOT EXISTS rt").await.unwrap();
            write_and_check(&client, case, &rows).await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_text_array_from_a_driver_is_an_array() {
    let server = support::start(support::demo_config());
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE t (id int, tags text[])")
        .await
        .unwrap();
    let sink = client.copy_in("COPY t FROM STDIN").await.unwrap();
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from_static(
        b"1\t{p,\"q r\"}\n2\t\\N\n3\t{}\n",
    ))
    .await
    .unwrap();
    assert_eq!(sink.as_mut().finish().await.unwrap(), 3);
    let rows = client
        .query(
            "SELECT id, CAST(cardinality(tags) AS BIGINT), tags[2] FROM t ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, Option<i64>>(1), Some(2));
    assert_eq!(rows[0].get::<_, Option<String>>(2).as_deref(), Some("q r"));
    assert_eq!(rows[1].get::<_, Option<i64>>(1), None);

    // Text that is not an array literal fails the COPY and writes nothing.
    let sink = client.copy_in("COPY t FROM STDIN").await.unwrap();
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from_static(b"4\t{a,b\n"))
        .await
        .unwrap();
    let err = sink.as_mut().finish().await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("22P02"), "{err}");
    let n: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3);

    // A text parameter holding an array literal is an array; a bad one is 22P02.
    let any = client
        .query(
            "SELECT id FROM t WHERE tags[2] = ANY($1::text[]) ORDER BY id",
            &[&TextParam(Some("{\"q r\",x}".into()))],
        )
        .await
        .unwrap();
    assert_eq!(any.len(), 1);
    let err = client
        .execute(
            "INSERT INTO t VALUES (5, $1)",
            &[&TextParam(Some("{oops".into()))],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("22P02"), "{err}");
    drop(client);
    server.stop();
}
