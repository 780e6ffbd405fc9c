"""Security through real clients: psql, psycopg 3 (and asyncpg, for the SQLSTATE of a refused startup) against a userql with users, TLS and
masking (its own servers, started here from $USERQL_BIN).

No password, a wrong password and an unknown user (28P01 alike), role read writing (42501),
plaintext when TLS is required (28000, before authentication), sslmode=require and
verify-full with the CA, masked identifiers for a read user while OneID gives it the same
customers, current_user and \\du.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from harness import ON_USERQL, Checks  # noqa: E402

import psycopg  # noqa: E402

checks = Checks("security")
if not ON_USERQL:
    print("ok - skipped: users, roles and masking are userql's config, not PostgreSQL's")
    checks.finish()

BIN = os.environ["USERQL_BIN"]
TMP = tempfile.mkdtemp(prefix="security-", dir=os.environ.get("CLIENTS_TMP"))
PASSWORDS = {"ana": "ana-secret", "wes": "wes-secret"}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def make_certs():
    """A CA and a server certificate for localhost / 127.0.0.1, with openssl."""
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", f"{TMP}/ca.key", "-out", f"{TMP}/ca.crt", "-subj", "/CN=userql test CA"])
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{TMP}/server.key",
         "-out", f"{TMP}/server.csr", "-subj", "/CN=localhost"])
    with open(f"{TMP}/ext.cnf", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run(["openssl", "x509", "-req", "-in", f"{TMP}/server.csr", "-CA", f"{TMP}/ca.crt",
         "-CAkey", f"{TMP}/ca.key", "-CAcreateserial", "-days", "2",
         "-extfile", f"{TMP}/ext.cnf", "-out", f"{TMP}/server.crt"])


def start(name, require_tls):
    """A server over a small demo with two users and masking; returns (port, process)."""
    demo = f"{TMP}/demo"
    if not os.path.exists(f"{demo}/userql.toml"):
        run([BIN, "demo", "--out", demo, "--customers", "2000"])
    verifiers = {u: run([BIN, "passwd"], input=p + "\n").stdout.strip() for u, p in PASSWORDS.items()}
    port = free_port()
    with open(f"{demo}/userql.toml") as f:
        channels = f.read()
    config = f"""
[server]
listen = "127.0.0.1:{port}"
data_dir = "{TMP}/data-{name}"
tls_cert = "{TMP}/server.crt"
tls_key = "{TMP}/server.key"
require_tls = {str(require_tls).lower()}

[[users]]
name = "ana"
role = "read"
password = "{verifiers['ana']}"

[[users]]
name = "wes"
role = "write"
password = "{verifiers['wes']}"

[privacy]
mask = {{ phone = "mask_phone", email = "mask_email" }}

