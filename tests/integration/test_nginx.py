"""nginx traced by its master's PID (--pid MASTER), with the workers already forked before the
tracer starts. Oracle: nginx's own access log (method, URI, status, $body_bytes_sent and the
worker's $pid) for every request; the large static file goes out with sendfile()."""
import os
import shutil
import subprocess
import tempfile
import time

from harness import (Failure, Tracer, check, free_port, get, require_root, run_main, skip,
                     stop, wait_port)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
INDEX_SIZE = 612
BIG_SIZE = 200 * 1024

CONF = """
daemon off;
master_process on;
worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 64; }}
http {{
    types {{ text/html html; application/octet-stream bin; }}
    default_type application/octet-stream;
    log_format oracle '$request_method|$request_uri|$status|$body_bytes_sent|$request_time|$pid|$connection|$connection_requests';
    access_log {tmp}/access.log oracle;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 30s;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
        index index.html;
    }}
}}
"""


def children(pid):
    kids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # Field 4 (ppid) follows the parenthesised command name.
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            kids.add(int(entry))
    return kids


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
    if not os.path.exists(NGINX):
        skip("nginx is not installed (scripts/install-deps.sh test)")
    tmp = tempfile.mkdtemp(prefix="odigos-nginx-")
    os.chmod(tmp, 0o755)  # the workers run as nobody and serve files from here
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    os.chmod(www, 0o755)
    with open(os.path.join(www, "index.html"), "w") as f:
        head = "<!DOCTYPE html>\n<html><head><title>odigos test</title></head><body>\n"
        tail = "</body></html>\n"
        f.write(head + "x" * (INDEX_SIZE - len(head) - len(tail)) + tail)
    with open(os.path.join(www, "big.bin"), "wb") as f:
        f.write(os.urandom(BIG_SIZE))
    for name in ("index.html", "big.bin"):
        os.chmod(os.path.join(www, name), 0o644)
    check(os.path.getsize(os.path.join(www, "index.html")) == INDEX_SIZE, "index.html size")
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(CONF.format(tmp=tmp, port=port))

    workers = set()
    master = subprocess.Popen([NGINX, "-p", tmp, "-c", conf, "-e", os.path.join(tmp, "error.log")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tracer = None
    try:
        try:
            wait_port(port, timeout=20)
        except Failure:
            master.kill()
            raise Failure("nginx did not start:\n" + master.communicate()[1])
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
