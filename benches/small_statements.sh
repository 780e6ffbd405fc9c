#!/usr/bin/env bash
# Small statements, userql next to PostgreSQL in one run: the per-statement cost a BI
# dashboard or a pooled app pays, streaming a large result, and single-row INSERT commits
# as a table ages.
#
# Rows of the table (pgbench, CLIENTS clients, 2 threads, DURATION seconds per figure):
#   SELECT 1 (simple, extended) · point lookup `WHERE k = :k` on a 1000-row table (a CSV
#   channel in userql, a heap table with a primary key in PostgreSQL) · a small aggregate
#   on it · 10M rows streamed to psql (rows/s) · single-row INSERT commits into one table
#   with CLIENTS clients: the rate over the first 10% and the last 10% of INSERTS commits.
#
# Usage: benches/small_statements.sh   (env: USERQL_BIN, PG_BIN, DURATION=8, CLIENTS=8,
#                                        STREAM_ROWS=10000000, INSERTS=10000)
#
# Needs a built userql (it builds nothing): USERQL_BIN, or
# ${CARGO_TARGET_DIR:-$HOME/.cache/userql/target}/release/userql.

set -euo pipefail

BENCH_USER=bench
WORK_TAG=small
DURATION="${DURATION:-8}"
CLIENTS="${CLIENTS:-8}"
STREAM_ROWS="${STREAM_ROWS:-10000000}"
INSERTS="${INSERTS:-10000}"
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
start_postgres

# --- The same 1000 rows for both ------------------------------------------------------
mkdir -p "$WORK/uq/data"
awk 'BEGIN { srand(1); print "k,amount,name";
             for (i = 1; i <= 1000; i++) printf "%d,%.2f,n%d\n", i, int(rand() * 20000) / 100, i }' \
    >"$WORK/uq/data/small.csv"
chmod -R a+rX "$WORK"
cat >"$WORK/uq/userql.toml" <<EOF
[server]
data_dir = "$WORK/uq/store"
[[channels]]
name = "small"
path = "data/small.csv"
record_key = "name"
ids = { name = "name" }
EOF
UQ_PORT="$(free_port $(( PG_PORT + 1 )))"
"$USERQL_BIN" serve -c "$WORK/uq/userql.toml" --listen "127.0.0.1:$UQ_PORT" >>"$WORK/userql.log" 2>&1 &
USERQL_PID=$!
wait_ready "$UQ_PORT" 60 userql || { cat "$WORK/userql.log" >&2; die "userql does not answer on port $UQ_PORT"; }

pg() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U "$BENCH_USER" -d postgres "$@"; }
uq() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$UQ_PORT" -U "$BENCH_USER" -d userql "$@"; }

pg -c "CREATE SCHEMA channels; CREATE TABLE channels.small (k bigint PRIMARY KEY, amount double precision, name text)"
pg -c "\\copy channels.small FROM '$WORK/uq/data/small.csv' CSV HEADER"
pg -c "VACUUM ANALYZE channels.small"
pg -c "CREATE TABLE ins (id bigint, v text)"
uq -c "CREATE TABLE ins (id bigint, v text)"

