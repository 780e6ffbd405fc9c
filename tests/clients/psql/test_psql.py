"""psql 15 as an analyst uses it: \\l \\dn \\dt \\dv \\di \\d \\df \\df+, \\x, \\timing, \\copy
both ways, Ctrl-C on a long query. psql itself is the client under test; Python only runs it
and reads what it printed (connection settings come from the PG* environment)."""

import csv
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from harness import Checks, expect, expect_equal  # noqa: E402

S = "clients_psql"
checks = Checks("psql")
WORK = tempfile.mkdtemp(prefix="psql-", dir=os.environ.get("CLIENTS_TMP"))


def psql(*args, ok=True, timeout=120):
    """Runs psql; with ok=True a non-zero exit or an ERROR line fails the check."""
    r = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", *args], capture_output=True,
                       text=True, timeout=timeout, cwd=WORK)
    if ok and (r.returncode != 0 or "ERROR:" in r.stderr):
        raise AssertionError(f"psql {' '.join(args)!r} exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def csv_rows(*args):
    """A command's result as dicts, read from psql's own --csv output."""
    return list(csv.DictReader(io.StringIO(psql("--csv", *args))))


def table_lines(out):
    """Aligned psql output as lists of cells (header and data rows, no borders)."""
    return [[c.strip() for c in line.split("|")] for line in out.splitlines() if "|" in line]


def has_row(out, *cells):
    """True when a row of aligned output starts with these cells."""
    return any(row[:len(cells)] == list(cells) for row in table_lines(out))


with checks.check("setup: schema, table, view, rows"):
    psql("-q", "-c", f"DROP SCHEMA IF EXISTS {S} CASCADE", "-c", f"CREATE SCHEMA {S}",
         "-c", f"CREATE TABLE {S}.people (id bigint NOT NULL, name text, score numeric(10,2), "
               "tags text[], joined date)",
         "-c", f"CREATE VIEW {S}.people_v AS SELECT id, name FROM {S}.people",
         "-c", f"CREATE TABLE {S}.people_copy (id bigint NOT NULL, name text, "
               "score numeric(10,2), tags text[], joined date)")

with checks.check("\\l lists the database"):
    out = psql("-c", "\\l")
    expect(has_row(out, os.environ.get("PGDATABASE", "userql")), f"no userql row in:\n{out}")

with checks.check("\\dn lists the schemas"):
    out = psql("-c", "\\dn")
    for name in ["public", "channels", S]:
        expect(has_row(out, name), f"no {name} in:\n{out}")

with checks.check("\\dt lists tables"):
    out = psql("-c", f"\\dt {S}.*")
    expect(has_row(out, S, "people", "table") and has_row(out, S, "people_copy", "table"),
           f"\\dt {S}.*:\n{out}")
    out = psql("-c", "\\dt channels.*")
    expect(has_row(out, "channels", "tmall", "table") and has_row(out, "channels", "pos", "table"),
           f"\\dt channels.*:\n{out}")
    psql("-c", "\\dt")

with checks.check("\\dv lists views"):
    out = psql("-c", "\\dv")
    for name in ["orders", "customer_orders", "identities", "events"]:
        expect(has_row(out, "public", name, "view"), f"no public.{name} in:\n{out}")
    out = psql("-c", f"\\dv {S}.*")
    expect(has_row(out, S, "people_v", "view"), f"\\dv {S}.*:\n{out}")

with checks.check("\\di runs (no indexes to list is fine)"):
    psql("-c", "\\di")
    psql("-c", f"\\di {S}.*")

with checks.check("\\d lists relations; \\d TABLE describes columns"):
    out = psql("-c", "\\d")
    expect(has_row(out, "public", "orders", "view"), f"\\d:\n{out}")
    out = psql("-c", f"\\d {S}.people")
    expect(f'Table "{S}.people"' in out, out)
    for cells in [("id", "bigint", "", "not null"), ("name", "text"), ("score", "numeric(10,2)"),
                  ("tags", "text[]"), ("joined", "date")]:
        expect(has_row(out, *cells), f"no row {cells} in:\n{out}")

with checks.check("\\d VIEW and \\d+ VIEW (demo view orders, own view)"):
    out = psql("-c", "\\d orders")
    expect('View "public.orders"' in out, out)
    for cells in [("channel", "text"), ("record_id", "text"),
                  ("order_ts", "timestamp without time zone"), ("amount", "double precision")]:
        expect(has_row(out, *cells), f"no row {cells} in:\n{out}")
    out = psql("-c", f"\\d+ {S}.people_v")
    expect("View definition:" in out and "people" in out.split("View definition:")[1], out)

# ---- \df: every userql function the server has, with argument and result types -----------
# The SQL_API contract's functions. A function this server does not have yet is skipped
# (printed as such); once it exists it must be listed. Result: a type, or TABLE columns as
# (name, type) with None where the contract leaves the type open; signatures: argument types
# that must be callable (None: any type).
T, TS = "text", "timestamp without time zone"
FUNCTIONS = [
    ("oneid", "func", [("record_id", T), ("one_id", "bigint"), ("component_size", "bigint")],
     [[T]], "SELECT * FROM oneid('identities') LIMIT 1"),
    ("oneid_links", "func", [("record_id", T), ("linked_record_id", T), ("id_type", T),
                             ("id_value", T), ("used", "boolean"), ("reason", T)],
     [[T]], "SELECT * FROM oneid_links('identities') LIMIT 1"),
    ("normalize_phone", "func", T, [[T], [T, T]], "SELECT normalize_phone('+86 138-0013-8000')"),
    ("normalize_email", "func", T, [[T]], "SELECT normalize_email(' A@Example.com ')"),
    ("hash_id", "func", T, [[T, T]], "SELECT hash_id('phone', '13800138000')"),
    ("mask_phone", "func", T, [[T]], "SELECT mask_phone('13812345678')"),
    ("mask_email", "func", T, [[T]], "SELECT mask_email('zhangsan@example.com')"),
    ("rfm", "func", [("customer_id", None), ("first_order_ts", None), ("last_order_ts", None),
                     ("recency_days", "bigint"), ("frequency", None),
                     ("monetary", "double precision"), ("r_score", None), ("f_score", None),
                     ("m_score", None), ("rfm_cell", T), ("segment", T), ("value_class", T)],
     [[T], [T, None]], "SELECT * FROM rfm('customer_orders') LIMIT 1"),
    ("rfm_segment", "func", T, [["integer", "integer"]], "SELECT rfm_segment(5, 5)"),
    ("rfm_value_class", "func", T, [[None] * 6],
     "SELECT rfm_value_class(10, 3, 100.0, 20.0, 2.0, 50.0)"),
    ("clv_summary", "func", [(c, None) for c in
                             ["customer_id", "frequency", "recency", "t", "monetary_value"]],
     [[T], [T, None], [T, None, T]], "SELECT * FROM clv_summary('customer_orders') LIMIT 1"),
    ("bgnbd_fit", "agg", None, [[None] * 3],
     "SELECT bgnbd_fit(f, r, t) FROM (VALUES (1.0, 2.0, 3.0)) v(f, r, t)"),
    ("bgnbd_expected_purchases", "func", "double precision", [[None] * 5],
     "SELECT bgnbd_expected_purchases(NULL, 1, 1, 1, 1)"),
    ("bgnbd_p_alive", "func", "double precision", [[None] * 4],
     "SELECT bgnbd_p_alive(NULL, 1, 1, 1)"),
    ("gamma_gamma_fit", "agg", None, [[None] * 2],
     "SELECT gamma_gamma_fit(f, m) FROM (VALUES (1.0, 2.0)) v(f, m)"),
    ("gamma_gamma_expected_value", "func", "double precision", [[None] * 3],
     "SELECT gamma_gamma_expected_value(NULL, 1, 1)"),
    ("clv", "func", "double precision", [[None] * 9],
     "SELECT clv(NULL, NULL, 1, 1, 1, 1, 12, 0.01, 'day')"),
    ("ltv", "func", [(c, None) for c in
                     ["customer_id", "frequency", "recency", "t", "monetary_value", "p_alive",
                      "expected_purchases", "expected_avg_value", "clv"]],
     [[T], [T, None], [T, None, None], [T, None, None, None], [T, None, None, None, T]],
     "SELECT * FROM ltv('customer_orders') LIMIT 1"),
    ("ltv_params", "func", None, [[T], [T, None], [T, None, T]],
     "SELECT * FROM ltv_params('customer_orders')"),
    ("lifecycle_stage", "func", T, [[None] * 4],
     f"SELECT lifecycle_stage(TIMESTAMP '2024-01-01', TIMESTAMP '2024-02-01', 2, "
     f"TIMESTAMP '2024-03-01')"),
    ("lifecycle", "func", [(c, None) for c in
                           ["customer_id", "stage", "previous_stage", "reactivated"]],
     [[T], [T, None], [T, None, None]], "SELECT * FROM lifecycle('customer_orders') LIMIT 1"),
    ("lifecycle_flow", "func", [(c, None) for c in
                                ["period_start", "active", "new", "retained", "reactivated",
                                 "dormant"]],
     [[T, None, None, None]],
     "SELECT * FROM lifecycle_flow('customer_orders', '1 month', TIMESTAMP '2024-01-01', "
     "TIMESTAMP '2024-03-01') LIMIT 1"),
    ("window_funnel", "agg", "integer", [["bigint", TS, "boolean"],
                                         ["bigint", T, TS, "boolean", "boolean"]],
     "SELECT window_funnel(60, ts, true) FROM (VALUES (TIMESTAMP '2024-01-01')) v(ts)"),
    ("retention", "agg", "integer[]", [["boolean", "boolean"], ["boolean"] * 3],
     "SELECT retention(true, false)"),
]

MULTIWORD_TYPE_STARTS = {"double", "timestamp", "time", "character", "bit"}


def parse_args(text):
    """pg_get_function_arguments -> (types, required, variadic)."""
    args = [a.strip() for a in split_top(text) if a.strip()]
    types, required, variadic = [], 0, False
    for arg in args:
        has_default = " DEFAULT " in arg
        arg = arg.split(" DEFAULT ")[0].strip()
        words = arg.split()
        if words and words[0] in ("IN", "VARIADIC"):
            variadic = variadic or words[0] == "VARIADIC"
            words = words[1:]
        if len(words) > 1 and words[0] not in MULTIWORD_TYPE_STARTS:
            words = words[1:]  # drop the argument's name
        types.append(" ".join(words))
        required += 0 if has_default else 1
    return types, required, variadic


def split_top(text):
    """Splits on commas outside parentheses (numeric(10,2) stays whole)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


def covers(row_args, sig):
    types, required, variadic = parse_args(row_args)
    n = len(sig)
    if variadic:
        fixed = types[:-1]
        elem = types[-1][:-2] if types[-1].endswith("[]") else types[-1]
        if n < len(fixed):
            return False
        want = fixed + [elem] * (n - len(fixed))
    else:
        if not required <= n <= len(types):
            return False
        want = types[:n]
    return all(s is None or s == w for s, w in zip(sig, want))


def result_matches(result, expected):
    if expected is None:
        return bool(result.strip())
    if isinstance(expected, str):
        return result.strip() == expected
    m = re.fullmatch(r"TABLE\((.*)\)", result.strip(), re.S)
    if not m:
        return False
    cols = [c.strip().split(" ", 1) for c in split_top(m.group(1))]
    return len(cols) == len(expected) and all(
        len(c) == 2 and c[0] == name and (typ is None or c[1] == typ)
        for c, (name, typ) in zip(cols, expected))


def expected_result_text(expected):
    if expected is None or isinstance(expected, str):
        return repr(expected)
    return "TABLE(" + ", ".join(f"{n} {t or '?'}" for n, t in expected) + ")"


present = []
for name, kind, result, sigs, probe in FUNCTIONS:
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", probe],
                       capture_output=True, text=True, timeout=300)
    err = r.stderr.lower()
    absent = r.returncode != 0 and name in err and any(
        w in err for w in ("does not exist", "not found", "invalid function", "unknown function"))
    if absent:
        print(f"skip - \\df {name}: not in this server yet ({r.stderr.strip().splitlines()[0]})")
    else:
        present.append((name, kind, result, sigs))

with checks.check("\\df lists every function with its argument and result types"):
    rows = csv_rows("-c", "\\df")
    problems = []
    for name, kind, result, sigs in present:
        mine = [r for r in rows if r["Name"] == name]
        if not mine:
            problems.append(f"{name}: not listed")
            continue
        for r in mine:
            if r["Type"] != kind:
                problems.append(f"{name}: Type {r['Type']!r}, expected {kind!r}")
            if not result_matches(r["Result data type"], result):
                problems.append(f"{name}: Result data type {r['Result data type']!r}, expected "
                                f"{expected_result_text(result)}")
        for sig in sigs:
            if not any(covers(r["Argument data types"], sig) for r in mine):
                problems.append(f"{name}: no row accepts ({', '.join(s or '?' for s in sig)}); "
                                f"listed: {[r['Argument data types'] for r in mine]}")
    expect(present, "no function found at all")
    expect(not problems, "; ".join(problems))

with checks.check("\\df+ gives every function a one-line description"):
    rows = csv_rows("-c", "\\df+")
    problems = []
    for name, *_ in present:
        for r in [r for r in rows if r["Name"] == name] or [{"Description": None}]:
            desc = r.get("Description")
            if not desc or not desc.strip() or "\n" in desc.strip():
                problems.append(f"{name}: description {desc!r}")
    expect(not problems, "; ".join(problems))

with checks.check("\\df with a pattern (\\df oneid*, \\df+ mask_*)"):
    names = {r["Name"] for r in csv_rows("-c", "\\df oneid*")}
    expect_equal(names, {"oneid", "oneid_links"}, "\\df oneid*")
    names = {r["Name"] for r in csv_rows("-c", "\\df+ mask_*")}
    expect_equal(names, {"mask_phone", "mask_email"}, "\\df+ mask_*")

# ---- display settings -------------------------------------------------------------------
with checks.check("\\x expanded output"):
    out = psql("-c", "\\x on", "-c", "SELECT 1 AS a, 'two' AS b")
    expect("-[ RECORD 1 ]" in out and re.search(r"^a\s+\| 1$", out, re.M)
           and re.search(r"^b\s+\| two$", out, re.M), out)

with checks.check("\\timing"):
    out = psql("-c", "\\timing on", "-c", "SELECT count(*) FROM orders")
    expect(re.search(r"^Time: \d+\.\d+ ms", out, re.M), out)

# ---- \copy ------------------------------------------------------------------------------
PEOPLE_CSV = ('id,name,score,tags,joined\n'
              '1,Ann,10.50,"{vip,""new customer""}",2024-01-31\n'
              '2,"Bob, Jr.",,{},\n'
              '3,,-2.25,,2023-12-01\n')

with checks.check("\\copy FROM a CSV file with a header"):
    with open(os.path.join(WORK, "people.csv"), "w") as f:
        f.write(PEOPLE_CSV)
    out = psql("-c", f"\\copy {S}.people FROM 'people.csv' WITH (FORMAT csv, HEADER)")
    expect("COPY 3" in out, out)
    rows = csv_rows("-c", f"SELECT id, name, score, tags, joined, name IS NULL AS null_name "
                          f"FROM {S}.people ORDER BY id")
    expect_equal([tuple(r.values()) for r in rows], [
        ("1", "Ann", "10.50", '{vip,"new customer"}', "2024-01-31", "f"),
        ("2", "Bob, Jr.", "", "{}", "", "f"),
        ("3", "", "-2.25", "", "2023-12-01", "t")], "rows")

with checks.check("\\copy (query) TO a CSV file with a header"):
    psql("-c", f"\\copy (SELECT * FROM {S}.people ORDER BY id) TO 'out.csv' WITH (FORMAT csv, HEADER)")
    with open(os.path.join(WORK, "out.csv")) as f:
        expect_equal(f.read(), PEOPLE_CSV, "out.csv")

with checks.check("\\copy TABLE TO and FROM a text-format file"):
    out = psql("-c", f"\\copy {S}.people TO 'people.txt'")
    expect("COPY 3" in out, out)
    with open(os.path.join(WORK, "people.txt")) as f:
        lines = sorted(f.read().splitlines())
    expect_equal(lines, ['1\tAnn\t10.50\t{vip,"new customer"}\t2024-01-31',
                         '2\tBob, Jr.\t\\N\t{}\t\\N', '3\t\\N\t-2.25\t\\N\t2023-12-01'],
                 "people.txt")
    out = psql("-c", f"\\copy {S}.people_copy FROM 'people.txt'")
    expect("COPY 3" in out, out)
    out = psql("-At", "-c", f"SELECT count(*) FROM (SELECT * FROM {S}.people EXCEPT "
                            f"SELECT * FROM {S}.people_copy) d")
    expect_equal(out.strip(), "0", "rows differing after the round trip")

# ---- Ctrl-C -----------------------------------------------------------------------------
with checks.check("Ctrl-C (SIGINT) cancels a long query"):
    long_query = ("SELECT sum(a.x + b.x) FROM generate_series(1, 100000) AS a(x) "
                  "CROSS JOIN generate_series(1, 100000) AS b(x)")
    p = subprocess.Popen(["psql", "-X", "-v", "VERBOSITY=verbose", "-c", long_query],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=WORK)
    time.sleep(2)
    p.send_signal(signal.SIGINT)
    t0 = time.time()
    try:
        out, err = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("psql still waiting 15 s after Ctrl-C: the query was not cancelled")
    expect("57014" in err, f"no 57014 after Ctrl-C; psql printed: {out.strip()} {err.strip()}")
    expect(time.time() - t0 < 10, f"cancel took {time.time() - t0:.1f}s")
    expect_equal(psql("-At", "-c", "SELECT 'alive'").strip(), "alive", "server after the cancel")

with checks.check("errors show their SQLSTATE"):
    r = subprocess.run(["psql", "-X", "-v", "VERBOSITY=verbose", "-c", "SELECT * FROM no_such_t"],
                       capture_output=True, text=True, timeout=30)
    expect(r.returncode != 0 and "42P01" in r.stderr, r.stderr)

checks.finish()
