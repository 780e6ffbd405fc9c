#!/usr/bin/env bash
# Run benches/rfm_vs_duckdb.py in its own virtualenv (benches/.venv, git-ignored), so
# the benchmark's Python dependencies (duckdb, psycopg, numpy, pyarrow) never touch the
# system Python.
#
# Usage: benches/rfm_vs_duckdb.sh [--rows N] [--customers N] [--runs N] [--dir DIR] [--prepare-only]
# Defaults: 10,000,000 orders of 1,000,000 customers, median of 3 runs; the Parquet file
# is kept under ${BENCH_DIR:-$HOME/.cache/userql/bench}/rfm and reused.
# The userql binary comes from USERQL_BIN, else
# ${CARGO_TARGET_DIR:-$HOME/.cache/userql/target}/release/userql (this script builds nothing).

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/venv.sh"
bench_venv 9 "duckdb, psycopg, numpy, pyarrow" duckdb 'psycopg[binary]' numpy pyarrow

exec "$BENCH_PYTHON" "$here/rfm_vs_duckdb.py" "$@"