# --- Workloads ------------------------------------------------------------------------
echo 'SELECT 1;' >"$WORK/select1.sql"
printf '\\set k random(1, 1000)\nSELECT * FROM channels.small WHERE k = :k;\n' >"$WORK/lookup.sql"
echo 'SELECT count(*), sum(amount) FROM channels.small WHERE amount > 100;' >"$WORK/agg.sql"
printf "\\\\set k random(1, 1000000)\nINSERT INTO ins VALUES (:k, 'x');\n" >"$WORK/insert.sql"
chmod a+r "$WORK"/*.sql

# pgbench_tps PORT DB SCRIPT MODE [pgbench options...] -> tps, or FAILED (error on stderr)
pgbench_tps() {
    local port=$1 db=$2 script=$3 mode=$4 out err
    shift 4
    out="$(mktemp "$WORK/pgbench.XXXXXX")"
    err="$out.err"
    if "$PGBENCH" -n -f "$WORK/$script" -M "$mode" -c "$CLIENTS" -j 2 "$@" \
        -h 127.0.0.1 -p "$port" -U "$BENCH_USER" "$db" >"$out" 2>"$err" \
        && ! grep -q 'aborted in command' "$err"; then
        awk '/^tps = / { printf "%.0f\n", $3; exit }' "$out"
    else
        { echo "pgbench $script -M $mode failed on port $port:"; tail -n 20 "$err" "$out"; } >&2
        echo FAILED
    fi
}

# stream_rate PORT DB SQL -> rows per second through psql
stream_rate() {
    local port=$1 db=$2 sql=$3 start end
    start=$(date +%s.%N)
    psql -X -q -h 127.0.0.1 -p "$port" -U "$BENCH_USER" -d "$db" -tAc "$sql" >/dev/null
    end=$(date +%s.%N)
    awk -v n="$STREAM_ROWS" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f\n", n / (e - s) }'
}

# insert_rates PORT DB -> "first-10% last-10%" commits per second over INSERTS inserts
insert_rates() {
    local port=$1 db=$2 tenth=$(( INSERTS / 10 )) per_client first last
    per_client=$(( tenth / CLIENTS ))
    first="$(pgbench_tps "$port" "$db" insert.sql simple -t "$per_client")"
    # The middle 80%: not measured, only aged into the table.
    pgbench_tps "$port" "$db" insert.sql simple -t $(( per_client * 8 )) >/dev/null
    last="$(pgbench_tps "$port" "$db" insert.sql simple -t "$per_client")"
    echo "$first $last"
}

echo "PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT; userql ($USERQL_BIN) on 127.0.0.1:$UQ_PORT"
echo "pgbench -c $CLIENTS -j 2 -T $DURATION; $(nproc) cores"
echo

for port_db in "$PG_PORT postgres" "$UQ_PORT userql"; do   # warm-up, discarded
    read -r port db <<<"$port_db"
    for s in select1 lookup agg; do
        "$PGBENCH" -n -f "$WORK/$s.sql" -c 1 -T 1 -h 127.0.0.1 -p "$port" -U "$BENCH_USER" "$db" >/dev/null 2>&1 || true
    done
done

declare -a ROWS=()
row() {   # row LABEL PG UQ UNIT
    local ratio="-"
    if [[ "$2" =~ ^[0-9.]+$ && "$3" =~ ^[0-9.]+$ ]] && awk -v p="$2" 'BEGIN { exit !(p > 0) }'; then
        ratio="$(awk -v u="$3" -v p="$2" 'BEGIN { printf "%.2f×", u / p }')"
    fi
    ROWS+=("$1|$2|$3|$ratio|$4")
}
for mode in simple extended; do
    row "SELECT 1, $mode protocol" \
        "$(pgbench_tps "$PG_PORT" postgres select1.sql "$mode" -T "$DURATION")" \
        "$(pgbench_tps "$UQ_PORT" userql select1.sql "$mode" -T "$DURATION")" tps
done
row "point lookup, 1000-row channel" \
    "$(pgbench_tps "$PG_PORT" postgres lookup.sql simple -T "$DURATION")" \
    "$(pgbench_tps "$UQ_PORT" userql lookup.sql simple -T "$DURATION")" tps
row "count/sum WHERE amount > 100" \
    "$(pgbench_tps "$PG_PORT" postgres agg.sql simple -T "$DURATION")" \
    "$(pgbench_tps "$UQ_PORT" userql agg.sql simple -T "$DURATION")" tps
row "$STREAM_ROWS rows streamed to psql" \
    "$(stream_rate "$PG_PORT" postgres "SELECT i::bigint, i * 1.5::float8, 'row ' || i FROM generate_series(1, $STREAM_ROWS) AS g(i)")" \
    "$(stream_rate "$UQ_PORT" userql "SELECT i, i * 1.5, 'row ' || i FROM generate_series(1, $STREAM_ROWS) AS g(i)")" rows/s
read -r pg_first pg_last <<<"$(insert_rates "$PG_PORT" postgres)"
read -r uq_first uq_last <<<"$(insert_rates "$UQ_PORT" userql)"
row "INSERT commits, first 10% of $INSERTS" "$pg_first" "$uq_first" commits/s
row "INSERT commits, last 10% of $INSERTS" "$pg_last" "$uq_last" commits/s

printf '%-40s | %12s | %12s | %9s | %s\n' statement PostgreSQL userql "userql/PG" unit
printf '%s\n' "-----------------------------------------+--------------+--------------+-----------+----------"
for r in "${ROWS[@]}"; do
    IFS='|' read -r label p u ratio unit <<<"$r"
    printf '%-40s | %12s | %12s | %9s | %s\n' "$label" "$p" "$u" "$ratio" "$unit"
done
if [[ "$uq_first" =~ ^[0-9]+$ && "$uq_last" =~ ^[0-9]+$ && "$uq_first" -gt 0 ]]; then
    awk -v f="$uq_first" -v l="$uq_last" 'BEGIN { printf "\nuserql INSERT rate, last 10%% / first 10%%: %.2f\n", l / f }'
fi
rows_uq="$(uq -tAc 'SELECT count(*) FROM ins')"
echo "rows in userql's ins after the run: $rows_uq (expected $(( (INSERTS / 10 / CLIENTS) * CLIENTS * 10 )))"