{channels}
"""
    path = f"{demo}/{name}.toml"
    with open(path, "w") as f:
        f.write(config)
    log = open(f"{TMP}/{name}.log", "w")
    proc = subprocess.Popen([BIN, "serve", "--config", path], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return port, proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(open(f"{TMP}/{name}.log").read())
            time.sleep(0.2)
    raise RuntimeError(f"{name} did not start")


def psql(port, user, sql, password=None, sslmode="require", extra=""):
    env = dict(os.environ)
    env.pop("PGPASSWORD", None)
    if password is not None:
        env["PGPASSWORD"] = password
    conninfo = f"host=127.0.0.1 port={port} dbname=userql user={user} sslmode={sslmode} {extra}"
    return subprocess.run(["psql", "-X", "-w", "-At", conninfo, "-c", sql],
                          capture_output=True, text=True, env=env, timeout=60)


def connect(port, user, password, sslmode="require"):
    return psycopg.connect(host="127.0.0.1", port=port, dbname="userql", user=user,
                           password=password, sslmode=sslmode, autocommit=True)


def sqlstate_of_connect(port, user, password, sslmode="require"):
    """The SQLSTATE a failed connection reports. libpq (psql, psycopg) shows only the
    message of a startup failure, so asyncpg, which keeps the code, reads it."""
    import asyncio
    import ssl as ssl_module

    import asyncpg

    async def attempt():
        if sslmode == "disable":
            ssl = False
        else:
            ssl = ssl_module.create_default_context()
            ssl.check_hostname = False
            ssl.verify_mode = ssl_module.CERT_NONE
        try:
            conn = await asyncpg.connect(host="127.0.0.1", port=port, user=user, password=password,
                                         database="userql", ssl=ssl)
        except asyncpg.PostgresError as e:
            return e.sqlstate, str(e)
        await conn.close()
        return None, "connected"

    return asyncio.run(attempt())


make_certs()
servers = []
try:
    port, proc = start("tls", require_tls=False)
    servers.append(proc)
    strict_port, strict = start("strict", require_tls=True)
    servers.append(strict)

    with checks.check("psql with the right password over TLS (verify-full with the CA)"):
        r = psql(port, "ana", "SELECT current_user || ' ' || session_user", PASSWORDS["ana"],
                 sslmode="verify-full", extra=f"sslrootcert={TMP}/ca.crt")
        assert r.returncode == 0 and r.stdout.strip() == "ana ana", r.stderr or r.stdout

    with checks.check("psql without a password is refused"):
        r = psql(port, "ana", "SELECT 1")
        assert r.returncode != 0 and "password" in r.stderr, r.stderr

    with checks.check("wrong password and unknown user: 28P01, the same message"):
        code_wrong, msg_wrong = sqlstate_of_connect(port, "ana", "nope")
        code_unknown, msg_unknown = sqlstate_of_connect(port, "nobody", "nope")
        assert code_wrong == "28P01" and code_unknown == "28P01", (code_wrong, code_unknown)
        r1 = psql(port, "ana", "SELECT 1", "nope")
        r2 = psql(port, "nobody", "SELECT 1", "nope")
        assert 'password authentication failed for user "ana"' in r1.stderr, r1.stderr
        assert 'password authentication failed for user "nobody"' in r2.stderr, r2.stderr

    with checks.check("plaintext refused with 28000 when TLS is required"):
        code, msg = sqlstate_of_connect(strict_port, "ana", PASSWORDS["ana"], sslmode="disable")
        assert code == "28000", (code, msg)
        r = psql(strict_port, "ana", "SELECT 1", PASSWORDS["ana"], sslmode="disable")
        assert r.returncode != 0 and "no encryption" in r.stderr, r.stderr
        r = psql(strict_port, "ana", "SELECT 1", PASSWORDS["ana"], sslmode="require")
        assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr

    with checks.check("role read writing: 42501"):
        with connect(port, "ana", PASSWORDS["ana"]) as c:
            for sql in ["CREATE TABLE t_ana AS SELECT 1 AS a", "CREATE SCHEMA s_ana",
                        "CREATE VIEW v_ana AS SELECT 1 AS a"]:
                try:
                    c.execute(sql)
                except psycopg.Error as e:
                    assert e.sqlstate == "42501", (sql, e.sqlstate, str(e))
                else:
                    raise AssertionError(f"{sql} succeeded")
            c.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS a")
            c.execute("SET userql.rfm_bins = 4")
            assert c.execute("SELECT count(*) FROM scratch").fetchone()[0] == 1

    with checks.check("role write creates tables"):
        with connect(port, "wes", PASSWORDS["wes"]) as c:
            c.execute("CREATE TABLE t_wes AS SELECT 1 AS a")
            assert c.execute("SELECT count(*) FROM t_wes").fetchone()[0] == 1

    with checks.check("masked identifiers for a read user; the same customers"):
        with connect(port, "ana", PASSWORDS["ana"]) as ana, connect(port, "wes", PASSWORDS["wes"]) as wes:
            q = "SELECT phone FROM channels.app_users WHERE phone IS NOT NULL ORDER BY user_id LIMIT 50"
            raw = [r[0] for r in wes.execute(q)]
            masked = [r[0] for r in ana.execute(q)]
            assert raw and all("****" in m and m not in raw for m in masked), masked[:3]
            ids = [r[0] for r in ana.execute(
                "SELECT id_value FROM identities WHERE id_type = 'email' AND id_value <> '' LIMIT 50")]
            assert ids and all("***@" in v for v in ids), ids[:3]
            probe = f"SELECT count(*) FROM identities WHERE id_value = '{raw[0]}'"
            assert wes.execute(probe).fetchone()[0] >= 1
            assert ana.execute(probe).fetchone()[0] == 0
            for q in ["SELECT count(DISTINCT one_id) FROM customer_ids",
                      "SELECT count(DISTINCT one_id) FROM oneid('identities')"]:
                a, w = ana.execute(q).fetchone()[0], wes.execute(q).fetchone()[0]
                assert a == w, (q, a, w)

    with checks.check("\\du lists the configured users"):
        r = psql(port, "ana", "\\du", PASSWORDS["ana"])
        assert r.returncode == 0 and "ana" in r.stdout and "wes" in r.stdout, r.stderr or r.stdout

    with checks.check("psql passwd verifier round trip: userql passwd output logs in"):
        r = psql(port, "wes", "SELECT 1", PASSWORDS["wes"])
        assert r.returncode == 0, r.stderr
finally:
    for p in servers:
        p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()

checks.finish()
