"""TLS plaintext from GnuTLS (Debian's libgnutls.so.30), with its own server and a real client.

1. gnutls-serv --http traced by PID while curl (OpenSSL, not traced) requests over HTTPS with
   HTTP/1.1: each request is one server-side record decoded from GnuTLS's plaintext; the
   oracle is curl's own report of the status and the body size it downloaded.
2. wget (GnuTLS on Debian) launched by the tracer against the same server: a client-side
   record from GnuTLS's plaintext."""
import os
import shutil
import subprocess
import tempfile
import time

from harness import (Tracer, check, check_schema, free_port, get, make_cert, require_root,
                     run_main, skip, stop, wait_port)


def tls_checks(recs):
    for r in recs:
        check(get(r, "tls.established") is True, f"tls.established missing: {r}")
        check(get(r, "odigos.tls.library") == "gnutls", f"library: {r}")
        check(get(r, "url.scheme") == "https", f"url.scheme: {r}")


def test(a):
    require_root()
    for tool in ("gnutls-serv", "wget"):
        if not shutil.which(tool):
            skip(f"{tool} missing: run scripts/install-deps.sh")
    certdir = tempfile.mkdtemp(prefix="odigos-cert-")
    cert, key = make_cert(certdir)
    port = free_port()
    srv = subprocess.Popen(["gnutls-serv", "--http", "--x509certfile", cert, "--x509keyfile", key,
                            "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tracer = None
    try:
        wait_port(port)
        tracer = Tracer(a.binary, ["--pid", str(srv.pid)]).wait_attached()
        oracle = []
        for path in ("/a", "/b/c", "/d?x=1"):
            out = subprocess.run(["curl", "-sk", "--http1.1", "--max-time", "30", "-o", "/dev/null",
                                  "-w", "%{http_code} %{size_download}",
                                  f"https://127.0.0.1:{port}{path}"],
                                 check=True, capture_output=True, text=True, timeout=60).stdout
            code, size = out.split()
            oracle.append((path.split("?")[0], int(code), int(size)))
        time.sleep(0.5)
        rc = tracer.stop()
        check(rc == 0, f"tracer exit {rc}: {tracer.stderr()}")
        recs = tracer.records()
        check_schema(recs)
        got = [(get(r, "url.path"), get(r, "http.response.status_code"),
                get(r, "http.response.body.size")) for r in recs]
        check(sorted(got) == sorted(oracle), f"records {got} != curl's {oracle}")
        for r in recs:
            check(r["side"] == "server" and get(r, "process.pid") == srv.pid, f"record {r}")
        tls_checks(recs)
        print(f"gnutls-serv: {len(recs)} records = curl's statuses and sizes")

        t = Tracer(a.binary, [], extra=["--", "wget", "-q", "--no-check-certificate", "-O",
                                        "/dev/null", f"https://127.0.0.1:{port}/from-wget"])
        rc = t.wait(60)
        check(rc == 0, f"wget launch exit {rc}: {t.stderr()}")
        recs = t.records()
        got = [(r["side"], get(r, "url.path"), get(r, "http.response.status_code"))
               for r in recs]
        check(got == [("client", "/from-wget", 200)], f"wget records {got}")
        tls_checks(recs)
        print("wget (GnuTLS) launched: client-side record decoded")
    finally:
        if tracer and tracer.proc.poll() is None:
            tracer.stop()
        stop(srv)


run_main(test)
