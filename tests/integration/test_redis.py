"""Redis traced by PID (server side) and redis-cli launched by odigos-trace (client side).

A private redis-server (free TCP port, a Unix socket in a temp dir, no persistence,
DEBUG allowed from local clients). While odigos-trace --pid <redis-server> runs:
  redis-cli over TCP and over the Unix socket: SET/GET, an error (LPUSH on a string:
  WRONGTYPE), DEBUG SLEEP 0.2, BLPOP on an empty list with a 0.2 s timeout, and
  redis-benchmark -P 16 (pipelined: 16 commands per write) plus a non-pipelined run.
Oracles, none of them ours: INFO commandstats (calls per command, reset with CONFIG RESETSTAT
right before the traced work), the error text Redis defines, the injected delays and
redis-cli's own wall time. Then `odigos-trace -- redis-cli ...` gives client-side records."""
import os
import re
import shutil
import subprocess
import tempfile
import time

from harness import check_schema, Tracer, check, free_port, get, require_root, run_main, skip, wait_port


def cli(port, *args, sock=None):
    cmd = ["redis-cli"] + (["-s", sock] if sock else ["-h", "127.0.0.1", "-p", str(port)])
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)


def commandstats(port):
    out = cli(port, "INFO", "commandstats").stdout
    calls = {}
    for m in re.finditer(r"cmdstat_([a-z|]+):calls=(\d+)", out):
        calls[m.group(1).upper()] = int(m.group(2))
    return calls


