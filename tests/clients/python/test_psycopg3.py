"""psycopg 3: server-side (extended protocol) parameters in text and binary, prepared
statements, text and binary results of every stored type, COPY FROM STDIN / TO STDOUT."""

import datetime as dt
from decimal import Decimal

import psycopg

import typed
from harness import Checks, expect, expect_equal, libpq_params

S = "clients_psycopg3"
checks = Checks("psycopg3")
conn = psycopg.connect(**libpq_params(), autocommit=True)

with checks.check("create the typed table"):
    for stmt in typed.create_sql(S):
        conn.execute(stmt)
for row_id in typed.INSERTS:
    with checks.check(f"insert typed row {row_id}"):
        conn.execute(typed.insert_sql(S, row_id))

with checks.check("text results: every type as PostgreSQL's Python type"):
    cur = conn.execute(typed.select_sql(S) + " LIMIT 4")
    expect_equal([d.type_code for d in cur.description], typed.OIDS, "column type OIDs")
    typed.check_rows(cur.fetchall(), "text format")

with checks.check("binary results: every type as PostgreSQL's Python type"):
    cur = conn.cursor(binary=True)
    cur.execute(typed.select_sql(S) + " LIMIT 4")
    expect_equal([d.type_code for d in cur.description], typed.OIDS, "column type OIDs")
    typed.check_rows(cur.fetchall(), "binary format")

placeholders = ", ".join(["%s"] * len(typed.NAMES))
for row_id, fmt, mark in [(5, "text", "%t"), (6, "binary", "%b")]:
    with checks.check(f"insert with {fmt} parameters, read back"):
        values = (row_id,) + typed.EXPECTED[1][1:]
        conn.execute(f"INSERT INTO {S}.typed VALUES ({placeholders.replace('%s', mark)})", values)
        got = conn.execute(f"SELECT * FROM {S}.typed WHERE id = %b", (row_id,)).fetchone()
        expect(got is not None, f"row {row_id} not found")
        diffs = typed.row_differences(1, (1,) + tuple(got[1:]))
        expect(not diffs, "; ".join(diffs))

with checks.check("binary parameters of each type in a WHERE clause"):
    cur = conn.cursor(binary=True)
    row = cur.execute(
        f"SELECT id FROM {S}.typed WHERE c_bigint = %b AND c_numeric = %b AND c_ts = %b "
        "AND c_tstz = %b AND c_date = %b AND c_bool = %b AND c_text = %b AND c_bytea = %b "
        "AND id >= 5 ORDER BY id",
        (9007199254740993, Decimal("12345.67"), dt.datetime(2024, 2, 29, 12, 34, 56, 123456),
         dt.datetime(2024, 2, 29, 4, 34, 56, 123456, tzinfo=dt.timezone.utc),
         dt.date(2024, 2, 29), True, "hello", b"\xde\xad\xbe\xef")).fetchall()
    expect_equal(row, [(5,), (6,)], "rows inserted with parameters above")

with checks.check("array parameter: = ANY(%s) with a list"):
    rows = conn.execute(f"SELECT id FROM {S}.typed WHERE c_text = ANY(%s) ORDER BY id",
                        (["hello", "x"],)).fetchall()
    expect_equal(rows, [(1,), (4,), (5,), (6,)], "rows")

with checks.check("prepared statement reused (prepare=True)"):
    for n in (1, 3, 4):
        got = conn.execute(f"SELECT id, c_int FROM {S}.typed WHERE id = %s", (n,),
                           prepare=True).fetchone()
        expect_equal(got[0], n, "id")
    got = conn.execute("SELECT %s::bigint + 1, %s::text || '!', %s::double precision * 2",
                       (41, "hi", 1.25), prepare=True).fetchone()
    expect_equal(got, (42, "hi!", 2.5), "typed parameters")

with checks.check("interval and now()-like expressions, binary results"):
    cur = conn.cursor(binary=True)
    iv, now, today, yesterday = cur.execute(
        "SELECT interval '1 day 2 hours', now(), current_date, now() - interval '1 day'").fetchone()
    expect_equal(iv, dt.timedelta(days=1, hours=2), "interval")
    expect(isinstance(now, dt.datetime) and now.tzinfo is not None, f"now() = {now!r}")
    expect(abs(now - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5), f"now() {now}")
    expect(type(today) is dt.date, f"current_date {today!r}")
    expect_equal(now - yesterday, dt.timedelta(days=1), "now() - (now() - 1 day)")

