"""OneID over the wire vs connected components in DuckDB, on the same identifier rows.

One run:
  1. `userql demo --customers N` writes the demo channel files (reused when present).
  2. DuckDB turns them into ONE Parquet file `identities.parquet` (record_id, id_type,
     id_value, all text), the same rows the `identities` view would give: so both engines
     read exactly the same input file.
  3. userql serves that file as channel `ids`; we time
     `SELECT count(*), count(DISTINCT one_id) FROM oneid('channels.ids')` over psycopg
     (median of 3) and read the server's peak RSS (VmHWM).
  4. DuckDB computes the connected components of the same rows with plain SQL: simple
     normalisation, the same "value held by > 50 records is ignored" guard, star edges,
     then min-label propagation until nothing changes.

Run through benches/oneid_vs_duckdb.sh, which makes the venv (duckdb, psycopg).

`--cores N` runs both engines twice, pinned to one CPU and then to the first N (the server
follows its CPU affinity; DuckDB gets `SET threads = N`), and prints each engine's speed-up
from 1 to N cores, userql's server CPU over wall time, and its peak bytes per row.

The two component counts are not expected to be equal: userql normalises phones to E.164
(so "+86 138-0013-8000" and "13800138000" match), drops invalid phones and links hashed
phones to plain ones; by default the DuckDB side only lower-cases and trims. The demo
spells phones many ways on purpose, so that gap is large (DuckDB finds ~55% more
components). `--duckdb-phone-rules` adds CN-mobile and hashed-phone handling to the DuckDB
SQL; the counts then agree exactly on the demo, which checks both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import duckdb
import psycopg

# Targets the run is reported against.
TARGET_SPEEDUP = 20.0  # userql at least this many times faster than DuckDB
TARGET_SECONDS = 10.0  # userql wall time for ~10M rows
TARGET_BYTES_PER_ROW = 150.0  # userql peak RSS per identifier row
MAX_RECORDS_PER_VALUE = 50  # userql's default userql.oneid_max_records_per_value
MAX_CC_ITERATIONS = 200  # a bound on the label propagation loop (it needs ~10)


def default_userql_bin() -> str:
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/userql/target")
    return os.environ.get("USERQL_BIN") or os.path.join(target, "release", "userql")


def sql_str(s: str) -> str:
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def sql_ident(s: str) -> str:
    """A quoted SQL identifier (channel columns can be any name)."""
    return '"' + s.replace('"', '""') + '"'


# --------------------------------------------------------------------------------------
# 1. Demo data
# --------------------------------------------------------------------------------------


def ensure_demo(userql_bin: str, demo_dir: Path, customers: int) -> None:
    """Generate the demo files unless the same size was already generated there.

    A marker written after a successful run makes reuse safe: a half-written folder
    (interrupted generation) or one of another size is regenerated.
    """
    marker = demo_dir / ".bench-customers"
    if marker.exists() and marker.read_text().strip() == str(customers):
        print(f"demo data: reusing {demo_dir} ({customers} customers)")
        return
    print(f"demo data: generating {customers} customers into {demo_dir} ...", flush=True)
    t = time.perf_counter()
    subprocess.run(
        [userql_bin, "demo", "--out", str(demo_dir), "--customers", str(customers), "--seed", "42"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    marker.write_text(f"{customers}\n")
    print(f"demo data: done in {time.perf_counter() - t:.1f} s")


# --------------------------------------------------------------------------------------
# 2. One Parquet file of identifier rows
# --------------------------------------------------------------------------------------


def channel_source(con: duckdb.DuckDBPyConnection, path: Path, fmt: str) -> str:
    """A DuckDB table expression reading a channel file with every column as text.

    Identifiers must stay text (a member number "0080265359" is not the integer
    80265359), so CSV is read with all_varchar and NDJSON with an explicit VARCHAR type
    for each of its columns (names taken from DuckDB's own sniffing).
    """
    p = sql_str(str(path))
    if fmt == "csv":
        return f"read_csv({p}, header = true, all_varchar = true)"
    if fmt == "ndjson":
        names = [
            row[0]
            for row in con.execute(
                f"DESCRIBE SELECT * FROM read_json({p}, format = 'newline_delimited')"
            ).fetchall()
        ]
        columns = "{" + ", ".join(f"{sql_str(n)}: 'VARCHAR'" for n in names) + "}"
        return f"read_json({p}, format = 'newline_delimited', columns = {columns})"
    if fmt == "parquet":
        return f"read_parquet({p})"
    raise SystemExit(f"channel file {path}: format {fmt!r} is not handled by this benchmark")


def build_parquet(demo_dir: Path, out: Path) -> int:
    """Write identities.parquet from the demo's userql.toml; returns its row count."""
    marker = out.with_suffix(".rows")
    if out.exists() and marker.exists():
        rows = int(marker.read_text())
        print(f"parquet: reusing {out} ({rows:,} rows)")
        return rows

    config = tomllib.loads((demo_dir / "userql.toml").read_text())
    con = duckdb.connect()
    con.execute(f"SET temp_directory = {sql_str(str(out.parent / 'duckdb-tmp'))}")
    parts = []
    for ch in config["channels"]:
        path = (demo_dir / ch["path"]).resolve()
        fmt = ch.get("format") or {".csv": "csv", ".ndjson": "ndjson", ".json": "ndjson",
                                   ".parquet": "parquet"}.get(path.suffix, "")
        src = channel_source(con, path, fmt)
        key = sql_ident(ch["record_key"])
        for id_type, column in ch.get("ids", {}).items():
            # record_id as userql's identities view spells it: '<channel>:' || key.
            parts.append(
                f"SELECT {sql_str(ch['name'] + ':')} || CAST({key} AS VARCHAR) AS record_id, "
                f"{sql_str(id_type)} AS id_type, "
                f"CAST({sql_ident(column)} AS VARCHAR) AS id_value "
                f"FROM {src} WHERE {key} IS NOT NULL"
            )
    union = "\nUNION ALL\n".join(parts)
    tmp = out.with_suffix(".parquet.tmp")
    print(f"parquet: exporting {len(parts)} (channel, id_type) selections ...", flush=True)
    t = time.perf_counter()
    con.execute(
        f"""COPY (
              SELECT DISTINCT record_id, id_type, id_value
              FROM ({union})
              WHERE id_value IS NOT NULL AND trim(id_value) <> ''
            ) TO {sql_str(str(tmp))} (FORMAT parquet)"""
    )
    rows = con.execute(f"SELECT count(*) FROM read_parquet({sql_str(str(tmp))})").fetchone()[0]
    con.close()
    tmp.replace(out)
    marker.write_text(f"{rows}\n")
    print(f"parquet: {rows:,} rows, {out.stat().st_size / 1e6:.0f} MB, "
          f"in {time.perf_counter() - t:.1f} s")
    return rows


# --------------------------------------------------------------------------------------
# 3a. userql over the wire
# --------------------------------------------------------------------------------------


# What any exact resolution must at least do: find the rows that share a record id and
# the rows that share a value.
GROUPING_FLOOR_SQL = (
    "SELECT count(DISTINCT record_id), count(DISTINCT id_value) FROM {src}"
)


def free_port() -> int:
    """A loopback port the kernel considers free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_hwm_bytes(pid: int) -> int:
    """Peak resident set size of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError("no VmHWM in /proc status")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pinned_to(cpus: set[int] | None):
    """A `preexec_fn` that pins a child process to `cpus` (None: no pinning)."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def bench_userql(userql_bin: str, work: Path, parquet: Path, runs: int,
                 cpus: set[int] | None = None) -> dict:
    config = work / "userql-ids.toml"
    config.write_text(
        "# One channel: the benchmark's identifier rows, already in OneID's input shape.\n"
        "[[channels]]\n"
        'name       = "ids"\n'
        f"path       = {json.dumps(str(parquet.resolve()))}\n"
        'record_key = "record_id"\n'
    )
    port = free_port()
    log = open(work / "userql-server.log", "wb")
    server = subprocess.Popen(
        [userql_bin, "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(work / "userql-data")],
        stdout=log, stderr=subprocess.STDOUT,
        # Pinned, the server's thread count follows its CPUs (it reads its affinity).
        preexec_fn=pinned_to(cpus),
    )
    try:
        conninfo = f"host=127.0.0.1 port={port} user=bench dbname=userql"
        conn = None
        for _ in range(300):  # at most ~60 s for the server to come up
            if server.poll() is not None:
                raise SystemExit(f"userql exited with {server.returncode}; see {log.name}")
            try:
                conn = psycopg.connect(conninfo, autocommit=True)
                break
            except psycopg.OperationalError:
                time.sleep(0.2)
        if conn is None:
            raise SystemExit(f"userql did not accept connections on port {port}")

        with conn:
            cur = conn.cursor()
            rss_idle = vm_hwm_bytes(server.pid)
            times, cpus, result = [], [], None
            for i in range(runs):
                cpu = cpu_seconds(server.pid)
                t = time.perf_counter()
                cur.execute("SELECT count(*), count(DISTINCT one_id) FROM oneid('channels.ids')")
                result = cur.fetchone()
                times.append(time.perf_counter() - t)
                # Server CPU over wall time shows how much of the run used both cores.
                cpus.append(cpu_seconds(server.pid) - cpu)
                print(f"userql run {i + 1}: {times[-1]:.2f} s, server CPU {cpus[-1]:.2f} s  "
                      f"(records {result[0]:,}, one_ids {result[1]:,})", flush=True)
            # Read right after the OneID runs so nothing else inflates the peak.
            rss_peak = vm_hwm_bytes(server.pid)

            # Where the time goes: reading the same rows without resolving them. A bare
            # count(*) is answered from Parquet metadata, so sum the lengths instead: that
            # decodes every value of the three columns, as oneid's input scan does.
            read_times = []
            for _ in range(runs):
                t = time.perf_counter()
                cur.execute("SELECT sum(length(record_id)) + sum(length(id_type)) "
                            "+ sum(length(id_value)) FROM channels.ids")
                cur.fetchone()
                read_times.append(time.perf_counter() - t)

            # The grouping floor: finding which rows share a record id and which share
            # a value, and nothing more. Any exact resolution has to do at least this.
            group_times = []
            for _ in range(runs):
                t = time.perf_counter()
                cur.execute(GROUPING_FLOOR_SQL.format(src="channels.ids"))
                cur.fetchone()
                group_times.append(time.perf_counter() - t)

            # The benchmark query reads no record id, so userql skips building that
            # column (projection pushdown); one run that returns them shows that cost.
            t = time.perf_counter()
            cur.execute("SELECT count(DISTINCT one_id), max(record_id) FROM oneid('channels.ids')")
            cur.fetchone()
            with_records_s = time.perf_counter() - t
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        log.close()

    return {
        "median_s": statistics.median(times),
        "times": times,
        "cpu_s": cpus,
        "records": result[0],
        "components": result[1],
        "rss_idle": rss_idle,
        "rss_peak": rss_peak,
        "read_median_s": statistics.median(read_times),
        "group_median_s": statistics.median(group_times),
        "with_records_s": with_records_s,
    }


# --------------------------------------------------------------------------------------
# 3b. DuckDB connected components
# --------------------------------------------------------------------------------------


def bench_duckdb(work: Path, parquet: Path, phone_rules: bool,
                 cpus: set[int] | None = None) -> dict:
    """components_in_duckdb, this process pinned to `cpus` and DuckDB given as many
    threads while it runs (None: every core, DuckDB's default threads)."""
    if cpus is None:
        return components_in_duckdb(work, parquet, phone_rules, None)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        return components_in_duckdb(work, parquet, phone_rules, len(cpus))
    finally:
        os.sched_setaffinity(0, before)


def components_in_duckdb(work: Path, parquet: Path, phone_rules: bool,
                         threads: int | None) -> dict:
    """Connected components of records linked by shared (id_type, value), in SQL.

    The plan, chosen to keep every step a hash join / aggregate DuckDB does well:
      * records get dense BIGINT ids, so labels and joins are on integers, not strings;
      * each (id_type, value) held by 2..50 records becomes a star: every holder points at
        the smallest holder (k-1 edges, not k*(k-1)/2 pairs);
      * labels start as the record's own id and each iteration takes the minimum over the
        record and its neighbours, then jumps once through the label's own label
        (label <- label[label], "pointer jumping"), which cuts the number of rounds from
        the graph's diameter to roughly its logarithm. Labels only ever move to smaller
        ids of the same component, so the fixpoint is the component's smallest id.
    Record ids come from row_number() over a parallel scan, so they (and the iteration
    count, by one or two) can differ between runs; the components cannot.
    """
    con = duckdb.connect()  # in-memory, default threads = all cores
    if threads is not None:
        con.execute(f"SET threads = {threads}")
    con.execute(f"SET temp_directory = {sql_str(str(work / 'duckdb-tmp'))}")
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    steps: dict[str, float] = {}

    def step(name: str, sql: str) -> None:
        t = time.perf_counter()
        con.execute(sql)
        steps[name] = steps.get(name, 0.0) + time.perf_counter() - t

    if phone_rules:
        # Closer to userql for the demo's phones: digits only, an optional 86 / 0086
        # prefix dropped, kept only if it is a CN mobile; then every phone is compared by
        # the SHA-256 of its E.164 form, so plain and hashed phones (phone_sha256) meet.
        # Everything else: lower(trim()).
        con.execute("""
            CREATE MACRO strip_cc(d) AS CASE
                WHEN length(d) = 15 AND d LIKE '0086%' THEN d[5:]
                WHEN length(d) = 13 AND d LIKE '86%' THEN d[3:]
                ELSE d END""")
        con.execute("""
            CREATE MACRO mobile_sha256(s) AS CASE
                WHEN regexp_full_match(strip_cc(regexp_replace(s, '[^0-9]', '', 'g')),
                                       '1[3-9][0-9]{9}')
                THEN sha256('+86' || strip_cc(regexp_replace(s, '[^0-9]', '', 'g'))) END""")
        value = ("CASE WHEN id_type = 'phone' THEN mobile_sha256(id_value) "
                 "ELSE lower(trim(id_value)) END")
        id_type = "CASE WHEN id_type = 'phone_sha256' THEN 'phone' ELSE id_type END"
    else:
        value, id_type = "lower(trim(id_value))", "id_type"

    t0 = time.perf_counter()
    # Rows whose value normalises to nothing stay (v NULL): their record still counts as
    # a record (a component of its own if nothing else links it), as in userql.
    step("load+normalise", f"""
        CREATE TABLE ids AS
        SELECT DISTINCT record_id, {id_type} AS id_type, nullif({value}, '') AS v
        FROM read_parquet({sql_str(str(parquet))})""")
    step("record ids", """
        CREATE TABLE recs AS
        SELECT record_id, (row_number() OVER ()) - 1 AS rid
        FROM (SELECT DISTINCT record_id FROM ids)""")
    step("edges", f"""
        CREATE TABLE edges AS
        WITH vals AS (
            SELECT r.rid, i.id_type, i.v FROM ids i JOIN recs r USING (record_id)
            WHERE i.v IS NOT NULL
        ),
        hubs AS (  -- values that link: 2..{MAX_RECORDS_PER_VALUE} records; the guard skips the rest
            SELECT id_type, v, min(rid) AS hub
            FROM vals GROUP BY id_type, v
            HAVING count(*) BETWEEN 2 AND {MAX_RECORDS_PER_VALUE}
        ),
        star AS (
            SELECT DISTINCT vals.rid AS a, hubs.hub AS b
            FROM vals JOIN hubs USING (id_type, v)
            WHERE vals.rid <> hubs.hub
        )
        SELECT a, b FROM star UNION ALL SELECT b, a FROM star""")
    step("init labels", "CREATE TABLE labels AS SELECT rid, rid AS label FROM recs")
    step("drop inputs", "DROP TABLE ids")  # no longer needed; frees memory for the loop

    iterations = 0
    while True:
        iterations += 1
        if iterations > MAX_CC_ITERATIONS:
            raise SystemExit(f"label propagation did not converge in {MAX_CC_ITERATIONS} rounds")
        step("propagate", """
            CREATE OR REPLACE TABLE next_labels AS
            WITH nb AS (  -- smallest label among each record's neighbours
                SELECT e.a AS rid, min(l.label) AS label
                FROM edges e JOIN labels l ON l.rid = e.b
                GROUP BY e.a
            ),
            stepped AS (
                SELECT l.rid, least(l.label, coalesce(nb.label, l.label)) AS label
                FROM labels l LEFT JOIN nb USING (rid)
            )
            SELECT s.rid, least(s.label, j.label) AS label   -- pointer jump
            FROM stepped s JOIN stepped j ON j.rid = s.label""")
        t = time.perf_counter()
        changed = con.execute("""
            SELECT count(*) FROM next_labels n JOIN labels l USING (rid)
            WHERE n.label <> l.label""").fetchone()[0]
        con.execute("DROP TABLE labels")
        con.execute("ALTER TABLE next_labels RENAME TO labels")
        steps["propagate"] += time.perf_counter() - t
        print(f"duckdb iteration {iterations}: {changed:,} labels changed", flush=True)
        if changed == 0:
            break

    records, components = con.execute(
        "SELECT count(*), count(DISTINCT label) FROM labels").fetchone()
    wall = time.perf_counter() - t0

    # The same grouping floor as userql's, on the same file (not part of the time above).
    group_times = []
    for _ in range(3):
        t = time.perf_counter()
        con.execute(GROUPING_FLOOR_SQL.format(src=f"read_parquet({sql_str(str(parquet))})"))
        con.fetchone()
        group_times.append(time.perf_counter() - t)
    con.close()
    return {"wall_s": wall, "records": records, "components": components,
            "iterations": iterations, "threads": threads, "steps": steps,
            "group_median_s": statistics.median(group_times)}


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--userql-bin", default=default_userql_bin())
    ap.add_argument("--dir", type=Path,
                    default=Path(tempfile.gettempdir()) / "userql-bench-oneid",
                    help="work dir: demo data and identities.parquet, reused across runs")
    ap.add_argument("--customers", type=int, default=1_250_000)
    ap.add_argument("--runs", type=int, default=3, help="userql timed runs (median reported)")
    ap.add_argument("--prepare-only", action="store_true",
                    help="only generate the demo data and identities.parquet")
    ap.add_argument("--cores", type=int, default=None, metavar="N",
                    help="run both engines twice, pinned to 1 CPU and then to N CPUs (DuckDB "
                         "with as many threads), and report each engine's speed-up from 1 "
                         "to N cores")
    ap.add_argument("--duckdb-phone-rules", action="store_true",
                    help="DuckDB also normalises phones (CN mobiles, hashed) instead of "
                         "lower(trim()) only: shows how much of the component gap is phones")
    args = ap.parse_args()

    if not os.access(args.userql_bin, os.X_OK):
        raise SystemExit(f"no userql binary at {args.userql_bin} "
                         "(build with 'cargo build --release' or set USERQL_BIN)")
    work = args.dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    demo_dir = work / f"demo-{args.customers}"
    parquet = work / f"identities-{args.customers}" / "identities.parquet"
    parquet.parent.mkdir(exist_ok=True)

    ensure_demo(args.userql_bin, demo_dir, args.customers)
    rows = build_parquet(demo_dir, parquet)
    print(f"identities.parquet: {rows:,} identifier rows")
    print()
    if args.prepare_only:
        return

    if args.cores is not None:
        scaling(args, work, parquet, rows)
        return

    uq = bench_userql(args.userql_bin, work, parquet, args.runs)
    print()
    dd = bench_duckdb(work, parquet, args.duckdb_phone_rules)
    print()

    ratio = dd["wall_s"] / uq["median_s"]
    diff = (dd["components"] - uq["components"]) / uq["components"] * 100
    bpr = uq["rss_peak"] / rows

    print(f"{rows:,} identifier rows, {uq['records']:,} records; {os.cpu_count()} cores")
    dd_name = "duckdb+phones" if args.duckdb_phone_rules else "duckdb"
    w = max(len(dd_name), 6)
    print(f"{'engine':<{w}} | {'wall s':>8} | {'components':>12}")
    print(f"{'-' * w}-+-{'-' * 8}-+-{'-' * 12}")
    print(f"{'userql':<{w}} | {uq['median_s']:>8.2f} | {uq['components']:>12,}")
    print(f"{dd_name:<{w}} | {dd['wall_s']:>8.2f} | {dd['components']:>12,}")
    print(f"DuckDB time / userql time: {ratio:.1f}x")
    print()
    print(f"userql: runs {', '.join(f'{t:.2f}' for t in uq['times'])} s (median "
          f"{uq['median_s']:.2f}), server CPU {', '.join(f'{c:.2f}' for c in uq['cpu_s'])} s; "
          f"reading the rows alone (sum of lengths over channels.ids): "
          f"{uq['read_median_s']:.2f} s")
    print(f"userql: peak RSS {uq['rss_peak'] / 2**20:.0f} MiB = {bpr:.0f} bytes per identifier "
          f"row (after start: {uq['rss_idle'] / 2**20:.0f} MiB)")
    print(f"duckdb: {dd['iterations']} iterations, {dd['threads']} threads; steps: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in dd["steps"].items()))
    print(f"components: duckdb {dd['components']:,} vs userql {uq['components']:,} "
          f"({diff:+.2f}%); records: duckdb {dd['records']:,} vs userql {uq['records']:,}")
    print(f"userql with record ids read (one run, max(record_id) added): "
          f"{uq['with_records_s']:.2f} s")
    budget = dd["wall_s"] / TARGET_SPEEDUP
    print(f"grouping floor (count(DISTINCT record_id), count(DISTINCT id_value), median of 3): "
          f"duckdb {dd['group_median_s']:.2f} s, userql {uq['group_median_s']:.2f} s; "
          f"the {TARGET_SPEEDUP:.0f}x target leaves userql {budget:.2f} s for the whole "
          f"resolution")
    print()

    def check(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print(f"target userql >= {TARGET_SPEEDUP:.0f}x faster than DuckDB: {ratio:.1f}x "
          f"{check(ratio >= TARGET_SPEEDUP)}")
    print(f"target userql < {TARGET_SECONDS:.0f} s: {uq['median_s']:.2f} s "
          f"{check(uq['median_s'] < TARGET_SECONDS)}")
    print(f"target <= {TARGET_BYTES_PER_ROW:.0f} bytes per row peak: {bpr:.0f} "
          f"{check(bpr <= TARGET_BYTES_PER_ROW)}")


def scaling(args: argparse.Namespace, work: Path, parquet: Path, rows: int) -> None:
    """Both engines on 1 CPU and on the first N CPUs this process may use: the table of
    the issue that asks for OneID to scale with cores, and each engine's speed-up."""
    available = sorted(os.sched_getaffinity(0))
    if not 1 <= args.cores <= len(available):
        raise SystemExit(f"--cores {args.cores}: this process may use {len(available)} CPUs")
    counts = [1] if args.cores == 1 else [1, args.cores]
    results = {}
    for n in counts:
        cpus = set(available[:n])
        print(f"--- {n} core{'s' if n > 1 else ''} (CPUs {sorted(cpus)}) ---")
        uq = bench_userql(args.userql_bin, work, parquet, args.runs, cpus)
        dd = bench_duckdb(work, parquet, args.duckdb_phone_rules, cpus)
        results[n] = (uq, dd)
        print()
    print(f"{rows:,} identifier rows, {results[counts[0]][0]['records']:,} records")
    print(f"{'cores':>5} | {'userql s':>8} | {'cpu/wall':>8} | {'duckdb s':>8} | "
          f"{'duckdb/userql':>13} | {'userql B/row':>12}")
    for n in counts:
        uq, dd = results[n]
        cpu_wall = statistics.median(uq["cpu_s"]) / uq["median_s"]
        print(f"{n:>5} | {uq['median_s']:>8.2f} | {cpu_wall:>8.2f} | {dd['wall_s']:>8.2f} | "
              f"{dd['wall_s'] / uq['median_s']:>12.1f}x | {uq['rss_peak'] / rows:>12.0f}")
    if len(counts) == 2:
        one, many = results[1], results[args.cores]
        print(f"speed-up from 1 to {args.cores} cores: userql "
              f"{one[0]['median_s'] / many[0]['median_s']:.2f}x, duckdb "
              f"{one[1]['wall_s'] / many[1]['wall_s']:.2f}x")
    for n in counts:
        uq, dd = results[n]
        if uq["components"] == results[counts[0]][0]["components"]:
            continue
        raise SystemExit(f"userql found {uq['components']:,} components on {n} cores, "
                         f"{results[counts[0]][0]['components']:,} on {counts[0]}")
    print(f"userql components identical at every core count: "
          f"{results[counts[0]][0]['components']:,}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
