"""--exe: the tracer starts before any curl exists; every curl exec'd later is traced (two
runs, two PIDs), while a Python urllib client (another executable) talking to the same server
is not; the server (python3) is not traced either."""
import os
import shutil
import subprocess
import sys

from harness import (Tracer, check, free_port, get, require_root, run_main, skip,
                     start_python_server, stop, summary)

PY_CLIENT = """
import sys, urllib.error, urllib.request
for path in sys.argv[2:]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}{path}", timeout=30) as r:
            r.read()
    except urllib.error.HTTPError as e:
        e.read()
"""


def test(a):
    require_root()
    curl_path = shutil.which("curl")
    if not curl_path:
        skip("curl is not installed")
    curl_real = os.path.realpath(curl_path)
    check(os.path.realpath(sys.executable) != curl_real, "python3 is curl?")
    port = free_port()
    server = start_python_server(port)
    tracer = None
    try:
        tracer = Tracer(a.binary, ["--exe", curl_real]).wait_attached()
        pids = []
        for path in ("/fast", "/error"):
            p = subprocess.Popen([curl_path, "-s", "-o", "/dev/null",
                                  f"http://127.0.0.1:{port}{path}"])
            pids.append(p.pid)
            check(p.wait(30) == 0, f"curl {path} failed")
        subprocess.run([sys.executable, "-c", PY_CLIENT, str(port), "/fast?client=python",
                        "/slow?ms=20", "/notfound"], check=True, timeout=60)
    finally:
        rc = tracer.stop() if tracer else None
        stop(server)
    check(rc == 0, f"tracer exit code {rc}:\n{tracer.stderr()}")
    recs = tracer.records()
    expected = [("GET", "/error", 500), ("GET", "/fast", 200)]
    check(summary(recs) == expected,
          f"records differ (only the two curl runs may appear):\n expected {expected}\n"
          f" got      {summary(recs)}\n all: {recs}")
    recs.sort(key=lambda r: r["time_unix_nano"])
    got_pids = [get(r, "process.pid") for r in recs]
    check(got_pids == pids, f"process.pid {got_pids}, the two curl runs were {pids}")
    for r in recs:
        check(r.get("side") == "client", f"side {r.get('side')!r}")
        check(get(r, "process.command") == "curl", f"process.command {get(r, 'process.command')}")
        check(get(r, "server.port") == port, f"server.port {get(r, 'server.port')}")
        check(r.get("complete") is True, f"incomplete: {r}")
    check(not any(get(r, "url.query") == "client=python" for r in tracer.records(None)),
          "the python client was traced")


run_main(test)
