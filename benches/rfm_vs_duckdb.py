"""RFM over the wire in userql vs the same rules as window SQL in DuckDB, on one Parquet file.

One run:
  1. generates (seeded, so the same file every time) ONE Parquet file of orders
     `customer_id bigint, order_ts timestamp, amount double` (reused when present);
  2. userql serves that file as channel `bench`; over psycopg we run
     `SELECT segment, value_class, count(*), sum(m_score) FROM rfm('channels.bench') ...`
     (everything is aggregated on the server, so the wire carries ~50 rows), one
     warm-up then `--runs` timed runs, and read the server's peak RSS (VmHWM);
  3. a separate Python process runs the equivalent window SQL in DuckDB on the same file
     (warm-up, then the same number of runs) and reports its own times and peak RSS;
  4. prints both, the ratio, peak memory, and whether the two results agree (they must:
     the rules are the same).

The query reads every output of `rfm` that costs work (all three scores, the segment, the
value class): a query grouping by segment alone would let DuckDB skip the monetary sort and
the value classes, which userql's `rfm` always computes.

Run through benches/rfm_vs_duckdb.sh, which makes the venv (duckdb, psycopg, numpy,
pyarrow).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchkit import (
    cached_file,
    default_bench_dir,
    default_userql_bin,
    sql_str,
    timed_runs,
    userql_query,
    userql_server,
    vm_kib,
)

TARGET_RATIO = 0.5  # userql time / DuckDB time must be at most this
SEED = 42

# --------------------------------------------------------------------------------------
# The query, in both dialects
# --------------------------------------------------------------------------------------

USERQL_SQL = """
SELECT segment, value_class, count(*) AS customers, sum(m_score) AS m_score_sum
FROM rfm('channels.bench')
GROUP BY segment, value_class
ORDER BY segment, value_class
"""

# rfm's rules written out (src/functions/rfm/README.md): totals per customer, as_of = the
# latest order, recency in whole days, scores from percent_rank (recency oldest first),
# the R-F grid, value classes strictly better than the averages. Amounts are summed with
# compensation on both sides (rfm keeps each addition's rounding error; DuckDB's fsum), so
# that customers whose amounts are equal in another order tie in both engines: a plain
# floating-point sum depends on the order the threads add in.
DUCKDB_SQL = """
WITH totals AS (
    SELECT customer_id, max(order_ts) AS last_ts, count(*) AS frequency,
           fsum(amount) AS monetary
    FROM read_parquet({file})
    WHERE customer_id IS NOT NULL AND order_ts IS NOT NULL AND amount IS NOT NULL
    GROUP BY customer_id
),
measures AS (
    SELECT frequency, monetary,
           (epoch_us(max(last_ts) OVER ()) - epoch_us(last_ts)) // 86400000000 AS recency_days
    FROM totals
),
scored AS (
    SELECT *,
        CAST(least(5, 1 + floor(5 * percent_rank() OVER (ORDER BY recency_days DESC))) AS INT) AS r_score,
        CAST(least(5, 1 + floor(5 * percent_rank() OVER (ORDER BY frequency))) AS INT) AS f_score,
        CAST(least(5, 1 + floor(5 * percent_rank() OVER (ORDER BY monetary))) AS INT) AS m_score,
        avg(recency_days) OVER () AS avg_recency_days,
        avg(frequency) OVER () AS avg_frequency,
        avg(monetary) OVER () AS avg_monetary
    FROM measures
),
labelled AS (
    SELECT m_score,
        CASE
            WHEN r_score = 5 AND f_score = 1 THEN 'New Customers'
            WHEN r_score IN (4, 5) AND f_score IN (2, 3) THEN 'Potential Loyalists'
            WHEN r_score = 5 AND f_score IN (4, 5) THEN 'Champions'
            WHEN r_score = 4 AND f_score = 1 THEN 'Promising'
            WHEN r_score IN (3, 4) AND f_score IN (4, 5) THEN 'Loyal Customers'
            WHEN r_score = 3 AND f_score IN (1, 2) THEN 'About to Sleep'
            WHEN r_score = 3 AND f_score = 3 THEN 'Need Attention'
            WHEN r_score IN (1, 2) AND f_score IN (1, 2) THEN 'Hibernating'
            WHEN r_score IN (1, 2) AND f_score IN (3, 4) THEN 'At Risk'
            WHEN r_score IN (1, 2) AND f_score = 5 THEN 'Can''t Lose Them'
        END AS segment,
        CASE 4 * CAST(recency_days < avg_recency_days AS INT)
             + 2 * CAST(frequency > avg_frequency AS INT)
             + CAST(monetary > avg_monetary AS INT)
            WHEN 7 THEN 'Important Value'
            WHEN 5 THEN 'Important Development'
            WHEN 3 THEN 'Important Retention'
            WHEN 1 THEN 'Important Recall'
            WHEN 6 THEN 'General Value'
            WHEN 4 THEN 'General Development'
            WHEN 2 THEN 'General Retention'
            WHEN 0 THEN 'General Recall'
        END AS value_class
    FROM scored
)
SELECT segment, value_class, count(*) AS customers, sum(m_score) AS m_score_sum
FROM labelled
GROUP BY segment, value_class
ORDER BY segment, value_class
"""


def normalise(rows) -> list[tuple]:
    """Result rows as comparable tuples (drivers return ints/Decimals differently)."""
    return sorted((str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows)


# --------------------------------------------------------------------------------------
# 1. Data
# --------------------------------------------------------------------------------------

# Price points many shops use: a share of orders lands exactly on one, so amounts tie.
PRICE_POINTS = [9.9, 19.9, 29.9, 39.0, 49.0, 59.0, 69.0, 99.0, 129.0, 199.0, 299.0, 599.0]


def generate(path: Path, customers: int, rows: int, seed: int) -> None:
    """ONE Parquet file of `rows` orders by `customers` customers, the same for a seed.

    - Orders per customer: every customer has at least one; the rest are spread by a
      heavy-tailed weight (45% of customers get weight 0, the others a log-normal one), so
      about half the customers order once, two thirds 1-3 times, and a tail orders
      hundreds or thousands of times.
    - Timestamps over two years (2023-01-01 .. 2024-12-31), whole seconds: each customer
      starts on a uniform day and stays active an exponential time (mean 240 days); 3% of
      orders share the previous order's timestamp (split orders), and across 1M customers
      many last orders fall on the same day and second.
    - Amounts log-normal (median ~80, a per-customer spend factor), rounded to cents;
      30% are exactly a common price point.
    The file is sorted by order_ts, as an order log would be.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if rows < customers:
        raise SystemExit(f"--rows ({rows}) must be at least --customers ({customers})")
    rng = np.random.default_rng(seed)
    weight = rng.lognormal(0.0, 1.6, customers)
    weight[rng.random(customers) < 0.45] = 0.0
    counts = 1 + rng.multinomial(rows - customers, weight / weight.sum())
    cust = np.repeat(np.arange(customers, dtype=np.int64), counts)  # grouped by customer

    start = np.datetime64("2023-01-01T00:00:00", "s").astype(np.int64)
    span = 731 * 86400  # 2023-01-01 .. 2024-12-31 23:59:59
    first = rng.integers(0, span, customers)
    life = np.minimum(rng.exponential(240 * 86400, customers).astype(np.int64), span - 1 - first)
    # Offsets within each customer's active time; the first order of each is at its start.
    offset = (rng.random(rows) * (life[cust] + 1)).astype(np.int64)
    group_start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    offset[group_start] = 0
    ts = first[cust] + offset
    # Sort each customer's orders by time, then let 3% repeat the previous timestamp.
    order = np.lexsort((ts, cust))
    ts = ts[order]
    same = rng.random(rows) < 0.03
    same[group_start] = False
    idx = np.arange(rows)
    prev = np.maximum.accumulate(np.where(same, 0, idx))  # last index not marked "same"
    ts = ts[prev]

    spend = rng.lognormal(0.0, 0.5, customers)
    amount = np.round(rng.lognormal(np.log(80.0), 1.0, rows) * spend[cust], 2)
    amount = np.maximum(amount, 0.01)
    on_point = rng.random(rows) < 0.30
    amount[on_point] = np.asarray(PRICE_POINTS)[rng.integers(0, len(PRICE_POINTS), on_point.sum())]

    ids = 100_000_000 + rng.permutation(customers).astype(np.int64)  # customer keys
    by_time = np.argsort(ts, kind="stable")
    table = pa.table({
        "customer_id": pa.array(ids[cust[by_time]], pa.int64()),
        "order_ts": pa.array((start + ts[by_time]) * 1_000_000, pa.timestamp("us")),
        "amount": pa.array(amount[by_time], pa.float64()),
    })
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp, row_group_size=1_000_000)
    tmp.replace(path)
    one_to_three = float(np.mean(counts <= 3))
    print(f"data: {rows:,} orders, {customers:,} customers; {np.mean(counts == 1):.0%} order "
          f"once, {one_to_three:.0%} 1-3 times, p99 {int(np.percentile(counts, 99))} orders, "
          f"max {counts.max():,}; {path.stat().st_size / 1e6:.0f} MB")


