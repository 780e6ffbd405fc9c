#!/usr/bin/env bash
# Run benches/oneid_vs_duckdb.py in its own virtualenv (benches/.venv, git-ignored), so
# the benchmark's Python dependencies (duckdb, psycopg) never touch the system Python.
#
# Usage: benches/oneid_vs_duckdb.sh [--customers N] [--dir DIR] [--runs N]
# The userql binary comes from USERQL_BIN, else
# ${CARGO_TARGET_DIR:-$HOME/.cache/userql/target}/release/userql (this script builds nothing).

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/venv.sh"
# tomllib (used to read userql.toml) is in the standard library from Python 3.11.
bench_venv 11 "duckdb, psycopg" duckdb 'psycopg[binary]'

exec "$BENCH_PYTHON" "$here/oneid_vs_duckdb.py" "$@"
