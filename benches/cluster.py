"""The same queries on one machine and on a local Ballista cluster, with what the cluster
moved to run them.

One run:
  1. reuses (or makes) the input files of two other benchmarks: oneid_vs_duckdb's
     `identities.parquet` (~10M identifier rows from `userql demo --customers 1250000`)
     and rfm_vs_duckdb's orders file (10M orders of 1M customers), by their own code and
     at their own paths, so the three benchmarks share one cache;
  2. **single machine**: `userql serve` with both files as channels `ids` and `orders`;
     over psycopg, one warm-up then `--runs` timed runs of
     `SELECT count(*), count(DISTINCT one_id) FROM oneid('channels.ids')` and of
     rfm_vs_duckdb's query (on `channels.orders`);
  3. **local cluster**: `userql scheduler` and two `userql executor --tasks 2`, each with
     its own work folder, all on this machine; once the scheduler's `/readyz` counts both
     executors, `userql serve` with the same config plus `[cluster] scheduler`, and the
     same queries and runs. Per measured run it records:
       - the cluster jobs: those the scheduler's `GET /api/jobs` lists with a start time
         inside the run;
       - the shuffle bytes: the files written under those jobs' folders in the executors'
         work folders (`<work-dir>/<job id>/<stage>/<partition>/data-*.arrow`: every
         stage's shuffle output and the final results), each sized as it is closed
         (inotify): the scheduler has a job's intermediate stages deleted the moment the
         job succeeds, and the rest 5 minutes later, so a look after the run would miss
         most of them. The scheduler's REST API has no byte counts
         (`/api/job/<id>/stages` gives rows and compute time only);
       - for `oneid`, serve's log line of each call (`oneid on the cluster: N records in
         S s; R rounds, E edges written, P parts[, B bytes written]`): OneID's rounds are
         Parquet files the executors write in serve's data folder, not shuffles;
  4. prints query, single-machine and cluster medians, their ratio, jobs and shuffle
     bytes per run, whether both answers agree, and the OneID rounds; writes the same as
     JSON to `--dir`. Exits 1 when a query failed or the answers differ.

Everything runs on one host: the cluster shows what distribution costs here (planning,
shuffles through local files, Arrow Flight on loopback), not what more machines would
gain. The scheduler, executors and servers are stopped when the run ends or fails; the
logs of the last run stay in `--dir`/last-run/.

Run through benches/cluster.sh, which makes the venv (duckdb, psycopg, numpy, pyarrow).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import shutil
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg

import oneid_vs_duckdb
import rfm_vs_duckdb
from benchkit import default_bench_dir, default_userql_bin, free_port, timed_runs, userql_server

EXECUTORS = 2
TASKS_PER_EXECUTOR = 2

QUERIES = {
    "oneid": "SELECT count(*), count(DISTINCT one_id) FROM oneid('channels.ids')",
    "rfm": rfm_vs_duckdb.USERQL_SQL.replace("'channels.bench'", "'channels.orders'"),
}

ONEID_LINE = re.compile(
    r"oneid on the cluster: (?P<records>\d+) records in (?P<seconds>[\d.]+) s; "
    r"(?P<rounds>\d+) rounds, (?P<edges_written>\d+) edges written, (?P<parts>\d+) parts"
    r"(?:, (?P<bytes_written>\d+) bytes written)?"
)


def channels_config(ids: Path, orders: Path) -> str:
    """userql.toml: the identities file as `ids` (as oneid_vs_duckdb serves it) and the
    orders file as `orders` (as rfm_vs_duckdb serves it, under another name)."""
    return (
        "[[channels]]\n"
        'name       = "ids"\n'
        f"path       = {json.dumps(str(ids))}\n"
        'record_key = "record_id"\n'
        "\n"
        "[[channels]]\n"
        'name       = "orders"\n'
        f"path       = {json.dumps(str(orders))}\n"
        'record_key = "customer_id"\n'
        "[channels.orders]\n"
        'ts     = "order_ts"\n'
        'amount = "amount"\n'
    )


# --------------------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------------------


def http_get(url: str) -> tuple[int, str]:
    """Status and body of a GET (an HTTP error status is an answer too)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


