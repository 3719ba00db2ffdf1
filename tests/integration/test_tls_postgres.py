"""PostgreSQL over TLS (sslmode=require), traced by the postmaster's PID: its backends are forked
per connection after the tracer started, each doing its TLS handshake within milliseconds.

Oracles, none of them ours: pg_stat_statements' call counts (reset right before the traced
work) and pgbench's own count of transactions, with -C (a new connection, hence a new forked
backend and a new TLS handshake, per transaction).
Checks: queries are decoded from the TLS plaintext (tls.established, db.system.name
postgresql), never twice (records <= calls), the miss rate of the fork race is measured and
small, and every connection whose plaintext was missed has an explicit
"encrypted (TLS), not decoded" record (never silence)."""
import os
import re
import shutil
import subprocess
import time

from harness import Tracer, check, check_schema, get, require_root, run_main, skip
from pg_cluster import PG_BIN, Cluster

TRANSACTIONS = 100
SELECT = "SELECT abalance FROM pgbench_accounts WHERE aid = ?;"


def test(a):
    require_root()
    if not PG_BIN or not shutil.which("psql") or not shutil.which("pgbench"):
        skip("PostgreSQL server/psql/pgbench missing: run scripts/install-deps.sh")
    c = Cluster()
    env = dict(os.environ, PGSSLMODE="require")
    try:
        c.psql("CREATE EXTENSION pg_stat_statements")
        subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", str(c.port),
                        "-U", "postgres", "postgres"], check=True, capture_output=True,
                       timeout=120, env=env)
        t = Tracer(a.binary, ["--pid", str(c.pid)]).wait_attached()
        c.psql("SELECT pg_stat_statements_reset()")
        try:
            ssl = subprocess.run(["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(c.port), "-U",
                                  "postgres", "-c", "SELECT ssl FROM pg_stat_ssl WHERE pid = "
                                  "pg_backend_pid()"], capture_output=True, text=True,
                                 timeout=60, env=env)
            check(ssl.stdout.strip() == "t", f"psql did not use TLS: {ssl.stdout} {ssl.stderr}")
            bench = subprocess.run(["pgbench", "-C", "-S", "-t", str(TRANSACTIONS), "-h",
                                    "127.0.0.1", "-p", str(c.port), "-U", "postgres", "postgres"],
                                   capture_output=True, text=True, timeout=300, env=env)
            check(bench.returncode == 0, f"pgbench: {bench.stderr}")
            check(f"actually processed: {TRANSACTIONS}/{TRANSACTIONS}" in bench.stdout,
                  f"pgbench output: {bench.stdout}")
            time.sleep(1.0)
            calls = int(c.psql("SELECT coalesce(sum(calls),0) FROM pg_stat_statements WHERE "
                               "query LIKE 'SELECT abalance FROM pgbench_accounts%'").stdout)
        finally:
            rc = t.stop()
    finally:
        c.stop()
    check(rc == 0, f"tracer exit {rc}: {t.stderr()}")
    recs = t.records()
    check_schema(recs)
    check(calls == TRANSACTIONS, f"pg_stat_statements counted {calls} selects")
    sel = [r for r in recs if get(r, "db.query.text") == SELECT]
    for r in sel:
        check(get(r, "tls.established") is True and get(r, "odigos.tls.library") == "openssl",
              f"not from TLS plaintext: {r}")
        check(get(r, "db.system.name") == "postgresql" and r["side"] == "server", f"record {r}")
    check(any(get(r, "db.query.text") == "SELECT ssl FROM pg_stat_ssl WHERE pid = "
              "pg_backend_pid()" and get(r, "tls.established") for r in recs),
          "psql's query over TLS not decoded")
    check(len(sel) <= calls, f"{len(sel)} select records for {calls} calls: duplicates")
    notes = [r for r in t.records(kind="connection")
             if "encrypted (TLS), not decoded" in get(r, "odigos.note", "")]
    decoded_conns = {get(r, "network.peer.port") for r in sel}
    missed = calls - len(sel)
    print(f"pgbench -C over TLS: {len(sel)}/{calls} selects decoded (miss rate "
          f"{missed / calls:.1%}), {len(notes)} 'not decoded' connection records")
    # Every pgbench connection is accounted for: decoded, or an explicit record.
    check(len(decoded_conns) + len(notes) >= TRANSACTIONS,
          f"{len(decoded_conns)} decoded + {len(notes)} noted connections < {TRANSACTIONS}")
    check(missed <= TRANSACTIONS // 10, f"fork race: {missed} of {calls} selects missed")
    # The summary counts the same: connections decoded from TLS plaintext, and those not.
    m = re.search(r"TLS: (\d+) connections decoded, (\d+) not decoded", t.stderr())
    check(m and int(m.group(1)) >= len(decoded_conns) and int(m.group(2)) == len(notes),
          f"summary's TLS counts: {t.stderr()}")


run_main(test)
