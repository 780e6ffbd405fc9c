#!/usr/bin/env bash
# Compiles the pgjdbc test against Debian's driver jar and runs it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
jar=/usr/share/java/postgresql.jar
out=$(mktemp -d "${CLIENTS_TMP:-${TMPDIR:-/tmp}}/jdbc.XXXXXX")
javac -d "$out" -cp "$jar" "$here/JdbcClientTest.java"
exec java -Dtyped.sql="$here/../typed.sql" -cp "$out:$jar" JdbcClientTest
