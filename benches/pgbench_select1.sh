#!/usr/bin/env bash
# `SELECT 1` throughput of userql next to PostgreSQL, measured by pgbench in one run.
#
# What this isolates: the per-statement cost of the wire protocol, parsing, planning and
# result encoding. `SELECT 1` does no data work, so the numbers compare request/response
# overhead only. Both servers run on this machine at the same time (the idle one costs
# nothing) and pgbench competes with them for the same cores, exactly as it would for any
# other local server; compare the ratio, not the absolute tps, across machines.
#
# Usage: benches/pgbench_select1.sh            (env: USERQL_BIN, PG_BIN, DURATION)
#
# Needs a built userql (it builds nothing): USERQL_BIN, or
# ${CARGO_TARGET_DIR:-$HOME/.cache/userql/target}/release/userql.
# Installs PostgreSQL with apt-get only if pgbench or initdb is missing.

set -euo pipefail

CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/userql/target}"
USERQL_BIN="${USERQL_BIN:-$CARGO_TARGET_DIR/release/userql}"
DURATION="${DURATION:-10}"   # seconds per pgbench run
BENCH_USER=bench

die() { echo "error: $*" >&2; exit 1; }

[[ -x "$USERQL_BIN" ]] || die "no userql binary at $USERQL_BIN (build with 'cargo build --release' or set USERQL_BIN)"

# --- PostgreSQL binaries --------------------------------------------------------------
# Debian/Ubuntu keep the server binaries (initdb, pg_ctl) out of PATH under
# /usr/lib/postgresql/<major>/bin; pick the newest installed major unless PG_BIN is set.
find_pg_bin() {
    local d best=""
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && best="$d"
    done
    if [[ -z "$best" ]] && command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        best="$(dirname "$(command -v initdb)")"
    fi
    echo "$best"
}

PG_BIN="${PG_BIN:-$(find_pg_bin)}"
if [[ -z "$PG_BIN" ]] || ! command -v pgbench >/dev/null; then
    echo "PostgreSQL (initdb/pgbench) not found: installing postgresql with apt-get" >&2
    command -v apt-get >/dev/null || die "apt-get not available; install PostgreSQL yourself"
    SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
    $SUDO apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql postgresql-contrib
    PG_BIN="$(find_pg_bin)"
fi
[[ -n "$PG_BIN" ]] || die "initdb/pg_ctl still not found after installing"
# pgbench ships in the server bin dir too; prefer the PATH one (the client package).
PGBENCH="$(command -v pgbench || echo "$PG_BIN/pgbench")"
command -v psql >/dev/null || die "psql not found"

# --- Scratch space and cleanup --------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/userql-pgbench.XXXXXX")"
PGDATA_DIR="$WORK/pgdata"
USERQL_PID=""
PG_STARTED=""

# PostgreSQL refuses to run as root, so when we are root it runs as `postgres` and the
# cluster directory must belong to that user.
if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user to run PostgreSQL as"
    as_pg() { runuser -u postgres -- "$@"; }
    chown postgres: "$WORK"
else
    as_pg() { "$@"; }
fi

