"""--port P alone traces every process but only connections on port P: two test servers on
two ports, curl talking to both; only P's requests appear, from both sides (the python server
and curl). Then --all --duration 4s stops by itself after about 4 s with exit code 0 and has
recorded the requests made meanwhile."""
import json
import shutil
import subprocess
import time

from harness import (Tracer, check, free_port, get, require_root, run_main,
                     start_python_server, stop)


def curl(port, *paths):
    cmd = ["curl", "-s", "--max-time", "30"]
    for p in paths:
        cmd += ["-o", "/dev/null", f"http://127.0.0.1:{port}{p}"]
    subprocess.run(cmd, check=True, timeout=60)


def key(r):
    return (r.get("side"), get(r, "http.request.method"), get(r, "url.path"),
            get(r, "url.query"), get(r, "http.response.status_code"))


def test_port(a):
    p, q = free_port(), free_port()
    while q == p:
        q = free_port()
    sp = start_python_server(p)
    tracer = None
    try:
        sq = start_python_server(q)
        try:
            tracer = Tracer(a.binary, ["--port", str(p)]).wait_attached()
            curl(p, "/fast?n=1", "/error")
            curl(q, "/fast?n=2", "/notfound")
            curl(p, "/slow?ms=30")
            curl(q, "/error")
            time.sleep(0.3)
        finally:
            rc = tracer.stop() if tracer else None
            stop(sq)
    finally:
        stop(sp)
    check(rc == 0, f"tracer exit code {rc}:\n{tracer.stderr()}")
    recs = tracer.records()
    others = [r for r in recs if get(r, "server.port") != p]
    check(not others, f"records for a port other than {p} (filtered out port {q}):\n{others}")
    want = []
    for side in ("client", "server"):
        want += [(side, "GET", "/fast", "n=1", 200), (side, "GET", "/error", None, 500),
                 (side, "GET", "/slow", "ms=30", 200)]
    got = sorted(map(key, recs), key=str)
    check(got == sorted(want, key=str),
          f"--port {p}: records differ:\n expected {sorted(want, key=str)}\n got      {got}")
    for r in recs:
        if r["side"] == "server":
            check(get(r, "process.pid") == sp.pid,
                  f"server record from pid {get(r, 'process.pid')}, server is {sp.pid}")
        else:
            check(get(r, "process.command") == "curl",
                  f"client record from {get(r, 'process.command')!r}")
        check(r.get("complete") is True, f"incomplete record {r}")


def test_all_duration(a):
    port = free_port()
    server = start_python_server(port)
    tracer = None
    try:
        started = time.monotonic()
        tracer = Tracer(a.binary, ["--all", "--duration", "4s"]).wait_attached()
        attached = time.monotonic()
        curl(port, "/fast?tag=all", "/error?tag=all")
        curl(port, "/chunked?n=2&pause_ms=20")
        rc = tracer.wait(timeout=30)
        ended = time.monotonic()
    finally:
        if tracer and tracer.proc.poll() is None:
            tracer.stop()
        stop(server)
    print(f"  --duration 4s: attached after {attached - started:.2f} s, "
          f"exited {ended - started:.2f} s after start")
    check(rc == 0, f"--all --duration 4s exited {rc}:\n{tracer.stderr()}")
    check(ended - attached >= 3.5,
          f"--duration 4s exited {ended - attached:.2f} s after attaching (too early)")
    check(ended - attached <= 4.0 + 1.5,
          f"--duration 4s exited {ended - attached:.2f} s after attaching (too late)")
    # --all records everything on the host (other benchmarks may be running): only lines
    # that mention the port are parsed.
    recs = []
    with open(tracer.out) as f:
        for line in f:
            if f'"port":{port}' in line.replace(" ", ""):
                r = json.loads(line)
                if r.get("kind") == "request" and get(r, "server.port") == port:
                    recs.append(r)
    shutil.rmtree(tracer.tmp, ignore_errors=True)  # can be large with --all
    want = []
    for side in ("client", "server"):
        want += [(side, "GET", "/fast", "tag=all", 200), (side, "GET", "/error", "tag=all", 500),
                 (side, "GET", "/chunked", "n=2&pause_ms=20", 200)]
    got = sorted(map(key, recs), key=str)
    check(got == sorted(want, key=str),
          f"--all: records for port {port} differ:\n expected {sorted(want, key=str)}\n"
          f" got      {got}")
    for r in recs:
        if r["side"] == "server":
            check(get(r, "process.pid") == server.pid, f"server pid {get(r, 'process.pid')}")


def test(a):
    require_root()
    test_port(a)
    test_all_duration(a)


run_main(test)
