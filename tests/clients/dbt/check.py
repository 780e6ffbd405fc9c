"""What the dbt runs must have left in clients_dbt (run with dbt's own psycopg2)."""

import os
import sys
from decimal import Decimal

import psycopg2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from harness import Checks, expect, expect_equal, libpq_params  # noqa: E402

checks = Checks("dbt-results")
conn = psycopg2.connect(**libpq_params())
conn.autocommit = True


def rows(sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


with checks.check("relations: views, tables, no __dbt_tmp / __dbt_backup left over"):
    got = rows("SELECT table_name, table_type FROM information_schema.tables "
               "WHERE table_schema = 'clients_dbt' ORDER BY table_name")
    expect_equal(got, [("channel_revenue", "BASE TABLE"), ("customer_oneid", "BASE TABLE"),
                       ("customer_totals", "BASE TABLE"), ("customers_seed", "BASE TABLE"),
                       ("orders_incremental", "BASE TABLE"), ("orders_seed", "BASE TABLE"),
                       ("stg_orders", "VIEW")], "relations")

with checks.check("seed column types"):
    got = rows("SELECT column_name, data_type FROM information_schema.columns "
               "WHERE table_schema = 'clients_dbt' AND table_name = 'orders_seed' "
               "ORDER BY ordinal_position")
    expect_equal(got, [("order_id", "integer"), ("customer_id", "integer"),
                       ("ordered_at", "timestamp without time zone"), ("amount", "numeric"),
                       ("status", "text")], "orders_seed columns")

with checks.check("the table model (after the second run's swap)"):
    expect_equal(rows("SELECT customer_id, name, orders, revenue FROM clients_dbt.customer_totals "
                      "ORDER BY customer_id"),
                 [(1, "Ann", 2, Decimal("349.50")), (2, "Bob", 0, Decimal("0")),
                  (3, "Chen Li", 2, Decimal("95.75"))], "customer_totals")

with checks.check("the incremental model merged orders 3..5 once each"):
    expect_equal(rows("SELECT order_id, amount FROM clients_dbt.orders_incremental ORDER BY 1"),
                 [(1, Decimal("99.50")), (2, Decimal("250.00")), (3, Decimal("12.25")),
                  (4, Decimal("80.00")), (5, Decimal("15.75"))], "orders_incremental")

with checks.check("the OneID model has one row per identity record"):
    built = rows("SELECT count(*), count(DISTINCT record_id) FROM clients_dbt.customer_oneid")[0]
    want = rows("SELECT count(DISTINCT record_id) FROM identities")[0][0]
    expect(built[0] > 0, "empty")
    expect_equal(built, (want, want), "(rows, distinct record_id)")

with checks.check("the source-based model"):
    expect_equal(rows("SELECT sum(orders) FROM clients_dbt.channel_revenue")[0][0],
                 rows("SELECT count(*) FROM orders")[0][0], "orders counted")

checks.finish()
