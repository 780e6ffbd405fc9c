"""What the side-by-side benchmark scripts share: where things are, a userql server on a
free port with a psycopg connection, and the /proc readings (peak RSS, CPU time)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO


def default_userql_bin() -> str:
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/userql/target")
    return os.environ.get("USERQL_BIN") or os.path.join(target, "release", "userql")


def default_bench_dir() -> Path:
    return Path(os.environ.get("BENCH_DIR") or os.path.expanduser("~/.cache/userql/bench"))


def sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def vm_kib(pid: int | str, key: str) -> int:
    """A size line of /proc/PID/status (VmHWM = peak RSS, VmRSS = now), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def reset_peak(pid: int | str) -> bool:
    """Reset a process's VmHWM to its current RSS (Linux >= 4.0), so each query's peak
    is its own; False where the kernel or permissions do not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cached_file(path: Path, make: Callable[[Path], None]) -> Path:
    """`path`, made by `make(path)` unless an earlier run left it."""
    if path.exists():
        print(f"data: reusing {path}")
        return path
    print(f"data: generating {path} ...", flush=True)
    t = time.perf_counter()
    make(path)
    print(f"data: done in {time.perf_counter() - t:.1f} s")
    return path


@contextlib.contextmanager
def userql_server(userql_bin: str, scratch: Path, config_text: str) -> Iterator[tuple]:
    """userql serving `config_text` (a userql.toml) from `scratch` on a free loopback
    port: yields (the server process, an autocommit psycopg connection); stops the server
    and removes `scratch` afterwards."""
    import psycopg

    config = scratch / "userql.toml"
    config.write_text(config_text)
    port = free_port()
    log_path = scratch / "server.log"
    log = open(log_path, "wb")
    server = subprocess.Popen(
        [userql_bin, "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(scratch / "data")],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        conn = None
        for _ in range(300):
            if server.poll() is not None:
                raise SystemExit(f"userql exited with {server.returncode}:\n"
                                 + log_path.read_text(errors="replace")[-2000:])
            try:
                conn = psycopg.connect(f"host=127.0.0.1 port={port} user=bench dbname=userql",
                                       autocommit=True)
                break
            except psycopg.OperationalError:
                time.sleep(0.2)
        if conn is None:
            raise SystemExit(f"userql did not accept connections on port {port}")
        with conn:
            yield server, conn
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        log.close()
        shutil.rmtree(scratch, ignore_errors=True)


def timed_runs(label: str, runs: int, run: Callable[[], Any], cpu_pid: int | None = None,
               digits: int = 2, stream: TextIO = sys.stdout) -> tuple[list, list, Any]:
    """`run()` once as a warm-up and `runs` times measured, printing each wall time (and,
    with `cpu_pid`, that process's CPU time over it). Returns the measured wall times, the
    CPU times (empty without `cpu_pid`) and the last run's result."""
    times: list[float] = []
    cpus: list[float] = []
    result = None
    for i in range(runs + 1):
        cpu = cpu_seconds(cpu_pid) if cpu_pid is not None else 0.0
        t = time.perf_counter()
        result = run()
        wall = time.perf_counter() - t
        which = "warm-up" if i == 0 else f"run {i}"
        line = f"{label} {which}: {wall:.{digits}f} s"
        if cpu_pid is not None:
            cpu = cpu_seconds(cpu_pid) - cpu
            line += f", server CPU {cpu:.2f} s"
        print(line, file=stream, flush=True)
        if i > 0:
            times.append(wall)
            cpus.append(cpu)
    return times, cpus if cpu_pid is not None else [], result


def userql_query(cur, sql: str, fetch: str = "all", name: str = "") -> Any:
    """Run `sql` on a psycopg cursor and fetch its rows (`fetch`: all | one); a userql
    error ends the benchmark with the SQLSTATE and the query."""
    import psycopg

    try:
        cur.execute(sql)
        return cur.fetchone() if fetch == "one" else cur.fetchall()
    except psycopg.Error as e:
        where = f" in {name}" if name else ""
        raise SystemExit(f"userql error{where}: {e.sqlstate} {e}\nquery: {sql}")