def ensure_data(work: Path, customers: int, rows: int, seed: int) -> Path:
    return cached_file(work / f"orders-{rows}-{customers}-s{seed}.parquet", lambda path: generate(path, customers, rows, seed))


# --------------------------------------------------------------------------------------
# 2. userql over the wire
# --------------------------------------------------------------------------------------


def bench_userql(userql_bin: str, work: Path, parquet: Path, runs: int) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="userql-rfm-", dir=work))
    config = (
        "# The benchmark's order file as one channel: channels.bench\n"
        "[[channels]]\n"
        'name       = "bench"\n'
        f"path       = {json.dumps(str(parquet.resolve()))}\n"
        'record_key = "customer_id"\n'
        "[channels.orders]\n"
        'ts     = "order_ts"\n'
        'amount = "amount"\n'
    )
    with userql_server(userql_bin, scratch, config) as (server, conn):
        cur = conn.cursor()
        rss_start = vm_kib(server.pid, "VmRSS")
        times, cpus, result = timed_runs(
            "userql", runs, lambda: userql_query(cur, USERQL_SQL), cpu_pid=server.pid)
        rss_peak = vm_kib(server.pid, "VmHWM")
    return {"times": times, "cpu": cpus, "median": statistics.median(times),
            "rss_start": rss_start, "rss_peak": rss_peak, "rows": normalise(result)}


