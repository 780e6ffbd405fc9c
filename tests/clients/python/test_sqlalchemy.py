"""psycopg2 + SQLAlchemy 2 + pandas: what Superset and notebooks do when they add a database
and explore it - connect, the whole inspector, Table reflection, pandas.read_sql with bound
parameters - and psycopg2's own typed reads and parameters."""

import datetime as dt
import warnings
from decimal import Decimal

import pandas as pd
import psycopg2
import sqlalchemy as sa
from sqlalchemy import inspect, text

import typed
from harness import ON_USERQL, Checks, expect, expect_equal, libpq_params

warnings.simplefilter("ignore")  # pandas' "only SQLAlchemy connectables" note is noise here

P = libpq_params()
URL = f"postgresql+psycopg2://{P['user']}@{P['host']}:{P['port']}/{P['dbname']}"
S = "clients_sqla"  # this test's own schema, made anew each run
checks = Checks("sqlalchemy")

engine = sa.create_engine(URL)


def pg_type(t):
    """A reflected type as PostgreSQL DDL, e.g. 'TIMESTAMP WITH TIME ZONE', 'NUMERIC(10, 2)'."""
    return t.compile(dialect=engine.dialect)


with checks.check("connect (dialect initialisation: version, current_schema, isolation level)"):
    with engine.connect() as conn:
        expect_equal(conn.execute(text("SELECT 1")).scalar(), 1, "SELECT 1")
        expect(engine.dialect.server_version_info >= (9, 0), "server_version_info")
        expect_equal(engine.dialect.default_schema_name, "public", "default schema")


def run_sql(*statements):
    with engine.begin() as conn:
        for stmt in statements:
            conn.execute(text(stmt))


with checks.check("create a schema and a table with a primary key and a unique column"):
    run_sql(f"DROP SCHEMA IF EXISTS {S} CASCADE", f"CREATE SCHEMA {S}",
            f"CREATE TABLE {S}.customers (id bigint NOT NULL PRIMARY KEY, name text NOT NULL, "
            "email text UNIQUE, created_at timestamp)",
            f"INSERT INTO {S}.customers VALUES (1, 'Ann', 'ann@example.com', "
            "'2024-01-02 03:04:05'), (2, 'Bob', NULL, NULL)")

ORDERS_COLUMNS = "id bigint NOT NULL PRIMARY KEY, customer_id bigint{fk}, amount numeric(10,2), " \
                 "ordered_at timestamptz"
with checks.check("create a table with a foreign key (REFERENCES)"):
    try:
        run_sql(f"CREATE TABLE {S}.orders ({ORDERS_COLUMNS.format(fk=f' REFERENCES {S}.customers (id)')})")
    except Exception:
        # still fails this check; the table without the clause lets the later checks run
        run_sql(f"CREATE TABLE IF NOT EXISTS {S}.orders ({ORDERS_COLUMNS.format(fk='')})")
        raise

with checks.check("insert rows, create a view"):
    run_sql(f"INSERT INTO {S}.orders VALUES (10, 1, 99.50, '2024-03-01 10:00:00+00'), "
            "(11, 1, 250.00, '2024-03-02 11:00:00+00'), (12, 2, 12.25, NULL)",
            f"CREATE VIEW {S}.big_orders AS SELECT id, customer_id, amount FROM {S}.orders "
            "WHERE amount > 100")

with checks.check("CREATE INDEX"):
    with engine.begin() as conn:
        conn.execute(text(f"CREATE INDEX orders_customer_idx ON {S}.orders (customer_id)"))

insp = inspect(engine)

with checks.check("inspector.get_schema_names"):
    names = insp.get_schema_names()
    for want in ["public", "channels", S]:
        expect(want in names, f"{want!r} not in {names}")

with checks.check("inspector.get_table_names"):
    expect_equal(sorted(insp.get_table_names(schema=S)), ["customers", "orders"], "tables")
    channels = insp.get_table_names(schema="channels")
    expect({"tmall", "pos"} <= set(channels), f"channels tables: {channels}")

with checks.check("inspector.get_view_names"):
    expect_equal(insp.get_view_names(schema=S), ["big_orders"], "views")
    public = insp.get_view_names(schema="public")
    expect({"orders", "customer_orders", "identities", "events"} <= set(public),
           f"public views: {public}")

