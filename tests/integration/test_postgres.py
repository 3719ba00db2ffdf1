"""PostgreSQL traced by its postmaster PID (covering the backends it forks), as root.

A private cluster (initdb in a temp dir, pg_stat_statements preloaded) on a free TCP port and
a private Unix socket directory. While odigos-trace --pid <postmaster> runs:
  (a) psql over TCP and over the Unix socket: simple queries, one error (42P01), and
      SELECT pg_sleep(0.2);
  (b) pgbench -M prepared (extended protocol, named statements) for a fixed number of
      transactions, and a second pgbench whose connection was opened BEFORE the tracer
      started (its Parse messages were never seen: records name the statement instead).
Oracles, none of them ours: pg_stat_statements' call counts per statement (reset right
before the traced work), pgbench's own "number of transactions actually processed", the
SQLSTATE PostgreSQL defines for an unknown table, and psql's wall time around the sleep.
Also checks that literals are sanitised by default (db.query.text has '?', not the secret)."""
import os
import shutil
import subprocess
import time

from harness import check_schema, Tracer, check, get, require_root, run_main, skip
from pg_cluster import PG_BIN, Cluster


def stmt_calls(c, like, db):
    out = c.psql(f"SELECT coalesce(sum(s.calls),0) FROM pg_stat_statements s JOIN pg_database d "
                 f"ON d.oid = s.dbid WHERE d.datname = '{db}' AND s.query LIKE '{like}'"
                 ).stdout.strip()
    return int(out or 0)


