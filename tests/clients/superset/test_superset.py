"""Apache Superset 6.1, headless, as an analyst sets it up through its REST API: add the
database, test the connection, browse schemas and tables, create datasets on the views
`orders` and `customer_orders`, run a SQL Lab query, and load charts' data.

Superset keeps its own metadata in SQLite; the initialised metadata database (`superset db
upgrade`, `fab create-admin`, `init`) is kept in the clients cache per Superset version, since
building it takes about a minute and involves no userql.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import version

import requests

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from harness import Checks, expect, expect_equal, libpq_params  # noqa: E402

checks = Checks("superset")
P = libpq_params()
URI = f"postgresql+psycopg2://{P['user']}@{P['host']}:{P['port']}/{P['dbname']}"
HOME = os.path.join(os.environ.get("CLIENTS_TMP", "/tmp"), "superset-home")
CACHE = os.path.join(os.environ.get("CLIENTS_CACHE", os.path.expanduser("~/.cache")),
                     "superset-metadata")
BIN = os.path.join(os.path.dirname(sys.executable), "superset")
os.makedirs(HOME, exist_ok=True)
with open(os.path.join(HOME, "superset_config.py"), "w") as f:
    f.write(f'SECRET_KEY = "{secrets.token_hex(24)}"\n'
            f'SQLALCHEMY_DATABASE_URI = "sqlite:///{HOME}/superset.db"\n'
            "TALISMAN_ENABLED = False\n")
ENV = dict(os.environ, SUPERSET_HOME=HOME, FLASK_APP="superset",
           SUPERSET_CONFIG_PATH=os.path.join(HOME, "superset_config.py"))
server = None


def stop(*_):
    if server and server.poll() is None:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    sys.exit(1)


signal.signal(signal.SIGTERM, stop)


def superset(*args):
    r = subprocess.run([BIN, *args], env=ENV, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise AssertionError(f"superset {' '.join(args)} exit {r.returncode}: {r.stderr[-2000:]}")


with checks.check("metadata: superset db upgrade, fab create-admin, init"):
    template = os.path.join(CACHE, f"superset-{version('apache-superset')}.db")
    if not os.path.exists(template):
        superset("db", "upgrade")
        superset("fab", "create-admin", "--username", "admin", "--firstname", "Ada",
                 "--lastname", "Admin", "--email", "admin@example.com", "--password", "admin")
        superset("init")
        os.makedirs(CACHE, exist_ok=True)
        shutil.copy(os.path.join(HOME, "superset.db"), template + ".tmp")
        os.replace(template + ".tmp", template)
    else:
        shutil.copy(template, os.path.join(HOME, "superset.db"))

s = socket.socket()
s.bind(("127.0.0.1", 0))
PORT = s.getsockname()[1]
s.close()
BASE = f"http://127.0.0.1:{PORT}"
api = requests.Session()
log = open(os.path.join(HOME, "superset.log"), "w")
server = subprocess.Popen([BIN, "run", "-h", "127.0.0.1", "-p", str(PORT), "--with-threads"],
                          env=ENV, stdout=log, stderr=subprocess.STDOUT)


def call(method, path, expect_status=200, **kw):
    r = api.request(method, BASE + path, timeout=300, **kw)
    if r.status_code != expect_status:
        raise AssertionError(f"{method} {path} -> HTTP {r.status_code}: {r.text[:3000]}")
    return r.json()


try:
    with checks.check("the Flask app starts"):
        deadline = time.time() + 180
        while True:
            try:
                if requests.get(BASE + "/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.time() > deadline:
                log.flush()
                raise AssertionError("superset run did not come up: "
                                     + open(log.name).read()[-3000:])
            time.sleep(1)

    with checks.check("login (/api/v1/security/login) and CSRF token"):
        token = call("POST", "/api/v1/security/login", json={
            "username": "admin", "password": "admin", "provider": "db", "refresh": True,
        })["access_token"]
        api.headers["Authorization"] = f"Bearer {token}"
        api.headers["X-CSRFToken"] = call("GET", "/api/v1/security/csrf_token/")["result"]
        api.headers["Referer"] = BASE

    with checks.check("test the connection"):
        res = call("POST", "/api/v1/database/test_connection/", json={
            "database_name": "userql", "sqlalchemy_uri": URI, "impersonate_user": False})
        expect_equal(res.get("message"), "OK", "test_connection")

    db_id = None
    with checks.check("add userql as a database"):
        db_id = call("POST", "/api/v1/database/", 201, json={
            "database_name": "userql", "sqlalchemy_uri": URI, "expose_in_sqllab": True,
            "allow_run_async": False})["id"]

    with checks.check("browse schemas"):
        schemas = call("GET", f"/api/v1/database/{db_id}/schemas/?q=(force:!t)")["result"]
        expect({"public", "channels"} <= set(schemas), f"schemas {schemas}")

    with checks.check("browse tables and views of a schema"):
        res = call("GET", f"/api/v1/database/{db_id}/tables/?q=(schema_name:public,force:!t)")
        found = {t["value"]: t["type"] for t in res["result"]}
        for v in ["orders", "customer_orders", "identities"]:
            expect_equal(found.get(v), "view", f"public.{v}")
        res = call("GET", f"/api/v1/database/{db_id}/tables/?q=(schema_name:channels,force:!t)")
        found = {t["value"]: t["type"] for t in res["result"]}
        expect_equal(found.get("tmall"), "table", "channels.tmall")

    with checks.check("table metadata and SELECT * preview of a view"):
        meta = call("GET", f"/api/v1/database/{db_id}/table_metadata/?name=orders&schema=public")
        cols = {c["name"]: c["type"] for c in meta["columns"]}
        expect_equal(cols, {"channel": "TEXT", "record_id": "TEXT", "order_ts": "TIMESTAMP",
                            "amount": "DOUBLE_PRECISION"}, "columns")
        sql = call("GET", f"/api/v1/database/{db_id}/select_star/orders/public/")["result"]
        expect("orders" in sql.lower(), sql)

    datasets = {}

    def dataset(view):
        expect(view in datasets, f"no dataset on {view} (its creation failed above)")
        return datasets[view]

    for view in ["orders", "customer_orders"]:
        with checks.check(f"create a dataset on public.{view}"):
            ds = call("POST", "/api/v1/dataset/", 201, json={
                "database": db_id, "schema": "public", "table_name": view})["id"]
            datasets[view] = ds
            res = call("GET", f"/api/v1/dataset/{ds}")["result"]
            cols = {c["column_name"]: (c["type"], c["is_dttm"]) for c in res["columns"]}
            expect_equal(cols.get("order_ts"), ("TIMESTAMP WITHOUT TIME ZONE", True), "order_ts")
            expect_equal(cols.get("amount"), ("DOUBLE PRECISION", False), "amount")
            expect("count" in [m["metric_name"] for m in res["metrics"]], "no count metric")

    with checks.check("sync a dataset's columns from the source (refresh)"):
        call("PUT", f"/api/v1/dataset/{dataset('orders')}/refresh")

    total = None
    with checks.check("SQL Lab query (/api/v1/sqllab/execute/)"):
        res = call("POST", "/api/v1/sqllab/execute/", json={
            "database_id": db_id, "schema": "public", "runAsync": False, "queryLimit": 1000,
            "client_id": secrets.token_hex(5), "sql_editor_id": "1", "tab": "clients",
            "sql": "SELECT channel, count(*) AS n, round(sum(amount)) AS revenue\n"
                   "FROM orders GROUP BY channel ORDER BY channel"})
        expect_equal(res.get("status"), "success", "status")
        expect_equal([c["column_name"] for c in res["columns"]], ["channel", "n", "revenue"],
                     "columns")
        expect(len(res["data"]) > 0, "no rows")
        total = sum(r["n"] for r in res["data"])

    def chart_data(ds, query):
        return call("POST", "/api/v1/chart/data", json={
            "datasource": {"id": ds, "type": "table"}, "force": True,
            "queries": [query], "result_format": "json", "result_type": "full"})["result"][0]

    with checks.check("chart data: metrics grouped by a column (/api/v1/chart/data)"):
        res = chart_data(dataset("orders"), {
            "columns": ["channel"], "row_limit": 100, "filters": [], "extras": {},
            "metrics": ["count", {"expressionType": "SIMPLE", "column": {"column_name": "amount"},
                                  "aggregate": "SUM", "label": "revenue"}],
            "orderby": [["revenue", False]]})
        expect(res["rowcount"] > 0, "no rows")
        expect(all(r["revenue"] is not None for r in res["data"]), res["data"])
        if total is not None:
            expect_equal(sum(r["count"] for r in res["data"]), total, "count over channels")

    with checks.check("chart data: monthly time series with a time range filter"):
        res = chart_data(dataset("customer_orders"), {
            "columns": [{"timeGrain": "P1M", "columnType": "BASE_AXIS", "sqlExpression": "order_ts",
                         "label": "order_ts", "expressionType": "SQL"}],
            "metrics": ["count"], "orderby": [["count", False]], "row_limit": 1000, "extras": {},
            "filters": [{"col": "order_ts", "op": "TEMPORAL_RANGE",
                         "val": "2000-01-01T00:00:00 : 2100-01-01T00:00:00"}]})
        expect(res["rowcount"] > 0, "no rows")
        expect(all(isinstance(r["order_ts"], (int, float)) for r in res["data"]),
               f"order_ts values {res['data'][:3]}")

    with checks.check("a saved chart's data (/api/v1/chart/<id>/data/)"):
        ds = dataset("customer_orders")
        query = {"columns": ["channel"], "metrics": ["count"], "row_limit": 10, "filters": [],
                 "extras": {"where": "amount > 0"}, "orderby": [["count", False]]}
        chart = call("POST", "/api/v1/chart/", 201, json={
            "slice_name": "Customers' orders by channel", "viz_type": "table",
            "datasource_id": ds, "datasource_type": "table",
            "params": json.dumps({"groupby": ["channel"], "metrics": ["count"]}),
            "query_context": json.dumps({
                "datasource": {"id": ds, "type": "table"},
                "queries": [query], "result_format": "json", "result_type": "full"})})["id"]
        res = call("GET", f"/api/v1/chart/{chart}/data/?force=true")["result"][0]
        expect(res["rowcount"] > 0, "no rows")
finally:
    server.terminate()
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        server.kill()

if checks.failed:
    log.flush()
    print("-- superset's log (last 60 lines):")
    print("\n".join(open(log.name).read().splitlines()[-60:]))
checks.finish()
