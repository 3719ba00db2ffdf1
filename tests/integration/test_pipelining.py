"""Odd request framing on the wire, traced on the server (--pid of the test server):

1. 5 pipelined GET requests in a single send() on one connection (ThreadingHTTPServer
   answers them one after the other); 5 server-side records, paths and statuses paired
   in order.
2. A request whose start line and headers are sent one byte per send() (TCP_NODELAY).
3. A POST whose 200 KB body (and head) is sent in random-size pieces.

Oracle: the raw-socket client's own parse of the responses it read (status line, body size
and body content per response, in order) and the bytes it sent."""
import os
import random
import socket
import time

from harness import (Failure, Tracer, check, cpu_split, free_port, get, require_root,
                     run_main, start_python_server, stop, summary)

PIPELINED = [  # (path, expected status, expected body)
    ("/fast?i=1", 200, b"fast\n"),
    ("/error", 500, b"boom\n"),
    ("/slow?ms=50", 200, b"slow\n"),
    ("/notfound", 404, b"not found\n"),
    ("/fast?i=5", 200, b"fast\n"),
]


class Reader:
    """Minimal HTTP/1.1 response parser over a socket: the client's own view."""

    def __init__(self, sock):
        self.f = sock.makefile("rb")

    def response(self, head_only=False):
        line = self.f.readline(65536)
        if not line:
            raise Failure("connection closed before a response")
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        check(len(parts) >= 2 and parts[0].startswith("HTTP/1."), f"bad status line {line!r}")
        status = int(parts[1])
        headers = {}
        while True:
            h = self.f.readline(65536).decode("latin-1").rstrip("\r\n")
            if not h:
                break
            k, v = h.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        if head_only:
            return status, headers, b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                n = int(self.f.readline().split(b";")[0].strip(), 16)
                if n == 0:
                    while self.f.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += self.f.read(n)
                self.f.readline()
        else:
            n = int(headers.get("content-length", "0"))
            body = self.f.read(n)
            check(len(body) == n, f"short body: {len(body)} of {n}")
        return status, headers, body


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def split(path):
    return tuple((path.split("?", 1) + [None])[:2])


def ordered(recs):
    """Records by start time; ties (pipelined requests share their arrival) keep the order
    the tracer wrote them in."""
    return [r for _, r in sorted(enumerate(recs), key=lambda ir: (ir[1]["time_unix_nano"], ir[0]))]


def exchange(a, port, server, talk):
    """Runs talk(sock) on a fresh connection to the server while the tracer follows the server
    (--pid); then closes the connection, stops the tracer and checks its exit code.
    Returns (tracer, what talk returned)."""
    tracer = Tracer(a.binary, ["--pid", str(server.pid)]).wait_attached()
    s = None
    try:
        s = connect(port)
        result = talk(s)
        s.close()
        s = None
        time.sleep(0.3)
        rc = tracer.stop()
    finally:
        if s:
            s.close()
        if tracer.proc.poll() is None:
            tracer.stop()
    check(rc == 0, f"tracer exit code {rc}:\n{tracer.stderr()}")
    return tracer, result


def pipelined(a, port, server):
    def talk(s):
        lport = s.getsockname()[1]
        data = b"".join(f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        f"User-Agent: pipeline/{i}\r\n\r\n".encode()
                        for i, (p, _, _) in enumerate(PIPELINED))
        t0 = time.perf_counter()
        sent = s.send(data)  # one send() call
        check(sent == len(data), f"send() took {sent} of {len(data)} bytes")
        rd = Reader(s)
        seen = []
        for p, _, _ in PIPELINED:
            st, _, body = rd.response()
            seen.append((p, st, body, (time.perf_counter() - t0) * 1000.0))
        return lport, seen

    tracer, (lport, seen) = exchange(a, port, server, talk)
    for (p, want_st, want_body), (_, st, body, _) in zip(PIPELINED, seen):
        check((st, body) == (want_st, want_body),
              f"client: {p} answered {st} {body!r}, expected {want_st} {want_body!r}")

    allr = tracer.records(None)
    recs = [r for r in allr if r.get("kind") == "request"]
    print(f"  pipelined: {[(get(r, 'url.path'), get(r, 'url.query'), get(r, 'http.response.status_code')) for r in ordered(recs)]}")
    check(len(allr) == len(recs), f"non-request records: {[r for r in allr if r not in recs]}")
    check(len(recs) == len(PIPELINED),
          f"pipelined: {len(recs)} records, expected {len(PIPELINED)}: {summary(recs)}")
    slow_done = None
    for i, (r, (p, st, body, ms)) in enumerate(zip(ordered(recs), seen)):
        path, query = split(p)
        where = f"pipelined request #{i + 1} ({p})"
        check((get(r, "http.request.method"), get(r, "url.path"), get(r, "url.query")) ==
              ("GET", path, query),
              f"{where}: record #{i + 1} is {get(r, 'http.request.method')} "
              f"{get(r, 'url.path')} ?{get(r, 'url.query')}")
        check(get(r, "http.response.status_code") == st,
              f"{where}: status {get(r, 'http.response.status_code')}, client read {st}")
        check(get(r, "http.response.body.size") == len(body),
              f"{where}: response body size {get(r, 'http.response.body.size')}, "
              f"client read {len(body)}")
        check(get(r, "user_agent.original") == f"pipeline/{i}",
              f"{where}: user_agent.original {get(r, 'user_agent.original')!r}, "
              f"expected 'pipeline/{i}'")
        check(r.get("side") == "server" and r.get("complete") is True,
              f"{where}: side {r.get('side')!r} complete {r.get('complete')!r}")
        check(get(r, "process.pid") == server.pid, f"{where}: pid {get(r, 'process.pid')}")
        check(get(r, "client.port") == lport, f"{where}: client.port {get(r, 'client.port')}")
        # Every request arrived in the one segment sent at t0; its response was complete
        # when the client had read it: the server-side duration cannot exceed that.
        check(0 <= r["duration_ms"] <= ms + 1.0,
              f"{where}: duration_ms {r['duration_ms']} > client's {ms:.3f} ms since the send")
        if path == "/slow":
            slow_done = True
        if slow_done:
            # Requests 3..5 arrived at t0 and were answered after the 50 ms sleep.
            check(r["duration_ms"] >= 50.0,
                  f"{where}: duration_ms {r['duration_ms']} < 50, but it arrived with the "
                  "others and was answered after /slow?ms=50")


