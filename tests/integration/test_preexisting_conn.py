"""A keep-alive connection opened BEFORE tracing starts. A Python client
(http.client.HTTPConnection) sends one request, then waits on stdin; the tracer is started;
the client sends 3 more requests on the same connection. Exactly those 3 requests must be
recorded, with the right paths and statuses; the request made before tracing must not appear
(not even garbled). Done twice: tracing the server (--pid of the test server: its handler
thread is blocked in recv() on that connection when the tracer attaches) and tracing the
client (--pid of the client process).

Oracle: the client's own view (status, body size and local port of every exchange, printed
by the client as JSON lines); one local port for all 4 requests proves they shared one
connection."""
import json
import selectors
import subprocess
import sys
import time

from harness import (Failure, Tracer, check, cpu_split, free_port, get, pin, require_root,
                     run_main, start_python_server, stop, summary)

CLIENT = r"""
import http.client, json, sys, time
port = int(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

def req(method, path, body=None):
    t0 = time.perf_counter()
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    ms = (time.perf_counter() - t0) * 1000.0
    return {"method": method, "path": path, "status": r.status, "size": len(data), "ms": ms,
            "lport": c.sock.getsockname()[1] if c.sock else None}

print(json.dumps(req("GET", "/fast?phase=pre")), flush=True)
if sys.stdin.readline().strip() != "go":
    sys.exit(3)
for path in ["/slow?ms=100", "/chunked?n=3&pause_ms=30", "/error?phase=post"]:
    print(json.dumps(req("GET", path)), flush=True)
c.close()
"""

PRE = ("GET", "/fast?phase=pre", 200)
POST = [("GET", "/slow?ms=100", 200), ("GET", "/chunked?n=3&pause_ms=30", 200),
        ("GET", "/error?phase=post", 500)]


def split(path):
    p, q = (path.split("?", 1) + [None])[:2]
    return p, q


def start_client(port, cpus):
    return subprocess.Popen([sys.executable, "-c", CLIENT, str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=pin(cpus))


def read_line(p, what, timeout=20):
    """One JSON line from the client, bounded."""
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise Failure(f"client: no output for {what} within {timeout}s")
    finally:
        sel.close()
    line = p.stdout.readline()
    if not line:
        raise Failure(f"client exited before {what}: rc {p.poll()}, stderr:\n{p.stderr.read()}")
    return json.loads(line)


def run_case(a, side, port, server, client_cpus):
    """side: 'server' traces the test server's pid, 'client' the client's pid."""
    client = start_client(port, client_cpus)
    tracer = None
    try:
        pre = read_line(client, "the request before tracing")
        check((pre["method"], pre["path"], pre["status"]) == PRE,
              f"client's pre-tracing exchange {pre}, expected {PRE}")
        target = server.pid if side == "server" else client.pid
        tracer = Tracer(a.binary, ["--pid", str(target)]).wait_attached()
        client.stdin.write("go\n")
        client.stdin.flush()
        got = [read_line(client, f"request {i + 1} after tracing started") for i in range(3)]
        try:
            client.wait(20)
        except subprocess.TimeoutExpired:
            raise Failure("client did not exit")
        check(client.returncode == 0, f"client exit {client.returncode}: {client.stderr.read()}")
        time.sleep(0.3)
        rc = tracer.stop()
    finally:
        if tracer and tracer.proc.poll() is None:
            tracer.stop()
        stop(client)
    check(rc == 0, f"[{side}] tracer exit code {rc}:\n{tracer.stderr()}")

    # The client's view.
    check([(g["method"], g["path"], g["status"]) for g in got] == POST,
          f"[{side}] client saw {got}, expected {POST}")
    lports = {pre["lport"]} | {g["lport"] for g in got}
    check(len(lports) == 1 and None not in lports,
          f"[{side}] client used local ports {lports}: not one keep-alive connection")
    lport = lports.pop()

    allr = tracer.records(None)
    recs = [r for r in allr if r.get("kind") == "request"]
    others = [r for r in allr if r.get("kind") != "request"]
    print(f"  [{side}] records: {summary(recs)}")
    check(not others, f"[{side}] unexpected non-request records: {others}")
    expected = sorted((m, split(p)[0], s) for m, p, s in POST)
    check(summary(recs) == expected,
          f"[{side}] records differ (the pre-tracing request must not appear):\n"
          f" expected {expected}\n got      {summary(recs)}\n all: {allr}")
    recs.sort(key=lambda r: r["time_unix_nano"])
    pid = server.pid if side == "server" else client.pid
    for r, g in zip(recs, got):
        path, query = split(g["path"])
        where = f"[{side}] record for {g['path']}"
        check(get(r, "url.path") == path and get(r, "url.query") == query,
              f"{where}: order/url {get(r, 'url.path')!r} {get(r, 'url.query')!r}")
        check(r.get("side") == side, f"{where}: side {r.get('side')!r}, expected {side!r}")
        check(r.get("protocol") == "http", f"{where}: protocol {r.get('protocol')!r}")
        check(r.get("complete") is True, f"{where}: complete {r.get('complete')!r}: {r}")
        check(get(r, "process.pid") == pid, f"{where}: process.pid {get(r, 'process.pid')}, "
                                            f"expected {pid}")
        check(get(r, "http.response.status_code") == g["status"],
              f"{where}: status {get(r, 'http.response.status_code')}, client saw {g['status']}")
        check(get(r, "http.response.body.size") == g["size"],
              f"{where}: http.response.body.size {get(r, 'http.response.body.size')}, "
              f"client read {g['size']}")
        check(get(r, "http.request.body.size") == 0,
              f"{where}: http.request.body.size {get(r, 'http.request.body.size')}")
        check(get(r, "network.protocol.version") == "1.1",
              f"{where}: network.protocol.version {get(r, 'network.protocol.version')!r}")
        check(get(r, "server.port") == port, f"{where}: server.port {get(r, 'server.port')}")
        check(get(r, "client.port") == lport,
              f"{where}: client.port {get(r, 'client.port')}, client's local port {lport}")
        # The server sleeps 100 ms in /slow and 3 x 30 ms in /chunked; the client's own
        # round trip encloses the exchange on both sides.
        low = {"/slow": 100.0, "/chunked": 90.0}.get(path, 0.0)
        check(low <= r["duration_ms"] <= g["ms"] + 1.0,
              f"{where}: duration_ms {r['duration_ms']} outside [{low}, client's round trip "
              f"{g['ms']:.3f} ms + 1]")
        check(get(r, "server.address") == "127.0.0.1",
              f"{where}: server.address {get(r, 'server.address')!r} (Host: 127.0.0.1:{port})")
        # http.client sends no User-Agent header.
        check(get(r, "user_agent.original") is None,
              f"{where}: user_agent.original {get(r, 'user_agent.original')!r} (none was sent)")


def test(a):
    require_root()
    server_cpus, client_cpus = cpu_split()
    port = free_port()
    server = start_python_server(port, cpus=server_cpus)
    try:
        run_case(a, "server", port, server, client_cpus)
        run_case(a, "client", port, server, client_cpus)
    finally:
        stop(server)


run_main(test)
