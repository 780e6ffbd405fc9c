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
venv="$here/.venv"
py="${PYTHON:-python3}"

"$py" -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
    || { echo "error: $py is older than Python 3.9" >&2; exit 1; }

if [[ ! -x "$venv/bin/python" ]]; then
    "$py" -m venv "$venv"
fi
# Installing only when an import fails keeps repeated runs offline and fast.
if ! "$venv/bin/python" -c 'import chdb, psycopg, numpy, pyarrow' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet chdb 'psycopg[binary]' numpy pyarrow
fi

exec "$venv/bin/python" "$here/funnel_vs_clickhouse.py" "$@"
