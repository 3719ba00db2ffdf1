"""Connections that are not HTTP/1, traced on the test server (--pid), one tracer run:

(a) curl --http2-prior-knowledge: one record of kind "connection", protocol "http2", and no
    request record for that connection (the Python server cannot speak HTTP/2 and closes);
(b) 4 KB of random bytes, then close: no record at all; the exit summary on stderr counts
    exactly "1 not HTTP";
(c) a normal request on a new connection afterwards still gives its record.

Oracles: curl's own -w output (its local port, its exit code and what it received), the
bytes the raw client sent."""
import os
import random
import re
import socket
import subprocess
import time

from harness import (Tracer, check, free_port, get, require_root, run_main,
                     start_python_server, stop)


def test(a):
    require_root()
    port = free_port()
    server = start_python_server(port)
    tracer = Tracer(a.binary, ["--pid", str(server.pid)]).wait_attached()
    seed = int.from_bytes(os.urandom(4), "little")
    try:
        # (a) HTTP/2 with prior knowledge.
        h2 = subprocess.run(["curl", "-s", "--max-time", "10", "--http2-prior-knowledge",
                             "-o", "/dev/null", "-w", "%{local_port} %{http_version}",
                             f"http://127.0.0.1:{port}/fast"],
                            capture_output=True, text=True, timeout=30)
        print(f"  (a) curl --http2-prior-knowledge: exit {h2.returncode}, -w {h2.stdout!r}")
        h2_port = int(h2.stdout.split()[0])
        check(h2_port > 0, f"curl did not connect: {h2.stdout!r} {h2.stderr!r}")

        # (b) 4 KB of random bytes, then close.
        junk = random.Random(seed).randbytes(4096)
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        junk_port = s.getsockname()[1]
        s.sendall(junk)
        s.close()
        time.sleep(0.3)

        # (c) A normal request on another connection.
        ok = subprocess.run(["curl", "-s", "--max-time", "10", "-o", "/dev/null", "-w",
                             "%{http_code} %{local_port} %{size_download}",
                             f"http://127.0.0.1:{port}/fast?after=1"],
                            capture_output=True, text=True, timeout=30)
        check(ok.returncode == 0, f"(c) curl exit {ok.returncode}: {ok.stderr}")
        code, ok_port, ok_size = map(int, ok.stdout.split())
        check(code == 200, f"(c) the server answered {code}")
        time.sleep(0.5)
        rc = tracer.stop()
    finally:
        if tracer.proc.poll() is None:
            tracer.stop()
        stop(server)
    err = tracer.stderr()
    check(rc == 0, f"tracer exit code {rc}:\n{err}")
    allr = tracer.records(None)
    for r in allr:
        print(f"  record: kind={r.get('kind')} protocol={r.get('protocol')} "
              f"peer={get(r, 'network.peer.port')} client={get(r, 'client.port')} "
              f"{get(r, 'http.request.method')} {get(r, 'url.path')}")

    def port_of(r):
        return get(r, "network.peer.port", get(r, "client.port"))

    # (a)
    conns = [r for r in allr if r.get("kind") == "connection"]
    check(len(conns) == 1, f"(a) expected exactly 1 connection record, got {conns}")
    c = conns[0]
    check(c.get("protocol") == "http2", f"(a) protocol {c.get('protocol')!r}, expected 'http2'")
    check(c.get("side") == "server", f"(a) side {c.get('side')!r}, expected 'server'")
    check(get(c, "process.pid") == server.pid, f"(a) process.pid {get(c, 'process.pid')}")
    check(port_of(c) == h2_port,
          f"(a) connection record's peer port {port_of(c)}, curl's local port {h2_port}")
    h2_reqs = [r for r in allr if r.get("kind") == "request" and port_of(r) == h2_port]
    check(not h2_reqs, f"(a) request records for the HTTP/2 connection: {h2_reqs}")

    # (b)
    junk_recs = [r for r in allr if port_of(r) == junk_port]
    check(not junk_recs, f"(b) records for the random-bytes connection (seed {seed}): "
                         f"{junk_recs}")
    m = re.search(r"(\d+) not HTTP", err)
    check(m is not None, f"(b) no 'N not HTTP' in the exit summary:\n{err}")
    check(int(m.group(1)) == 1, f"(b) exit summary counts {m.group(1)} not HTTP, expected 1 "
                                f"(seed {seed}):\n{err}")

    # (c)
    reqs = [r for r in allr if r.get("kind") == "request"]
    check(len(reqs) == 1, f"(c) expected exactly 1 request record, got {reqs}")
    r = reqs[0]
    check((get(r, "http.request.method"), get(r, "url.path"), get(r, "url.query"),
           get(r, "http.response.status_code")) == ("GET", "/fast", "after=1", 200),
          f"(c) record {r}")
    check(r.get("side") == "server" and r.get("complete") is True, f"(c) record {r}")
    check(get(r, "client.port") == ok_port,
          f"(c) client.port {get(r, 'client.port')}, curl's local port {ok_port}")
    check(get(r, "http.response.body.size") == ok_size,
          f"(c) body size {get(r, 'http.response.body.size')}, curl downloaded {ok_size}")
    check(len(allr) == 2, f"expected 2 records in all, got {len(allr)}")

    # The exit summary's connection count: exactly 3 TCP connections reached the server.
    m = re.search(r"(\d+) connections", err)
    check(m is not None and int(m.group(1)) == 3,
          f"3 connections were made to the traced server (h2, random bytes, /fast); the exit "
          f"summary says:\n{err}")


run_main(test)
