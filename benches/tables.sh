#!/usr/bin/env bash
# Stored tables, userql next to PostgreSQL in one run:
#   1. write throughput: psql's `\copy ... FROM` of the same 1M-row CSV file into each
#      (userql: one Delta commit; PostgreSQL: one transaction), as rows per second;
#   2. reopen time: a server restart with 100 stored tables (1,000 rows each) until it
#      answers `SELECT 1`, next to the same restart before the tables existed.
#
# Usage: benches/tables.sh            (env: USERQL_BIN, PG_BIN, ROWS, TABLES)
# Needs a built userql (it builds nothing); installs PostgreSQL with apt-get only if
# initdb is missing. Run on an otherwise idle machine.

set -euo pipefail

ROWS="${ROWS:-1000000}"
TABLES="${TABLES:-100}"
BENCH_USER=bench
WORK_TAG=tables
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

now() { date +%s.%N; }
seconds_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# --- The data: ROWS orders as CSV ------------------------------------------------------
CSV="$WORK/orders.csv"
awk -v n="$ROWS" 'BEGIN {
    srand(42);
    for (i = 1; i <= n; i++) {
        printf "%d,customer %d,%.2f,2024-%02d-%02d %02d:%02d:00,%s\n",
            i, int(rand() * 200000), rand() * 500, 1 + i % 12, 1 + i % 28, i % 24, i % 60,
            (i % 3 == 0 ? "tmall" : (i % 3 == 1 ? "app" : "pos"));
    }
}' >"$CSV"
chmod a+r "$CSV" "$WORK"
DDL="CREATE TABLE orders_copy (id bigint, customer text, amount numeric(10,2), ts timestamp, channel text)"

start_postgres
start_userql "$WORK/userql-data"

copy_rate() { # PORT DB -> seconds for \copy of the CSV
    local port=$1 db=$2 t0
    psql -X -q -h 127.0.0.1 -p "$port" -U "$BENCH_USER" -d "$db" -c "$DDL" >/dev/null
    t0="$(now)"
    psql -X -q -h 127.0.0.1 -p "$port" -U "$BENCH_USER" -d "$db" \
        -c "\\copy orders_copy FROM '$CSV' WITH (FORMAT csv)" >/dev/null
    seconds_since "$t0"
}
count_rows() { # PORT DB TABLE
    psql -X -h 127.0.0.1 -p "$1" -U "$BENCH_USER" -d "$2" -tAc "SELECT count(*) FROM $3"
}

PG_COPY="$(copy_rate "$PG_PORT" postgres)"
UQ_COPY="$(copy_rate "$UQ_PORT" userql)"
[[ "$(count_rows "$PG_PORT" postgres orders_copy)" == "$ROWS" ]] || die "PostgreSQL did not load $ROWS rows"
[[ "$(count_rows "$UQ_PORT" userql orders_copy)" == "$ROWS" ]] || die "userql did not load $ROWS rows"

# --- Reopen: restart time before and after creating TABLES tables ---------------------
# Both set ELAPSED (seconds from start to the first answered SELECT 1). Not called in
# $(...): the restarted server must be this shell's child, to be stopped later.
restart_userql() {
    stop_userql
    local t0
    t0="$(now)"
    start_userql "$WORK/userql-data"
    ELAPSED="$(seconds_since "$t0")"
}
restart_pg() {
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null
    local t0
    t0="$(now)"
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $WORK" start >/dev/null
    wait_ready "$PG_PORT" 30 postgres
    ELAPSED="$(seconds_since "$t0")"
}
restart_userql; UQ_EMPTY="$ELAPSED"
restart_pg; PG_EMPTY="$ELAPSED"
SQL="$WORK/tables.sql"
for i in $(seq 1 "$TABLES"); do
    echo "CREATE TABLE t_$i AS SELECT value AS id, value * 2 AS amount FROM generate_series(1, 1000);"
done >"$SQL"
psql -X -q -h 127.0.0.1 -p "$UQ_PORT" -U "$BENCH_USER" -d userql -f "$SQL" >/dev/null
sed 's/generate_series(1, 1000)/generate_series(1, 1000) AS g(value)/' "$SQL" \
    | psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U "$BENCH_USER" -d postgres >/dev/null
restart_userql; UQ_FULL="$ELAPSED"
restart_pg; PG_FULL="$ELAPSED"
[[ "$(count_rows "$UQ_PORT" userql "t_$TABLES")" == 1000 ]] || die "userql lost t_$TABLES after the restart"

# --- Result table ---------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
rate() { awk -v n="$ROWS" -v s="$1" 'BEGIN { printf "%.0f", n / s }'; }
echo "PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT; userql ($USERQL_BIN) on 127.0.0.1:$UQ_PORT; $(nproc) cores"
echo
printf '%-38s | %14s | %14s | %12s\n' measure PostgreSQL userql "userql / PG"
printf '%s\n' "---------------------------------------+----------------+----------------+-------------"
printf '%-38s | %14s | %14s | %12s\n' "\\copy $ROWS rows (rows/s)" "$(rate "$PG_COPY")" "$(rate "$UQ_COPY")" "$(ratio "$PG_COPY" "$UQ_COPY")"
printf '%-38s | %13ss | %13ss | %12s\n' "restart, no stored tables" "$PG_EMPTY" "$UQ_EMPTY" "$(ratio "$UQ_EMPTY" "$PG_EMPTY")"
printf '%-38s | %13ss | %13ss | %12s\n' "restart, $TABLES stored tables" "$PG_FULL" "$UQ_FULL" "$(ratio "$UQ_FULL" "$PG_FULL")"
echo
echo "rows/s ratio: userql throughput / PostgreSQL's (higher is better); restart ratios: userql time / PostgreSQL's."