class LocalCluster:
    """A scheduler on a free loopback port and EXECUTORS executors (each picks its own data
    port and has its own work folder in `logs`), their logs in `logs`. Stops them all and
    removes the work folders on exit, whatever way the block ends."""

    def __init__(self, userql_bin: str, logs: Path):
        self.userql_bin, self.logs = userql_bin, logs
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.scheduler = f"df://127.0.0.1:{self.port}"
        self.work_dirs = [logs / f"executor-{i}-work" for i in range(1, EXECUTORS + 1)]
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str]) -> None:
        with open(self.logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen([self.userql_bin, *args], stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((name, proc))

    def __enter__(self) -> LocalCluster:
        try:
            self.start("scheduler", ["scheduler", "--listen", f"127.0.0.1:{self.port}"])
            for i, work_dir in enumerate(self.work_dirs, 1):
                work_dir.mkdir(parents=True)
                self.start(f"executor-{i}", [
                    "executor", "--scheduler", self.scheduler, "--work-dir", str(work_dir),
                    "--tasks", str(TASKS_PER_EXECUTOR)])
            self.wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def wait_ready(self) -> None:
        want = f"ready: {EXECUTORS} executors"
        body = ""
        for _ in range(300):  # at most ~60 s
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise SystemExit(f"{name} exited with {proc.returncode}:\n"
                                     + (self.logs / f"{name}.log").read_text(errors="replace")[-2000:])
            try:
                _, body = http_get(f"{self.url}/readyz")
                if want in body:
                    print(f"cluster: scheduler {self.scheduler}, {body.strip()}", flush=True)
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"the scheduler's /readyz never said {want!r}; last: {body.strip()!r}")

    def __exit__(self, *_) -> None:
        # Executors first, so none reconnects to a scheduler that is going away.
        for name, proc in reversed(self.procs):
            if proc.poll() is not None:  # a negative code is the signal that ended it
                print(f"cluster: {name} had exited by itself, with {proc.returncode}; "
                      f"see {self.logs / (name + '.log')}", flush=True)
            stop(proc)
        for work_dir in self.work_dirs:
            shutil.rmtree(work_dir, ignore_errors=True)

    def jobs(self) -> list[dict]:
        status, body = http_get(f"{self.url}/api/jobs")
        if status != 200:
            raise SystemExit(f"GET {self.url}/api/jobs: {status} {body[:500]}")
        return json.loads(body)


class ShuffleWatch:
    """The size of every file written under the executors' job folders
    (`<work-dir>/<job id>/<stage>/<partition>/...`), read as the file is closed (inotify):
    the scheduler has a job's intermediate stages deleted as soon as the job succeeds, so
    looking at the folders after a run would miss most shuffles. The thread only waits for
    events; `missed` counts files gone before their size was read (and event overflows)."""

    IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x8, 0x80, 0x100
    IN_Q_OVERFLOW, IN_IGNORED, IN_ISDIR = 0x4000, 0x8000, 0x40000000

    def __init__(self, work_dirs: list[Path]):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.folders: dict[int, tuple[Path, Path]] = {}  # watch -> (work dir, folder)
        self.sizes: dict[tuple[str, str], int] = {}  # (job id, path) -> bytes
        self.missed = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        for work_dir in work_dirs:
            self.watch(work_dir, work_dir)

    def watch(self, work_dir: Path, folder: Path) -> None:
        """Watches `folder`, then takes what was written there before the watch began."""
        mask = self.IN_CLOSE_WRITE | self.IN_MOVED_TO | self.IN_CREATE
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(folder), mask)
        if wd < 0:
            return  # already deleted
        self.folders[wd] = (work_dir, folder)
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                self.watch(work_dir, Path(entry.path))
            else:
                self.record(work_dir, Path(entry.path))

    def record(self, work_dir: Path, path: Path) -> None:
        parts = path.relative_to(work_dir).parts
        if len(parts) < 2:
            return  # not in a job folder
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            self.missed += 1
            return
        key = (parts[0], str(path))
        self.sizes[key] = max(size, self.sizes.get(key, 0))

    def drain(self) -> None:
        while True:
            try:
                buf = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return
            at = 0
            while at < len(buf):  # struct inotify_event: wd, mask, cookie, len, name
                wd, mask, _, size = struct.unpack_from("iIII", buf, at)
                name = buf[at + 16:at + 16 + size].rstrip(b"\0")
                at += 16 + size
                if mask & self.IN_Q_OVERFLOW:
                    self.missed += 1
                elif mask & self.IN_IGNORED:
                    self.folders.pop(wd, None)
                elif wd in self.folders and name:
                    work_dir, folder = self.folders[wd]
                    path = folder / os.fsdecode(name)
                    if mask & self.IN_ISDIR:
                        if mask & self.IN_CREATE:
                            self.watch(work_dir, path)
                    elif mask & (self.IN_CLOSE_WRITE | self.IN_MOVED_TO):
                        self.record(work_dir, path)

    def loop(self) -> None:
        while not self.done.is_set():
            if select.select([self.fd], [], [], 0.2)[0]:
                self.drain()

    def __enter__(self) -> ShuffleWatch:
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.done.set()
        self.thread.join()
        self.drain()
        os.close(self.fd)

    def bytes_of(self, job_id: str) -> int:
        return sum(size for (job, _), size in self.sizes.items() if job == job_id)


