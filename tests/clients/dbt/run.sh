#!/usr/bin/env bash
# dbt debug, seed, run, test, run again (the table swap and the incremental merge), test, on a
# copy of this project (dbt writes target/ and logs/ beside it), then checks what was built.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dbt="${CLIENTS_CACHE:?}/venv-dbt/bin/dbt"
work=$(mktemp -d "${CLIENTS_TMP:-${TMPDIR:-/tmp}}/dbt.XXXXXX")
cp -r "$here/dbt_project.yml" "$here/profiles.yml" "$here/models" "$here/seeds" "$work/"
cd "$work"
export DBT_PROFILES_DIR="$work" DBT_SEND_ANONYMOUS_USAGE_STATS=false DBT_USE_COLORS=false

# A fresh schema, as on a first deploy.
psql -X -q -c 'DROP SCHEMA IF EXISTS clients_dbt CASCADE' >/dev/null 2>&1 || true

failed=0
step() {
  echo "== dbt $*"
  local before
  before=$(wc -l <logs/dbt.log 2>/dev/null || echo 0)
  if "$dbt" "$@"; then
    echo "ok - dbt $*"
  else
    # dbt's own log has every statement it sent: show this step's last ones.
    local mine
    mine=$(tail -n +"$((before + 1))" logs/dbt.log)
    echo "not ok - dbt $*: $(grep -m1 -E 'Database Error|Runtime Error|Compilation Error|ERROR' <<<"$mine" | cut -c1-300)"
    echo "-- the last statements dbt sent (logs/dbt.log):"
    grep -v -E '^\s*$' <<<"$mine" | tail -n 60
    failed=$((failed + 1))
  fi
}
step debug
step seed
step run --vars '{max_order_id: 3}'
step test
step run --vars '{max_order_id: 5}'
step test
step seed
echo "== checking what dbt built"
"${CLIENTS_CACHE}/venv-dbt/bin/python" "$here/check.py" || failed=$((failed + 1))
exit $((failed > 0))
