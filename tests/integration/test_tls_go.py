"""TLS plaintext from Go's crypto/tls, in programs built by this test with Debian's golang-go
(tests/fixtures/go/tlsprog: an HTTPS server and client on the standard library only).

Probes sit on instructions the kernel emulates (the jbe after each function's stack check, and
in Read the branch after the plaintext copy) and never on returns (Go moves goroutine stacks:
a return probe crashes the program). Checked:
1. A stripped server (-ldflags='-s -w': functions found through the pclntab) traced by PID;
   curl requests over HTTPS/1.1, GET and POST: records = curl's own statuses and sizes;
   injected delays (/delay/MS) within [MS, curl's total time]. With -v the tracer names the
   probe points once: the Go version of `go version`, three file offsets in the executable
   segment.
2. The Go client launched by the tracer (client side): one record per request it reports.
3. --exe on the unstripped build, started after the tracer: server and client side of the
   same process, from its first request (the executable's probes are attached for every
   process running it, before it starts).
The traced Go programs must exit cleanly (a crash would show here)."""
import os
import re
import shutil
import subprocess
import tempfile
import time

from harness import (Tracer, check, check_schema, free_port, get, require_root, run_main, skip,
                     stop, wait_port)

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "go",
                       "tlsprog")


def build(out, *flags):
    env = dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off", CGO_ENABLED="0",
               GOCACHE=os.path.join(tempfile.gettempdir(), "odigos-gocache"))
    subprocess.run(["go", "build", "-buildvcs=false", *flags, "-o", out, "."], cwd=FIXTURE,
                   env=env, check=True, capture_output=True, timeout=600)
    return out


def go_checks(recs):
    for r in recs:
        check(get(r, "tls.established") is True and get(r, "odigos.tls.library") == "go" and
              get(r, "url.scheme") == "https", f"not decoded from Go's TLS plaintext: {r}")


def curl(url, data=None):
    cmd = ["curl", "-sk", "--http1.1", "--max-time", "30", "-o", "/dev/null", "-w",
           "%{http_code} %{size_download} %{time_total}"]
    if data is not None:
        cmd += ["--data-binary", data]
    code, size, total = subprocess.run(cmd + [url], check=True, capture_output=True, text=True,
                                       timeout=60).stdout.split()
    return int(code), int(size), float(total) * 1000


