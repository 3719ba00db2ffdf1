"""HTTP/1.1 over a Unix domain socket (servers/unix_http_server.py, the test server's
endpoints on AF_UNIX) with curl --unix-socket:
- traced by the server's --pid: server-side records with network.transport "unix";
- launch mode (`odigos-trace -- curl --unix-socket ...`): client-side records.
Oracle: curl's own -w output (status and downloaded size per transfer, connections opened)."""
import os
import socket
import subprocess
import sys
import tempfile
import time

from harness import (SERVERS, Failure, Tracer, check, get, read_ndjson, require_root,
                     run_main, stop, summary)

# (method, path with query, expected status, request body bytes)
REQS = [
    ("GET", "/fast", 200, 0),
    ("GET", "/error?u=1", 500, 0),
    ("GET", "/notfound", 404, 0),
    ("GET", "/chunked?n=3&pause_ms=20", 200, 0),
    ("GET", "/slow?ms=30", 200, 0),
]
POST_BODY = 3000
WFMT = "%{http_code} %{size_download} %{num_connects}\\n"


def start_unix_server(path):
    p = subprocess.Popen([sys.executable, os.path.join(SERVERS, "unix_http_server.py"), path],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    end = time.time() + 10
    while time.time() < end:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            s.close()
            return p
        except OSError:
            time.sleep(0.05)
    stop(p)
    raise Failure(f"the Unix socket server did not listen on {path}")


def curl_cmds(path):
    """Two curl invocations: the GETs on one keep-alive connection, then a POST."""
    gets = ["curl", "-s", "--max-time", "20", "--unix-socket", path, "-w", WFMT]
    for _, p, _, _ in REQS:
        gets += ["-o", "/dev/null", f"http://x{p}"]
    post = ["curl", "-s", "--max-time", "20", "--unix-socket", path, "-w", WFMT, "-o",
            "/dev/null", "--data-binary", "y" * POST_BODY, "http://x/echo?u=2"]
    return gets, post


def parse_w(out, n):
    lines = [l.split() for l in out.splitlines() if l.strip()]
    check(len(lines) == n, f"expected {n} lines of curl -w output, got {out!r}")
    return [(int(c), int(s), int(k)) for c, s, k in lines]


def expected():
    return sorted([(m, p.split("?")[0], s) for m, p, s, _ in REQS] + [("POST", "/echo", 200)])


def check_records(recs, side, pids, command, oracle, what):
    check(summary(recs) == expected(),
          f"{what}: records differ:\n expected {expected()}\n got      {summary(recs)}")
    recs = sorted(recs, key=lambda r: r["time_unix_nano"])
    wants = [(m, p, b) for m, p, _, b in REQS] + [("POST", "/echo?u=2", POST_BODY)]
    for r, (m, p, reqbody), (code, size, _) in zip(recs, wants, oracle):
        path, query = (p.split("?", 1) + [None])[:2]
        where = f"{what}: {m} {p}"
        check((get(r, "http.request.method"), get(r, "url.path"), get(r, "url.query")) ==
              (m, path, query), f"{where}: order: record is {get(r, 'http.request.method')} "
                                f"{get(r, 'url.path')} ?{get(r, 'url.query')}")
        check(r.get("kind") == "request" and r.get("protocol") == "http",
              f"{where}: kind {r.get('kind')!r} protocol {r.get('protocol')!r}")
        check(get(r, "network.transport") == "unix",
              f"{where}: network.transport {get(r, 'network.transport')!r}, expected 'unix'")
        check(r.get("side") == side, f"{where}: side {r.get('side')!r}, expected {side!r}")
        check(r.get("complete") is True, f"{where}: complete {r.get('complete')!r}")
        check(get(r, "process.pid") in pids, f"{where}: process.pid {get(r, 'process.pid')}, "
                                             f"expected one of {pids}")
        check(get(r, "process.command") == command,
              f"{where}: process.command {get(r, 'process.command')!r}, expected {command!r}")
        check(get(r, "http.response.status_code") == code,
              f"{where}: status {get(r, 'http.response.status_code')}, curl got {code}")
        check(get(r, "http.response.body.size") == size,
              f"{where}: response body size {get(r, 'http.response.body.size')}, curl "
              f"downloaded {size}")
        check(get(r, "http.request.body.size") == reqbody,
              f"{where}: request body size {get(r, 'http.request.body.size')}, curl sent "
              f"{reqbody}")
        check(get(r, "server.address") == "x",
              f"{where}: server.address {get(r, 'server.address')!r}, Host header was 'x'")
        ua = get(r, "user_agent.original") or ""
        check(ua.startswith("curl/"), f"{where}: user_agent.original {ua!r}")
        for k in ("network.peer.port", "network.local.port", "client.port"):
            check(get(r, k) in (None, 0), f"{where}: {k} {get(r, k)!r} on a Unix socket")


def test(a):
    require_root()
    tmp = tempfile.mkdtemp(prefix="odigos-unix-")
    os.chmod(tmp, 0o755)
    path = os.path.join(tmp, "http.sock")
    server = start_unix_server(path)
    os.chmod(path, 0o666)  # launch mode may run curl as $SUDO_USER
    gets, post = curl_cmds(path)
    try:
        # Server side, --pid.
        tracer = Tracer(a.binary, ["--pid", str(server.pid)]).wait_attached()
        try:
            g = subprocess.run(gets, capture_output=True, text=True, timeout=60)
            p = subprocess.run(post, capture_output=True, text=True, timeout=60)
            time.sleep(0.3)
        finally:
            rc = tracer.stop()
        check(rc == 0, f"tracer exit code {rc}:\n{tracer.stderr()}")
        check(g.returncode == 0 and p.returncode == 0,
              f"curl exit {g.returncode}/{p.returncode}: {g.stderr} {p.stderr}")
        oracle = parse_w(g.stdout, len(REQS)) + parse_w(p.stdout, 1)
        check([c for c, _, _ in oracle] == [s for _, _, s, _ in REQS] + [200],
              f"curl statuses {oracle}")
        check(sum(k for _, _, k in oracle[:len(REQS)]) == 1,
              f"curl opened {sum(k for _, _, k in oracle[:len(REQS)])} connections for the GETs")
        allr = tracer.records(None)
        print(f"  --pid (server): {summary(allr)}")
        check(len(allr) == len(REQS) + 1, f"--pid: {len(allr)} records: {allr}")
        check_records(allr, "server", {server.pid}, "python3", oracle, "--pid (server)")

        # Client side, launch mode.
        for n, cmd in enumerate((gets, post)):
            out = os.path.join(tmp, f"launch{n}.ndjson")
            try:
                r = subprocess.run([a.binary, "-q", "-o", out, "--", *cmd],
                                   capture_output=True, text=True, timeout=60)
            except subprocess.TimeoutExpired:
                raise Failure(f"launch of {cmd[:4]}... did not finish in 60 s")
            check(r.returncode == 0, f"launch: exit {r.returncode}:\n{r.stderr}")
            if n == 0:
                oracle = parse_w(r.stdout, len(REQS))
                recs = read_ndjson(out, None)
            else:
                oracle += parse_w(r.stdout, 1)
                recs += read_ndjson(out, None)
        print(f"  launch (client): {summary(recs)}")
        check(len(recs) == len(REQS) + 1, f"launch: {len(recs)} records: {recs}")
        # The GETs come from the first curl, the POST from the second: one pid each.
        get_pids = {get(r, "process.pid") for r in recs if get(r, "http.request.method") == "GET"}
        post_pids = {get(r, "process.pid") for r in recs if get(r, "http.request.method") == "POST"}
        check(len(get_pids) == 1 and len(post_pids) == 1 and get_pids != post_pids,
              f"launch: GET records from pids {get_pids}, POST from {post_pids}: expected one "
              "curl pid each, different")
        check_records(recs, "client", get_pids | post_pids, "curl", oracle, "launch (client)")
    finally:
        stop(server)
        try:
            os.unlink(path)
            os.rmdir(tmp)
        except OSError:
            pass


run_main(test)
