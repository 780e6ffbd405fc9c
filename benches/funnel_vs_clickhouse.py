"""window_funnel and retention over the wire in userql vs ClickHouse (chdb), on one Parquet file.

One run:
  1. generates (seeded, so the same file every time) ONE Parquet file of events
     `user_id bigint, event_ts timestamp, event text` (reused when present);
  2. userql serves that file as channel `app_events`; over psycopg we run two queries,
     each grouped on the server to a handful of rows:
       - funnel: a 4-step `window_funnel` with a 1-day window per user, users per level;
       - retention: `retention` of day-0 / day-1 / day-7 activity (relative to
         2024-03-10) per user, users per (day0, day1, day7) combination;
     one warm-up then `--runs` timed runs each, and the server's peak RSS (VmHWM) per query;
  3. a separate Python process runs the same queries in ClickHouse through the `chdb`
     package (in-process ClickHouse) with `windowFunnel(86400)(...)` and `retention(...)`
     on the same file, with the same warm-up and runs, and reports its own times and peaks;
  4. prints both, the ratios, peak memory, and whether the results agree (they must:
     SQL_API.md makes ClickHouse the reference for both functions).

Run through benches/funnel_vs_clickhouse.sh, which makes the venv (chdb, psycopg, numpy,
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
    reset_peak,
    sql_str,
    timed_runs,
    userql_query,
    userql_server,
    vm_kib,
)

TARGET_RATIO = 1.5  # userql time / ClickHouse time must be at most this, per query
SEED = 42
FIRST_DAY = "2024-03-01"  # events cover 31 days from here
DAYS = 31
DAY0 = "2024-03-10"  # retention's cohort day; day 1 and day 7 follow
DAY1 = "2024-03-11"
DAY7 = "2024-03-17"
EVENTS = ["view_product", "add_to_cart", "checkout", "pay_success", "other"]

# --------------------------------------------------------------------------------------
# The queries, in both dialects
# --------------------------------------------------------------------------------------

QUERIES = {
    "funnel": {
        "userql": """
SELECT level, count(*) AS users FROM (
    SELECT user_id,
           window_funnel(86400, event_ts, event = 'view_product', event = 'add_to_cart',
                         event = 'checkout', event = 'pay_success') AS level
    FROM channels.app_events
    GROUP BY user_id
) t
GROUP BY level ORDER BY level""",
        # The file's timestamps are whole seconds: toDateTime is exact, and windowFunnel
        # takes DateTime (not DateTime64) with the window in seconds.
        "clickhouse": """
SELECT level, count() AS users FROM (
    SELECT user_id,
           windowFunnel(86400)(toDateTime(event_ts), event = 'view_product',
                               event = 'add_to_cart', event = 'checkout',
                               event = 'pay_success') AS level
    FROM file({file}, Parquet)
    GROUP BY user_id
)
GROUP BY level ORDER BY level""",
    },
    "retention": {
        "userql": f"""
SELECT r[1] AS day0, r[2] AS day1, r[3] AS day7, count(*) AS users FROM (
    SELECT user_id,
           retention(CAST(event_ts AS date) = DATE '{DAY0}',
                     CAST(event_ts AS date) = DATE '{DAY1}',
                     CAST(event_ts AS date) = DATE '{DAY7}') AS r
    FROM channels.app_events
    GROUP BY user_id
) t
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
        "clickhouse": f"""
SELECT r[1] AS day0, r[2] AS day1, r[3] AS day7, count() AS users FROM (
    SELECT user_id,
           retention(toDate(event_ts) = toDate('{DAY0}'),
                     toDate(event_ts) = toDate('{DAY1}'),
                     toDate(event_ts) = toDate('{DAY7}')) AS r
    FROM file({{file}}, Parquet)
    GROUP BY user_id
)
GROUP BY day0, day1, day7 ORDER BY day0, day1, day7""",
    },
}


def normalise(rows) -> list[tuple]:
    """Result rows as comparable tuples of ints (a NULL level would stay None)."""
    return sorted(tuple(None if v is None else int(v) for v in r) for r in rows)


# --------------------------------------------------------------------------------------
# 1. Data
# --------------------------------------------------------------------------------------


