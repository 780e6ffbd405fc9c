//! The in-process path of one small statement: parse, plan, optimise, physical plan,
//! run and collect, as a session runs it for the wire (no sockets, no encoding), so a
//! regression in per-statement cost shows here before it shows in pgbench.
//!
//! Statements: `SELECT 1` (table-free: kept planned after its first run), a point lookup
//! and a small aggregate on a 1000-row CSV channel (kept decoded in memory), each as the
//! same text again and again, like a dashboard's refresh or a pool's keep-alive.
//!
//! Run: `cargo bench --bench statement_path`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use userql::Engine;
use userql::config::Config;
use userql::engine::session::Outcome;

fn engine(rt: &tokio::runtime::Runtime) -> (std::sync::Arc<Engine>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut csv = String::from("k,amount,name\n");
    for k in 1..=1000 {
        csv.push_str(&format!("{k},{}.{:02},n{k}\n", (k * 37) % 200, k % 100));
    }
    std::fs::write(dir.path().join("small.csv"), csv).expect("write channel");
    let toml = "[server]\ndata_dir = \"store\"\n[[channels]]\nname = \"small\"\n\
                path = \"small.csv\"\nrecord_key = \"name\"\nids = { name = \"name\" }\n";
    std::fs::write(dir.path().join("userql.toml"), toml).expect("write config");
    let config = Config::load(&dir.path().join("userql.toml")).expect("config");
    let engine = rt.block_on(Engine::open(config)).expect("engine");
    (engine, dir)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (engine, _dir) = engine(&rt);
    let mut session = engine.session("bench");
    let mut group = c.benchmark_group("statement");
    for (name, sql) in [
        ("select_1", "SELECT 1"),
        ("point_lookup", "SELECT * FROM channels.small WHERE k = 500"),
        (
            "small_aggregate",
            "SELECT count(*), sum(amount) FROM channels.small WHERE amount > 100",
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let rows = match session.run(black_box(sql)).await.expect("runs") {
                        Outcome::Rows(rows) => rows.collect().await.expect("collects"),
                        _ => unreachable!("a query"),
                    };
                    black_box(rows)
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
