"""100 concurrent connections against `userql serve --demo` for a bounded time: catalog
queries, OneID and aggregate queries, prepared statements and inserts, each connection
picking at random. Prints p50/p99 latency per kind and every unexpected error; exits 1
when there was one.

    benches/load_test.sh [--clients 100] [--seconds 60]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psycopg

import benchkit

KINDS = {
    "catalog": [
        "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'v') ORDER BY 1, 2",
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'customer_orders' ORDER BY ordinal_position",
    ],
    "oneid": [
        "SELECT count(DISTINCT one_id) FROM customer_ids",
        "SELECT count(*) FROM oneid('identities') WHERE component_size > 2",
    ],
    "aggregate": [
        "SELECT channel, count(*), sum(amount) FROM orders GROUP BY channel",
        "SELECT segment, count(*) FROM rfm('customer_orders') GROUP BY segment",
    ],
}
WEIGHTS = [("catalog", 30), ("oneid", 10), ("aggregate", 20), ("prepared", 35), ("insert", 5)]


def worker(port, stop_at, records, errors, record_ids, seed):
    rng = random.Random(seed)
    kinds, weights = zip(*WEIGHTS)
    with psycopg.connect(f"host=127.0.0.1 port={port} user=load dbname=userql",
                         autocommit=True) as conn:
        while time.time() < stop_at:
            kind = rng.choices(kinds, weights)[0]
            t = time.perf_counter()
            try:
                if kind == "prepared":
                    conn.execute("SELECT order_ts, amount FROM customer_orders WHERE record_id = %s",
                                 (rng.choice(record_ids),), prepare=True).fetchall()
                elif kind == "insert":
                    conn.execute("INSERT INTO load_events VALUES (%s, %s, now())",
                                 (seed, rng.randrange(1 << 30)))
                else:
                    conn.execute(rng.choice(KINDS[kind])).fetchall()
            except psycopg.Error as e:
                errors.append(f"{kind}: {e.sqlstate} {e}")
                continue
            records.append((kind, time.perf_counter() - t))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--bin", default=benchkit.default_userql_bin())
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="userql-load-"))
    demo = scratch / "demo"
    import subprocess
    subprocess.run([args.bin, "demo", "--out", str(demo)], check=True, capture_output=True)
    config = (demo / "userql.toml").read_text().replace('path       = "', f'path       = "{demo}/')
    with benchkit.userql_server(args.bin, scratch, "[server]\nmax_connections = 200\n" + config) as (server, conn):
        port = conn.info.port
        conn.execute("CREATE TABLE load_events (client INT, n BIGINT, at TIMESTAMP)")
        record_ids = [r[0] for r in conn.execute("SELECT record_id FROM orders LIMIT 2000")]
        conn.execute("SELECT count(*) FROM customer_ids").fetchall()  # warm the OneID cache
        records, errors = [], []
        stop_at = time.time() + args.seconds
        cpu0 = benchkit.cpu_seconds(server.pid)
        threads = [threading.Thread(target=worker, args=(port, stop_at, records, errors, record_ids, i))
                   for i in range(args.clients)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - t0
        cpu = benchkit.cpu_seconds(server.pid) - cpu0
        rss = benchkit.vm_kib(server.pid, "VmHWM")
        inserted = conn.execute("SELECT count(*) FROM load_events").fetchone()[0]
    print(f"{args.clients} connections for {wall:.0f} s: {len(records)} statements "
          f"({len(records) / wall:.0f}/s), server CPU {cpu:.0f} s, peak RSS {rss / 2**20:.0f} MiB")
    print(f"{'kind':<10} {'count':>7} {'p50 ms':>9} {'p99 ms':>9}")
    for kind, _ in WEIGHTS:
        lat = sorted(d for k, d in records if k == kind)
        if lat:
            p50 = statistics.median(lat) * 1000
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
            print(f"{kind:<10} {len(lat):>7} {p50:>9.1f} {p99:>9.1f}")
    acked_inserts = sum(1 for k, _ in records if k == "insert")
    print(f"inserts acknowledged {acked_inserts}, rows in the table {inserted}")
    print(f"unexpected errors: {len(errors)}")
    for e in errors[:20]:
        print("  " + e)
    raise SystemExit(1 if errors or inserted != acked_inserts else 0)


if __name__ == "__main__":
    main()
