#!/usr/bin/env bash
# Run benches/load_test.py (100 concurrent connections, mixed statements) in the benches'
# virtualenv (benches/.venv, git-ignored). Usage: benches/load_test.sh [--clients N] [--seconds S]
# The userql binary comes from USERQL_BIN, else
# ${CARGO_TARGET_DIR:-$HOME/.cache/userql/target}/release/userql (this script builds nothing).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
[[ -x "$venv/bin/python" ]] || "${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -c 'import psycopg' 2>/dev/null || "$venv/bin/python" -m pip install --quiet 'psycopg[binary]'
exec "$venv/bin/python" "$here/load_test.py" "$@"