# --------------------------------------------------------------------------------------
# Running the queries
# --------------------------------------------------------------------------------------


def run_queries(userql_bin: str, config: str, runs: int, logs: Path, side: str,
                cluster: LocalCluster | None = None) -> dict:
    """Every query of QUERIES on one `serve` (on `cluster` when given): timed runs, and
    on the cluster per measured run its jobs, shuffle bytes and (oneid) serve's log line.
    A failing query is recorded with its error and the next one runs. The server's
    scratch folder is `logs`/`side` (removed after), its log is kept as `side`.log."""
    results = {}
    scratch = logs / side
    scratch.mkdir()
    with userql_server(userql_bin, scratch, config) as (server, conn):
        server_log = scratch / "server.log"
        try:
            cur = conn.cursor()
            for name, sql in QUERIES.items():
                windows: list[tuple[float, float]] = []  # wall-clock span of each call

                def run() -> list:
                    start = time.time()
                    rows = cur.execute(sql).fetchall()
                    windows.append((start, time.time()))
                    return rows

                label = f"{side} {name}"
                log_start = server_log.stat().st_size
                watch = ShuffleWatch(cluster.work_dirs) if cluster else contextlib.nullcontext()
                try:
                    with watch:
                        times, cpu, rows = timed_runs(label, runs, run, cpu_pid=server.pid)
                except psycopg.Error as e:
                    error = f"{e.sqlstate} {e}".strip()
                    print(f"{label}: ERROR {error}", flush=True)
                    results[name] = {"error": error}
                    continue
                r = {"times": times, "median": statistics.median(times), "server_cpu": cpu,
                     "rows": [list(map(str, row)) for row in rows]}
                if cluster:
                    r.update(cluster_costs(cluster, watch, windows[1:]))
                    r["shuffle_files_missed"] = watch.missed
                if cluster and name == "oneid":
                    with open(server_log, "rb") as f:
                        f.seek(log_start)
                        log = f.read().decode(errors="replace")
                    # One line per call, in order: the first is the warm-up's.
                    r["oneid_calls"] = [
                        {k: float(v) if k == "seconds" else int(v)
                         for k, v in m.groupdict().items() if v is not None}
                        for m in list(ONEID_LINE.finditer(log))[1:]]
                results[name] = r
        finally:
            shutil.copy(server_log, logs / f"{side}.log")
    return results


def cluster_costs(cluster: LocalCluster, watch: ShuffleWatch,
                  windows: list[tuple[float, float]]) -> dict:
    """Per measured run: the jobs that started within it and the bytes of their folders,
    in all and per job (in start order)."""
    jobs = sorted(cluster.jobs(), key=lambda j: j["start_time"])
    per_run = []
    for start, end in windows:
        run = [j for j in jobs if start <= j["start_time"] / 1000 <= end]
        job_bytes = {j["job_id"]: watch.bytes_of(j["job_id"]) for j in run}
        per_run.append({"jobs": len(run),
                        "failed_jobs": sum(1 for j in run if j["status"] != "Completed"),
                        "shuffle_bytes": sum(job_bytes.values()), "job_bytes": job_bytes})
    return {"runs": per_run}


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def spread(values: list) -> str:
    """`v` when every run gave the same, else `min-max`."""
    lo, hi = min(values), max(values)
    return f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"


