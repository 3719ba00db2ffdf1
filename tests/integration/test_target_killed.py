"""The traced server is SIGKILLed while a request is in flight.

The server (servers/http_server.py, /slow?ms=30000) has read the request (its receive queue is
empty, per `ss`) and sleeps before answering when it is killed; the client sees the connection
end without a response byte. Then the tracer, which traces by --port (and, second run, by
--exe: it does not end with its targets), must:
  - keep running, and emit (while still running, not only at exit) one server record for the
    killed request: complete false, error.type connection_closed, no status code, the killed
    server's pid, a duration covering the time the server held it;
  - trace a new server started later on the same port correctly: its requests are complete
    200 records with the new pid, and nothing else appears (no duplicate of the killed request,
    no response paired with the wrong request);
  - exit 0 on SIGINT with its summary line.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import time

from harness import (Tracer, check, free_port, get, require_root, run_main, start_python_server,
                     stop, summary)

HOLD_S = 0.8   # how long the killed server held the request before SIGKILL


def curl(port, path):
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                          f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, timeout=30)
    return int(out.stdout or 0)


def server_recvq_empty(port):
    """True when every established connection of the server on port has nothing unread."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    rows = [l.split() for l in out.splitlines() if l.strip()]
    return bool(rows) and all(r[0] == "0" for r in rows)


def server_records(t):
    return [r for r in t.records() if r.get("side") == "server"]


def scenario(a, label, targets_for):
    port = free_port()
    old = start_python_server(port)
    t = Tracer(a.binary, targets_for(port)).wait_attached()
    new = None
    client = None
    try:
        check(curl(port, "/fast?before") == 200, "warm-up request failed")

        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        client.sendall(b"GET /slow?ms=30000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sent = time.monotonic()
        end = time.time() + 5
        while not server_recvq_empty(port) and time.time() < end:
            time.sleep(0.05)
        check(server_recvq_empty(port), "the server did not read the request")
        time.sleep(max(0.0, HOLD_S - (time.monotonic() - sent)))
        old.send_signal(signal.SIGKILL)
        old.wait(10)
        held_s = time.monotonic() - sent
        got = client.recv(4096)
        check(got == b"", f"the client got bytes from the killed server: {got!r}")
        client.close()
        client = None

        time.sleep(1.0)  # the close, then the tracer's 200 ms grace period
        check(t.proc.poll() is None, f"the tracer exited with its target:\n{t.stderr()}")
        live = [r for r in server_records(t) if get(r, "url.query") == "ms=30000"]
        check(len(live) == 1, f"{label}: no record for the killed request while the tracer runs: "
                              f"{summary(server_records(t))}")

        # A new server on the same port, started later.
        new = start_python_server(port)
        time.sleep(0.3)
        codes = [curl(port, "/fast?after"), curl(port, "/slow?ms=100"), curl(port, "/error")]
        check(codes == [200, 200, 500], f"new server answered {codes}")
        time.sleep(0.5)
        rc = t.stop(signal.SIGINT)
    finally:
        if client:
            client.close()
        stop(old)
        stop(new)
        if t.proc.poll() is None:
            t.proc.kill()
    err = t.stderr()
    check(rc == 0, f"{label}: tracer exit {rc} on SIGINT:\n{err}")
    summ = [l for l in err.splitlines() if re.match(r"odigos-trace: interrupted \(.*records from", l)]
    check(len(summ) == 1, f"{label}: no summary line after SIGINT:\n{err}")
    for bad in ("Traceback", "terminate called", "Segmentation", "Aborted", "error:"):
        check(bad not in err, f"{label}: {bad!r} on stderr:\n{err}")

    recs = server_records(t)
    seen = sorted((get(r, "url.path"), str(get(r, "url.query"))) for r in recs)
    want = sorted([("/fast", "before"), ("/slow", "ms=30000"), ("/fast", "after"),
                   ("/slow", "ms=100"), ("/error", "None")])
    check(seen == want, f"{label}: server records {seen}, expected one per request {want}")
    by_query = {get(r, "url.query"): r for r in recs}

    killed = by_query["ms=30000"]
    check(killed.get("complete") is False, f"{label}: killed request complete: {killed}")
    check(get(killed, "error.type") == "connection_closed",
          f"{label}: killed request error.type {get(killed, 'error.type')!r}: {killed}")
    check(get(killed, "http.response.status_code") is None,
          f"{label}: killed request has a status code: {killed}")
    check(get(killed, "process.pid") == old.pid and get(killed, "url.path") == "/slow" and
          get(killed, "http.request.method") == "GET", f"{label}: killed request fields: {killed}")
    dur = killed.get("duration_ms", 0)
    check(HOLD_S * 1000 - 50 <= dur <= held_s * 1000 + 50,
          f"{label}: killed request duration {dur} ms, the server held it {held_s * 1000:.0f} ms")

    # The test's own client socket is traced too (same port; python for --exe).
    mine = [r for r in t.records() if r.get("side") == "client" and
            get(r, "url.query") == "ms=30000"]
    check(len(mine) == 1 and mine[0].get("complete") is False and
          get(mine[0], "error.type") == "connection_closed" and
          get(mine[0], "process.pid") == os.getpid() and
          get(mine[0], "http.response.status_code") is None,
          f"{label}: client side of the killed request: {mine}")

    before = by_query["before"]
    check(get(before, "process.pid") == old.pid and before.get("complete") is True and
          get(before, "http.response.status_code") == 200, f"{label}: warm-up record {before}")
    expect_new = {"after": ("/fast", 200), "ms=100": ("/slow", 200)}
    for q, (path, status) in expect_new.items():
        r = by_query[q]
        check(get(r, "process.pid") == new.pid and get(r, "url.path") == path and
              r.get("complete") is True and get(r, "http.response.status_code") == status and
              get(r, "error.type") is None, f"{label}: new server's {path}?{q} record: {r}")
    e = by_query[None]
    check(get(e, "http.response.status_code") == 500 and get(e, "process.pid") == new.pid and
          e.get("complete") is True and get(e, "error.type") == "500",
          f"{label}: new server's /error record: {e}")
    slow100 = by_query["ms=100"]
    check(slow100.get("duration_ms", 0) >= 100,
          f"{label}: /slow?ms=100 took {slow100.get('duration_ms')} ms by the tracer")
    print(f"  {label}: killed request -> complete=false error.type=connection_closed "
          f"{dur:.0f} ms (held {held_s * 1000:.0f} ms); new server pid {new.pid}: "
          f"3 records OK; {summ[0]}")


def test(a):
    require_root()
    scenario(a, "--port", lambda port: ["--port", str(port)])
    exe = os.path.realpath(sys.executable)
    scenario(a, "--exe", lambda port: ["--exe", exe, "--port", str(port)])


run_main(test)
