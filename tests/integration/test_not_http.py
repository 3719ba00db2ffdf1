"""Connections that are not HTTP/1, traced on the test server (--pid):

(a) curl --http2-prior-knowledge: one record of kind "connection", protocol "http2", and no
    request record for that connection (the Python server cannot speak HTTP/2 and closes);
(b) 4 KB of random bytes (no newline among them), then close: no record at all; the exit
    summary on stderr counts exactly "1 not decoded";
(c) a normal request on a new connection afterwards still gives its record.

(a) runs under one tracer, (b) and (c) under a second one, so that each exit summary's counts
("N connections", "N not decoded") have one exact expected value.

Oracles: curl's own -w output (its local port, status and downloaded size), the bytes the raw
client sent, and the number of connections the test made."""
import os
import random
import re
import socket
import subprocess
import time

from harness import (Tracer, check, free_port, get, require_root, run_main,
                     start_python_server, stop)


def port_of(r):
    return get(r, "network.peer.port", get(r, "client.port"))


def show(allr):
    for r in allr:
        print(f"    record: kind={r.get('kind')} protocol={r.get('protocol')} "
              f"peer port={port_of(r)} {get(r, 'http.request.method')} {get(r, 'url.path')} "
              f"{get(r, 'http.response.status_code')}")


def counts(err):
    m = re.search(r"(\d+) connections, (\d+) not decoded", err)
    check(m is not None, f"no 'N connections, N not decoded' in the exit summary:\n{err}")
    return int(m.group(1)), int(m.group(2))


def http2(a, port, server):
    tracer = Tracer(a.binary, ["--pid", str(server.pid)]).wait_attached()
    try:
        h2 = subprocess.run(["curl", "-s", "--max-time", "10", "--http2-prior-knowledge",
                             "-o", "/dev/null", "-w", "%{local_port}",
                             f"http://127.0.0.1:{port}/fast"],
                            capture_output=True, text=True, timeout=30)
        time.sleep(0.3)
        rc = tracer.stop()
    finally:
        if tracer.proc.poll() is None:
            tracer.stop()
    print(f"  (a) curl --http2-prior-knowledge: exit {h2.returncode}, local port {h2.stdout!r}")
    err = tracer.stderr()
    check(rc == 0, f"(a) tracer exit code {rc}:\n{err}")
    h2_port = int(h2.stdout.strip() or 0)
    check(h2_port > 0, f"(a) curl did not connect: {h2.stdout!r} {h2.stderr!r}")
    allr = tracer.records(None)
    show(allr)
    conns = [r for r in allr if r.get("kind") == "connection"]
    check(len(conns) == 1, f"(a) expected exactly 1 connection record, got {allr}")
    c = conns[0]
    check(c.get("protocol") == "http2", f"(a) protocol {c.get('protocol')!r}, expected 'http2'")
    check(c.get("side") == "server", f"(a) side {c.get('side')!r}, expected 'server'")
    check(get(c, "process.pid") == server.pid, f"(a) process.pid {get(c, 'process.pid')}")
    check(port_of(c) == h2_port,
          f"(a) connection record's peer port {port_of(c)}, curl's local port {h2_port}")
    check(len(allr) == 1, f"(a) records besides the connection record (a request decoded from "
                          f"the HTTP/2 connection?): {allr}")
    n_conn, n_not = counts(err)
    check((n_conn, n_not) == (1, 0),
          f"(a) one HTTP/2 connection (reported as a connection record): the exit summary "
          f"counts {n_conn} connections, {n_not} not HTTP; expected 1, 0:\n{err}")


def garbage_then_http(a, port, server):
    seed = int.from_bytes(os.urandom(4), "little")
    tracer = Tracer(a.binary, ["--pid", str(server.pid)]).wait_attached()
    try:
        # (b) 4 KB of random bytes, then close. No b"\n" among them: the Python server's
        # readline() then waits for the close before it answers (400), so every run takes
        # the same path (the answer is written after the client has gone).
        junk = random.Random(seed).randbytes(4096).replace(b"\n", b"\x0b")
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
        time.sleep(0.3)
        rc = tracer.stop()
    finally:
        if tracer.proc.poll() is None:
            tracer.stop()
    err = tracer.stderr()
    check(rc == 0, f"(b,c) tracer exit code {rc}:\n{err}")
    check(ok.returncode == 0, f"(c) curl exit {ok.returncode}: {ok.stderr}")
    code, ok_port, ok_size = map(int, ok.stdout.split())
    check(code == 200, f"(c) the server answered {code}")
    allr = tracer.records(None)
    print(f"  (b) random bytes (seed {seed}) from port {junk_port}; (c) curl from {ok_port}")
    show(allr)

    junk_recs = [r for r in allr if port_of(r) == junk_port]
    check(not junk_recs, f"(b) records for the random-bytes connection (seed {seed}): "
                         f"{junk_recs}")
    reqs = [r for r in allr if r.get("kind") == "request"]
    check(len(allr) == 1 and len(reqs) == 1,
          f"(c) expected exactly 1 record (the /fast request), got {allr}")
    r = reqs[0]
    check((get(r, "http.request.method"), get(r, "url.path"), get(r, "url.query"),
           get(r, "http.response.status_code")) == ("GET", "/fast", "after=1", 200),
          f"(c) record {r}")
    check(r.get("side") == "server" and r.get("complete") is True, f"(c) record {r}")
    check(get(r, "client.port") == ok_port,
          f"(c) client.port {get(r, 'client.port')}, curl's local port {ok_port}")
    check(get(r, "http.response.body.size") == ok_size,
          f"(c) body size {get(r, 'http.response.body.size')}, curl downloaded {ok_size}")
    n_conn, n_not = counts(err)
    check(n_not == 1, f"(b) the exit summary counts {n_not} not HTTP, expected 1 "
                      f"(seed {seed}):\n{err}")
    check(n_conn == 2, f"(b,c) 2 connections were made to the traced server (random bytes, "
                       f"/fast); the exit summary counts {n_conn}:\n{err}")


def test(a):
    require_root()
    port = free_port()
    server = start_python_server(port)
    try:
        http2(a, port, server)
        garbage_then_http(a, port, server)
    finally:
        stop(server)


run_main(test)
