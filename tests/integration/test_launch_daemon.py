"""Launch mode follows a command that daemonizes: `odigos-trace -- nginx -c CONF` (daemon on:
the launched process forks the master and exits at once). The tracer keeps running while the
daemon lives, records its requests (oracle: nginx's access log), and exits by itself once the
daemon is stopped."""
import os
import shutil
import signal
import subprocess
import time

from harness import (NGINX, Tracer, check, get, nginx_prefix, require_root, run_main,
                     wait_port)


def test(a):
    require_root()
    check(os.path.exists(NGINX), "nginx is not installed (run scripts/install-deps.sh test)")
    tmp, conf, port = nginx_prefix(
        {"index.html": "hello daemon\n"}, prefix="odigos-daemon-", daemon=True, connections=64,
        http="    log_format oracle '$request_uri|$status|$body_bytes_sent';\n"
             "    access_log {tmp}/access.log oracle;")
    tracer = Tracer(a.binary, ["-u", "root"], extra=["--", NGINX, "-c", conf, "-p", tmp])
    master = None
    try:
        tracer.wait_attached()
        wait_port(port)
        with open(f"{tmp}/nginx.pid") as f:
            master = int(f.read().strip())
        for path in ("/index.html", "/missing", "/index.html"):
            subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}{path}"],
                           check=True, timeout=20)
        time.sleep(0.5)
        check(tracer.proc.poll() is None,
              "the tracer exited although the daemon it launched is still running:\n" + tracer.stderr())
        os.kill(master, signal.SIGTERM)
        master = None
        rc = tracer.wait(30)  # must end by itself once the daemon is gone
    finally:
        if master:
            os.kill(master, signal.SIGKILL)
        if tracer.proc.poll() is None:
            tracer.stop()
    check(rc == 0, f"exit status {rc} (the launched nginx exited 0 after daemonizing):\n{tracer.stderr()}")
    check("traced processes exited" in tracer.stderr(), tracer.stderr())
    with open(f"{tmp}/access.log") as f:
        log = [l.strip().split("|") for l in f if l.strip()]
    recs = tracer.records()
    got = sorted((get(r, "url.path"), get(r, "http.response.status_code"),
                  get(r, "http.response.body.size")) for r in recs if r["side"] == "server")
    want = sorted((uri, int(status), int(size)) for uri, status, size in log)
    check([(uri, status) for uri, status, _ in want] ==
          [("/index.html", 200), ("/index.html", 200), ("/missing", 404)],
          f"nginx's access log {want} does not hold the three requests sent")
    check(all(size == len("hello daemon\n") for uri, _, size in want if uri == "/index.html"),
          f"nginx's access log {want}: /index.html body size")
    check(got == want, f"records {got} != access log {want}")
    shutil.rmtree(tmp, ignore_errors=True)


run_main(test)
