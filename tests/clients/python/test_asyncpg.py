"""asyncpg: prepared statements, binary codecs for every stored type, type introspection of
array and numeric results, parameters of each type."""

import asyncio
import datetime as dt
from decimal import Decimal

import asyncpg

import typed
from harness import Checks, expect, expect_equal, libpq_params

S = "clients_asyncpg"
checks = Checks("asyncpg")


async def main():
    p = libpq_params()
    conn = await asyncpg.connect(host=p["host"], port=p["port"], user=p["user"],
                                 database=p["dbname"], ssl=False)

    with checks.check("create the typed table"):
        for stmt in typed.create_sql(S):
            await conn.execute(stmt)
    for row_id in typed.INSERTS:
        with checks.check(f"insert typed row {row_id}"):
            await conn.execute(typed.insert_sql(S, row_id))

    with checks.check("binary results: every type as PostgreSQL's Python type"):
        rows = await conn.fetch(typed.select_sql(S))
        typed.check_rows([tuple(r.values()) for r in rows], "binary format")

    with checks.check("prepared statement: result types (introspection) and reuse"):
        stmt = await conn.prepare(typed.select_sql(S))
        attrs = [(a.name, a.type.name) for a in stmt.get_attributes()]
        expect_equal(attrs, list(zip(typed.NAMES, [
            "int4", "int4", "int8", "int2", "float8", "float4", "numeric", "text", "bool",
            "date", "timestamp", "timestamptz", "bytea", "text[]", "int8[]"])), "attributes")
        for _ in range(3):
            typed.check_rows([tuple(r.values()) for r in await stmt.fetch()], "prepared fetch")

    with checks.check("prepared statement with parameters of every type (binary)"):
        names = ", ".join(typed.NAMES)
        params = ", ".join(f"${i + 1}" for i in range(len(typed.NAMES)))
        ins = await conn.prepare(f"INSERT INTO {S}.typed ({names}) VALUES ({params})")
        await ins.fetch(5, *typed.EXPECTED[1][1:])
        await ins.fetch(6, *typed.EXPECTED[3][1:])
        expect_equal([t.name for t in ins.get_parameters()], [
            "int4", "int4", "int8", "int2", "float8", "float4", "numeric", "text", "bool",
            "date", "timestamp", "timestamptz", "bytea", "text[]", "int8[]"], "parameter types")
        got = await conn.fetchrow(f"SELECT * FROM {S}.typed WHERE id = $1", 5)
        diffs = typed.row_differences(1, (1,) + tuple(got.values())[1:])
        got = await conn.fetchrow(f"SELECT * FROM {S}.typed WHERE id = $1", 6)
        diffs += typed.row_differences(3, (3,) + tuple(got.values())[1:])
        expect(not diffs, "; ".join(diffs))

    with checks.check("parameterised fetch: bigint + timestamptz parameters"):
        rows = await conn.fetch(
            f"SELECT id, c_text, c_tstz, c_numeric, c_text_arr FROM {S}.typed "
            "WHERE c_bigint = $1 AND c_tstz < $2 AND id <= 4 ORDER BY id",
            9007199254740993, dt.datetime.now(dt.timezone.utc))
        expect_equal([tuple(r) for r in rows], [
            (1, "hello", dt.datetime(2024, 2, 29, 4, 34, 56, 123456, tzinfo=dt.timezone.utc),
             Decimal("12345.67"), ["p", "q r"])], "rows")

    with checks.check("array results and parameters: int4[], int8[], text[]"):
        stmt = await conn.prepare("SELECT ARRAY[1, 2, NULL]::int4[] AS a4, "
                                  "ARRAY[9007199254740993, -1]::int8[] AS a8, "
                                  "ARRAY['x', 'y z', NULL]::text[] AS at, $1::int8[] AS p8, "
                                  "$2::text[] AS pt")
        expect_equal([(a.name, a.type.name) for a in stmt.get_attributes()],
                     [("a4", "int4[]"), ("a8", "int8[]"), ("at", "text[]"), ("p8", "int8[]"),
                      ("pt", "text[]")], "array result types")
        row = await stmt.fetchrow([3, None, 4], ["a", "b c"])
        expect_equal(tuple(row), ([1, 2, None], [9007199254740993, -1], ["x", "y z", None],
                                  [3, None, 4], ["a", "b c"]), "array values")

    with checks.check("= ANY($1) with an array parameter"):
        rows = await conn.fetch(f"SELECT id FROM {S}.typed WHERE c_text = ANY($1::text[]) "
                                "AND id <= 4 ORDER BY id", ["hello", "x"])
        expect_equal([r["id"] for r in rows], [1, 4], "ids")

    with checks.check("numeric results: types and exact values"):
        stmt = await conn.prepare("SELECT 1.5::numeric(10,2) AS n, sum(c_numeric) AS s, "
                                  "avg(c_int) AS a, count(*) AS c "
                                  f"FROM {S}.typed WHERE id IN (1, 4)")
        expect_equal([(a.name, a.type.name) for a in stmt.get_attributes()],
                     [("n", "numeric"), ("s", "numeric"), ("a", "numeric"), ("c", "int8")],
                     "result types")
        row = await stmt.fetchrow()
        expect_equal((row["n"], row["s"], row["c"]), (Decimal("1.50"), Decimal("12345.66"), 2),
                     "values")
        expect_equal(row["a"], Decimal("24.5"), "avg(int)")

    with checks.check("count(*), sum(numeric) with a text parameter (asyncpg's prepared path)"):
        row = await conn.fetchrow(f"SELECT count(*), sum(c_numeric) FROM {S}.typed "
                                  "WHERE c_text = $1 AND id <= 4", "hello")
        expect_equal(tuple(row), (1, Decimal("12345.67")), "row")

    with checks.check("interval and now()-like expressions"):
        row = await conn.fetchrow("SELECT interval '1 day 2 hours' AS iv, now() AS n, "
                                  "current_date AS d, now() - interval '1 day' AS y")
        expect_equal(row["iv"], dt.timedelta(days=1, hours=2), "interval")
        expect(row["n"].tzinfo is not None, f"now() {row['n']!r}")
        expect(abs(row["n"] - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5),
               f"now() {row['n']}")
        expect(type(row["d"]) is dt.date, f"current_date {row['d']!r}")
        expect_equal(row["n"] - row["y"], dt.timedelta(days=1), "now() - (now() - 1 day)")

    with checks.check("demo view through a prepared statement (userql's orders)"):
        stmt = await conn.prepare("SELECT channel, count(*) AS n, sum(amount) AS revenue "
                                  "FROM orders WHERE order_ts < $1 GROUP BY channel")
        expect_equal([a.type.name for a in stmt.get_attributes()], ["text", "int8", "float8"],
                     "types")
        rows = await stmt.fetch(dt.datetime(2100, 1, 1))
        expect(len(rows) > 0, "no rows")

    with checks.check("an error carries its SQLSTATE and the connection goes on"):
        try:
            await conn.fetch("SELECT no_such_column FROM orders")
        except asyncpg.PostgresError as e:
            expect_equal(e.sqlstate, "42703", "SQLSTATE")
        else:
            raise AssertionError("no error")
        expect_equal(await conn.fetchval("SELECT 2"), 2, "after the error")

    with checks.check("a transaction block"):
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {S}.typed (id) VALUES (7)")
        expect_equal(await conn.fetchval(f"SELECT count(*) FROM {S}.typed WHERE id = 7"), 1,
                     "committed row")

    await conn.close()


asyncio.run(main())
checks.finish()
