#!/usr/bin/env bash
# Run benches/funnel_vs_clickhouse.py in its own virtualenv (benches/.venv, git-ignored), so
# the benchmark's Python dependencies (chdb, psycopg, numpy, pyarrow) never touch the
# system Python.
#
# Usage: benches/funnel_vs_clickhouse.sh [--rows N] [--users N] [--runs N] [--dir DIR] [--prepare-only]
# Defaults: 10,000,000 events of 1,000,000 users, median of 3 runs; the Parquet file
# is kept under ${BENCH_DIR:-$HOME/.cache/userql/bench}/funnel and reused.
# The userql binary comes from USERQL_BIN, else
# ${CARGO_TARGET_DIR:-$HOME/.cache/userql/target}/release/userql (this script builds nothing).

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/venv.sh"
bench_venv 9 "chdb, psycopg, numpy, pyarrow" chdb 'psycopg[binary]' numpy pyarrow

exec "$BENCH_PYTHON" "$here/funnel_vs_clickhouse.py" "$@"
