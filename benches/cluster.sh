#!/usr/bin/env bash
# Run benches/cluster.py in its own virtualenv (benches/.venv, git-ignored), so the
# benchmark's Python dependencies (duckdb, psycopg, numpy, pyarrow) never touch the
# system Python. duckdb builds the identities file (as oneid_vs_duckdb does); numpy and
# pyarrow write the orders file (as rfm_vs_duckdb does).
#
# Usage: benches/cluster.sh [--customers N] [--orders N] [--order-customers N] [--runs N] [--dir DIR]
# Defaults: the identities of 1,250,000 demo customers (~10M rows, oneid_vs_duckdb's file)
# and 10,000,000 orders of 1,000,000 customers (rfm_vs_duckdb's file), median of 3 runs.
# The userql binary comes from USERQL_BIN, else
# ${CARGO_TARGET_DIR:-$HOME/.cache/userql/target}/release/userql (this script builds nothing).

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/venv.sh"
# tomllib (oneid_vs_duckdb reads the demo's userql.toml with it) is in Python 3.11+.
bench_venv 11 "duckdb, psycopg, numpy, pyarrow" duckdb 'psycopg[binary]' numpy pyarrow

exec "$BENCH_PYTHON" "$here/cluster.py" "$@"
