"""The type-fidelity table (../typed.sql) as the Python drivers should read it back."""

import datetime as dt
import os
import re
from decimal import Decimal

UTC = dt.timezone.utc

# (column, type OID PostgreSQL reports in RowDescription), in the order of typed.sql
COLUMNS = [
    ("id", 23), ("c_int", 23), ("c_bigint", 20), ("c_smallint", 21), ("c_double", 701),
    ("c_real", 700), ("c_numeric", 1700), ("c_text", 25), ("c_bool", 16), ("c_date", 1082),
    ("c_ts", 1114), ("c_tstz", 1184), ("c_bytea", 17), ("c_text_arr", 1009),
    ("c_bigint_arr", 1016),
]
NAMES = [c[0] for c in COLUMNS]
OIDS = [c[1] for c in COLUMNS]

_SQL = open(os.path.join(os.path.dirname(__file__), "..", "typed.sql"), encoding="utf-8").read()
STATEMENTS = [s.strip() for s in
              "\n".join(line for line in _SQL.splitlines() if not line.startswith("--"))
              .split(";\n") if s.strip()]
INSERTS = {int(re.search(r"VALUES \((\d+),", s).group(1)): s.rstrip(";")
           for s in STATEMENTS if s.startswith("INSERT")}

EXPECTED = {
    1: (1, 42, 9007199254740993, 7, 0.1, 1.5, Decimal("12345.67"), "hello", True,
        dt.date(2024, 2, 29), dt.datetime(2024, 2, 29, 12, 34, 56, 123456),
        dt.datetime(2024, 2, 29, 4, 34, 56, 123456, tzinfo=UTC), b"\xde\xad\xbe\xef",
        ["p", "q r"], [1, 9007199254740993]),
    2: (2,) + (None,) * 14,
    3: (3, -2147483648, -9223372036854775808, -32768, -2.5e-07, -0.25, Decimal("-9999999999.99"),
        '中文 ü "quoted" it\'s', False, dt.date(1970, 1, 1), dt.datetime(1999, 12, 31, 23, 59, 59),
        dt.datetime(1970, 1, 1, tzinfo=UTC), b"\x00\xff", ["", None, 'a,b"c'], [None, -1]),
    4: (4, 7, 8, 9, 0.5, 0.5, Decimal("-0.01"), "x", True, dt.date(2000, 1, 1),
        dt.datetime(2000, 1, 1), dt.datetime(2000, 1, 1, tzinfo=UTC), b"", ["p", "q r"], [1, 2]),
}


def create_sql(schema):
    """Statements that (re)create `schema` and the empty `typed` table in it."""
    return [s.rstrip(";").replace("{schema}", schema) for s in STATEMENTS
            if not s.startswith("INSERT")]


def insert_sql(schema, row_id):
    return INSERTS[row_id].replace("{schema}", schema)


def select_sql(schema):
    return f"SELECT {', '.join(NAMES)} FROM {schema}.typed ORDER BY id"


def normalise(value):
    """Driver-neutral form: memoryview/bytearray -> bytes; anything else unchanged."""
    if isinstance(value, (memoryview, bytearray)):
        return bytes(value)
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def row_differences(row_id, actual):
    """Every column of one row that differs from EXPECTED, with both Python types."""
    expected = EXPECTED[row_id]
    diffs = []
    for name, want, got in zip(NAMES, expected, actual):
        got = normalise(got)
        same = type(got) is type(want) and got == want
        if isinstance(want, dt.datetime) and isinstance(got, dt.datetime):
            # a timestamptz must come back aware, and equal as an instant
            same = (want.tzinfo is None) == (got.tzinfo is None) and got == want
        if not same:
            diffs.append(f"{name}: expected {want!r} ({type(want).__name__}), "
                         f"got {got!r} ({type(got).__name__})")
    return diffs


def check_rows(rows, what):
    """Raise AssertionError naming every row and column that did not come back as inserted."""
    by_id = {r[0]: r for r in rows}
    problems = []
    for row_id in EXPECTED:
        if row_id not in by_id:
            problems.append(f"row {row_id} missing")
            continue
        diffs = row_differences(row_id, by_id[row_id])
        if diffs:
            problems.append(f"row {row_id}: " + "; ".join(diffs))
    if problems:
        raise AssertionError(f"{what}: " + " || ".join(problems))
