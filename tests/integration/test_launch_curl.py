"""Launch mode, client side: `odigos-trace -- curl URL1 URL2 ...` on one keep-alive
connection. Oracle: curl's own -w output (status, size, local port, and the timing
time_total - time_pretransfer for every transfer). Also: exit-status passthrough
(exit code, 128+signal, 126, 127) and -u USER."""
import os
import signal
import subprocess
import tempfile

from harness import (Failure, check, cpu_split, free_port, get, pin, read_ndjson,
                     require_root, run_main, start_python_server, stop, summary)

# (path with query, expected status, expected response body size or None)
URLS = [
    ("/fast", 200, 5),
    ("/slow?ms=150", 200, 5),
    ("/chunked?n=3&pause_ms=50", 200, 24),
    ("/large", 200, 1 << 20),
    ("/error", 500, 5),
    ("/notfound", 404, 10),
]

# curl's own measurements, one line per transfer.
WFMT = ("%{time_pretransfer} %{time_total} %{http_code} %{size_download} %{local_port} "
        "%{num_connects}\\n")


def launch(binary, cmd, out, timeout=60, preexec_fn=None, extra=()):
    """Runs odigos-trace in launch mode; returns (exit code, stdout, stderr)."""
    full = [binary, "-q", "-o", out, *extra, "--", *cmd]
    try:
        p = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout, preexec_fn=preexec_fn)
    except subprocess.TimeoutExpired as e:
        raise Failure(f"{full} did not finish in {timeout}s; stderr:\n{e.stderr}")
    return p.returncode, p.stdout, p.stderr


def check_transfers(a, port, client_cpus, tmp):
    out = os.path.join(tmp, "curl.ndjson")
    cmd = ["curl", "-s", "-w", WFMT]
    for path, _, _ in URLS:
        cmd += ["-o", "/dev/null", f"http://127.0.0.1:{port}{path}"]
    # The tracer and therefore curl run on a CPU the server does not use: otherwise the
    # server, woken by curl's send(), preempts curl before curl reads its clock for
    # time_pretransfer, and curl's own numbers drift by the server's response time.
    rc, stdout, stderr = launch(a.binary, cmd, out, preexec_fn=pin(client_cpus))
    check(rc == 0, f"launch of curl exited {rc} (curl's own status expected: 0):\n{stderr}")
    lines = [l.split() for l in stdout.splitlines() if l.strip()]
    check(len(lines) == len(URLS),
          f"expected {len(URLS)} lines of curl -w output on the tracer's stdout, got:\n{stdout}")
    oracle = []
    for (path, status, _), f in zip(URLS, lines):
        pre, total, code, size, lport, nconn = f
        oracle.append({"path": path, "ms": (float(total) - float(pre)) * 1000.0,
                       "status": int(code), "size": int(size), "lport": int(lport),
                       "nconn": int(nconn)})
        check(int(code) == status, f"test server answered {code} for {path}, expected {status}")
    check(sum(o["nconn"] for o in oracle) == 1,
          f"curl opened {sum(o['nconn'] for o in oracle)} connections, expected 1 (keep-alive)")

    all_recs = read_ndjson(out, kind=None)
    recs = [r for r in all_recs if r.get("kind") == "request"]
    others = [r for r in all_recs if r.get("kind") != "request"]
    check(not others, f"unexpected non-request records: {others}")
    expected = sorted(("GET", p.split("?")[0], s) for p, s, _ in URLS)
    check(summary(recs) == expected,
          f"records differ:\n expected {expected}\n got      {summary(recs)}")
    recs.sort(key=lambda r: r["time_unix_nano"])
    pids = {get(r, "process.pid") for r in recs}
    check(len(pids) == 1, f"records from several pids: {pids}")
    bad = []
    for r, o in zip(recs, oracle):
        path, query = (o["path"].split("?", 1) + [None])[:2]
        where = f"record for {o['path']}"
        check(get(r, "url.path") == path, f"order: {where} has url.path {get(r, 'url.path')}")
        check(get(r, "url.query") == query, f"{where}: url.query {get(r, 'url.query')!r}, "
                                            f"expected {query!r}")
        check(r.get("side") == "client", f"{where}: side {r.get('side')!r}, expected 'client'")
        check(r.get("protocol") == "http", f"{where}: protocol {r.get('protocol')!r}")
        check(r.get("complete") is True, f"{where}: complete {r.get('complete')!r}")
        check(get(r, "process.command") == "curl",
              f"{where}: process.command {get(r, 'process.command')!r}, expected 'curl'")
        check(get(r, "server.address") == "127.0.0.1",
              f"{where}: server.address {get(r, 'server.address')!r}, expected '127.0.0.1'")
        check(get(r, "server.port") == port, f"{where}: server.port {get(r, 'server.port')}")
        check(get(r, "network.peer.port") == port,
              f"{where}: network.peer.port {get(r, 'network.peer.port')}, expected {port}")
        check(get(r, "network.peer.address") == "127.0.0.1",
              f"{where}: network.peer.address {get(r, 'network.peer.address')!r}")
        check(get(r, "client.port") == o["lport"],
              f"{where}: client.port {get(r, 'client.port')}, curl's local port {o['lport']}")
        check(get(r, "network.protocol.version") == "1.1",
              f"{where}: network.protocol.version {get(r, 'network.protocol.version')!r}")
        ua = get(r, "user_agent.original") or ""
        check(ua.startswith("curl/"), f"{where}: user_agent.original {ua!r}")
        check(get(r, "http.response.body.size") == o["size"],
              f"{where}: http.response.body.size {get(r, 'http.response.body.size')}, "
              f"curl downloaded {o['size']}")
        check(get(r, "http.request.body.size") == 0,
              f"{where}: http.request.body.size {get(r, 'http.request.body.size')}")
        if o["status"] >= 400:
            check(get(r, "error.type") == str(o["status"]),
                  f"{where}: error.type {get(r, 'error.type')!r}, expected '{o['status']}'")
        else:
            check(get(r, "error.type") is None, f"{where}: error.type {get(r, 'error.type')!r}")
        tol = max(1.0, 0.02 * o["ms"])
        diff = abs(r["duration_ms"] - o["ms"])
        print(f"  {o['path']:26} ours {r['duration_ms']:9.3f} ms  curl {o['ms']:9.3f} ms"
              f"  diff {diff:.3f}")
        if diff > tol:
            bad.append(f"{o['path']}: duration_ms {r['duration_ms']} vs curl "
                       f"time_total-time_pretransfer {o['ms']:.3f} ms")
        check(0 <= r["ttfb_ms"] <= r["duration_ms"],
              f"{where}: ttfb_ms {r['ttfb_ms']} outside [0, duration_ms {r['duration_ms']}]")
    check(not bad, "duration differs from curl's beyond max(1 ms, 2 %):\n  " + "\n  ".join(bad))


