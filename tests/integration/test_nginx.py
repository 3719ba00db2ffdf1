"""nginx traced by its master's PID (--pid MASTER), with the workers already forked before the
tracer starts. Oracle: nginx's own access log (method, URI, status, $body_bytes_sent and the
worker's $pid) for every request; the large static file goes out with sendfile()."""
import os
import subprocess
import time

from harness import children, Tracer, check, get, require_root, run_main, start_nginx, stop
INDEX_SIZE = 612
BIG_SIZE = 200 * 1024



def alive(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == "nginx"
    except OSError:
        return False


def access_log(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                m, uri, status, size, rt, pid, conn, creq = line.rstrip("\n").split("|")
                rows.append({"method": m, "uri": uri, "status": int(status), "bytes": int(size),
                             "request_time": float(rt), "pid": int(pid), "conn": int(conn),
                             "creq": int(creq)})
    return rows


def curl(*args):
    subprocess.run(["curl", "-s", "--max-time", "30", *args], check=True, timeout=60,
                   stdout=subprocess.DEVNULL)


def test(a):
    require_root()
    head = "<!DOCTYPE html>\n<html><head><title>odigos test</title></head><body>\n"
    tail = "</body></html>\n"
    index = head + "x" * (INDEX_SIZE - len(head) - len(tail)) + tail
    workers = set()
    tracer = None
    master, tmp, port = start_nginx(
        {"index.html": index, "big.bin": os.urandom(BIG_SIZE)}, workers=2, connections=64,
        error_level="info",
        http="    types { text/html html; application/octet-stream bin; }\n"
             "    default_type application/octet-stream;\n"
             "    log_format oracle '$request_method|$request_uri|$status|$body_bytes_sent|"
             "$request_time|$pid|$connection|$connection_requests';\n"
             "    access_log {tmp}/access.log oracle;\n"
             "    sendfile on;\n    tcp_nodelay on;\n    keepalive_timeout 30s;",
        server="        index index.html;")
    try:
        check(os.path.getsize(os.path.join(tmp, "www", "index.html")) == INDEX_SIZE,
              "index.html size")
        end = time.time() + 20
        while len(children(master.pid)) < 2 and time.time() < end:
            time.sleep(0.05)
        workers = children(master.pid)
        check(len(workers) == 2, f"nginx master {master.pid} has workers {workers}, expected 2")

        tracer = Tracer(a.binary, ["--pid", str(master.pid)]).wait_attached()
        base = f"http://127.0.0.1:{port}"
        curl("-o", "/dev/null", f"{base}/index.html")
        curl("-o", "/dev/null", f"{base}/big.bin")
        curl("-o", "/dev/null", f"{base}/missing.html")
        curl("-I", "-o", "/dev/null", f"{base}/index.html")
        curl("-o", "/dev/null", f"{base}/index.html?lang=en")
        # Several requests on one keep-alive connection.
        curl("-o", "/dev/null", f"{base}/", "-o", "/dev/null", f"{base}/big.bin",
             "-o", "/dev/null", f"{base}/nope", "-o", "/dev/null", f"{base}/index.html")
        expected_count = 9
        log = os.path.join(tmp, "access.log")
        end = time.time() + 10
        while len(access_log(log)) < expected_count and time.time() < end:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        rc = tracer.stop() if tracer else None
        stop(master)  # SIGTERM: fast shutdown of master and workers
        end = time.time() + 10
        while any(alive(w) for w in workers) and time.time() < end:
            time.sleep(0.05)
        for w in workers:
            if alive(w):
                os.kill(w, 9)

    check(rc == 0, f"tracer exit code {rc}:\n{tracer.stderr()}")
    rows = access_log(log)
    check(len(rows) == expected_count,
          f"nginx logged {len(rows)} requests, expected {expected_count}: {rows}")
    recs = tracer.records()
    print(f"  nginx master {master.pid}, workers {sorted(workers)}")
    for row in rows:
        print(f"  log: {row['method']:4} {row['uri']:20} {row['status']} {row['bytes']:7}"
              f" pid {row['pid']} conn {row['conn']}#{row['creq']}")
    for r in sorted(recs, key=lambda r: r["time_unix_nano"]):
        print(f"  rec: {get(r, 'http.request.method'):4} {get(r, 'url.path')}"
              f"{'?' + get(r, 'url.query') if get(r, 'url.query') else ''}"
              f" {get(r, 'http.response.status_code')} {get(r, 'http.response.body.size')}"
              f" pid {get(r, 'process.pid')} side {r.get('side')} complete {r.get('complete')}")

    def uri(r):
        q = get(r, "url.query")
        return get(r, "url.path") + (f"?{q}" if q else "")

    want = sorted((row["method"], row["uri"], row["status"], row["bytes"], row["pid"])
                  for row in rows)
    got = sorted((get(r, "http.request.method"), uri(r), get(r, "http.response.status_code"),
                  get(r, "http.response.body.size"), get(r, "process.pid")) for r in recs)
    check(len(recs) == len(rows), f"{len(recs)} records, nginx logged {len(rows)} requests")
    check(got == want, "records differ from nginx's access log "
                       "(method, uri, status, $body_bytes_sent, worker $pid):\n"
                       f" nginx {want}\n ours  {got}")
    for r in recs:
        check(r.get("side") == "server", f"side {r.get('side')!r} for {uri(r)}")
        check(r.get("complete") is True, f"incomplete record for {uri(r)}: {r}")
        check(get(r, "process.pid") in workers,
              f"process.pid {get(r, 'process.pid')} is not an nginx worker {sorted(workers)}")
        check(get(r, "process.command") == "nginx",
              f"process.command {get(r, 'process.command')!r}")
        check(get(r, "server.port") == port and get(r, "server.address") == "127.0.0.1",
              f"server {get(r, 'server.address')}:{get(r, 'server.port')} for {uri(r)}")
        check(get(r, "client.address") == "127.0.0.1", f"client.address for {uri(r)}")
    # The sendfile()d file: nginx says 204800 body bytes, twice.
    big = [r for r in recs if get(r, "url.path") == "/big.bin"]
    check(len(big) == 2 and all(get(r, "http.response.body.size") == BIG_SIZE for r in big),
          f"/big.bin body sizes {[get(r, 'http.response.body.size') for r in big]}, "
          f"expected [{BIG_SIZE}, {BIG_SIZE}]")


run_main(test)
