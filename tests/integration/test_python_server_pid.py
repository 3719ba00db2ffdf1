"""A Python HTTP/1.1 server traced by --pid: exact methods, paths, statuses and
counts; server-side latency against tshark's packet-level http.time."""
import subprocess
import time

from harness import (Tracer, Tshark, check, cpu_split, free_port, get, pin, require_root,
                     run_main, start_python_server, stop)

# (method, path, expected status, curl extra args)
REQUESTS = [
    ("GET", "/fast", 200, []),
    ("GET", "/slow?ms=200", 200, []),
    ("GET", "/slow?ms=0", 200, []),
    ("GET", "/error", 500, []),
    ("GET", "/notfound", 404, []),
    ("GET", "/chunked?n=4&pause_ms=60", 200, []),
    # Larger than the 4 KiB capture, smaller than the client's receive window: past the window
    # the tail leaves only as the client reads, after the server's write returned
    # (docs/ARCHITECTURE.md, "Timing").
    ("GET", "/large?bytes=60000", 200, []),
    ("POST", "/echo", 200, ["--data-binary", "x" * 5000]),
    ("HEAD", "/fast", 200, ["-I"]),
]


def test(a):
    require_root()
    port = free_port()
    # Server and clients on different CPUs: a client woken on the server's CPU preempts the
    # server between its transmit and the return of its send(), which moves the end of the
    # server's write away from the wire by up to a scheduler slice (docs/ARCHITECTURE.md).
    server_cpus, client_cpus = cpu_split()
    server = start_python_server(port, cpus=server_cpus)
    tshark = Tshark(port)
    tracer = Tracer(a.binary, ["--pid", str(server.pid)]).wait_attached()
    try:
        for method, path, _, extra in REQUESTS:
            cmd = ["curl", "-s", "-o", "/dev/null", "-X", method, *extra,
                   f"http://127.0.0.1:{port}{path}"]
            if method == "HEAD":
                cmd = ["curl", "-s", "-o", "/dev/null", "-I", f"http://127.0.0.1:{port}{path}"]
            subprocess.run(cmd, check=True, timeout=30, preexec_fn=pin(client_cpus))
        # Keep-alive: several requests on one connection.
        subprocess.run(["curl", "-s", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                        f"http://127.0.0.1:{port}/fast", f"http://127.0.0.1:{port}/error",
                        f"http://127.0.0.1:{port}/slow?ms=50"], check=True, timeout=30,
                       preexec_fn=pin(client_cpus))
        time.sleep(0.5)
    finally:
        wire = tshark.stop_and_read()
        rc = tracer.stop()
        stop(server)
    check(rc == 0, f"tracer exit code {rc}:\n{tracer.stderr()}")
    recs = tracer.records()
    expected = [(m, p.split("?")[0], s) for m, p, s, _ in REQUESTS] + [
        ("GET", "/fast", 200), ("GET", "/error", 500), ("GET", "/slow", 200)]
    got = [(get(r, "http.request.method"), get(r, "url.path"),
            get(r, "http.response.status_code")) for r in recs]
    check(sorted(got) == sorted(expected),
          f"records differ:\n expected {sorted(expected)}\n got      {sorted(got)}")
    for r in recs:
        check(r["side"] == "server", f"side {r['side']} for {get(r, 'url.path')}")
        check(get(r, "process.pid") == server.pid, f"pid {get(r, 'process.pid')}")
        check(r["protocol"] == "http" and r["complete"], f"incomplete record {r}")
        check(get(r, "client.address") == "127.0.0.1", f"client.address {r}")
        check(get(r, "server.port") == port, f"server.port {r}")
    large = [r for r in recs if get(r, "url.path") == "/large"][0]
    check(get(large, "http.response.body.size") == 60000,
          f"/large body size {get(large, 'http.response.body.size')}")
    post = [r for r in recs if get(r, "http.request.method") == "POST"][0]
    check(get(post, "http.request.body.size") == 5000, f"POST body {get(post, 'http.request.body.size')}")
    check(get(post, "http.response.body.size") == 5000, "POST echo size")
    head = [r for r in recs if get(r, "http.request.method") == "HEAD"][0]
    check(get(head, "http.response.body.size") == 0, "HEAD has no body")

    # Latency oracle: tshark's http.time for the same request (matched by URI
    # and order). Tolerance max(1 ms, 2 %).
    check(len(wire) == len(recs), f"tshark saw {len(wire)} responses, we {len(recs)}")
    ours = sorted(recs, key=lambda r: r["time_unix_nano"])
    by_uri = {}
    for w in wire:
        path = w["uri"].split("://", 1)[-1]
        path = path[path.find("/"):] if "/" in path else path
        by_uri.setdefault(path.split("?")[0], []).append(w)
    bad = []
    for r in ours:
        w = by_uri[get(r, "url.path")].pop(0)
        tol = max(1.0, 0.02 * w["time_ms"])
        diff = abs(r["duration_ms"] - w["time_ms"])
        print(f"  {get(r, 'http.request.method'):5} {get(r, 'url.path'):10} ours {r['duration_ms']:9.3f} ms"
              f"  tshark {w['time_ms']:9.3f} ms  diff {diff:.3f}")
        if diff > tol:
            start = r["time_unix_nano"] / 1e9
            bad.append(f"{get(r, 'url.path')}: {r['duration_ms']} ms vs tshark {w['time_ms']} ms; "
                       f"start {1000 * (start - w['start_s']):+.3f} ms, end "
                       f"{1000 * (start + r['duration_ms'] / 1000 - w['end_s']):+.3f} ms from the wire")

    check(not bad, 'latency differs from tshark beyond max(1 ms, 2 %):\n  ' + '\n  '.join(bad))


run_main(test)