def bytewise(a, port, server):
    head = (f"GET /fast?mode=bytewise&x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"User-Agent: one-byte-at-a-time\r\nX-Padding: {'p' * 100}\r\n"
            "Accept: */*\r\n\r\n").encode()

    def talk(s):
        calls = 0
        for i in range(len(head)):
            n = s.send(head[i:i + 1])
            check(n == 1, f"send() of one byte returned {n}")
            calls += 1
            if i % 16 == 15:
                time.sleep(0.001)  # let the server's read() return short pieces
        st, _, body = Reader(s).response()
        return calls, st, body

    tracer, (calls, st, body) = exchange(a, port, server, talk)
    check(calls == len(head), "not every byte sent")
    check((st, body) == (200, b"fast\n"), f"client read {st} {body!r}")
    recs = tracer.records(None)
    print(f"  bytewise ({calls} one-byte send() calls): {summary(recs)}")
    check(len(recs) == 1, f"bytewise: expected 1 record, got {recs}")
    r = recs[0]
    check(r.get("kind") == "request", f"bytewise: kind {r.get('kind')!r}")
    check((get(r, "http.request.method"), get(r, "url.path"), get(r, "url.query"),
           get(r, "http.response.status_code")) == ("GET", "/fast", "mode=bytewise&x=1", 200),
          f"bytewise: record {r}")
    check(get(r, "user_agent.original") == "one-byte-at-a-time", f"bytewise: user agent {r}")
    check(get(r, "http.response.body.size") == 5 and get(r, "http.request.body.size") == 0,
          f"bytewise: body sizes {r}")
    check(r.get("complete") is True and r.get("side") == "server", f"bytewise: {r}")


def post_pieces(a, port, server):
    seed = int.from_bytes(os.urandom(4), "little")
    rnd = random.Random(seed)
    body = bytes(rnd.getrandbits(8) for _ in range(200 * 1024))
    msg = (f"POST /echo?piecewise=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
           f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n"
           "User-Agent: piecewise\r\n\r\n").encode() + body
    pieces = []

    def talk(s):
        off = 0
        while off < len(msg):
            n = rnd.choice([1, 2, 7, rnd.randint(1, 100), rnd.randint(100, 5000),
                            rnd.randint(5000, 40000)])
            chunk = msg[off:off + n]
            s.sendall(chunk)
            pieces.append(len(chunk))
            off += len(chunk)
            if rnd.random() < 0.1:
                time.sleep(0.002)
        st, _, echoed = Reader(s).response()
        return st, echoed

    tracer, (st, echoed) = exchange(a, port, server, talk)
    check(st == 200 and echoed == body, f"client: POST /echo answered {st}, "
                                        f"{len(echoed)} bytes, equal={echoed == body}")
    recs = tracer.records(None)
    print(f"  POST in {len(pieces)} pieces (seed {seed}): {summary(recs)}")
    check(len(recs) == 1, f"POST pieces (seed {seed}): expected 1 record, got {summary(recs)} "
                          f"{[r for r in recs if r.get('kind') != 'request']}")
    r = recs[0]
    check((r.get("kind"), get(r, "http.request.method"), get(r, "url.path"),
           get(r, "url.query"), get(r, "http.response.status_code")) ==
          ("request", "POST", "/echo", "piecewise=1", 200), f"POST pieces (seed {seed}): {r}")
    check(get(r, "http.request.body.size") == len(body),
          f"POST pieces (seed {seed}): http.request.body.size "
          f"{get(r, 'http.request.body.size')}, client sent {len(body)}")
    check(get(r, "http.response.body.size") == len(echoed),
          f"POST pieces (seed {seed}): http.response.body.size "
          f"{get(r, 'http.response.body.size')}, client read {len(echoed)}")
    check(r.get("complete") is True and r.get("side") == "server",
          f"POST pieces (seed {seed}): {r}")
    check(get(r, "user_agent.original") == "piecewise", f"POST pieces: user agent {r}")


def test(a):
    require_root()
    server_cpus, _ = cpu_split()
    port = free_port()
    server = start_python_server(port, cpus=server_cpus)
    try:
        pipelined(a, port, server)
        bytewise(a, port, server)
        post_pieces(a, port, server)
    finally:
        stop(server)


run_main(test)
