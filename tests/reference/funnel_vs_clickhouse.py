#!/usr/bin/env python3
"""Checks userql's `window_funnel` and `retention` against ClickHouse.

ClickHouse's `windowFunnel` and `retention` are the reference (SQL_API.md,
"Behaviour"). This developer tool runs real ClickHouse in-process through the
`chdb` package; CI does not install it.

    python3 -m venv venv && venv/bin/pip install chdb
    venv/bin/python tests/reference/funnel_vs_clickhouse.py compare [--cases-per-batch 250] [--seed 1]
    venv/bin/python tests/reference/funnel_vs_clickhouse.py slt > tests/slt/behavior.slt

`compare` generates random event streams, runs ClickHouse on them in every valid
combination of modes (and `retention`), and runs userql's core on the same
streams. userql's side is `funnel_oracle.rs`, built with cargo in a throwaway
crate beside copies of `src/functions/behavior/{funnel,retention}.rs`. The tool
prints the matches per mode and exits 1 on any mismatch. The streams have many
equal timestamps, gaps exactly at the window boundary (and one microsecond
either side), steps repeated and overlapping, rows meeting no condition, and
NULL timestamps and conditions.

`slt` prints `tests/slt/behavior.slt`. Its expected values come from running each
case's tables and queries in ClickHouse.

How the two dialects line up:
- ClickHouse's `windowFunnel` does not take DateTime64. A microsecond timestamp
  goes in as `toUInt64(toUnixTimestamp64Micro(ts))`, with the window in
  microseconds (`window_seconds * 1_000_000`). A `DateTime` goes in as it is,
  with the window in seconds. userql takes `window_seconds` and compares at the
  timestamp's full precision; the core sees nanoseconds.
- A row with a NULL timestamp or condition is skipped by both. When no row is
  usable, ClickHouse's `windowFunnel` on Nullable columns returns NULL. userql
  returns 0 (SQL_API.md: "No rows → 0"), ClickHouse's answer on non-Nullable
  columns, and this tool counts the two as agreeing.
- ClickHouse's answer depends on row order only for `strict_once` with
  `strict_deduplication`. userql orders rows with equal timestamps by their
  condition mask. For that combination, ClickHouse is given the rows in that
  order, with one thread. Every other combination gets them shuffled, with the
  default threads, so the check also covers ClickHouse's merging of partial
  states.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORE = ROOT / "src" / "functions" / "behavior"

FLAGS = ["strict_deduplication", "strict_order", "allow_reentry", "strict_increase", "strict_once"]
BASE_SECONDS = 1_704_067_200  # 2024-01-01 00:00:00 UTC
# ClickHouse takes at most 8 Nullable arguments in an aggregate: wider batches have no NULLs.
NULLABLE_MAX_CONDITIONS = 7


def valid_modes() -> list[tuple[str, ...]]:
    """Every combination of options ClickHouse accepts (allow_reentry needs strict_order)."""
    modes = []
    for bits in itertools.product([False, True], repeat=len(FLAGS)):
        mode = tuple(name for name, on in zip(FLAGS, bits) if on)
        if "allow_reentry" in mode and "strict_order" not in mode:
            continue
        modes.append(mode)
    return modes


def order_dependent(mode: tuple[str, ...]) -> bool:
    return "strict_once" in mode and "strict_deduplication" in mode


def chdb_query(sql: str) -> str:
    import chdb  # imported here so `--help` works without it

    return str(chdb.query(sql, "TSV"))


# ---- userql's side ---------------------------------------------------------------------


def build_oracle(build_dir: Path, offline: bool) -> Path:
    """Builds funnel_oracle.rs with the current core files; returns the binary."""
    src = build_dir / "src"
    src.mkdir(parents=True, exist_ok=True)
    (build_dir / "Cargo.toml").write_text(
        '[package]\nname = "funnel-oracle"\nversion = "0.0.0"\nedition = "2024"\n\n'
        '[dependencies]\nthiserror = "2"\n\n[workspace]\n'
    )
    shutil.copyfile(HERE / "funnel_oracle.rs", src / "main.rs")
    shutil.copyfile(CORE / "funnel.rs", src / "funnel.rs")
    shutil.copyfile(CORE / "retention.rs", src / "retention.rs")
    cmd = ["cargo", "build", "--quiet", "--manifest-path", str(build_dir / "Cargo.toml")]
    if offline:
        cmd.append("--offline")
    env = dict(os.environ, CARGO_TARGET_DIR=str(build_dir / "target"))
    subprocess.run(cmd, check=True, env=env)
    return build_dir / "target" / "debug" / "funnel-oracle"


def run_oracle(binary: Path, lines: list[str]) -> list[str]:
    out = subprocess.run(
        [str(binary)], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines()


# ---- random streams --------------------------------------------------------------------


@dataclass
class Row:
    ts: int | None  # seconds or microseconds since the epoch, per the batch
    conds: list[int | None]  # 0/1 per condition, None = NULL

    def usable(self) -> bool:
        """Whether window_funnel uses the row: no NULL timestamp or condition."""
        return self.ts is not None and self.conds_known()

    def conds_known(self) -> bool:
        """Whether retention uses the row (it takes no timestamp)."""
        return all(c is not None for c in self.conds)

    def mask(self) -> int:
        return sum(1 << i for i, c in enumerate(self.conds) if c)


@dataclass
class Batch:
    unit: str  # "s" (ClickHouse DateTime) or "us" (DateTime64(6))
    n: int
    window_seconds: int
    cases: list[list[Row]] = field(default_factory=list)


def random_mask(rng: random.Random, n: int) -> int:
    r = rng.random()
    if r < 0.25:
        return 0
    if r < 0.75 or n == 1:
        # Mostly early steps, so long chains are common.
        return 1 << min(int(rng.expovariate(0.6)), n - 1)
    width = min(n, 6)
    return rng.getrandbits(width) if n <= 6 else sum(1 << rng.randrange(n) for _ in range(rng.randint(1, 4)))


def random_case(rng: random.Random, batch: Batch) -> list[Row]:
    w = batch.window_seconds
    if batch.unit == "s":
        span = rng.choice([2, 4, 3 * w + 3])
        pool = [rng.randint(0, span) for _ in range(rng.randint(1, 6))]
        pool += [p + w for p in pool[:2]] + [p + w + 1 for p in pool[:1]]
        origin = BASE_SECONDS + rng.randint(0, 86_400)
    else:
        quarter = 250_000
        span = max(4, 4 * w)
        pool = [rng.randint(0, span) * quarter for _ in range(rng.randint(1, 6))]
        edge = w * 1_000_000
        pool += [p + edge + rng.choice([-1, 0, 0, 1]) for p in pool[:3]]
        pool = [max(p, 0) for p in pool]
        origin = (BASE_SECONDS + rng.randint(0, 86_400)) * 1_000_000 + rng.randint(0, 999_999)
    rows = []
    # Mostly short streams; some long ones crowd many rows onto few timestamps.
    count = rng.randint(0, 14) if rng.random() < 0.85 else rng.randint(15, 40)
    for _ in range(count):
        mask = random_mask(rng, batch.n)
        conds: list[int | None] = [mask >> i & 1 for i in range(batch.n)]
        ts: int | None = origin + rng.choice(pool)
        r = rng.random()
        if batch.n > NULLABLE_MAX_CONDITIONS:
            pass
        elif r < 0.04:
            ts = None
        elif r < 0.08:
            conds[rng.randrange(batch.n)] = None
        rows.append(Row(ts, conds))
    return rows


def make_batches(rng: random.Random, per_batch: int) -> list[Batch]:
    shapes = []
    for unit in ["s", "us"]:
        windows = [0, 1, 2, 3, 5, 10] if unit == "s" else [0, 1, 2]
        for n in [1, 2, 3, 4, 5, 32]:
            for w in rng.sample(windows, 2):
                shapes.append((unit, n, w))
    batches = []
    for unit, n, w in shapes:
        batch = Batch(unit, n, w)
        batch.cases = [random_case(rng, batch) for _ in range(per_batch)]
        batches.append(batch)
    return batches


def write_csv(path: Path, batch: Batch, rng: random.Random, canonical: bool) -> None:
    """Rows of every case. `canonical`: sorted by (case, ts, mask), the order userql
    uses for rows with equal timestamps; otherwise shuffled."""
    rows = []
    for case, case_rows in enumerate(batch.cases):
        for row in case_rows:
            rows.append((case, row))
    if canonical:
        rows.sort(key=lambda cr: (cr[0], cr[1].ts if cr[1].ts is not None else -1, cr[1].mask()))
    else:
        rng.shuffle(rows)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["case", "ts"] + [f"c{i + 1}" for i in range(batch.n)])
        for case, row in rows:
            out.writerow(
                [case, "\\N" if row.ts is None else row.ts]
                + ["\\N" if c is None else c for c in row.conds]
            )


def csv_schema(batch: Batch) -> str:
    null = batch.n <= NULLABLE_MAX_CONDITIONS
    wrap = (lambda t: f"Nullable({t})") if null else (lambda t: t)  # noqa: E731
    return f"case UInt32, ts {wrap('Int64')}, " + ", ".join(f"c{i + 1} {wrap('UInt8')}" for i in range(batch.n))


def clickhouse_funnels(path: Path, batch: Batch, mode: tuple[str, ...]) -> dict[int, int]:
    conds = ", ".join(f"c{i + 1}" for i in range(batch.n))
    schema = csv_schema(batch)
    params = ", ".join([str(batch.window_seconds * (1 if batch.unit == "s" else 1_000_000))] + [f"'{m}'" for m in mode])
    if batch.unit == "s":
        ts = "toDateTime(ts, 'UTC')"
    else:
        ts = "toUInt64(toUnixTimestamp64Micro(fromUnixTimestamp64Micro(ts, 'UTC')))"
    settings = "max_threads = 1, input_format_parallel_parsing = 0" if order_dependent(mode) else "max_threads = 4"
    sql = (
        f"SELECT case, windowFunnel({params})({ts}, {conds}) FROM file('{path}', CSVWithNames, '{schema}') "
        f"GROUP BY case ORDER BY case SETTINGS {settings}"
    )
    result = {}
    for line in chdb_query(sql).splitlines():
        case, level = line.split("\t")
        result[int(case)] = 0 if level == "\\N" else int(level)
    return result


def clickhouse_retention(path: Path, batch: Batch) -> dict[int, str]:
    conds = ", ".join(f"c{i + 1}" for i in range(batch.n))
    schema = csv_schema(batch)
    sql = (
        f"SELECT case, arrayStringConcat(retention({conds}), ',') FROM file('{path}', CSVWithNames, '{schema}') "
        f"GROUP BY case ORDER BY case"
    )
    return {int(c): r for c, r in (line.split("\t") for line in chdb_query(sql).splitlines())}


def oracle_funnel_lines(batch: Batch, mode: tuple[str, ...], rng: random.Random) -> list[str]:
    lines = []
    scale = 1_000_000_000 if batch.unit == "s" else 1_000
    mode_text = ",".join(mode) or "-"
    for case_rows in batch.cases:
        usable = [r for r in case_rows if r.usable()]
        rng.shuffle(usable)
        events = " ".join(f"{r.ts * scale}:{r.mask()}" for r in usable)
        lines.append(f"F {batch.n} {batch.window_seconds} {mode_text} {events}")
    return lines


def compare(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="funnel-vs-clickhouse-"))
    build_dir = Path(args.build_dir) if args.build_dir else work / "oracle"
    oracle = build_oracle(build_dir, args.offline)
    modes = valid_modes()
    matched: dict[str, int] = {}
    total: dict[str, int] = {}
    failures = 0
    for b, batch in enumerate(make_batches(rng, args.cases_per_batch)):
        shuffled, canonical = work / f"b{b}-shuffled.csv", work / f"b{b}-canonical.csv"
        write_csv(shuffled, batch, rng, canonical=False)
        write_csv(canonical, batch, rng, canonical=True)
        for mode in modes:
            name = ",".join(mode) or "(none)"
            theirs = clickhouse_funnels(canonical if order_dependent(mode) else shuffled, batch, mode)
            ours = run_oracle(oracle, oracle_funnel_lines(batch, mode, rng))
            for case, answer in enumerate(ours):
                expected = theirs.get(case, 0)
                total[name] = total.get(name, 0) + 1
                if int(answer) == expected:
                    matched[name] = matched.get(name, 0) + 1
                else:
                    failures += 1
                    if failures <= 10:
                        rows = [(r.ts, r.mask()) for r in batch.cases[case] if r.usable()]
                        print(
                            f"MISMATCH mode={name} unit={batch.unit} n={batch.n} window={batch.window_seconds}s "
                            f"clickhouse={expected} userql={answer} rows(ts, mask)={sorted(rows)}",
                            file=sys.stderr,
                        )
        if batch.n >= 2:
            theirs = clickhouse_retention(shuffled, batch)
            lines = [
                f"R {batch.n} " + " ".join(str(r.mask()) for r in case_rows if r.conds_known())
                for case_rows in batch.cases
            ]
            ours = run_oracle(oracle, lines)
            zeros = ",".join(["0"] * batch.n)
            for case, answer in enumerate(ours):
                total["retention"] = total.get("retention", 0) + 1
                if answer == theirs.get(case, zeros):
                    matched["retention"] = matched.get("retention", 0) + 1
                else:
                    failures += 1
                    print(f"MISMATCH retention case={case} clickhouse={theirs.get(case)} userql={answer}", file=sys.stderr)
    for name in sorted(total):
        print(f"{name:70} {matched.get(name, 0):6} / {total[name]:6} match")
    print("ALL MATCH" if failures == 0 else f"{failures} MISMATCHES")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if failures == 0 else 1


# ---- slt generation --------------------------------------------------------------------


@dataclass
class Table:
    name: str
    unit: str  # "us": ClickHouse DateTime64(6); "s": DateTime (values whole seconds)
    rows: list[tuple]  # (uid, ts text or None, event or None)


@dataclass
class Funnel:
    table: str
    window_seconds: int
    conds: list[str]  # SQL, the same in both dialects
    mode: str = ""  # as written in userql's call; "" for none
    where: str = ""
    grouped: bool = True
    comment: str = ""


@dataclass
class Retention:
    table: str
    conds: list[str]
    where: str = ""
    grouped: bool = True
    comment: str = ""


@dataclass
class Failing:
    sql: str
    fragment: str
    comment: str = ""


def sql_literal(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


def insert_values(table: Table) -> str:
    values = ", ".join("(" + ", ".join(sql_literal(v) for v in row) + ")" for row in table.rows)
    return f"INSERT INTO {table.name} VALUES {values}"


def userql_funnel(q: Funnel) -> str:
    mode = f"'{q.mode}', " if q.mode else ""
    call = f"window_funnel({q.window_seconds}, {mode}ts, {', '.join(q.conds)})"
    return select(call, q.table, q.where, q.grouped)


def clickhouse_funnel(q: Funnel, unit: str) -> str:
    names = [m.strip() for m in q.mode.split(",") if m.strip()]
    window = q.window_seconds * (1_000_000 if unit == "us" else 1)
    params = ", ".join([str(window)] + [f"'{m}'" for m in names])
    ts = "toUInt64(toUnixTimestamp64Micro(ts))" if unit == "us" else "ts"
    call = f"windowFunnel({params})({ts}, {', '.join(q.conds)})"
    return select(call, q.table, q.where, q.grouped)


def select(call: str, table: str, where: str, grouped: bool) -> str:
    where = f" WHERE {where}" if where else ""
    if grouped:
        return f"SELECT uid, {call} FROM {table}{where} GROUP BY uid ORDER BY uid"
    return f"SELECT {call} FROM {table}{where}"


def slt_cases():
    """The tables and queries of tests/slt/behavior.slt."""
    v, c, p = "event = 'view'", "event = 'cart'", "event = 'pay'"
    tables = [
        Table(
            "funnel_events",
            "us",
            [
                # 1: the whole funnel within the hour.
                (1, "2024-01-01 10:00:00", "view"), (1, "2024-01-01 10:20:00", "cart"), (1, "2024-01-01 10:59:59", "pay"),
                # 2: pay exactly one hour after view (inclusive); a second view later.
                (2, "2024-01-01 10:00:00", "view"), (2, "2024-01-01 10:30:00", "cart"), (2, "2024-01-01 11:00:00", "pay"),
                # 3: pay one microsecond too late.
                (3, "2024-01-01 10:00:00", "view"), (3, "2024-01-01 10:30:00", "cart"), (3, "2024-01-01 11:00:00.000001", "pay"),
                # 4: the first chain runs out of time; a later view starts the best chain.
                (4, "2024-01-01 08:00:00", "view"), (4, "2024-01-01 08:50:00", "cart"), (4, "2024-01-01 12:00:00", "view"),
                (4, "2024-01-01 12:10:00", "cart"), (4, "2024-01-01 12:20:00", "pay"),
                # 5: steps out of order (pay, cart before view).
                (5, "2024-01-01 09:00:00", "pay"), (5, "2024-01-01 09:10:00", "cart"), (5, "2024-01-01 09:20:00", "view"),
                # 6: all three at the same instant, inserted in reverse order.
                (6, "2024-01-01 10:00:00.5", "pay"), (6, "2024-01-01 10:00:00.5", "cart"), (6, "2024-01-01 10:00:00.5", "view"),
                # 7: other events in between, cart repeated.
                (7, "2024-01-01 10:00:00", "view"), (7, "2024-01-01 10:01:00", "search"), (7, "2024-01-01 10:02:00", "cart"),
                (7, "2024-01-01 10:03:00", "cart"), (7, "2024-01-01 10:04:00", "pay"),
                # 8: no view at all.
                (8, "2024-01-01 10:00:00", "cart"), (8, "2024-01-01 10:01:00", "pay"),
                # 9: NULL timestamp and NULL event rows are skipped.
                (9, "2024-01-01 10:00:00", "view"), (9, None, "cart"), (9, "2024-01-01 10:05:00", None),
                (9, "2024-01-01 10:06:00", "cart"),
                # 10: only skipped rows.
                (10, None, "view"), (10, "2024-01-01 10:00:00", None),
                # 11: cart before its view at the same second as another view.
                (11, "2024-01-01 10:00:00", "view"), (11, "2024-01-01 10:10:00", "pay"), (11, "2024-01-01 10:20:00", "cart"),
                (11, "2024-01-01 10:30:00", "pay"),
            ],
        ),
        Table(
            "funnel_seconds",
            "s",
            [
                (1, "2024-03-01 00:00:00", "view"), (1, "2024-03-01 00:00:10", "cart"), (1, "2024-03-01 00:00:10", "pay"),
                (2, "2024-03-01 00:00:00", "view"), (2, "2024-03-01 00:00:10", "cart"), (2, "2024-03-01 00:00:11", "pay"),
                (3, "2024-03-01 00:00:00", "view"), (3, "2024-03-01 00:00:00", "view"), (3, "2024-03-01 00:00:05", "cart"),
                (3, "2024-03-01 00:00:06", "cart"), (3, "2024-03-01 00:00:07", "pay"),
                (4, "2024-03-01 00:00:00", "view"), (4, "2024-03-01 00:00:01", "cart"), (4, "2024-03-01 00:00:01", "cart"),
                (4, "2024-03-01 00:00:02", "pay"),
            ],
        ),
        Table(
            # One row may meet several conditions: `kind` decides view and cart together.
            "funnel_modes",
            "us",
            [
                # 1: A -> B -> (other) -> C: strict_order stops at the other event.
                (1, "2024-02-01 10:00:00", "view"), (1, "2024-02-01 10:01:00", "cart"), (1, "2024-02-01 10:02:00", "search"),
                (1, "2024-02-01 10:03:00", "pay"),
                # 2: pay before cart after view: strict_order stops, allow_reentry skips it.
                (2, "2024-02-01 10:00:00", "view"), (2, "2024-02-01 10:01:00", "pay"), (2, "2024-02-01 10:02:00", "cart"),
                (2, "2024-02-01 10:03:00", "pay"),
                # 3: cart repeated: strict_deduplication stops at 2.
                (3, "2024-02-01 10:00:00", "view"), (3, "2024-02-01 10:01:00", "cart"), (3, "2024-02-01 10:02:00", "cart"),
                (3, "2024-02-01 10:03:00", "pay"),
                # 4: view and cart at the same instant: strict_increase needs a later cart.
                (4, "2024-02-01 10:00:00", "view"), (4, "2024-02-01 10:00:00", "cart"), (4, "2024-02-01 10:00:01", "pay"),
                # 5: one row is both view and cart ('view_cart'): strict_once lets it fill one step.
                (5, "2024-02-01 10:00:00", "view_cart"), (5, "2024-02-01 10:05:00", "pay"),
                # 6: ClickHouse keeps one chain per level for strict_increase.
                (6, "2024-02-01 10:00:00", "view"), (6, "2024-02-01 10:00:01", "view"), (6, "2024-02-01 10:00:01", "cart"),
                # 7: an other event in the same microsecond as the cart comes first under strict_order.
                (7, "2024-02-01 10:00:00", "view"), (7, "2024-02-01 10:00:01", "cart"), (7, "2024-02-01 10:00:01", "search"),
                (7, "2024-02-01 10:00:02", "pay"),
            ],
        ),
        Table(
            "retention_events",
            "us",
            [
                (1, "2024-01-01 09:00:00", "signup"), (1, "2024-01-02 09:00:00", "visit"), (1, "2024-01-03 23:59:59.999999", "visit"),
                (2, "2024-01-01 12:00:00", "signup"), (2, "2024-01-03 00:00:00", "visit"),
                (3, "2024-01-02 12:00:00", "visit"), (3, "2024-01-03 12:00:00", "visit"),
                (4, "2024-01-01 23:59:59.999999", "signup"), (4, "2024-01-02 00:00:00", "visit"), (4, None, "visit"),
                (5, "2024-01-01 10:00:00", None), (5, "2024-01-02 10:00:00", "visit"),
            ],
        ),
    ]
    vc = "(event = 'view' OR event = 'view_cart')"
    cc = "(event = 'cart' OR event = 'view_cart')"
    day = lambda d: f"ts >= DATE '2024-01-0{d}' AND ts < DATE '2024-01-0{d + 1}'"  # noqa: E731
    queries = [
        "# ---- the rules: inclusive window from each chain's own first step, best chain, ties, NULLs",
        Funnel("funnel_events", 3600, [v, c, p], comment="One hour; the window includes its end, to the microsecond."),
        Funnel("funnel_events", 1800, [v, c, p], comment="Half an hour."),
        Funnel("funnel_events", 0, [v, c, p], comment="A zero window: only rows at the same instant chain."),
        Funnel("funnel_events", 86400, [v, c, p], where="uid IN (5, 11)", comment="Steps only count in order."),
        Funnel("funnel_events", 3600, [v], comment="One condition: 1 when met."),
        Funnel("funnel_events", 3600, [v, v, v], comment="The same condition thrice: one row fills every step."),
        Funnel("funnel_events", 3600, [v, "event IS NOT NULL", c, p], comment="Overlapping conditions."),
        Funnel("funnel_events", 3600, [v, c, p], grouped=False, comment="A global aggregate: the best over all rows."),
        Funnel("funnel_events", 3600, [v, c, p], where="false", comment="No rows and GROUP BY: no groups."),
        Funnel("funnel_events", 3600, [v, c, p], where="false", grouped=False, comment="No rows: 0."),
        Funnel("funnel_seconds", 10, [v, c, p], comment="Whole-second timestamps: a ten second window."),
        Funnel("funnel_seconds", 10, [v, c, p], mode="strict_deduplication", comment="Repeated steps stop the scan."),
        Funnel("funnel_seconds", 10, [v, c, p], mode="strict_increase"),
        "# ---- modes",
        Funnel("funnel_modes", 3600, [vc, cc, p]),
        Funnel("funnel_modes", 3600, [vc, cc, p], mode="strict_order"),
        Funnel("funnel_modes", 3600, [vc, cc, p], mode="strict_order, allow_reentry"),
        Funnel("funnel_modes", 3600, [vc, cc, p], mode="strict_deduplication"),
        Funnel("funnel_modes", 3600, [vc, cc, p], mode="strict_increase"),
        Funnel("funnel_modes", 3600, [vc, cc, p], mode="strict_once"),
        Funnel("funnel_modes", 3600, [vc, cc, p], mode="strict_increase,strict_once"),
        Funnel("funnel_modes", 3600, [vc, cc, p], mode="strict_deduplication, strict_order"),
        Funnel("funnel_modes", 3600, [vc, cc, p], mode="strict_order, allow_reentry, strict_once, strict_increase"),
        "# ---- retention",
        Retention("retention_events", [day(1), day(2), day(3)], comment="Day 0 signups coming back on days 1 and 2."),
        Retention("retention_events", ["event = 'signup'", "event = 'visit'"], comment="No order: the same row may meet both."),
        Retention("retention_events", [day(1), day(2), day(3)], grouped=False),
        Retention("retention_events", [day(1), day(2), day(3)], where="false", comment="No rows and GROUP BY: no groups."),
        Retention("retention_events", [day(1), day(2), day(3)], where="false", grouped=False, comment="No rows: all zeros."),
    ]
    errors = [
        Failing("SELECT window_funnel(3600, ts) FROM funnel_events", "1 to 32 conditions", "No conditions."),
        Failing(
            "SELECT window_funnel(3600, ts, " + ", ".join(["event = 'view'"] * 33) + ") FROM funnel_events",
            "1 to 32 conditions",
            "More than 32 conditions.",
        ),
        Failing("SELECT window_funnel(3600, 'strict_orders', ts, event = 'view') FROM funnel_events", "unknown mode"),
        Failing("SELECT window_funnel(3600, 'Strict_Order', ts, event = 'view') FROM funnel_events", "unknown mode",
                "Mode names are lower case, as in ClickHouse."),
        Failing("SELECT window_funnel(3600, 'allow_reentry', ts, event = 'view') FROM funnel_events", "requires strict_order"),
        Failing("SELECT window_funnel(-1, ts, event = 'view') FROM funnel_events", "non-negative"),
        Failing("SELECT retention(event = 'view') FROM funnel_events", "2 to 32 conditions"),
        Failing(
            "SELECT retention(" + ", ".join(["event = 'view'"] * 33) + ") FROM funnel_events",
            "2 to 32 conditions",
        ),
    ]
    return tables, queries, errors


def clickhouse_table(table: Table) -> str:
    ts = "DateTime64(6, 'UTC')" if table.unit == "us" else "DateTime('UTC')"
    return f"CREATE TABLE {table.name} (uid Int64, ts Nullable({ts}), event Nullable(String)) ENGINE = Memory"


def slt(args: argparse.Namespace) -> int:
    from chdb import session

    tables, queries, errors = slt_cases()
    units = {t.name: t.unit for t in tables}
    sess = session.Session()
    sess.query("CREATE DATABASE IF NOT EXISTS slt; USE slt")
    out = [
        "# window_funnel and retention (SQL_API.md, \"Behaviour\").",
        "#",
        "# Generated by tests/reference/funnel_vs_clickhouse.py slt: every expected value",
        "# was produced by ClickHouse (through chdb) on the same rows. ClickHouse's",
        "# windowFunnel takes microsecond timestamps as toUnixTimestamp64Micro with the",
        "# window in microseconds, and DateTime timestamps with the window in seconds.",
        "# One deliberate difference: where no row is usable (a group whose rows all have",
        "# a NULL, or a global aggregate over no rows), ClickHouse's windowFunnel on",
        "# Nullable columns gives NULL; userql gives 0 (SQL_API.md: \"No rows → 0\"),",
        "# which is ClickHouse's answer on non-Nullable columns.",
        "",
    ]
    for table in tables:
        sess.query(f"DROP TABLE IF EXISTS {table.name}")
        sess.query(clickhouse_table(table))
        sess.query(insert_values(table))
        out += [
            "statement ok",
            f"CREATE TABLE {table.name} (uid bigint, ts timestamp, event text)",
            "",
            "statement ok",
            insert_values(table),
            "",
        ]
    for q in queries:
        if isinstance(q, str):
            out += [q, ""]
            continue
        if q.comment:
            out.append(f"# {q.comment}")
        unit = units[q.table]
        if isinstance(q, Funnel):
            ch_sql = clickhouse_funnel(q, unit)
            ours = userql_funnel(q)
            if unit == "s":
                # The same rows as microsecond DateTime64 must give the same answer.
                alt = chdb_session_rows(sess, clickhouse_funnel(q, "us").replace(q.table, f"(SELECT uid, toDateTime64(ts, 6, 'UTC') AS ts, event FROM {q.table})"))
                assert alt == chdb_session_rows(sess, ch_sql), q
        else:
            conds = ", ".join(q.conds)
            ch_sql = select(f"retention({conds})", q.table, q.where, q.grouped)
            ours = select(f"retention({conds})", q.table, q.where, q.grouped)
        rows = chdb_session_rows(sess, ch_sql)
        if isinstance(q, Funnel):
            rows = [[("0" if v == "\\N" else v) for v in r] for r in rows]
        else:
            rows = [[v.replace("[", "{").replace("]", "}") for v in r] for r in rows]
        types = "I" * (2 if q.grouped else 1) if isinstance(q, Funnel) else ("IT" if q.grouped else "T")
        out += [f"query {types}", ours, "----"] + [" ".join(r) for r in rows] + [""]
    out += ["# ---- errors", ""]
    for e in errors:
        if e.comment:
            out.append(f"# {e.comment}")
        out += [f"statement error {e.fragment}", e.sql, ""]
    sys.stdout.write("\n".join(out).rstrip("\n") + "\n")
    return 0


def chdb_session_rows(sess, sql: str) -> list[list[str]]:
    text = str(sess.query(sql, "TSV"))
    return [line.split("\t") for line in text.splitlines()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare", help="random streams, every mode, ClickHouse vs userql's core")
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--cases-per-batch", type=int, default=250)
    c.add_argument("--build-dir", help="where to build the oracle (default: a temporary folder)")
    c.add_argument("--offline", action="store_true", help="pass --offline to cargo")
    c.add_argument("--keep", action="store_true", help="keep the generated CSV files")
    sub.add_parser("slt", help="print tests/slt/behavior.slt with ClickHouse's answers")
    args = parser.parse_args()
    return compare(args) if args.command == "compare" else slt(args)


if __name__ == "__main__":
    sys.exit(main())
