"""TLS plaintext from OpenSSL (Debian's libssl.so.3), with real servers and clients.

1. nginx HTTPS (2 workers forked before the tracer starts) traced by its master's PID; curl
   requests over HTTPS with HTTP/1.1 on one keep-alive connection and on new ones. Oracle:
   nginx's own access log (method, URI, status, body bytes, worker pid) - every logged request
   is exactly one record, decoded from the plaintext (tls.established, url.scheme https,
   odigos.tls.library openssl), and no connection is left "not decoded".
2. curl launched by the tracer (client side, probes attached before it execs), with -v: the
   probe points it names in libssl are the internal functions objdump finds SSL_read and
   SSL_write calling first.
3. A Python `ssl` server that imports ssl (dlopen of _ssl and libssl) only after the tracer
   attached to it: the executable-mmap event brings the probes. Injected delays are measured
   within curl's own total time (the client's timing is the oracle), and every duration agrees
   with tshark's http.time for the same request (decrypted with curl's TLS key log) within
   max(1 ms, 2 %).
4. A program linked statically against OpenSSL (libssl.a: no libssl.so mapped), launched by
   the tracer: its own SSL_read/SSL_write are found in the executable and probed.
5. The probes land on instructions the kernel emulates: the tracer's stderr has no warning
   about single-stepped probe points, and no process but the traced ones is probed (curl run
   beside the traced nginx makes no record)."""
import os
import re
import subprocess
import sys
import tempfile
import time

from harness import (Tracer, Tshark, check, check_schema, free_port, get, make_cert, require_root,
                     run_main, start_nginx, stop, wait_port)

BIG = 100 * 1024

PY_SERVER = r"""
import sys, time
sys.stdin.readline()          # the tracer is attached: now load ssl (dlopen)
import ssl, http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TLS 1.3 session tickets go out unacknowledged right before the response: with Nagle the
    # response would wait ~40 ms for the client's delayed ACK (as nginx, set TCP_NODELAY).
    disable_nagle_algorithm = True
    def do_GET(self):
        if self.path.startswith("/delay/"):
            time.sleep(int(self.path.split("/")[2]) / 1000.0)
        body = b"ok " + self.path.encode()
        status = b"404 Not Found" if self.path == "/missing" else b"200 OK"
        # One write: a second small one would wait for the client's delayed ACK (Nagle).
        self.wfile.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: " +
                         str(len(body)).encode() + b"\r\n\r\n" + body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
"""


def access_log(path):
    rows = []
    with open(path) as f:
        for line in f:
            m, uri, status, size, pid = line.rstrip("\n").split("|")
            rows.append((m, uri, int(status), int(size), int(pid)))
    return rows


def curl(*urls, timing=False, env=None):
    """One curl process, one keep-alive connection for all urls."""
    cmd = ["curl", "-sk", "--http1.1", "--max-time", "30"]
    if timing:
        cmd += ["-w", "%{time_total}\n"]
    for u in urls:
        cmd += ["-o", "/dev/null", u]
    p = subprocess.run(cmd, check=True, timeout=60, capture_output=True, text=True, env=env)
    return p.stdout


def tls_checks(recs):
    for r in recs:
        check(get(r, "tls.established") is True, f"tls.established missing: {r}")
        check(get(r, "odigos.tls.library") == "openssl", f"library: {r}")
        check(get(r, "url.scheme") == "https", f"url.scheme: {r}")


def nginx_part(a, certdir):
    cert, key = make_cert(certdir)
    master, tmp, port = start_nginx(
        {"index.html": "hello over tls\n", "big.bin": os.urandom(BIG)}, workers=2,
        listen=" ssl",
        http="    log_format oracle '$request_method|$request_uri|$status|$body_bytes_sent|$pid';\n"
             "    access_log {tmp}/access.log oracle;\n    keepalive_timeout 30s;",
        server=f"        ssl_certificate {cert};\n        ssl_certificate_key {key};")
    tracer = None
    try:
        time.sleep(0.5)  # workers forked
        tracer = Tracer(a.binary, ["--pid", str(master.pid)]).wait_attached()
        base = f"https://127.0.0.1:{port}"
        # Keep-alive: three requests on one connection; then separate connections.
        curl(f"{base}/index.html", f"{base}/missing", f"{base}/big.bin")
        for i in range(5):
            curl(f"{base}/index.html?n={i}")
        # An untraced TLS client beside the traced server: probed only in nginx.
        time.sleep(1.0)
        rc = tracer.stop()
    finally:
        stop(master)
    err = tracer.stderr()
    check(rc == 0, f"tracer exit {rc}: {err}")
    check("single-step" not in err and "not traced" not in err, f"probe warnings: {err}")
    oracle = access_log(os.path.join(tmp, "access.log"))
    check(len(oracle) == 8, f"nginx logged {len(oracle)} requests: {oracle}")
    recs = tracer.records()
    check_schema(recs)
    got = sorted((get(r, "http.request.method"),
                  get(r, "url.path") + ("?" + get(r, "url.query") if get(r, "url.query") else ""),
                  get(r, "http.response.status_code"), get(r, "http.response.body.size"),
                  get(r, "process.pid")) for r in recs)
    check(got == sorted(oracle), f"records differ from nginx's access log:\n{got}\n{oracle}")
    for r in recs:
        check(get(r, "side") == "server", f"side: {r}")
        check(r.get("complete") is True, f"incomplete: {r}")
    tls_checks(recs)
    conns = tracer.records(kind="connection")
    check(not conns, f"connection notes (TLS not decoded?): {conns}")
    print(f"nginx: {len(recs)} HTTPS records = nginx's access log")


