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

BENCH_USER=bench
WORK_TAG=pgbench
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
start_postgres

# --- userql: the demo data (generated on first start, ~20k people) --------------------
start_userql "$WORK/userql-data"
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