with checks.check("inspector.get_columns (types, nullability)"):
    cols = insp.get_columns("orders", schema=S)
    got = [(c["name"], pg_type(c["type"]), c["nullable"]) for c in cols]
    expect_equal(got, [("id", "BIGINT", False), ("customer_id", "BIGINT", True),
                       ("amount", "NUMERIC(10, 2)", True),
                       ("ordered_at", "TIMESTAMP WITH TIME ZONE", True)], "orders columns")
    cols = insp.get_columns("customers", schema=S)
    expect_equal([(c["name"], c["nullable"]) for c in cols],
                 [("id", False), ("name", False), ("email", True), ("created_at", True)],
                 "customers nullability")

with checks.check("inspector.get_columns on the demo view orders"):
    got = [(c["name"], pg_type(c["type"])) for c in insp.get_columns("orders", schema="public")]
    expect_equal(got, [("channel", "TEXT"), ("record_id", "TEXT"),
                       ("order_ts", "TIMESTAMP WITHOUT TIME ZONE"),
                       ("amount", "DOUBLE PRECISION")], "public.orders columns")

# userql keeps no keys or indexes (README, "Tables you write"): the inspector's queries must
# still run and answer "none"; PostgreSQL answers with what was declared.
with checks.check("inspector.get_pk_constraint"):
    pk = insp.get_pk_constraint("customers", schema=S)
    expect_equal(pk["constrained_columns"], [] if ON_USERQL else ["id"], "primary key columns")

with checks.check("inspector.get_foreign_keys"):
    fks = insp.get_foreign_keys("orders", schema=S)
    want = [] if ON_USERQL else [(["customer_id"], S, "customers", ["id"])]
    expect_equal([(f["constrained_columns"], f["referred_schema"], f["referred_table"],
                   f["referred_columns"]) for f in fks], want, "foreign keys")

with checks.check("inspector.get_indexes"):
    idx = insp.get_indexes("orders", schema=S)
    want = [] if ON_USERQL else [("orders_customer_idx", ["customer_id"], False)]
    expect_equal([(i["name"], i["column_names"], i["unique"]) for i in idx], want, "indexes")

with checks.check("inspector.get_unique_constraints"):
    uq = insp.get_unique_constraints("customers", schema=S)
    want = [] if ON_USERQL else [["email"]]
    expect_equal([u["column_names"] for u in uq], want, "unique constraints")

with checks.check("inspector.get_table_comment / get_check_constraints"):
    expect_equal(insp.get_table_comment("orders", schema=S)["text"], None, "comment")
    expect_equal(insp.get_check_constraints("orders", schema=S), [], "check constraints")

with checks.check("inspector.has_table"):
    expect(insp.has_table("orders", schema=S), "has_table(orders)")
    expect(insp.has_table("big_orders", schema=S), "has_table(big_orders) (a view)")
    expect(not insp.has_table("no_such_table", schema=S), "has_table(no_such_table)")

with checks.check("Table(..., autoload_with=engine) and a Core select with a bound parameter"):
    md = sa.MetaData()
    orders = sa.Table("orders", md, schema=S, autoload_with=engine)
    expect_equal([c.name for c in orders.columns], ["id", "customer_id", "amount", "ordered_at"],
                 "reflected columns")
    expect_equal(pg_type(orders.c.amount.type), "NUMERIC(10, 2)", "amount type")
    expect_equal([c.name for c in orders.primary_key], [] if ON_USERQL else ["id"], "reflected pk")
    with engine.connect() as conn:
        rows = conn.execute(sa.select(orders.c.id, orders.c.amount)
                            .where(orders.c.amount > Decimal("50")).order_by(orders.c.id)).all()
    expect_equal([tuple(r) for r in rows], [(10, Decimal("99.50")), (11, Decimal("250.00"))],
                 "rows")

with checks.check("Table reflection of a demo view (customer_orders)"):
    co = sa.Table("customer_orders", sa.MetaData(), schema="public", autoload_with=engine)
    expect_equal([c.name for c in co.columns],
                 ["customer_id", "channel", "record_id", "order_ts", "amount"], "columns")