def main(a):
    binary = a.binary
    require_root()
    if not PG_BIN or not shutil.which("psql") or not shutil.which("pgbench"):
        skip("PostgreSQL server/psql/pgbench missing: run scripts/install-deps.sh")
    # Every client here speaks plaintext unless it asks for TLS itself (the server accepts
    # SSL; libpq's default sslmode=prefer would encrypt everything).
    os.environ["PGSSLMODE"] = "disable"
    c = Cluster()
    try:
        c.psql("CREATE EXTENSION pg_stat_statements")
        for db in ("bench", "early"):
            c.psql(f"CREATE DATABASE {db}")
            subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p",
                            str(c.port), "-U", "postgres", db], check=True, capture_output=True,
                           timeout=120)
        # A pgbench whose connection (and Parse messages) predate the tracer: -T keeps it running
        # across the tracer's start.
        early = subprocess.Popen(["pgbench", "-M", "prepared", "-c", "1", "-T", "6", "-h",
                                  "127.0.0.1", "-p", str(c.port), "-U", "postgres", "early"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.0)
        # --no-tls: the SSL connection below must stay encrypted (TLS plaintext is
        # test_tls_postgres.py).
        t = Tracer(binary, ["--pid", str(c.pid)], extra=["--no-tls"]).wait_attached()
        c.psql("SELECT pg_stat_statements_reset()")
        try:
            # (a) simple queries, TCP and Unix socket.
            secret = "hunter2-literal"
            c.psql(f"SELECT '{secret}' AS s, 42 AS n")
            c.psql("SELECT count(*) FROM pg_class", host=c.sock)
            err = c.psql("SELECT * FROM no_such_table_odigos", check_rc=False)
            check(err.returncode != 0 and "no_such_table_odigos" in err.stderr,
                  f"the error query did not fail: {err.stderr}")
            # COPY out and in (CopyData streams must not desynchronise the connection: the
            # query after them on the same connection is decoded too).
            c.psql("CREATE TABLE copy_target (n int)")
            co = subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(c.port), "-U",
                                 "postgres", "-c", "COPY (SELECT generate_series(1, 1000)) TO STDOUT",
                                 "-c", "SELECT 'after-copy-out'"], capture_output=True, text=True,
                                timeout=60, env=dict(os.environ, PGSSLMODE="disable"))
            check(co.returncode == 0 and co.stdout.count("\n") >= 1000, f"COPY TO STDOUT: {co.stderr}")
            cp = subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(c.port), "-U",
                                 "postgres", "-c", "COPY copy_target FROM STDIN", "-c",
                                 "SELECT 'after-copy-in'"],
                                input="".join(f"{i}\n" for i in range(500)), capture_output=True,
                                text=True, timeout=60, env=dict(os.environ, PGSSLMODE="disable"))
            check(cp.returncode == 0, f"COPY FROM STDIN: {cp.stderr}")
            # An encrypted connection: one explicit record, nothing decoded.
            ssl = subprocess.run(["psql", "-X", "-At", f"host=127.0.0.1 port={c.port} user=postgres "
                                  "dbname=postgres sslmode=require", "-c", "SELECT 'encrypted'"],
                                 capture_output=True, text=True, timeout=60)
            check(ssl.returncode == 0 and ssl.stdout.strip() == "encrypted", f"SSL psql: {ssl.stderr}")
            t0 = time.monotonic()
            c.psql("SELECT pg_sleep(0.2)", host=c.sock)
            psql_wall_ms = (time.monotonic() - t0) * 1000
            # (b) pgbench, extended protocol with named prepared statements.
            pb = subprocess.run(["pgbench", "-M", "prepared", "-c", "2", "-t", "100", "-h",
                                 "127.0.0.1", "-p", str(c.port), "-U", "postgres", "bench"],
                                capture_output=True, text=True, timeout=120)
            check(pb.returncode == 0, f"pgbench failed: {pb.stderr}")
            early_out, _ = early.communicate(timeout=60)
            time.sleep(0.5)
            oracle_updates = stmt_calls(c, "UPDATE pgbench_accounts%", "bench")
        finally:
            if early.poll() is None:
                early.kill()
            rc = t.stop()
        check(rc == 0, f"tracer exit {rc}:\n{t.stderr()}")
        recs = [r for r in t.records() if r.get("protocol") == "postgresql"]
        check_schema(t.records())
        print(f"  {len(recs)} postgresql records; summary: {t.stderr().strip().splitlines()[-1]}")
        check(recs, "no postgresql records")
        for r in recs:
            check(get(r, "db.system.name") == "postgresql", f"db.system.name: {r}")
            check(r.get("side") == "server", f"not a server record: {r}")

        texts = [get(r, "db.query.text", "") for r in recs]
        # Sanitised by default: the literal never appears, its query does with '?'.
        check(not any(secret in x for x in texts), "a literal leaked into db.query.text")
        lit = [r for r in recs if "AS s" in get(r, "db.query.text", "")]
        check(len(lit) == 1 and "?" in get(lit[0], "db.query.text"), f"sanitised query: {lit}")
        check(get(lit[0], "db.operation.name") == "SELECT", f"operation: {lit[0]}")
        check(get(lit[0], "db.response.returned_rows") == 1, f"rows: {lit[0]}")
        check(get(lit[0], "db.namespace") == "postgres", f"namespace: {lit[0]}")

        copies = [r for r in recs if get(r, "db.operation.name") == "COPY"]
        out_rows = sorted(get(r, "db.response.returned_rows", get(r, "odigos.db.affected_rows", -1))
                          for r in copies)
        check(len(copies) == 2 and out_rows == [500, 1000], f"COPY records: {copies}")
        for tag in ("after-copy-out", "after-copy-in"):
            check(any(get(r, "db.query.text") == "SELECT ?" and r["complete"] for r in recs
                      if r["process"]["pid"] in {c2["process"]["pid"] for c2 in copies}),
                  f"query after COPY ({tag}) not decoded")
        enc = [r for r in t.records(kind="connection") if r.get("protocol") == "postgresql"]
        check(len(enc) == 1 and "encrypted" in get(enc[0], "odigos.note", ""),
              f"SSL connection record: {enc}")
        check(not any(get(r, "db.query.text") == "SELECT ?" and r["process"]["pid"] ==
                      enc[0]["process"]["pid"] for r in recs), "bytes of the TLS connection decoded")

        unix = [r for r in recs if get(r, "db.query.text") == "SELECT count(*) FROM pg_class"]
        check(len(unix) == 1 and get(unix[0], "network.transport") == "unix",
              f"query over the Unix socket: {unix}")

        errs = [r for r in recs if "no_such_table_odigos" in get(r, "db.query.text", "")]
        check(len(errs) == 1, f"error records: {errs}")
        check(get(errs[0], "db.response.status_code") == "42P01" and
              get(errs[0], "error.type") == "42P01", f"SQLSTATE of the error: {errs[0]}")

        sl = [r for r in recs if "pg_sleep" in get(r, "db.query.text", "")]
        check(len(sl) == 1, f"pg_sleep records: {sl}")
        d = sl[0]["duration_ms"]
        check(200 <= d <= psql_wall_ms, f"pg_sleep(0.2) took {d} ms; psql's wall time "
                                         f"{psql_wall_ms:.1f} ms")

        # pgbench: every UPDATE pgbench_accounts the server ran in database "bench" (the
        # traced pgbench's) is exactly one record with its text.
        ours = [r for r in recs if get(r, "db.query.text", "").startswith("UPDATE pgbench_accounts")
                and get(r, "db.namespace") == "bench" and not get(r, "odigos.db.prepare")]
        named = [r for r in recs if get(r, "db.stored_procedure.name") is not None and
                 get(r, "db.query.text") is None]
        print(f"  UPDATE pgbench_accounts in 'bench': pg_stat_statements {oracle_updates}, "
              f"records {len(ours)}; records naming a statement prepared before tracing: "
              f"{len(named)}")
        tx = int([l for l in pb.stdout.splitlines() if "actually processed" in l][0].split(":")[1]
                 .split("/")[0])
        check(tx == 200, f"pgbench processed {tx} transactions")
        check(oracle_updates == tx, f"pg_stat_statements counts {oracle_updates} UPDATEs for "
                                    f"{tx} transactions")
        check(len(ours) == oracle_updates, f"{len(ours)} UPDATE records, the server ran "
                                           f"{oracle_updates}")
        # The early pgbench's statements were prepared before tracing: its Executes are
        # reported with the statement's name, text unknown.
        check(named, "no record names a statement whose Parse predates tracing")
        check("early" in early_out or "transactions" in early_out, f"early pgbench: {early_out}")

        # Client side: psql launched by the tracer, over TCP and over the Unix socket (where
        # the kernel sees no connect role: the decoder decides from the bytes).
        import json
        for host in ("127.0.0.1", c.sock):
            out = os.path.join(c.dir, "client.ndjson")
            p = subprocess.run([binary, "-q", "-o", out, "--", "psql", "-X", "-At", "-h", host,
                                "-p", str(c.port), "-U", "postgres", "-c", "SELECT 6 * 7"],
                               capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, PGSSLMODE="disable"))
            check(p.returncode == 0 and p.stdout.strip() == "42", f"launched psql: {p.stdout}{p.stderr}")
            crecs = [json.loads(l) for l in open(out) if '"kind":"request"' in l]
            check_schema(crecs)
            q = [r for r in crecs if get(r, "db.query.text") == "SELECT ? * ?"]
            check(len(q) == 1 and q[0]["side"] == "client" and q[0]["complete"] and
                  get(q[0], "db.response.returned_rows") == 1,
                  f"client-side record over {host}: {crecs}")
    finally:
        c.stop()


if __name__ == "__main__":
    run_main(main)
