# Shared set-up of the side-by-side benchmark scripts (sourced, not run): the userql
# binary, a throwaway PostgreSQL cluster (trust auth, loopback only), free ports, waiting
# for a server, and cleanup of exactly what the script started.
#
# The sourcing script sets BENCH_USER (the role both servers are connected as) and
# WORK_TAG (names the scratch directory), then calls start_postgres and start_userql.

CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/userql/target}"
USERQL_BIN="${USERQL_BIN:-$CARGO_TARGET_DIR/release/userql}"
DURATION="${DURATION:-10}"   # seconds per pgbench run
BENCH_USER="${BENCH_USER:-bench}"

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
WORK="$(mktemp -d "${TMPDIR:-/tmp}/userql-${WORK_TAG:-bench}.XXXXXX")"
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
    for i in $(seq 1 $(( limit * 20 ))); do
        if psql -X -q -h 127.0.0.1 -p "$port" -U "$BENCH_USER" -d "$db" -tAc 'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# start_postgres: a throwaway cluster; sets PG_PORT and PG_VERSION.
start_postgres() {
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
}

# start_userql DATA_DIR: userql on the demo data in DATA_DIR (generated on first start);
# sets UQ_PORT and USERQL_PID.
start_userql() {
    UQ_PORT="${UQ_PORT:-$(free_port $(( ${PG_PORT:-55432} + 1 )))}"
    "$USERQL_BIN" serve --demo --data-dir "$1" --listen "127.0.0.1:$UQ_PORT" \
        >>"$WORK/userql.log" 2>&1 &
    USERQL_PID=$!
    wait_ready "$UQ_PORT" 120 userql || { cat "$WORK/userql.log" >&2; die "userql does not answer on port $UQ_PORT"; }
}

# stop_userql: SIGTERM (graceful shutdown), then wait for the process to end.
stop_userql() {
    if [[ -n "$USERQL_PID" ]]; then
        kill "$USERQL_PID" 2>/dev/null || true
        wait "$USERQL_PID" 2>/dev/null || true
        USERQL_PID=""
    fi
}