with checks.check("pandas.read_sql with bound parameters (text() and pyformat)"):
    with engine.connect() as conn:
        df = pd.read_sql(text("SELECT channel, count(*) AS n, sum(amount) AS revenue FROM orders "
                              "WHERE amount > :min_amount GROUP BY channel ORDER BY channel"),
                         conn, params={"min_amount": 0})
    expect(len(df) > 0, "no channels")
    expect_equal(str(df["n"].dtype), "int64", "count(*) dtype")
    expect_equal(str(df["revenue"].dtype), "float64", "sum(amount) dtype")
    df2 = pd.read_sql(f"SELECT id, amount, ordered_at FROM {S}.orders "
                      "WHERE customer_id = %(c)s ORDER BY id", engine, params={"c": 1})
    expect_equal(df2["id"].tolist(), [10, 11], "ids")
    expect(isinstance(df2["ordered_at"].dtype, pd.DatetimeTZDtype),
           f"ordered_at dtype {df2['ordered_at'].dtype}")

with checks.check("pandas.read_sql of a demo view (datetime and float columns)"):
    df = pd.read_sql(text("SELECT * FROM customer_orders WHERE amount > :a LIMIT 50"), engine,
                     params={"a": 1.5})
    expect(len(df) > 0, "no rows")
    expect(pd.api.types.is_datetime64_any_dtype(df["order_ts"]), f"order_ts {df['order_ts'].dtype}")
    expect_equal(str(df["amount"].dtype), "float64", "amount dtype")
    expect_equal(str(df["customer_id"].dtype), "int64", "customer_id dtype")

# psycopg2 on its own: every stored type, text format (psycopg2 has no binary results).
T = "clients_psycopg2"
conn = psycopg2.connect(**P)
conn.autocommit = True

with checks.check("psycopg2: create the typed table"):
    with conn.cursor() as cur:
        for stmt in typed.create_sql(T):
            cur.execute(stmt)
for row_id in typed.INSERTS:
    with checks.check(f"psycopg2: insert typed row {row_id}"):
        with conn.cursor() as cur:
            cur.execute(typed.insert_sql(T, row_id))

with checks.check("psycopg2: insert a row with client-side parameters"):
    values = (5,) + typed.EXPECTED[1][1:]
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {T}.typed VALUES ({', '.join(['%s'] * len(values))})", values)
        cur.execute(f"SELECT * FROM {T}.typed WHERE id = %s", (5,))
        got = cur.fetchone()
    expect(got is not None, "row 5 not found")
    diffs = typed.row_differences(1, (1,) + tuple(got[1:]))
    expect(not diffs, "; ".join(diffs))

with checks.check("psycopg2: typed rows read back as PostgreSQL's Python types"):
    with conn.cursor() as cur:
        cur.execute(typed.select_sql(T) + " LIMIT 4")
        expect_equal([d.type_code for d in cur.description], typed.OIDS, "column type OIDs")
        typed.check_rows(cur.fetchall(), "typed")

with checks.check("inspector.get_columns of every stored type"):
    got = [(c["name"], pg_type(c["type"])) for c in inspect(engine).get_columns("typed", schema=T)]
    expect_equal(got, list(zip(typed.NAMES, [
        "INTEGER", "INTEGER", "BIGINT", "SMALLINT", "DOUBLE PRECISION", "REAL", "NUMERIC(12, 2)",
        "TEXT", "BOOLEAN", "DATE", "TIMESTAMP WITHOUT TIME ZONE", "TIMESTAMP WITH TIME ZONE",
        "BYTEA", "TEXT[]", "BIGINT[]"])), "typed columns")

with checks.check("psycopg2: interval and now()-like expressions"):
    with conn.cursor() as cur:
        cur.execute("SELECT interval '1 day 2 hours', now(), current_date, "
                    "now() - interval '1 day', current_timestamp")
        iv, now, today, yesterday, ts = cur.fetchone()
    expect_equal(iv, dt.timedelta(days=1, hours=2), "interval")
    expect(isinstance(now, dt.datetime) and now.tzinfo is not None, f"now() = {now!r}")
    expect(abs(now - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5), f"now() {now}")
    expect(isinstance(today, dt.date) and not isinstance(today, dt.datetime), f"date {today!r}")
    expect_equal(now - yesterday, dt.timedelta(days=1), "now() - (now() - 1 day)")
    expect(isinstance(ts, dt.datetime) and ts.tzinfo is not None, f"current_timestamp {ts!r}")

with checks.check("psycopg2: an error carries its SQLSTATE and the session goes on"):
    with conn.cursor() as cur:
        try:
            cur.execute("SELECT * FROM no_such_table_here")
        except psycopg2.Error as e:
            expect_equal(e.pgcode, "42P01", "SQLSTATE")
        else:
            raise AssertionError("no error")
        cur.execute("SELECT 2")
        expect_equal(cur.fetchone()[0], 2, "after the error")

conn.close()
checks.finish()
