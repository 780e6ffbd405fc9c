#!/usr/bin/env bash
# Run benches/ltv_vs_lifetimes.py with two virtualenvs (both git-ignored), so the
# benchmark's Python dependencies never touch the system Python:
#   benches/.venv            psycopg, numpy, pyarrow (the driver and the data generator;
#                            shared with the other side-by-side scripts)
#   benches/.venv-lifetimes  lifetimes 0.11.3 and the numpy/pandas/scipy/autograd of its
#                            time (it predates pandas 2 and numpy 2), pyarrow to read Parquet
#
# Usage: benches/ltv_vs_lifetimes.sh [--customers N] [--runs N] [--unit day|week]
#                                    [--seed S] [--dir DIR] [--prepare-only]
# Defaults: 1,000,000 simulated customers, daily unit, median of 3 runs; the Parquet file
# is kept under ${BENCH_DIR:-$HOME/.cache/userql/bench}/ltv and reused.
# The userql binary comes from USERQL_BIN, else
# ${CARGO_TARGET_DIR:-$HOME/.cache/userql/target}/release/userql (this script builds nothing).
# PYTHON picks the interpreter of benches/.venv (>= 3.9); LIFETIMES_BASE_PYTHON the one of
# benches/.venv-lifetimes (3.9 to 3.11: pandas 1.5.3 has no wheels for later Pythons).

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lt_venv="$here/.venv-lifetimes"
source "$here/venv.sh"
bench_venv 9 "psycopg, numpy, pyarrow" 'psycopg[binary]' numpy pyarrow

lifetimes_ok() { "$1" -c 'import sys; sys.exit(not ((3, 9) <= sys.version_info[:2] <= (3, 11)))' 2>/dev/null; }
if [[ ! -x "$lt_venv/bin/python" ]]; then
    base="${LIFETIMES_BASE_PYTHON:-}"
    if [[ -z "$base" ]]; then
        for cand in python3.11 python3.10 python3.9 python3; do
            if command -v "$cand" >/dev/null && lifetimes_ok "$cand"; then
                base="$cand"
                break
            fi
        done
    fi
    [[ -n "$base" ]] && lifetimes_ok "$base" \
        || { echo "error: lifetimes 0.11.3 needs Python 3.9-3.11 (set LIFETIMES_BASE_PYTHON)" >&2; exit 1; }
    "$base" -m venv "$lt_venv"
fi
if ! "$lt_venv/bin/python" -c 'import lifetimes, pyarrow' 2>/dev/null; then
    "$lt_venv/bin/python" -m pip install --quiet --upgrade pip
    # The versions tests/reference/ltv_reference.py was run with; pyarrow 17.0.0 still
    # runs on numpy 1.x (recent releases need numpy 2).
    "$lt_venv/bin/python" -m pip install --quiet lifetimes==0.11.3 numpy==1.26.4 \
        pandas==1.5.3 scipy==1.11.4 autograd==1.6.2 pyarrow==17.0.0
fi

exec "$BENCH_PYTHON" "$here/ltv_vs_lifetimes.py" \
    --lifetimes-python "$lt_venv/bin/python" "$@"
