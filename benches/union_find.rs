//! Benchmark of the OneID resolution core alone (no DataFusion, no Arrow):
//! ingesting identifier rows into an `IdentityGraph` and resolving them.
//!
//! The input is synthetic, built in memory and deterministic: people with one
//! to three records across channels, each record with a few of phone (in
//! several spellings), email, device id, OpenID and member number, plus a
//! sprinkling of junk values, shared household devices and a small share of
//! hashed phones (so the hashed-matching path is exercised).
//!
//! Run: `cargo bench --bench union_find`. Before measuring, each size prints
//! one line with its build time, one resolve with all cores and one with a
//! single normalisation thread (wall and CPU time: CPU time is not inflated
//! when other processes compete for the cores), and the process's peak
//! resident memory per input row (the target is ≤ 150 bytes a row, arenas
//! included). Settings: `member_no:1,phone:3` limits, the default priority.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use userql::functions::identity::graph::{IdentityGraph, ResolverConfig};
use userql::functions::identity::normalize::{Region, hash_id};

/// SplitMix64: tiny, deterministic, good enough for synthetic data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const CHANNELS: [&str; 5] = ["tmall", "jd", "app", "pos", "wechat"];
/// Valid CN mobile prefixes, so most phones take the fast path and link.
const MOBILE_PREFIXES: [&str; 12] = [
    "130", "133", "135", "138", "139", "150", "158", "177", "180", "186", "188", "199",
];

fn phone_of(person: u64) -> String {
    let prefix = MOBILE_PREFIXES[(person % MOBILE_PREFIXES.len() as u64) as usize];
    format!(
        "{prefix}{:08}",
        (person.wrapping_mul(2_654_435_761)) % 100_000_000
    )
}

/// Builds a graph of at least `target_rows` identifier rows (public so a
/// profiling harness can include this file as a module).
pub fn build(target_rows: usize) -> IdentityGraph {
    let mut rng = Rng(42);
    let mut g = IdentityGraph::new();
    let region = Region::default();
    let mut person: u64 = 0;
    let mut record: u64 = 0;
    while g.row_count() < target_rows {
        person += 1;
        let records = match rng.below(10) {
            0..=3 => 1,
            4..=7 => 2,
            _ => 3,
        };
        let phone = phone_of(person);
        let email = format!("user{person}@example.com");
        let household_device = format!("dev-{:x}", person / 3);
        for _ in 0..records {
            record += 1;
            let channel = CHANNELS[rng.below(CHANNELS.len() as u64) as usize];
            let rid = format!("{channel}:{record:09}");
            let mut add = |t: &str, v: &str| {
                // Fits easily: a few million strings.
                let _ = g.add_identifier(&rid, t, v);
            };
            if rng.chance(80) {
                let spelled = match rng.below(4) {
                    0 => phone.clone(),
                    1 => format!("+86 {}-{}-{}", &phone[..3], &phone[3..7], &phone[7..]),
                    2 => format!("+86{phone}"),
                    _ => format!("{} {} {}", &phone[..3], &phone[3..7], &phone[7..]),
                };
                if rng.chance(3) {
                    add(
                        "phone_sha256",
                        &hash_id("phone", &phone, region).unwrap_or_default(),
                    );
                } else {
                    add("phone", &spelled);
                }
            }
            if rng.chance(40) {
                add("email", &email);
            }
            if rng.chance(50) {
                let device = match rng.below(100) {
                    0 => "00000000-0000-0000-0000-000000000000".to_string(),
                    1..=10 => household_device.clone(),
                    _ => format!("dev-{channel}-{record:x}"),
                };
                add("device_id", &device);
            }
            if rng.chance(35) {
                add("openid", &format!("o{:016x}", rng.next()));
            }
            if rng.chance(20) {
                add("member_no", &format!("M{person:010}"));
            }
            if rng.chance(1) {
                add("phone", "00000000000");
            }
        }
    }
    g
}

/// Peak resident set size of this process, from /proc (Linux); 0 elsewhere.
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU time (user + system, all threads) this process has used, from /proc
/// (Linux; 0 elsewhere). Unlike wall time it is not inflated when other
/// processes compete for the cores.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime
            // are the 14th and 15th fields overall.
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}

fn config() -> ResolverConfig {
    ResolverConfig::from_settings([
        ("userql.oneid_type_limits", "member_no:1,phone:3"),
        ("userql.oneid_max_records_per_value", "50"),
    ])
    .unwrap_or_default()
}

fn bench_resolve(c: &mut Criterion) {
    let cfg = config();
    for (rows, measurement) in [(1_000_000usize, 15u64), (10_000_000, 60)] {
        let start = Instant::now();
        let mut graph = build(rows);
        graph.shrink_to_fit();
        let built = start.elapsed();
        let (start, cpu) = (Instant::now(), cpu_seconds());
        let customers = graph.resolve(&cfg).map_or(0, |r| r.customer_count());
        let (wall, cpu) = (start.elapsed(), cpu_seconds() - cpu);
        let single = ResolverConfig {
            threads: 1,
            ..cfg.clone()
        };
        let (start, cpu1) = (Instant::now(), cpu_seconds());
        let _ = black_box(graph.resolve(&single).map(|r| r.len()));
        let (wall1, cpu1) = (start.elapsed(), cpu_seconds() - cpu1);
        let rss = peak_rss_bytes();
        eprintln!(
            "oneid {rows} rows: {} records, {customers} customers; build {built:.2?}; \
             resolve {wall:.2?} (CPU {cpu:.2} s), 1 thread {wall1:.2?} (CPU {cpu1:.2} s); \
             graph {:.0} B/row; peak RSS {:.0} B/row",
            graph.record_count(),
            graph.heap_bytes() as f64 / graph.row_count() as f64,
            rss as f64 / graph.row_count() as f64,
        );

        let mut group = c.benchmark_group("oneid");
        // Seconds per iteration at 10M rows: equal-size samples keep the
        // run to about ten iterations instead of criterion's 55.
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(measurement));
        group.throughput(Throughput::Elements(graph.row_count() as u64));
        group.bench_function(format!("resolve/{rows}"), |b| {
            b.iter(|| black_box(graph.resolve(&cfg).map(|r| r.len())))
        });
        if rows <= 1_000_000 {
            group.bench_function(format!("generate_and_ingest/{rows}"), |b| {
                b.iter(|| black_box(build(rows).row_count()))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_resolve);
criterion_main!(benches);
