"""A private PostgreSQL cluster for the tests: initdb in a temp dir as the postgres user, a
self-signed certificate (SSL accepted), pg_stat_statements preloaded, a free TCP port and a
private Unix socket directory."""
import os
import pwd
import shutil
import subprocess
import tempfile
import time

from harness import check, free_port, wait_port

PG_BIN = None
for v in ("17", "16", "15"):
    if os.path.exists(f"/usr/lib/postgresql/{v}/bin/postgres"):
        PG_BIN = f"/usr/lib/postgresql/{v}/bin"
        break


def as_postgres(cmd, **kw):
    return subprocess.run(["runuser", "-u", "postgres", "--"] + cmd, check=True,
                          capture_output=True, text=True, timeout=120, **kw)


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="odigos-pg-")
        os.chmod(self.dir, 0o755)
        pw = pwd.getpwnam("postgres")
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.sock = self.dir
        self.port = free_port()
        as_postgres([f"{PG_BIN}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres"])
        # A self-signed certificate so that SSL can be accepted (sslmode=require).
        crt, key = os.path.join(self.data, "server.crt"), os.path.join(self.data, "server.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-keyout", key, "-out", crt],
                       check=True, capture_output=True, timeout=60)
        os.chmod(key, 0o600)
        subprocess.run(["chown", "postgres:postgres", crt, key], check=True)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
            f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.sock}'\n"
                    "shared_preload_libraries = 'pg_stat_statements'\n"
                    "pg_stat_statements.track = all\nfsync = off\n")
        self.log = os.path.join(self.dir, "server.log")
        self.proc = subprocess.Popen(["runuser", "-u", "postgres", "--", f"{PG_BIN}/postgres",
                                      "-D", self.data], stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT)
        wait_port(self.port, timeout=30)
        for _ in range(100):
            if self.psql_ok("SELECT 1"):
                break
            time.sleep(0.1)
        self.pid = int(open(os.path.join(self.data, "postmaster.pid")).readline())

    def psql(self, sql, host="127.0.0.1", db="postgres", check_rc=True):
        r = subprocess.run(["psql", "-X", "-q", "-At", "-h", host, "-p", str(self.port), "-U",
                            "postgres", "-d", db, "-c", sql], capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, PGSSLMODE="disable"))
        if check_rc:
            check(r.returncode == 0, f"psql {sql!r} failed: {r.stderr}")
        return r

    def psql_ok(self, sql):
        try:
            return self.psql(sql, check_rc=False).returncode == 0
        except Exception:
            return False

    def stop(self):
        try:
            as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "immediate", "stop"])
        except Exception:
            self.proc.kill()
        self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)
