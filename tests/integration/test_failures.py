"""Failures: a refused connect, a connection reset by the server, a request still pending
when the tracer is stopped, and a server SIGKILLed in the middle of a request. Oracles:
curl's own exit codes, and the kernel's socket table (ss) to know when a request has been
read by the server, instead of sleeping."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import (Failure, Tracer, check, free_port, get, read_ndjson, require_root,
                     run_main, skip, start_python_server, stop)


def server_sockets(port):
    """[(recv_q, bytes_received)] for established sockets whose local port is port."""
    out = subprocess.run(["ss", "-tniH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, timeout=10).stdout
    socks, cur = [], None
    for line in out.splitlines():
        if not line.startswith((" ", "\t")):
            f = line.split()
            cur = [int(f[0]), 0]
            socks.append(cur)
        elif cur is not None:
            m = re.search(r"bytes_received:(\d+)", line)
            if m:
                cur[1] = int(m.group(1))
    return socks


def wait_request_read(port, timeout=20):
    """Waits until a server-side socket on port has received bytes and the server has read
    them all (Recv-Q 0): the request is in the server's hands."""
    end = time.time() + timeout
    while time.time() < end:
        if any(q == 0 and n > 0 for q, n in server_sockets(port)):
            return
        time.sleep(0.02)
    raise Failure(f"the server on port {port} did not read a request within {timeout}s: "
                  f"{server_sockets(port)}")


def launch(binary, out, cmd):
    return subprocess.Popen([binary, "-q", "-o", out, "--", *cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def finish(p, what, timeout=60):
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        raise Failure(f"{what}: tracer did not finish in {timeout}s:\n{err}")
    return p.returncode, err


def refused(a, tmp):
    port = free_port()  # bound and released: nothing listens there
    out = os.path.join(tmp, "refused.ndjson")
    rc, err = finish(launch(a.binary, out, ["curl", "-s", f"http://127.0.0.1:{port}/x"]),
                     "refused")
    check(rc == 7, f"curl to a closed port: exit {rc}, expected curl's 7:\n{err}")
    allr = read_ndjson(out, None)
    conns = [r for r in allr if r.get("kind") == "connection"]
    print(f"  refused: {conns}")
    check(len(conns) == 1, f"expected 1 connection record, got {allr}")
    c = conns[0]
    check(get(c, "error.type") == "connection_refused",
          f"error.type {get(c, 'error.type')!r}, expected 'connection_refused': {c}")
    check(c.get("protocol") == "tcp", f"protocol {c.get('protocol')!r}, expected 'tcp': {c}")
    check(get(c, "server.port") == port, f"server.port {get(c, 'server.port')}, expected {port}")
    check(get(c, "server.address") == "127.0.0.1", f"server.address {get(c, 'server.address')!r}")
    check(get(c, "process.command") == "curl", f"process.command {get(c, 'process.command')!r}")
    check(not [r for r in allr if r.get("kind") == "request"], f"request records: {allr}")


def reset(a, tmp, port):
    out = os.path.join(tmp, "reset.ndjson")
    rc, err = finish(launch(a.binary, out, ["curl", "-s", "-o", "/dev/null",
                                            f"http://127.0.0.1:{port}/reset"]), "reset")
    print(f"  /reset: curl exit {rc}")
    check(rc in (52, 56), f"curl /reset exited {rc}, expected 56 (recv failure) or 52:\n{err}")
    recs = read_ndjson(out)
    print(f"  /reset: {recs}")
    check(len(recs) == 1, f"expected one request record for /reset, got {recs}")
    r = recs[0]
    check(get(r, "http.request.method") == "GET" and get(r, "url.path") == "/reset",
          f"record {get(r, 'http.request.method')} {get(r, 'url.path')}")
    check(r.get("side") == "client", f"side {r.get('side')!r}")
    check(r.get("complete") is False, f"complete {r.get('complete')!r}, expected false: {r}")
    check(get(r, "error.type") in ("connection_reset", "connection_closed"),
          f"error.type {get(r, 'error.type')!r}, expected connection_reset/connection_closed")
    check(get(r, "http.response.status_code") is None,
          f"a status code for an unanswered request: {get(r, 'http.response.status_code')}")
    print(f"  /reset: error.type = {get(r, 'error.type')}")


def pending_at_stop(a, port, server):
    tracer = Tracer(a.binary, ["--pid", str(server.pid)]).wait_attached()
    s = None
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(f"GET /slow?ms=3000 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  "User-Agent: pending-test\r\n\r\n".encode())
        wait_request_read(port)
        t0 = time.monotonic()
        rc = tracer.stop(signal.SIGINT)
        stopped = time.monotonic() - t0
    finally:
        if tracer.proc.poll() is None:
            tracer.stop()
        if s:
            s.close()
    check(rc == 0, f"tracer exit code after SIGINT {rc}:\n{tracer.stderr()}")
    check(stopped < 2.5, f"SIGINT took {stopped:.2f} s: the tracer waited for the request")
    recs = tracer.records()
    print(f"  pending at SIGINT: {recs}")
    check(len(recs) == 1, f"expected one record for the pending request, got {recs}")
    r = recs[0]
    check(get(r, "http.request.method") == "GET" and get(r, "url.path") == "/slow" and
          get(r, "url.query") == "ms=3000", f"record {r}")
    check(r.get("side") == "server", f"side {r.get('side')!r}")
    check(r.get("complete") is False, f"complete {r.get('complete')!r}, expected false")
    check(get(r, "error.type") == "incomplete", f"error.type {get(r, 'error.type')!r}, "
                                               "expected 'incomplete'")
    check(get(r, "process.pid") == server.pid, f"process.pid {get(r, 'process.pid')}")
    check(get(r, "user_agent.original") == "pending-test", f"user agent {r}")


def server_killed(a, tmp):
    port = free_port()
    server = start_python_server(port)
    out = os.path.join(tmp, "killed.ndjson")
    p = launch(a.binary, out, ["curl", "-s", "-o", "/dev/null",
                               f"http://127.0.0.1:{port}/slow?ms=5000"])
    try:
        wait_request_read(port)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        rc, err = finish(p, "server killed")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        stop(server)
    print(f"  server SIGKILLed: curl exit {rc}")
    check(rc in (52, 56), f"curl exited {rc}, expected 52 (empty reply) or 56:\n{err}")
    recs = read_ndjson(out)
    print(f"  server SIGKILLed: {recs}")
    check(len(recs) == 1, f"expected one request record, got {recs}")
    r = recs[0]
    check(get(r, "url.path") == "/slow" and r.get("side") == "client", f"record {r}")
    check(r.get("complete") is False, f"complete {r.get('complete')!r}, expected false: {r}")
    check(get(r, "http.response.status_code") is None, f"status code in {r}")
    check(get(r, "error.type") is not None, f"no error.type in {r}")
    print(f"  server SIGKILLed: error.type = {get(r, 'error.type')}")


def test(a):
    require_root()
    if not shutil.which("ss"):
        skip("ss (iproute2) is not installed")
    tmp = tempfile.mkdtemp(prefix="odigos-fail-")
    refused(a, tmp)
    port = free_port()
    server = start_python_server(port)
    try:
        reset(a, tmp, port)
        pending_at_stop(a, port, server)
    finally:
        stop(server)
    server_killed(a, tmp)


run_main(test)
