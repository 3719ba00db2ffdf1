"""Records are written live, not only when the tracer stops: at low traffic (one request at a
time) each record must reach the -o file, and the --json stdout pipe, within a couple of
seconds of the request (docs/ARCHITECTURE.md: the reader polls the ring buffer every 100 ms),
also when the client keeps its connection open afterwards."""
import os
import select
import socket
import subprocess
import time

from harness import (Failure, Tracer, check, free_port, get, require_root, run_main,
                     start_python_server, stop)

DEADLINE = 3.0  # seconds from the end of the request to the record being written


def lines_in(path):
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        return sum(1 for l in f if l.strip())


def time_to_lines(path, n):
    """Seconds until the file holds n records; None if it does not within DEADLINE + 1 s."""
    t0 = time.monotonic()
    while lines_in(path) < n and time.monotonic() - t0 < DEADLINE + 1:
        time.sleep(0.02)
    return time.monotonic() - t0 if lines_in(path) >= n else None


def curl(port, path):
    subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}{path}"],
                   check=True, timeout=30)


def to_file(a, port, server):
    tracer = Tracer(a.binary, ["--pid", str(server.pid)]).wait_attached()
    delays = []
    try:
        for i in range(3):
            curl(port, f"/fast?i={i}")
            delays.append(time_to_lines(tracer.out, i + 1))
    finally:
        rc = tracer.stop()
    print(f"  -o FILE: record i written after {delays} s; {len(tracer.records())} records at exit")
    check(rc == 0, f"tracer exit code {rc}:\n{tracer.stderr()}")
    check(len(tracer.records()) == 3, f"expected 3 records at exit, got {tracer.records()}")
    check([(get(r, "url.path"), get(r, "url.query"), get(r, "http.response.status_code"))
           for r in tracer.records()] == [("/fast", f"i={i}", 200) for i in range(3)],
          f"-o FILE: records are not the three requests, in order: {tracer.records()}")
    late = [(i, d) for i, d in enumerate(delays) if d is None or d > DEADLINE]
    check(not late, "records not written live to -o FILE: (request, seconds until written; "
                    f"None = not within {DEADLINE + 1} s): {late}")


def keepalive(a, port, server):
    """A client that keeps its connection open: no connection event follows the request."""
    tracer = Tracer(a.binary, ["--pid", str(server.pid)]).wait_attached()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    delays = []
    try:
        f = s.makefile("rb")
        for i in range(2):
            s.sendall(f"GET /fast?ka={i} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            status = f.readline()
            check(status.startswith(b"HTTP/1.1 200"), f"keep-alive response {status!r}")
            length = 0
            while True:
                h = f.readline()
                if h in (b"\r\n", b""):
                    break
                if h.lower().startswith(b"content-length:"):
                    length = int(h.split(b":")[1])
            f.read(length)
            delays.append(time_to_lines(tracer.out, i + 1))
    finally:
        s.close()
        rc = tracer.stop()
    print(f"  keep-alive: record i written after {delays} s")
    check(rc == 0, f"tracer exit code {rc}:\n{tracer.stderr()}")
    check(len(tracer.records()) == 2, f"expected 2 records at exit, got {tracer.records()}")
    check([(get(r, "url.path"), get(r, "url.query"), get(r, "http.response.status_code"))
           for r in tracer.records()] == [("/fast", f"ka={i}", 200) for i in range(2)],
          f"keep-alive: records are not the two requests, in order: {tracer.records()}")
    late = [(i, d) for i, d in enumerate(delays) if d is None or d > DEADLINE]
    check(not late, "keep-alive connection: records not written live (request, seconds until "
                    f"written; None = not within {DEADLINE + 1} s): {late}")


def to_pipe(a, port, server):
    tracer = subprocess.Popen([a.binary, "--pid", str(server.pid), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = tracer.stderr.readline().decode()
        check("attached" in line, f"tracer did not attach: {line}")
        curl(port, "/fast?pipe=1")
        t0 = time.monotonic()
        ready, _, _ = select.select([tracer.stdout], [], [], DEADLINE)
        delay = time.monotonic() - t0
        first = os.read(tracer.stdout.fileno(), 65536).decode() if ready else ""
    finally:
        if tracer.poll() is None:
            tracer.send_signal(2)
            try:
                tracer.wait(30)
            except subprocess.TimeoutExpired:
                tracer.kill()
                tracer.wait()
        rest = tracer.stdout.read().decode()
    print(f"  --json pipe: first bytes after {delay:.2f} s: {first[:80]!r}")
    check(ready and first.startswith("{"),
          f"--json on a pipe: no record within {DEADLINE} s of the request "
          f"(it came only at exit: {bool(rest.strip())})")
    check("pipe=1" in first, f"--json pipe: unexpected first record {first[:300]}")


def test(a):
    require_root()
    port = free_port()
    server = start_python_server(port)
    failures = []
    try:
        for part in (to_file, keepalive, to_pipe):
            try:
                part(a, port, server)
            except Failure as e:
                failures.append(str(e))
    finally:
        stop(server)
    if failures:
        raise Failure("\n".join(failures))


run_main(test)
