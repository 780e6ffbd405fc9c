#!/usr/bin/env bash
# Run benches/oneid_vs_duckdb.py in its own virtualenv (benches/.venv, git-ignored), so
# the benchmark's Python dependencies (duckdb, psycopg) never touch the system Python.
#
# Usage: benches/oneid_vs_duckdb.sh [--customers N] [--dir DIR] [--runs N]
# The userql binary comes from USERQL_BIN, else
# ${CARGO_TARGET_DIR:-$HOME/.cache/userql/target}/release/userql (this script builds nothing).

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
py="${PYTHON:-python3}"

# tomllib (used to read userql.toml) is in the standard library from Python 3.11.
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "error: $py is older than Python 3.11" >&2; exit 1; }

if [[ ! -x "$venv/bin/python" ]]; then
    "$py" -m venv "$venv"
fi
# Installing only when an import fails keeps repeated runs offline and fast.
if ! "$venv/bin/python" -c 'import duckdb, psycopg' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet duckdb 'psycopg[binary]'
fi

exec "$venv/bin/python" "$here/oneid_vs_duckdb.py" "$@"