def file_offset(lib, vaddr):
    """The file offset of a virtual address of an ELF file (its LOAD segment)."""
    out = subprocess.run(["readelf", "-lW", lib], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            off, va, size = int(f[1], 16), int(f[2], 16), int(f[5], 16)
            if va <= vaddr < va + size:
                return vaddr - va + off
    raise AssertionError(f"{vaddr:#x} in no LOAD segment of {lib}")


def first_call(lib, sym):
    """objdump's view: the first direct call in `sym` that is not a PLT stub (OpenSSL 3's
    SSL_read/SSL_write call ssl_read_internal/ssl_write_internal first), as a file offset."""
    nm = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True,
                        check=True).stdout
    addr = next(int(l.split()[0], 16) for l in nm.splitlines()
                if len(l.split()) == 3 and l.split()[2].split("@")[0] == sym)
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--start-address={addr:#x}",
                          f"--stop-address={addr + 160:#x}", lib], capture_output=True, text=True,
                         check=True).stdout
    for line in dis.splitlines():
        f = line.split()
        if len(f) >= 3 and f[1] == "call" and "@plt" not in line:
            return file_offset(lib, int(f[2], 16))
    raise AssertionError(f"no call in {sym} of {lib}")


def curl_launch_part(a, port):
    base = f"https://127.0.0.1:{port}"
    t = Tracer(a.binary, [], extra=["-v", "--", "curl", "-sk", "--http1.1", "-o", "/dev/null", "-o",
                                    "/dev/null", f"{base}/one", f"{base}/missing"])
    rc = t.wait(60)
    check(rc == 0, f"launch exit {rc}: {t.stderr()}")
    recs = t.records()
    got = [(get(r, "side"), get(r, "url.path"), get(r, "http.response.status_code")) for r in recs]
    check(got == [("client", "/one", 200), ("client", "/missing", 404)], f"curl records {got}")
    tls_checks(recs)
    print("curl launched: client-side HTTPS records decoded")
    # -v names the probe points: libssl's, where objdump finds SSL_read's and SSL_write's
    # internal functions (the first call in each).
    notes = re.findall(r"TLS probe points of '([^']*libssl[^']*)' \(OpenSSL\): read (0x[0-9a-f]+), "
                       r"write (0x[0-9a-f]+)", t.stderr())
    check(len(notes) == 1, f"-v: {len(notes)} libssl probe-point lines: {t.stderr()[-3000:]}")
    lib, rd, wr = notes[0]
    want = (first_call(lib, "SSL_read"), first_call(lib, "SSL_write"))
    check((int(rd, 16), int(wr, 16)) == want,
          f"-v probe points {rd}, {wr} of {lib}; objdump: {want[0]:#x}, {want[1]:#x}")
    print(f"-v: probe points of {lib} = objdump's internal functions ({rd}, {wr})")
    # HTTP/2 negotiated over TLS (ALPN): said explicitly, not decoded yet.
    t = Tracer(a.binary, [], extra=["--", "curl", "-sk", "--http2", "-o", "/dev/null",
                                    f"{base}/one"])
    rc = t.wait(60)
    check(rc == 0, f"launch exit {rc}: {t.stderr()}")
    notes = t.records(kind="connection")
    check(len(notes) == 1 and get(notes[0], "odigos.note") == "http2, not decoded yet" and
          get(notes[0], "tls.established") is True, f"HTTP/2 over TLS: {notes}")
    check(not t.records(), f"HTTP/2 decoded as HTTP/1: {t.records()}")
    print("curl --http2 over TLS: one 'http2, not decoded yet' record")
    # --no-tls: the connection is reported as encrypted, not decoded (never silence).
    t = Tracer(a.binary, [], extra=["--no-tls", "--", "curl", "-sk", "--http1.1", "-o",
                                    "/dev/null", f"{base}/one"])
    rc = t.wait(60)
    check(rc == 0, f"launch exit {rc}: {t.stderr()}")
    notes = t.records(kind="connection")
    check(len(notes) == 1 and "encrypted (TLS), not decoded" in get(notes[0], "odigos.note", "")
          and notes[0].get("protocol") == "tls", f"--no-tls: {notes}")
    check(not t.records(), f"--no-tls decoded: {t.records()}")
    check("TLS: 0 connections decoded, 1 not decoded" in t.stderr(), f"summary: {t.stderr()}")
    print("--no-tls: one 'encrypted (TLS), not decoded' record")