def server_part(a, exe):
    port = free_port()
    srv = subprocess.Popen([exe, "-serve", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    tracer = None
    try:
        wait_port(port)
        tracer = Tracer(a.binary, ["--pid", str(srv.pid), "-v"]).wait_attached()
        base = f"https://127.0.0.1:{port}"
        oracle = {}
        for path, data in (("/a", None), ("/post", "x" * 1000), ("/b", None),
                           ("/delay/150", None), ("/delay/300", "y")):
            oracle[path] = curl(base + path, data)
        time.sleep(0.5)
        rc = tracer.stop()
        if srv.poll() is not None:
            check(False, f"the traced Go server died: {srv.stderr.read()}")
    finally:
        stop(srv)
    check(rc == 0, f"tracer exit {rc}: {tracer.stderr()}")
    check("not traced" not in tracer.stderr(), f"warnings: {tracer.stderr()}")
    recs = tracer.records()
    check_schema(recs)
    go_checks(recs)
    got = {get(r, "url.path"): r for r in recs}
    check(sorted(got) == sorted(oracle), f"paths {sorted(got)} != {sorted(oracle)}")
    for path, (code, size, total) in oracle.items():
        r = got[path]
        check(get(r, "http.response.status_code") == code and
              get(r, "http.response.body.size") == size and r["side"] == "server",
              f"{path}: record {r} vs curl {code} {size}")
        if path.startswith("/delay/"):
            ms = int(path.split("/")[2])
            check(ms <= r["duration_ms"] <= total,
                  f"{path}: {r['duration_ms']:.2f} ms outside [{ms}, curl's {total:.2f}]")
    check(get(got["/post"], "http.request.body.size") == 1000, f"POST body: {got['/post']}")
    print(f"stripped Go server by PID: {len(recs)} records = curl's statuses and sizes; "
          "delays within curl's totals")
    points_note(tracer.stderr(), exe)
    return port


def points_note(err, exe):
    """-v names the probe points of the executable once: its Go version (from the build info
    of a stripped binary) and file offsets inside its executable segment."""
    notes = re.findall(r"TLS probe points of '([^']+)' \(Go 1\.(\d+)\): write (0x[0-9a-f]+), "
                       r"read (0x[0-9a-f]+), read copied (0x[0-9a-f]+)", err)
    check(len(notes) == 1 and os.path.samefile(notes[0][0], exe), f"-v probe-point lines: {notes}")
    go_minor = re.search(r"go1\.(\d+)", subprocess.run(["go", "version"], capture_output=True,
                                                       text=True).stdout).group(1)
    check(notes[0][1] == go_minor, f"-v says Go 1.{notes[0][1]}, go version: 1.{go_minor}")
    segs = subprocess.run(["readelf", "-lW", exe], capture_output=True, text=True).stdout
    text = [(int(f[1], 16), int(f[1], 16) + int(f[4], 16)) for f in
            (l.split() for l in segs.splitlines()) if f and f[0] == "LOAD" and "E" in f[6:-1]]
    offs = [int(x, 16) for x in notes[0][2:]]
    check(len(set(offs)) == 3 and all(any(lo <= o < hi for lo, hi in text) for o in offs),
          f"-v offsets {notes[0][2:]} not 3 distinct offsets in the executable segment {text}")
    print(f"-v: probe points of the stripped build named (Go 1.{go_minor}, {', '.join(notes[0][2:])})")


def client_part(a, exe, port):
    t = Tracer(a.binary, [], extra=["--", exe, "-get", f"https://127.0.0.1:{port}/from-go",
                                    "-n", "4"])
    rc = t.wait(60)
    check(rc == 0, f"Go client exit {rc}: {t.stderr()}")
    recs = t.records()
    go_checks(recs)
    got = [(r["side"], get(r, "http.request.method"), get(r, "url.path"),
            get(r, "http.response.status_code")) for r in recs]
    check(got == [("client", m, "/from-go", 200) for m in ("GET", "POST", "GET", "POST")],
          f"Go client records {got}")
    print("Go client launched: 4 client-side records")


def exe_part(a, exe):
    t = Tracer(a.binary, ["--exe", exe]).wait_attached()
    p = subprocess.run([exe, "-n", "3"], capture_output=True, text=True, timeout=60)
    time.sleep(0.5)
    rc = t.stop()
    check(p.returncode == 0, f"Go program under --exe failed: {p.stderr}")
    check(rc == 0, f"tracer exit {rc}: {t.stderr()}")
    recs = t.records()
    go_checks(recs)
    sides = sorted((r["side"], get(r, "url.path"), get(r, "http.response.status_code"))
                   for r in recs)
    check(sides == sorted([("client", "/hello", 200)] * 3 + [("server", "/hello", 200)] * 3),
          f"--exe records {sides}")
    check(not t.records(kind="connection"), f"notes: {t.records(kind='connection')}")
    print("--exe, started after the tracer: 3 server + 3 client records from its first request")


def test(a):
    require_root()
    if not shutil.which("go"):
        skip("go missing: run scripts/install-deps.sh (golang-go)")
    tmp = tempfile.mkdtemp(prefix="odigos-go-")
    stripped = build(os.path.join(tmp, "tlsprog-stripped"), "-ldflags=-s -w")
    full = build(os.path.join(tmp, "tlsprog"))
    port = server_part(a, stripped)
    # A server for the client part (not traced).
    srv = subprocess.Popen([full, "-serve", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        client_part(a, full, port)
    finally:
        stop(srv)
    exe_part(a, full)


run_main(test)