# --------------------------------------------------------------------------------------
# 3. DuckDB, in a process of its own (so its peak RSS is its own)
# --------------------------------------------------------------------------------------


def duckdb_worker(parquet: str, runs: int) -> None:
    """Runs in the child process: warm-up + runs, then one JSON line on stdout."""
    import duckdb

    con = duckdb.connect()
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    rss_start = vm_kib("self", "VmRSS")
    sql = DUCKDB_SQL.format(file=sql_str(parquet))
    times, _, result = timed_runs("duckdb", runs, lambda: con.execute(sql).fetchall(),
                                  stream=sys.stderr)
    print(json.dumps({"times": times, "rows": result, "threads": threads,
                      "version": duckdb.__version__, "rss_start": rss_start,
                      "rss_peak": vm_kib("self", "VmHWM")}))


def bench_duckdb(parquet: Path, runs: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--duckdb-worker", str(parquet), "--runs", str(runs)],
        check=True, stdout=subprocess.PIPE, text=True,
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["median"] = statistics.median(res["times"])
    res["rows"] = normalise(res["rows"])
    return res


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def segment_counts(rows: list[tuple]) -> dict[str, int]:
    out: dict[str, int] = {}
    for seg, _cls, n, _m in rows:
        out[seg] = out.get(seg, 0) + n
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--userql-bin", default=default_userql_bin())
    ap.add_argument("--dir", type=Path, default=default_bench_dir() / "rfm",
                    help="where the generated Parquet file is kept (reused across runs)")
    ap.add_argument("--rows", type=int, default=10_000_000, help="orders")
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--runs", type=int, default=3, help="timed runs per engine (median)")
    ap.add_argument("--prepare-only", action="store_true", help="only generate the file")
    ap.add_argument("--duckdb-worker", metavar="PARQUET", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.duckdb_worker:
        duckdb_worker(args.duckdb_worker, args.runs)
        return
    if not os.access(args.userql_bin, os.X_OK):
        raise SystemExit(f"no userql binary at {args.userql_bin} "
                         "(build with 'cargo build --release' or set USERQL_BIN)")
    work = args.dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    parquet = ensure_data(work, args.customers, args.rows, args.seed)
    if args.prepare_only:
        return
    print()
    uq = bench_userql(args.userql_bin, work, parquet, args.runs)
    dd = bench_duckdb(parquet, args.runs)
    print()

    ratio = uq["median"] / dd["median"]
    mib = 2**20
    print(f"RFM, {args.rows:,} orders, {args.customers:,} customers; {os.cpu_count()} cores; "
          f"DuckDB {dd['version']} ({dd['threads']} threads); median of {args.runs} after a warm-up")
    print(f"{'engine':<6} | {'median s':>8} | {'runs s':<20} | {'peak RSS MiB':>12} | "
          f"{'after start MiB':>15}")
    print(f"{'-' * 6}-+-{'-' * 8}-+-{'-' * 20}-+-{'-' * 12}-+-{'-' * 15}")
    for name, r in (("userql", uq), ("duckdb", dd)):
        runs = ", ".join(f"{t:.2f}" for t in r["times"])
        print(f"{name:<6} | {r['median']:>8.2f} | {runs:<20} | {r['rss_peak'] / mib:>12.0f} | "
              f"{r['rss_start'] / mib:>15.0f}")
    print(f"userql server CPU per run: {', '.join(f'{c:.2f}' for c in uq['cpu'])} s")
    print(f"userql time / DuckDB time: {ratio:.2f}x; peak RSS userql / DuckDB: "
          f"{uq['rss_peak'] / dd['rss_peak']:.2f}x")
    print()

    su, sd = segment_counts(uq["rows"]), segment_counts(dd["rows"])
    print(f"{'segment':<20} | {'userql':>9} | {'duckdb':>9}")
    print(f"{'-' * 20}-+-{'-' * 9}-+-{'-' * 9}")
    for seg in sorted(set(su) | set(sd)):
        mark = "" if su.get(seg) == sd.get(seg) else "  <- differs"
        print(f"{seg:<20} | {su.get(seg, 0):>9,} | {sd.get(seg, 0):>9,}{mark}")
    seg_ok = su == sd
    full_ok = uq["rows"] == dd["rows"]
    print(f"segment counts agree: {'yes' if seg_ok else 'NO'}; "
          f"segment x value_class counts and m_score sums agree: {'yes' if full_ok else 'NO'}")
    if not full_ok:
        du = {r[:2]: r[2:] for r in uq["rows"]}
        dk = {r[:2]: r[2:] for r in dd["rows"]}
        for key in sorted(set(du) | set(dk)):
            if du.get(key) != dk.get(key):
                print(f"  {key}: userql (customers, m_score_sum) {du.get(key)}, "
                      f"duckdb {dk.get(key)}")
    print()
    met = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(f"target userql <= {TARGET_RATIO}x DuckDB's time: {ratio:.2f}x {met}")
    if not (seg_ok and full_ok):
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