cleanup() {
    # Stop exactly the servers this script started, then drop the scratch directory.
    if [[ -n "$USERQL_PID" ]] && kill -0 "$USERQL_PID" 2>/dev/null; then
        kill "$USERQL_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$USERQL_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$USERQL_PID" 2>/dev/null || true
    fi
    if [[ -n "$PG_STARTED" ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A loopback port nothing answers on. Bounded scan; the tiny race with other processes
# is acceptable for a benchmark (the server start would fail loudly).
free_port() {
    local p
    for p in $(seq "$1" $(( $1 + 200 ))); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    die "no free port in $1..$(( $1 + 200 ))"
}

# Wait (at most $2 seconds) until a server answers `SELECT 1` on port $1, database $3.
wait_ready() {
    local port=$1 limit=$2 db=$3 i
    for i in $(seq 1 $(( limit * 5 ))); do
        if psql -X -q -h 127.0.0.1 -p "$port" -U "$BENCH_USER" -d "$db" -tAc 'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# --- PostgreSQL: a throwaway cluster, trust auth, loopback only -----------------------
PG_PORT="$(free_port 55432)"
as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -U "$BENCH_USER" -A trust -E UTF8 --no-sync >"$WORK/initdb.log" 2>&1 \
    || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
# The unix socket goes into the scratch dir so the cluster needs no system directories.
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $WORK" start >/dev/null \
    || { cat "$PGDATA_DIR/server.log" >&2; die "PostgreSQL did not start"; }
PG_STARTED=1
wait_ready "$PG_PORT" 30 postgres || die "PostgreSQL does not answer on port $PG_PORT"
PG_VERSION="$(psql -X -h 127.0.0.1 -p "$PG_PORT" -U "$BENCH_USER" -d postgres -tAc 'SHOW server_version')"

# --- userql: the demo data (generated on first start, ~20k people) --------------------
UQ_PORT="$(free_port $(( PG_PORT + 1 )))"
"$USERQL_BIN" serve --demo --data-dir "$WORK/userql-data" --listen "127.0.0.1:$UQ_PORT" \
    >"$WORK/userql.log" 2>&1 &
USERQL_PID=$!
wait_ready "$UQ_PORT" 120 userql || { cat "$WORK/userql.log" >&2; die "userql does not answer on port $UQ_PORT"; }

# --- The workload ---------------------------------------------------------------------
# A custom script and -n: pgbench then neither vacuums nor looks for pgbench_* tables, so
# it sends only what the script says (plus its connection startup).
SCRIPT="$WORK/select1.sql"
echo 'SELECT 1;' >"$SCRIPT"
chmod a+r "$SCRIPT"

# run_pgbench PORT DB MODE CLIENTS THREADS -> prints tps, or "FAILED" (details in $WORK/*.err
# and echoed to stderr so the exact error is kept in the run's output).
run_pgbench() {
    local port=$1 db=$2 mode=$3 clients=$4 threads=$5 out err
    out="$WORK/pgbench-$port-$mode-$clients.out"
    err="$WORK/pgbench-$port-$mode-$clients.err"
    if "$PGBENCH" -n -f "$SCRIPT" -M "$mode" -c "$clients" -j "$threads" -T "$DURATION" \
        -h 127.0.0.1 -p "$port" -U "$BENCH_USER" "$db" >"$out" 2>"$err"; then
        local tps
        # "tps = 12345.678901 (without initial connection time)"
        tps="$(awk '/^tps = / { print $3; exit }' "$out")"
        if [[ -n "$tps" ]] && ! grep -q 'aborted in command' "$err"; then
            printf '%.0f\n' "$tps"
            return 0
        fi
    fi
    {
        echo "pgbench failed against port $port ($db), -M $mode -c $clients:"
        sed 's/^/    /' "$err" "$out" | tail -n 20
    } >&2
    echo FAILED
}

echo "PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT; userql ($USERQL_BIN) on 127.0.0.1:$UQ_PORT"
echo "pgbench -n -f select1.sql -T $DURATION; $(nproc) cores"
echo

# Warm-up, discarded: the first seconds against a fresh server pay for cold caches
# (binaries paged in, PostgreSQL's catalog caches, allocator growth) and would
# otherwise land on whichever cell happens to run first.
for port_db in "$PG_PORT postgres" "$UQ_PORT userql"; do
    read -r port db <<<"$port_db"
    "$PGBENCH" -n -f "$SCRIPT" -c 1 -T 2 -h 127.0.0.1 -p "$port" -U "$BENCH_USER" "$db" >/dev/null 2>&1 || true
done

declare -a ROWS=()
for mode in simple extended; do
    for clients in 1 4; do
        threads=$(( clients == 1 ? 1 : 2 ))
        pg_tps="$(run_pgbench "$PG_PORT" postgres "$mode" "$clients" "$threads")"
        uq_tps="$(run_pgbench "$UQ_PORT" userql "$mode" "$clients" "$threads")"
        if [[ "$pg_tps" =~ ^[0-9]+$ && "$uq_tps" =~ ^[0-9]+$ && "$pg_tps" -gt 0 ]]; then
            ratio="$(awk -v u="$uq_tps" -v p="$pg_tps" 'BEGIN { printf "%.2f", u / p }')"
        else
            ratio="-"
        fi
        ROWS+=("$mode|$clients|$pg_tps|$uq_tps|$ratio")
    done
done

# --- Result table ---------------------------------------------------------------------
printf '%-9s | %7s | %15s | %10s | %13s\n' mode clients "PostgreSQL tps" "userql tps" "userql / PG"
printf '%s\n' "----------+---------+-----------------+------------+--------------"
for row in "${ROWS[@]}"; do
    IFS='|' read -r mode clients pg uq ratio <<<"$row"
    printf '%-9s | %7s | %15s | %10s | %13s\n' "$mode" "$clients" "$pg" "$uq" "$ratio"
done