def static_part(a, port):
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tls",
                       "static_client.c")
    exe = os.path.join(tempfile.mkdtemp(prefix="odigos-static-"), "static_client")
    subprocess.run(["cc", "-O2", "-o", exe, src, "-l:libssl.a", "-l:libcrypto.a", "-lpthread",
                    "-ldl"], check=True, capture_output=True, timeout=120)
    ldd = subprocess.run(["ldd", exe], capture_output=True, text=True).stdout
    check("libssl" not in ldd, f"not a static OpenSSL build: {ldd}")
    t = Tracer(a.binary, [], extra=["--", exe, str(port), "/one", "/missing"])
    rc = t.wait(60)
    check(rc == 0, f"static client exit {rc}: {t.stderr()}")
    recs = t.records()
    got = [(get(r, "side"), get(r, "url.path"), get(r, "http.response.status_code"),
            get(r, "user_agent.original")) for r in recs]
    check(got == [("client", "/one", 200, "static-openssl"),
                  ("client", "/missing", 404, "static-openssl")], f"static client records {got}")
    tls_checks(recs)
    print("statically linked OpenSSL: client-side HTTPS records decoded")


def python_part(a, certdir):
    cert, key = os.path.join(certdir, "cert.pem"), os.path.join(certdir, "key.pem")
    port = free_port()
    srv = subprocess.Popen([sys.executable, "-c", PY_SERVER, str(port), cert, key],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    tracer = None
    try:
        tracer = Tracer(a.binary, ["--pid", str(srv.pid)]).wait_attached()
        srv.stdin.write("go\n")
        srv.stdin.flush()
        check(srv.stdout.readline().strip() == "ready", "python TLS server did not start")
        wait_port(port)
        base = f"https://127.0.0.1:{port}"
        keylog = os.path.join(tracer.tmp, "keylog")
        env = dict(os.environ, SSLKEYLOGFILE=keylog)
        tshark = Tshark(port)
        time.sleep(0.5)  # "Capturing on" comes a moment before the first packet is caught
        totals = {}
        for ms in (0, 150, 300):
            totals[f"/delay/{ms}"] = float(curl(f"{base}/delay/{ms}", timing=True, env=env)) * 1000
        curl(f"{base}/missing", env=env)
        time.sleep(0.5)
        wire = tshark.stop_and_read(keylog=keylog)
        rc = tracer.stop()
    finally:
        stop(srv)
    check(rc == 0, f"tracer exit {rc}: {tracer.stderr()}")
    recs = tracer.records()
    by_path = {get(r, "url.path"): r for r in recs}
    check(sorted(by_path) == sorted(list(totals) + ["/missing"]),
          f"python records {sorted(by_path)}; notes {tracer.records(kind='connection')}; "
          f"stderr {tracer.stderr()}")
    check(get(by_path["/missing"], "http.response.status_code") == 404, "404 missing")
    for path, total in totals.items():
        ms = int(path.split("/")[2])
        d = by_path[path]["duration_ms"]
        check(ms <= d <= total, f"{path}: duration {d:.2f} ms outside [{ms}, curl total {total:.2f}]")
    tls_checks(recs)
    check(len(wire) == len(recs), f"tshark decrypted {len(wire)} responses, we have {len(recs)}: "
                                  f"{wire}")
    for w in wire:
        path = "/" + w["uri"].split("://", 1)[-1].split("/", 1)[-1]
        ours = by_path[path]["duration_ms"]
        tol = max(1.0, 0.02 * w["time_ms"])
        print(f"  {path:12} ours {ours:9.3f} ms  tshark {w['time_ms']:9.3f} ms")
        start = by_path[path]["time_unix_nano"] / 1e9
        check(abs(ours - w["time_ms"]) <= tol,
              f"{path}: {ours:.3f} ms vs tshark {w['time_ms']:.3f} ms (tolerance {tol:.1f}); "
              f"start {1000 * (start - w['start_s']):+.3f} ms, end "
              f"{1000 * (start + ours / 1000 - w['end_s']):+.3f} ms from the wire")
    print(f"python ssl (loaded after attach): {len(recs)} records; durations within curl's totals "
          "and tshark's")


def test(a):
    require_root()
    certdir = tempfile.mkdtemp(prefix="odigos-cert-")
    os.chmod(certdir, 0o755)
    nginx_part(a, certdir)
    # A plain HTTPS server for the launched client.
    master, tmp, port = start_nginx({"one": "1\n"}, listen=" ssl http2", server=(
        f"        ssl_certificate {certdir}/cert.pem;\n"
        f"        ssl_certificate_key {certdir}/key.pem;"))
    try:
        curl_launch_part(a, port)
        static_part(a, port)
    finally:
        stop(master)
    python_part(a, certdir)


run_main(test)