def generate(path: Path, users: int, rows: int, seed: int) -> None:
    """ONE Parquet file of `rows` events by `users` users, the same for a seed.

    Events come in sessions; a session is a funnel attempt over 31 days of March 2024:
    1+ `view_product` (geometric, mean ~2.2), some `other` rows, then it stops after the
    views (55%), or goes on to `add_to_cart` (45%), `checkout` (25%), `pay_success` (15%);
    5% of sessions have `other` rows only (so some users reach no step at all).
    Gaps between steps are whole seconds drawn from exponentials, with a large share of
    zero gaps, so many rows share a timestamp (a pay_success in the same second as its
    checkout half the time); 8% of checkouts come 20-72 hours after the cart, so the
    1-day window cuts some funnels. Every user has a first session on a uniform day; the
    rest of the sessions go to users by a heavy-tailed weight (most users have one or two,
    a tail has hundreds) on days after their first. Sessions are generated until `rows`
    events exist (the last one cut), first sessions first, so every user appears.
    The file is sorted by event_ts, as an event log would be.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    mean_events = 1 / 0.45 + 0.8 + 0.45 + 0.25 + 0.15  # per session, from the rates below
    sessions = max(users, int(rows / mean_events * 1.1))
    if users * 2 > rows:
        raise SystemExit(f"--rows ({rows}) must be at least twice --users ({users})")
    weight = rng.lognormal(0.0, 1.5, users)
    weight[rng.random(users) < 0.4] = 0.0
    extra = np.repeat(np.arange(users), rng.multinomial(sessions - users, weight / weight.sum()))
    rng.shuffle(extra)
    s_user = np.concatenate((np.arange(users), extra))  # session -> user, first sessions first

    first_day = rng.integers(0, DAYS, users)
    day = first_day[s_user] + np.floor(rng.exponential(5.0, sessions)).astype(np.int64)
    day[:users] = first_day
    late = day >= DAYS
    day[late] = rng.integers(first_day[s_user[late]], DAYS)
    tod = np.mod(rng.normal(20 * 3600, 4 * 3600, sessions), 86400).astype(np.int64)
    s_start = day * 86400 + tod  # seconds from FIRST_DAY

    def gaps(n: int, zero_share: float, mean: float):
        g = np.floor(rng.exponential(mean, n)).astype(np.int64)
        g[rng.random(n) < zero_share] = 0
        return g

    # Views: 1 + geometric; offsets are cumulative gaps within the session.
    n_views = rng.geometric(0.45, sessions)
    v_sess = np.repeat(np.arange(sessions), n_views)
    v_gap = gaps(len(v_sess), 0.25, 40.0)
    v_first = np.concatenate(([0], np.cumsum(n_views)[:-1]))
    v_gap[v_first] = 0
    csum = np.cumsum(v_gap)
    v_off = csum - csum[v_first][v_sess]
    last_view = v_off[np.cumsum(n_views) - 1]
    # 5% of sessions view nothing (log in, browse a feed): only `other` rows.
    no_view = rng.random(sessions) < 0.05
    keep_view = ~no_view[v_sess]
    # Other rows anywhere in the session.
    n_other = rng.poisson(0.8, sessions)
    n_other[no_view] = np.maximum(n_other[no_view], 1)
    o_sess = np.repeat(np.arange(sessions), n_other)
    o_off = (rng.random(len(o_sess)) * (last_view[o_sess] + 60)).astype(np.int64)
    # How far the session gets: 1 view only, 2 cart, 3 checkout, 4 paid.
    depth = 1 + np.searchsorted(np.cumsum([0.55, 0.20, 0.10, 0.15]), rng.random(sessions),
                                side="right")
    depth = np.minimum(depth, 4)
    depth[no_view] = 1
    cart = last_view + gaps(sessions, 0.3, 60.0)
    checkout = cart + gaps(sessions, 0.2, 120.0)
    delayed = rng.random(sessions) < 0.08
    checkout[delayed] = cart[delayed] + rng.integers(20 * 3600, 72 * 3600, delayed.sum())
    pay = checkout + gaps(sessions, 0.5, 30.0)
    c2, c3, c4 = (np.flatnonzero(depth >= k) for k in (2, 3, 4))

    v_sess, v_off = v_sess[keep_view], v_off[keep_view]
    sess = np.concatenate((v_sess, o_sess, c2, c3, c4))
    off = np.concatenate((v_off, o_off, cart[c2], checkout[c3], pay[c4]))
    code = np.concatenate((
        np.full(len(v_sess), 0, np.int8), np.full(len(o_sess), 4, np.int8),
        np.full(len(c2), 1, np.int8), np.full(len(c3), 2, np.int8), np.full(len(c4), 3, np.int8),
    ))
    if len(sess) < rows:
        raise SystemExit(f"generated only {len(sess):,} events for {rows:,}; raise the session count")
    keep = np.argsort(sess, kind="stable")[:rows]  # whole sessions in order; the last one cut
    sess, off, code = sess[keep], off[keep], code[keep]
    ts = s_start[sess] + off
    base = np.datetime64(f"{FIRST_DAY}T00:00:00", "s").astype(np.int64)
    ids = 1_000_000_000 + rng.permutation(users).astype(np.int64)

    by_time = np.argsort(ts, kind="stable")
    user_col = ids[s_user[sess[by_time]]]
    events = pa.DictionaryArray.from_arrays(pa.array(code[by_time]), pa.array(EVENTS))
    table = pa.table(
        {
            "user_id": pa.array(user_col, pa.int64()),
            "event_ts": pa.array((base + ts[by_time]) * 1_000_000, pa.timestamp("us")),
            "event": events.cast(pa.string()),
        },
        schema=pa.schema([
            pa.field("user_id", pa.int64(), nullable=False),
            pa.field("event_ts", pa.timestamp("us"), nullable=False),
            pa.field("event", pa.string(), nullable=False),
        ]),
    )
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp, row_group_size=1_000_000)
    tmp.replace(path)
    per_user = np.bincount(s_user[sess], minlength=users)
    counts = np.bincount(code, minlength=len(EVENTS))
    share = ", ".join(f"{e} {c / rows:.0%}" for e, c in zip(EVENTS, counts))
    # Rows sharing their timestamp with another row of the same user.
    _, inverse, n = np.unique(s_user[sess] * (1 << 23) + ts, return_inverse=True,
                              return_counts=True)
    tied = float(np.mean(n[inverse] > 1))
    print(f"data: {rows:,} events, {int((per_user > 0).sum()):,} users (median "
          f"{int(np.median(per_user))} events, p99 {int(np.percentile(per_user, 99))}, max "
          f"{per_user.max():,}); {share}; {tied:.0%} of rows share their timestamp with "
          f"another row of the same user; {path.stat().st_size / 1e6:.0f} MB")


def ensure_data(work: Path, users: int, rows: int, seed: int) -> Path:
    return cached_file(work / f"events-{rows}-{users}-s{seed}.parquet", lambda path: generate(path, users, rows, seed))


# --------------------------------------------------------------------------------------
# 2. userql over the wire
# --------------------------------------------------------------------------------------


def bench_userql(userql_bin: str, work: Path, parquet: Path, runs: int) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="userql-funnel-", dir=work))
    config = (
        "# The benchmark's event file as one channel: channels.app_events\n"
        "[[channels]]\n"
        'name       = "app_events"\n'
        f"path       = {json.dumps(str(parquet.resolve()))}\n"
        'record_key = "user_id"\n'
        "[channels.events]\n"
        'ts    = "event_ts"\n'
        'event = "event"\n'
    )
    out: dict = {"queries": {}}
    with userql_server(userql_bin, scratch, config) as (server, conn):
        cur = conn.cursor()
        out["rss_start"] = vm_kib(server.pid, "VmRSS")
        out["peak_per_query"] = True
        for name, q in QUERIES.items():
            out["peak_per_query"] &= reset_peak(server.pid)
            times, cpus, result = timed_runs(
                f"userql {name}", runs,
                lambda: userql_query(cur, q["userql"], name=name), cpu_pid=server.pid)
            out["queries"][name] = {
                "times": times, "cpu": cpus, "median": statistics.median(times),
                "rss_peak": vm_kib(server.pid, "VmHWM"), "rows": normalise(result),
            }
    return out


# --------------------------------------------------------------------------------------
# 3. ClickHouse (chdb), in a process of its own (so its peak RSS is its own)
# --------------------------------------------------------------------------------------


def clickhouse_worker(parquet: str, runs: int) -> None:
    """Runs in the child process: per query warm-up + runs, then one JSON line on stdout."""
    import chdb

    conn = chdb.connect(":memory:")
    cur = conn.cursor()
    cur.execute("SELECT version(), getSetting('max_threads')")
    version, threads = cur.fetchone()
    out: dict = {"version": version, "threads": str(threads), "queries": {},
                 "rss_start": vm_kib("self", "VmRSS"), "peak_per_query": True}
    for name, q in QUERIES.items():
        out["peak_per_query"] &= reset_peak("self")
        sql = q["clickhouse"].format(file=sql_str(parquet))
        def run_clickhouse(sql=sql):
            cur.execute(sql)
            return cur.fetchall()

        times, _, result = timed_runs(f"clickhouse {name}", runs, run_clickhouse,
                                      stream=sys.stderr)
        out["queries"][name] = {"times": times, "rows": [list(r) for r in result],
                                "rss_peak": vm_kib("self", "VmHWM")}
    cur.close()
    conn.close()
    print(json.dumps(out))


def bench_clickhouse(parquet: Path, runs: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--clickhouse-worker", str(parquet), "--runs", str(runs)],
        check=True, stdout=subprocess.PIPE, text=True,
    )
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    for q in res["queries"].values():
        q["median"] = statistics.median(q["times"])
        q["rows"] = normalise(q["rows"])
    return res


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--userql-bin", default=default_userql_bin())
    ap.add_argument("--dir", type=Path, default=default_bench_dir() / "funnel",
                    help="where the generated Parquet file is kept (reused across runs)")
    ap.add_argument("--rows", type=int, default=10_000_000, help="events")
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--runs", type=int, default=3, help="timed runs per engine and query (median)")
    ap.add_argument("--prepare-only", action="store_true", help="only generate the file")
    ap.add_argument("--clickhouse-worker", metavar="PARQUET", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.clickhouse_worker:
        clickhouse_worker(args.clickhouse_worker, args.runs)
        return
    if not os.access(args.userql_bin, os.X_OK):
        raise SystemExit(f"no userql binary at {args.userql_bin} "
                         "(build with 'cargo build --release' or set USERQL_BIN)")
    work = args.dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    parquet = ensure_data(work, args.users, args.rows, args.seed)
    if args.prepare_only:
        return
    print()
    uq = bench_userql(args.userql_bin, work, parquet, args.runs)
    ch = bench_clickhouse(parquet, args.runs)
    print()

    mib = 2**20
    peak_note = "" if uq["peak_per_query"] and ch["peak_per_query"] else \
        " (peaks could not be reset between queries: each is the process's peak so far)"
    print(f"{args.rows:,} events, {args.users:,} users; {os.cpu_count()} cores; ClickHouse "
          f"{ch['version']} via chdb ({ch['threads']} threads); median of {args.runs} after "
          f"a warm-up{peak_note}")
    print(f"{'query':<9} | {'engine':<10} | {'median s':>8} | {'runs s':<20} | "
          f"{'peak RSS MiB':>12} | {'userql / CH':>11}")
    print(f"{'-' * 9}-+-{'-' * 10}-+-{'-' * 8}-+-{'-' * 20}-+-{'-' * 12}-+-{'-' * 11}")
    ratios, agree = {}, {}
    for name in QUERIES:
        u, c = uq["queries"][name], ch["queries"][name]
        ratios[name] = u["median"] / c["median"]
        agree[name] = u["rows"] == c["rows"]
        for engine, r, ratio in (("userql", u, f"{ratios[name]:.2f}x"), ("clickhouse", c, "")):
            runs = ", ".join(f"{t:.2f}" for t in r["times"])
            print(f"{name:<9} | {engine:<10} | {r['median']:>8.2f} | {runs:<20} | "
                  f"{r['rss_peak'] / mib:>12.0f} | {ratio:>11}")
    print(f"after start: userql server {uq['rss_start'] / mib:.0f} MiB, clickhouse process "
          f"{ch['rss_start'] / mib:.0f} MiB")
    for name in QUERIES:
        print(f"userql {name} server CPU per run: "
              f"{', '.join(f'{c:.2f}' for c in uq['queries'][name]['cpu'])} s")
    print()

    for name, cols in (("funnel", "level, users"), ("retention", "day0, day1, day7, users")):
        u, c = uq["queries"][name]["rows"], ch["queries"][name]["rows"]
        print(f"{name} ({cols}): {'agree' if agree[name] else 'DIFFER'}")
        for row in sorted(set(u) | set(c), key=lambda r: tuple(-1 if v is None else v for v in r)):
            where = "" if (row in u) == (row in c) else ("  <- userql only" if row in u
                                                          else "  <- clickhouse only")
            print(f"  {', '.join('NULL' if v is None else f'{v:,}' for v in row)}{where}")
    print()
    for name in QUERIES:
        met = "met" if ratios[name] <= TARGET_RATIO else "MISSED"
        print(f"target {name}: userql within {TARGET_RATIO}x of ClickHouse's time: "
              f"{ratios[name]:.2f}x {met}")
    if not all(agree.values()):
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
