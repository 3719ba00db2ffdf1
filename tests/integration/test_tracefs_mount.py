"""The tracer mounts tracefs itself when it is missing: /sys/kernel/tracing is unmounted
(skipped when it is not mounted there, is busy or cannot be unmounted, or when tracefs stays
reachable through debugfs), then the tracer traces the test server (--pid): it attaches, one
request gives its record, and tracefs is mounted at /sys/kernel/tracing again afterwards.
tracefs is always left mounted (mount -t tracefs nodev /sys/kernel/tracing in finally).

Oracles: /proc/self/mountinfo (the kernel's mount table) and curl's -w output."""
import os
import subprocess
import time

from harness import (Tracer, check, free_port, get, require_root, run_main, skip,
                     start_python_server, stop)

TRACING = "/sys/kernel/tracing"


def tracefs_mounts():
    """Mount points of tracefs, per the kernel's mount table."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, post = line.split(" - ", 1)
            if post.split()[0] == "tracefs":
                out.append(pre.split()[4])
    return out


def mounted_at_tracing():
    return TRACING in tracefs_mounts()


def test(a):
    require_root()
    if not mounted_at_tracing():
        skip(f"tracefs is not mounted at {TRACING} to begin with")
    if os.path.isdir("/sys/kernel/debug/tracing/events/syscalls"):
        skip("tracefs is also reachable through debugfs (/sys/kernel/debug/tracing): the "
             "tracer would not need to mount it")
    port = free_port()
    server = start_python_server(port)
    tracer = None
    unmounted = False
    try:
        r = subprocess.run(["umount", TRACING], capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            skip(f"`umount {TRACING}` failed (busy or not permitted): {r.stderr.strip()}")
        unmounted = True
        if mounted_at_tracing():
            skip(f"tracefs is mounted at {TRACING} more than once; one umount was not enough")
        check(not os.path.isdir(os.path.join(TRACING, "events", "syscalls")),
              f"{TRACING}/events/syscalls still exists after umount")
        print(f"  unmounted {TRACING}; tracefs mounts now: {tracefs_mounts()}")

        tracer = Tracer(a.binary, ["--pid", str(server.pid)]).wait_attached(30)
        during = mounted_at_tracing()
        c = subprocess.run(["curl", "-s", "--max-time", "10", "-o", "/dev/null", "-w",
                            "%{http_code} %{local_port} %{size_download}",
                            f"http://127.0.0.1:{port}/fast?tracefs=1"],
                           capture_output=True, text=True, timeout=30)
        check(c.returncode == 0, f"curl exit {c.returncode}: {c.stderr}")
        code, lport, size = map(int, c.stdout.split())
        check(code == 200, f"the server answered {code}")
        time.sleep(0.3)
        rc = tracer.stop()
        after = tracefs_mounts()
    finally:
        if tracer and tracer.proc.poll() is None:
            tracer.stop()
        stop(server)
        if unmounted and not mounted_at_tracing():
            r = subprocess.run(["mount", "-t", "tracefs", "nodev", TRACING],
                               capture_output=True, text=True, timeout=20)
            if r.returncode != 0:
                print(f"  WARNING: could not remount tracefs: {r.stderr}")
    print(f"  tracer stderr:\n    " + "    ".join(tracer.stderr_lines))
    check(rc == 0, f"tracer exit code {rc}:\n{tracer.stderr()}")
    check(during, f"tracefs is not mounted at {TRACING} while tracing (mounts: {after})")
    check(after.count(TRACING) == 1,
          f"after the tracer exited, tracefs mounts are {after}: expected exactly one at "
          f"{TRACING}")
    recs = tracer.records(None)
    check(len(recs) == 1, f"expected 1 record, got {recs}")
    r = recs[0]
    check((r.get("kind"), r.get("side"), get(r, "http.request.method"), get(r, "url.path"),
           get(r, "url.query"), get(r, "http.response.status_code")) ==
          ("request", "server", "GET", "/fast", "tracefs=1", 200), f"record {r}")
    check(get(r, "client.port") == lport,
          f"client.port {get(r, 'client.port')}, curl's local port {lport}")
    check(get(r, "http.response.body.size") == size,
          f"body size {get(r, 'http.response.body.size')}, curl downloaded {size}")
    check(r.get("complete") is True and get(r, "process.pid") == server.pid, f"record {r}")


run_main(test)
