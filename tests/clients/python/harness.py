"""A tiny check runner shared by the Python client tests.

Each check runs on its own, so one failure does not hide the next: every check prints
`ok - NAME` or `not ok - NAME: error`, and `finish()` prints `N passed, M failed` and exits
non-zero when any failed. The runner (`tests/clients/run`) shows the first `not ok` line as
the client's reason and the whole output as its details.
"""

import os
import sys
import traceback
from contextlib import contextmanager

# userql (default) or postgres: the tests assert userql's documented differences only where
# the README documents one (e.g. keys and indexes are not kept).
TARGET = os.environ.get("CLIENTS_TARGET", "userql")
ON_USERQL = TARGET == "userql"


def libpq_params():
    """Connection settings from the PG* environment the runner exports."""
    return {
        "host": os.environ.get("PGHOST", "127.0.0.1"),
        "port": int(os.environ.get("PGPORT", "5432")),
        "user": os.environ.get("PGUSER", "analyst"),
        "dbname": os.environ.get("PGDATABASE", "userql"),
    }


class Checks:
    def __init__(self, client):
        self.client = client
        self.passed = 0
        self.failed = []

    @contextmanager
    def check(self, name):
        """`with checks.check("name"):` - an exception inside marks the check failed."""
        try:
            yield
        except Exception as e:  # noqa: BLE001 - every failure is reported, none is fatal
            self.failed.append(name)
            detail = describe(e)
            print(f"not ok - {name}: {detail}", flush=True)
            if os.environ.get("CLIENTS_TRACEBACK"):
                traceback.print_exc()
        else:
            self.passed += 1
            print(f"ok - {name}", flush=True)

    def finish(self):
        print(f"{self.client}: {self.passed} passed, {len(self.failed)} failed", flush=True)
        sys.exit(1 if self.failed else 0)


def describe(e):
    """One line: the exception type, the server's SQLSTATE when there is one, the message."""
    code = getattr(e, "pgcode", None) or getattr(e, "sqlstate", None)
    orig = getattr(e, "orig", None)  # SQLAlchemy wraps the driver's error
    if orig is not None:
        code = code or getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
        msg = str(orig)
    else:
        msg = str(e)
    msg = " | ".join(line.strip() for line in msg.strip().splitlines() if line.strip())
    if len(msg) > 1500:
        msg = msg[:1500] + " ..."
    prefix = type(e).__name__ + (f" [{code}]" if code else "")
    return f"{prefix}: {msg}"


def expect_equal(actual, expected, what):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def expect(cond, message):
    if not cond:
        raise AssertionError(message)