def report(single: dict, clustered: dict, args: argparse.Namespace, rows: int) -> bool:
    """Prints the table; True when every query ran on both sides with the same answer."""
    ok = True
    print(f"{rows:,} identifier rows ({args.customers:,} demo customers); {args.orders:,} "
          f"orders of {args.order_customers:,} customers; {os.cpu_count()} cores; cluster: "
          f"{EXECUTORS} executors x {TASKS_PER_EXECUTOR} tasks on this machine; median of "
          f"{args.runs} after a warm-up")
    head = (f"{'query':<6} | {'single s':>8} | {'cluster s':>9} | {'cluster/single':>14} | "
            f"{'jobs/run':>8} | {'shuffle MB/run':>14} | same answer")
    print(head)
    print("-" * len(head))
    for name in QUERIES:
        s, c = single[name], clustered[name]
        if "error" in s or "error" in c:
            ok = False
            cells = [f"{s['median']:.2f}" if "median" in s else "ERROR",
                     f"{c['median']:.2f}" if "median" in c else "ERROR"]
            print(f"{name:<6} | {cells[0]:>8} | {cells[1]:>9} | {'':>14} | {'':>8} | {'':>14} |")
            continue
        same = s["rows"] == c["rows"]
        ok &= same
        runs = c["runs"]
        mb = max(r["shuffle_bytes"] for r in runs) / 1e6
        print(f"{name:<6} | {s['median']:>8.2f} | {c['median']:>9.2f} | "
              f"{c['median'] / s['median']:>13.1f}x | {spread([r['jobs'] for r in runs]):>8} | "
              f"{mb:>14.1f} | {'yes' if same else 'NO'}")
    print("(shuffle MB/run: the largest of the measured runs; jobs/run: min-max when they differ)")
    for name in QUERIES:
        for side, r in (("single machine", single[name]), ("cluster", clustered[name])):
            if "error" in r:
                print(f"{name} on the {side}: ERROR {r['error']}")
        if "runs" in clustered[name]:
            failed = sum(r["failed_jobs"] for r in clustered[name]["runs"])
            if failed:
                ok = False
                print(f"{name} on the cluster: {failed} jobs did not complete")
            if clustered[name]["shuffle_files_missed"]:
                print(f"{name} on the cluster: {clustered[name]['shuffle_files_missed']} shuffle "
                      "files were deleted before their size was read (shuffle MB too low)")
        if "error" not in single[name] and "error" not in clustered[name] \
                and single[name]["rows"] != clustered[name]["rows"]:
            print(f"{name}: single machine {single[name]['rows'][:5]} vs cluster "
                  f"{clustered[name]['rows'][:5]}")
    calls = clustered["oneid"].get("oneid_calls")
    if calls is not None:
        if not calls:
            print("oneid on the cluster: serve logged no 'oneid on the cluster' line")
        else:
            def field(key: str) -> str:
                vals = [c[key] for c in calls if key in c]
                return spread(vals) if vals else "not logged"
            seconds = ", ".join(f"{c['seconds']:.2f}" for c in calls)
            print(f"oneid on the cluster, per measured run (serve's log): rounds "
                  f"{field('rounds')}, edges written {field('edges_written')}, parts "
                  f"{field('parts')}, bytes written {field('bytes_written')}; {seconds} s")
    return ok


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--userql-bin", default=default_userql_bin())
    ap.add_argument("--dir", type=Path, default=default_bench_dir() / "cluster",
                    help="where results-*.json and the last run's logs are written")
    ap.add_argument("--customers", type=int, default=1_250_000,
                    help="demo customers behind the identities file (1,250,000: ~10M rows)")
    ap.add_argument("--orders", type=int, default=10_000_000, help="rows of the orders file")
    ap.add_argument("--order-customers", type=int, default=1_000_000,
                    help="customers of the orders file")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per query and side (median)")
    args = ap.parse_args()
    if not os.access(args.userql_bin, os.X_OK):
        raise SystemExit(f"no userql binary at {args.userql_bin} "
                         "(build with 'cargo build --release' or set USERQL_BIN)")
    # serve logs its `oneid on the cluster` line at info; children inherit this.
    os.environ["RUST_LOG"] = "info"

    # The two other benchmarks' files, at their default paths (their --dir defaults).
    oneid_dir = Path(tempfile.gettempdir()) / "userql-bench-oneid"
    demo = oneid_dir / f"demo-{args.customers}"
    ids = oneid_dir / f"identities-{args.customers}" / "identities.parquet"
    ids.parent.mkdir(parents=True, exist_ok=True)
    oneid_vs_duckdb.ensure_demo(args.userql_bin, demo, args.customers)
    rows = oneid_vs_duckdb.build_parquet(demo, ids)
    rfm_dir = default_bench_dir() / "rfm"
    rfm_dir.mkdir(parents=True, exist_ok=True)
    orders = rfm_vs_duckdb.ensure_data(rfm_dir, args.order_customers, args.orders,
                                       rfm_vs_duckdb.SEED)
    config = channels_config(ids.resolve(), orders.resolve())
    print()

    work = args.dir.resolve()
    logs = work / "last-run"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    started = time.perf_counter()
    single = run_queries(args.userql_bin, config, args.runs, logs, "serve-single")
    print()
    with LocalCluster(args.userql_bin, logs) as cluster:
        clustered = run_queries(args.userql_bin,
                                config + f'\n[cluster]\nscheduler = "{cluster.scheduler}"\n',
                                args.runs, logs, "serve-cluster", cluster)
    print()

    ok = report(single, clustered, args, rows)
    out = work / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({
        "identifier_rows": rows, "customers": args.customers, "orders": args.orders,
        "order_customers": args.order_customers, "runs": args.runs,
        "executors": EXECUTORS, "tasks_per_executor": TASKS_PER_EXECUTOR,
        "cores": os.cpu_count(), "queries": QUERIES,
        "single": single, "cluster": clustered,
        "seconds": time.perf_counter() - started,
    }, indent=2) + "\n")
    print(f"results: {out}; logs: {logs}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    # A SIGTERM ends the run like Ctrl-C, through the cleanup of the servers and cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