def check_exit_codes(a, tmp):
    out = os.path.join(tmp, "x.ndjson")
    rc, _, err = launch(a.binary, ["sh", "-c", "exit 3"], out)
    check(rc == 3, f"`-- sh -c 'exit 3'` exited {rc}, expected 3:\n{err}")

    rc, _, err = launch(a.binary, ["sh", "-c", "kill -TERM $$"], out)
    check(rc == 128 + signal.SIGTERM,
          f"`-- sh -c 'kill -TERM $$'` exited {rc}, expected {128 + signal.SIGTERM}:\n{err}")

    rc, _, err = launch(a.binary, ["/nonexistent/cmd"], out)
    check(rc == 127, f"`-- /nonexistent/cmd` exited {rc}, expected 127:\n{err}")
    check("odigos-trace: error:" in err and "/nonexistent/cmd" in err,
          f"`-- /nonexistent/cmd`: no error message naming the command:\n{err}")
    check("Traceback" not in err and "terminate called" not in err, f"crash output:\n{err}")

    script = os.path.join(tmp, "not-executable.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho should-not-run\n")
    os.chmod(script, 0o644)
    rc, stdout, err = launch(a.binary, [script], out)
    check(rc == 126, f"`-- {script}` (mode 0644) exited {rc}, expected 126:\n{err}")
    check("should-not-run" not in stdout, "the non-executable script ran")
    check("odigos-trace: error:" in err and script in err,
          f"`-- {script}`: no error message naming the file:\n{err}")

    rc, stdout, err = launch(a.binary, ["id", "-u"], out, extra=["-u", "nobody"])
    check(rc == 0, f"`-u nobody -- id -u` exited {rc}:\n{err}")
    check(stdout.strip() == "65534", f"`-u nobody -- id -u` printed {stdout!r}, expected 65534")


def test(a):
    require_root()
    server_cpus, client_cpus = cpu_split()
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="odigos-launch-")
    server = start_python_server(port, cpus=server_cpus)
    try:
        check_transfers(a, port, client_cpus, tmp)
    finally:
        stop(server)
    check_exit_codes(a, tmp)


run_main(test)