def main(a):
    require_root()
    for tool in ("redis-server", "redis-cli", "redis-benchmark"):
        if not shutil.which(tool):
            skip(f"{tool} missing: run scripts/install-deps.sh")
    tmp = tempfile.mkdtemp(prefix="odigos-redis-")
    port = free_port()
    sock = os.path.join(tmp, "redis.sock")
    srv = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                            "--unixsocket", sock, "--save", "", "--appendonly", "no",
                            "--enable-debug-command", "local", "--dir", tmp],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, timeout=20)
        t = Tracer(a.binary, ["--pid", str(srv.pid)]).wait_attached()
        try:
            check(cli(port, "CONFIG", "RESETSTAT").stdout.strip() == "OK", "CONFIG RESETSTAT")
            check(cli(port, "SET", "greeting", "secret-value-1").stdout.strip() == "OK", "SET")
            check(cli(port, "GET", "greeting", sock=sock).stdout.strip() == "secret-value-1",
                  "GET over the Unix socket")
            e = cli(port, "LPUSH", "greeting", "x")
            check("WRONGTYPE" in e.stdout + e.stderr, f"LPUSH on a string: {e.stdout}{e.stderr}")
            t0 = time.monotonic()
            cli(port, "DEBUG", "SLEEP", "0.2")
            sleep_wall = (time.monotonic() - t0) * 1000
            t0 = time.monotonic()
            cli(port, "BLPOP", "empty-list", "0.2", sock=sock)
            blpop_wall = (time.monotonic() - t0) * 1000
            # MULTI/EXEC on one connection (redis-cli reads commands from stdin).
            m = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)],
                               input="MULTI\nSET txkey 1\nINCR txkey\nEXEC\n", capture_output=True,
                               text=True, timeout=30)
            check("QUEUED" in m.stdout and m.stdout.strip().endswith("2"), f"MULTI/EXEC: {m.stdout}")
            # RESP3 (HELLO 3 first): a map reply.
            r3 = subprocess.run(["redis-cli", "-3", "-h", "127.0.0.1", "-p", str(port), "HGETALL",
                                 "nohash"], capture_output=True, text=True, timeout=30)
            check(r3.returncode == 0, f"redis-cli -3: {r3.stderr}")
            # Pub/sub: messages pushed to a subscriber are not replies to anything.
            sub = subprocess.Popen(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "SUBSCRIBE",
                                    "news"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   text=True)
            time.sleep(0.5)
            for i in range(3):
                cli(port, "PUBLISH", "news", f"message-{i}")
            time.sleep(0.3)
            sub.terminate()
            sub_out = sub.communicate(timeout=10)[0]
            check(sub_out.count("message-") == 3, f"subscriber saw: {sub_out}")
            for extra in (["-P", "16"], []):
                b = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n",
                                    "5000", "-c", "4", "-t", "set,get", "-q"] + extra,
                                   capture_output=True, text=True, timeout=120)
                check(b.returncode == 0, f"redis-benchmark {extra}: {b.stderr}")
            time.sleep(0.3)
            stats = commandstats(port)
        finally:
            rc = t.stop()
        check(rc == 0, f"tracer exit {rc}:\n{t.stderr()}")
        recs = [r for r in t.records() if r.get("protocol") == "redis"]
        check_schema(t.records())
        print(f"  {len(recs)} redis records; server counted {stats}")
        print("  " + t.stderr().strip().splitlines()[-1])
        for r in recs:
            check(get(r, "db.system.name") == "redis" and r.get("side") == "server",
                  f"record: {r}")
        ops = {}
        for r in recs:
            op = get(r, "db.operation.name")
            ops[op] = ops.get(op, 0) + 1
        print(f"  records per operation: {ops}")
        # Every SET and GET the server executed is one record (INFO is read after the
        # benchmarks, so its own call is not in the SET/GET counts).
        for op in ("SET", "GET"):
            check(ops.get(op, 0) == stats.get(op, -1),
                  f"{op}: {ops.get(op, 0)} records, INFO commandstats says {stats.get(op)}")
        check(stats.get("SET", 0) >= 10000, f"SET calls {stats.get('SET')}")

        # Values are redacted by default: the key stays, the value does not.
        sets = [r for r in recs if get(r, "db.query.text", "").startswith("SET greeting")]
        check(len(sets) == 1 and get(sets[0], "db.query.text") == "SET greeting ?",
              f"sanitised SET: {sets}")
        check(not any("secret-value-1" in get(r, "db.query.text", "") for r in recs),
              "a value leaked into db.query.text")

        gets = [r for r in recs if get(r, "db.query.text") == "GET greeting"]
        check(len(gets) == 1 and get(gets[0], "network.transport") == "unix",
              f"GET over the Unix socket: {gets}")

        errs = [r for r in recs if get(r, "db.operation.name") == "LPUSH"]
        check(len(errs) == 1 and get(errs[0], "error.type") == "WRONGTYPE" and
              get(errs[0], "db.response.status_code") == "WRONGTYPE", f"error record: {errs}")

        for op, low, wall in (("DEBUG", 200, sleep_wall), ("BLPOP", 200, blpop_wall)):
            rs = [r for r in recs if get(r, "db.operation.name") == op]
            check(len(rs) == 1, f"{op} records: {rs}")
            d = rs[0]["duration_ms"]
            check(low <= d <= wall, f"{op}: {d} ms, expected >= {low} and <= the client's "
                                    f"{wall:.1f} ms")
            check(rs[0]["complete"], f"{op} incomplete: {rs[0]}")

        # MULTI/EXEC: one record per command, each with its own reply (QUEUED, then EXEC's array).
        for op in ("MULTI", "EXEC"):
            check(ops.get(op) == 1 and stats.get(op) == 1, f"{op}: {ops.get(op)} records, server "
                                                             f"{stats.get(op)}")
        execs = [r for r in recs if get(r, "db.operation.name") == "EXEC"]
        check(get(execs[0], "db.response.returned_rows") == 2, f"EXEC reply: {execs}")
        incrs = [r for r in recs if get(r, "db.operation.name") == "INCR"]
        check(len(incrs) == 1 and incrs[0]["complete"], f"queued INCR: {incrs}")
        # RESP3: HELLO and HGETALL decoded.
        check(ops.get("HELLO") == stats.get("HELLO") == 1, f"HELLO: {ops.get('HELLO')}")
        check(ops.get("HGETALL") == stats.get("HGETALL") == 1, f"HGETALL: {ops.get('HGETALL')}")
        # Pub/sub: one SUBSCRIBE record, three PUBLISH records, and no record made of the three
        # pushed messages.
        check(ops.get("SUBSCRIBE") == 1 and ops.get("PUBLISH") == stats.get("PUBLISH") == 3,
              f"pub/sub records: SUBSCRIBE {ops.get('SUBSCRIBE')}, PUBLISH {ops.get('PUBLISH')}")
        # The messages came >= 0.5 s after SUBSCRIBE's confirmation: had they been taken as
        # its replies, the SUBSCRIBE record would last that long.
        subs = [r for r in recs if get(r, "db.operation.name") == "SUBSCRIBE"]
        check(subs[0]["complete"] and subs[0]["duration_ms"] < 300,
              f"SUBSCRIBE record absorbed the pushed messages: {subs[0]}")

        # Client side: the tracer launches redis-cli.
        out = os.path.join(tmp, "client.ndjson")
        c = subprocess.run([a.binary, "-q", "-o", out, "--", "redis-cli", "-h", "127.0.0.1",
                            "-p", str(port), "INCR", "counter"], capture_output=True, text=True,
                           timeout=60)
        check(c.returncode == 0 and c.stdout.strip() == "1", f"launch: {c.stdout}{c.stderr}")
        import json
        crecs = [json.loads(l) for l in open(out) if '"kind":"request"' in l]
        incr = [r for r in crecs if get(r, "db.operation.name") == "INCR"]
        check(len(incr) == 1 and incr[0]["side"] == "client" and
              get(incr[0], "server.port") == port and incr[0]["complete"],
              f"client-side INCR record: {crecs}")
        # --no-redact shows argument values verbatim.
        c = subprocess.run([a.binary, "-q", "--no-redact", "-o", out, "--", "redis-cli", "-h",
                            "127.0.0.1", "-p", str(port), "SET", "plainkey", "visible-value"],
                           capture_output=True, text=True, timeout=60)
        crecs = [json.loads(l) for l in open(out) if '"kind":"request"' in l]
        check([get(r, "db.query.text") for r in crecs] == ["SET plainkey visible-value"],
              f"--no-redact: {crecs}")
    finally:
        srv.terminate()
        srv.wait(20)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_main(main)