with checks.check("COPY FROM STDIN (text format, rows written by psycopg)"):
    conn.execute(f"CREATE TABLE {S}.copied (id bigint, name text, tags text[], amount numeric(10,2), "
                 "at timestamptz)")
    with conn.cursor().copy(f"COPY {S}.copied (id, name, tags, amount, at) FROM STDIN") as copy:
        copy.write_row((1, "tab\there", ["p", "q r"], Decimal("1.50"),
                        dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.timezone.utc)))
        copy.write_row((2, None, [], None, None))
    expect_equal(conn.execute(f"SELECT count(*) FROM {S}.copied").fetchone()[0], 2, "rows copied")

with checks.check("COPY FROM STDIN (raw text data with {p,\"q r\"} and \\N)"):
    with conn.cursor().copy(f"COPY {S}.copied FROM STDIN") as copy:
        copy.write('3\tthree\t{p,"q r"}\t3.25\t2024-05-03 00:00:00+00\n4\t\\N\t\\N\t\\N\t\\N\n')
    got = conn.execute(f"SELECT tags, amount FROM {S}.copied WHERE id = 3").fetchone()
    expect_equal(got, (["p", "q r"], Decimal("3.25")), "row 3")

with checks.check("COPY FROM STDIN (CSV with header)"):
    with conn.cursor().copy(f"COPY {S}.copied FROM STDIN WITH (FORMAT csv, HEADER)") as copy:
        copy.write('id,name,tags,amount,at\n5,"five, 5","{a,b}",5.00,2024-05-05 00:00:00+00\n')
    expect_equal(conn.execute(f"SELECT name, tags FROM {S}.copied WHERE id = 5").fetchone(),
                 ("five, 5", ["a", "b"]), "row 5")

with checks.check("COPY TO STDOUT read as typed rows"):
    with conn.cursor().copy(f"COPY (SELECT id, name, tags, amount FROM {S}.copied ORDER BY id) "
                            "TO STDOUT") as copy:
        copy.set_types(["int8", "text", "text[]", "numeric"])
        rows = list(copy.rows())
    expect_equal(rows, [(1, "tab\there", ["p", "q r"], Decimal("1.50")), (2, None, [], None),
                        (3, "three", ["p", "q r"], Decimal("3.25")), (4, None, None, None),
                        (5, "five, 5", ["a", "b"], Decimal("5.00"))], "rows")

with checks.check("COPY TO STDOUT raw text and CSV"):
    with conn.cursor().copy(f"COPY (SELECT id, name, tags FROM {S}.copied WHERE id <= 2 "
                            "ORDER BY id) TO STDOUT") as copy:
        data = b"".join(bytes(b) for b in copy)
    expect_equal(data, b'1\ttab\\there\t{p,"q r"}\n2\t\\N\t{}\n', "text format")
    with conn.cursor().copy(f"COPY {S}.copied (id, name) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
        lines = sorted(b"".join(bytes(b) for b in copy).decode().splitlines())
    expect_equal(lines, ['1,tab\there', '2,', '3,three', '4,', '5,"five, 5"', 'id,name'], "CSV")

with checks.check("COPY of the typed table round trip (text format)"):
    with conn.cursor().copy(f"COPY (SELECT * FROM {S}.typed WHERE id <= 4 ORDER BY id) "
                            "TO STDOUT") as copy:
        dump = b"".join(bytes(b) for b in copy)
    conn.execute(f"CREATE TABLE {S}.typed2 AS SELECT * FROM {S}.typed WHERE false")
    with conn.cursor().copy(f"COPY {S}.typed2 FROM STDIN") as copy:
        copy.write(dump)
    cur = conn.cursor(binary=True)
    typed.check_rows(cur.execute(f"SELECT * FROM {S}.typed2 ORDER BY id").fetchall(), "copied back")

with checks.check("an error carries its SQLSTATE and the session goes on"):
    try:
        conn.execute("SELECT 1/0")
    except psycopg.Error as e:
        expect_equal(e.sqlstate, "22012", "SQLSTATE")
    else:
        raise AssertionError("no error")
    expect_equal(conn.execute("SELECT 2").fetchone()[0], 2, "after the error")

conn.close()
checks.finish()
