"""MariaDB traced by its server PID, with the mariadb client over TCP and the Unix socket.

A private server (mariadb-install-db into a temp dir, a free TCP port, its own socket). While
odigos-trace --pid <mariadbd> runs: the mariadb client sends simple queries over both socket
kinds, an error (unknown table: error 1146), SELECT SLEEP(0.2), and SQL-level PREPARE/EXECUTE;
then Perl's DBD::MariaDB with mariadb_server_prepare=1 prepares one statement through the
binary protocol (COM_STMT_PREPARE) and executes it 5 times (COM_STMT_EXECUTE: the records must
carry the prepared text, found by statement id), and pings (COM_PING).
Oracles, none of them ours: SHOW GLOBAL STATUS counters (Com_insert, Com_select,
Com_stmt_prepare, Com_stmt_execute) read before and after, the error number MariaDB defines,
the client's wall time around SLEEP(0.2)."""
import os
import re
import shutil
import subprocess
import tempfile
import time

from harness import check_schema, Tracer, check, free_port, get, require_root, run_main, skip, wait_port


class Server:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="odigos-mariadb-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "mysqld.sock")
        self.port = free_port()
        r = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.data}",
                            "--user=mysql", "--auth-root-authentication-method=normal",
                            "--skip-test-db"], capture_output=True, text=True, timeout=180)
        check(r.returncode == 0, f"mariadb-install-db failed: {r.stdout}{r.stderr}")
        subprocess.run(["chown", "-R", "mysql:mysql", self.dir], check=True)
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.data}", f"--socket={self.sock}",
             f"--port={self.port}", "--bind-address=127.0.0.1", "--user=mysql",
             f"--pid-file={self.dir}/mysqld.pid", "--skip-log-bin", "--innodb-buffer-pool-size=32M",
             f"--log-error={self.dir}/error.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, timeout=60)
        for _ in range(100):
            if self.sql("SELECT 1", check_rc=False).returncode == 0:
                break
            time.sleep(0.2)
        self.pid = self.proc.pid

    def sql(self, q, tcp=True, check_rc=True, db=None):
        conn = ["-h", "127.0.0.1", "-P", str(self.port), "--protocol=TCP"] if tcp else \
            ["-S", self.sock, "--protocol=SOCKET"]
        cmd = ["mariadb", "--no-defaults", "-u", "root", "--skip-ssl", "-N", "-B"] + conn + \
            ([db] if db else []) + ["-e", q]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if check_rc:
            check(r.returncode == 0, f"mariadb -e {q!r}: {r.stderr}")
        return r

    def status(self):
        out = self.sql("SHOW GLOBAL STATUS LIKE 'Com\\_%'").stdout
        return {k: int(v) for k, v in (l.split("\t") for l in out.splitlines() if "\t" in l)}

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def main(a):
    require_root()
    for tool in ("mariadbd", "mariadb", "mariadb-install-db"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            skip(f"{tool} missing: run scripts/install-deps.sh")
    s = Server()
    try:
        s.sql("CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name TEXT)")
        t = Tracer(a.binary, ["--pid", str(s.pid)]).wait_attached()
        try:
            before = s.status()
            s.sql("INSERT INTO items VALUES (1, 'secret-name-1'), (2, 'b')", db="shop")
            s.sql("SELECT id, name FROM items WHERE id >= 1", tcp=False, db="shop")
            err = s.sql("SELECT * FROM no_such_table_odigos", check_rc=False, db="shop")
            check(err.returncode != 0 and "1146" in err.stderr, f"error query: {err.stderr}")
            t0 = time.monotonic()
            s.sql("SELECT SLEEP(0.2)", tcp=False)
            sleep_wall = (time.monotonic() - t0) * 1000
            s.sql("PREPARE st FROM 'SELECT name FROM items WHERE id = ?'; SET @i = 2; "
                  "EXECUTE st USING @i; DEALLOCATE PREPARE st", db="shop")
            perl = subprocess.run(
                ["perl", "-MDBI", "-e",
                 f'my $d = DBI->connect("DBI:MariaDB:database=shop;host=127.0.0.1;port={s.port};'
                 'mariadb_server_prepare=1", "root", "", {RaiseError => 1});'
                 'my $st = $d->prepare("SELECT name FROM items WHERE id = ?");'
                 'for my $i (1..5) { $st->execute(2); my $rows = $st->fetchall_arrayref; '
                 'die "rows" unless @$rows == 1; }'
                 '$st->finish; $d->ping; $d->disconnect; print "ok\\n";'],
                capture_output=True, text=True, timeout=60)
            check(perl.returncode == 0 and perl.stdout.strip() == "ok",
                  f"DBD::MariaDB client: {perl.stdout}{perl.stderr}")
            after = s.status()
        finally:
            rc = t.stop()
        check(rc == 0, f"tracer exit {rc}:\n{t.stderr()}")
        recs = [r for r in t.records() if get(r, "db.system.name") in ("mysql", "mariadb")]
        check_schema(t.records())
        print(f"  {len(recs)} mysql/mariadb records; " + t.stderr().strip().splitlines()[-1])
        check(recs, "no records")
        for r in recs:
            check(get(r, "db.system.name") == "mariadb" and r["protocol"] == "mariadb",
                  f"db.system.name should be mariadb (from the server greeting): {r}")
        texts = [get(r, "db.query.text", "") for r in recs]
        check(not any("secret-name-1" in x for x in texts), "a literal leaked into db.query.text")

        ins = [r for r in recs if get(r, "db.operation.name") == "INSERT"]
        check(len(ins) == 1 and get(ins[0], "odigos.db.affected_rows") == 2 and
              get(ins[0], "db.namespace") == "shop", f"INSERT record: {ins}")
        sel = [r for r in recs if get(r, "db.query.text", "").startswith("SELECT id, name FROM items")]
        check(len(sel) == 1 and get(sel[0], "db.response.returned_rows") == 2 and
              get(sel[0], "network.transport") == "unix", f"SELECT over the socket: {sel}")
        check("?" in get(sel[0], "db.query.text"), f"sanitised: {sel}")
        errs = [r for r in recs if "no_such_table_odigos" in get(r, "db.query.text", "")]
        check(len(errs) == 1 and get(errs[0], "db.response.status_code") == "1146" and
              get(errs[0], "error.type") == "1146", f"error record: {errs}")
        sl = [r for r in recs if "SLEEP" in get(r, "db.query.text", "").upper()]
        check(len(sl) == 1 and 200 <= sl[0]["duration_ms"] <= sleep_wall,
              f"SLEEP(0.2): {sl} (client wall {sleep_wall:.1f} ms)")
        for r in recs:
            print(f"    {get(r, 'db.operation.name')} id={get(r, 'odigos.db.statement_id')} "
                  f"prep={get(r, 'odigos.db.prepare')}: {get(r, 'db.query.text')}")
        # Counts against the server's own counters. MariaDB counts every execution of a
        # SELECT in Com_select: text, failed, SQL-level EXECUTE and binary COM_STMT_EXECUTE
        # alike (a COM_STMT_PREPARE is not an execution).
        def ours(op):
            return sum(1 for r in recs if get(r, "db.operation.name") == op)
        bin_exec = [r for r in recs if r.get("db", {}).get("operation", {}).get("name") == "SELECT"
                    and get(r, "odigos.db.statement_id") is not None]
        prep = [r for r in recs if get(r, "odigos.db.prepare")]
        expected = {
            "Com_insert": ours("INSERT"),
            "Com_select": ours("SELECT") - sum(1 for r in prep if get(r, "db.operation.name") ==
                                               "SELECT") + ours("EXECUTE"),
            # ... and SQL-level PREPARE/EXECUTE in Com_stmt_prepare/Com_stmt_execute too.
            "Com_stmt_prepare": len(prep) + ours("PREPARE"),
            "Com_stmt_execute": len(bin_exec) + ours("EXECUTE"),
        }
        for com, n in expected.items():
            server = after.get(com, 0) - before.get(com, 0)
            print(f"  {com}: server {server}, from records {n}")
            check(n == server, f"{com}: records say {n}, the server counted {server}")
        # Binary-protocol executes carry the prepared text (statement id -> text).
        check(len(bin_exec) == 5 and all(get(r, "db.query.text") ==
                                         "SELECT name FROM items WHERE id = ?" for r in bin_exec),
              f"COM_STMT_EXECUTE records: {bin_exec}")
        check(all(get(r, "db.response.returned_rows") == 1 for r in bin_exec),
              f"rows of the executes: {bin_exec}")
        check(ours("PING") >= 1, "no COM_PING record")
    finally:
        s.stop()


if __name__ == "__main__":
    run_main(main)
