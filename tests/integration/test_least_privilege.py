"""Least privilege: once attached, odigos-trace holds no capability at all (CapEff, CapPrm,
CapInh, CapAmb are 0 in /proc/PID/status, NoNewPrivs is 1) and still traces: maps, links and
the ring buffer are open fds. A launched command keeps what its user is entitled to (root
keeps root)."""
import subprocess
import time

from harness import (proc_status, Tracer, check, free_port, get, require_root, run_main, start_python_server,
                     stop)


def test(a):
    require_root()
    port = free_port()
    server = start_python_server(port)
    t = Tracer(a.binary, ["--pid", str(server.pid)]).wait_attached()
    try:
        time.sleep(0.3)
        st = proc_status(t.proc.pid)
        for k in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
            check(int(st[k], 16) == 0, f"{k} = {st[k]} after attach")
        check(st.get("NoNewPrivs") == "1", f"NoNewPrivs = {st.get('NoNewPrivs')}")
        subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/fast"],
                       check=True, timeout=10)
        time.sleep(0.5)
        rc = t.stop()
    finally:
        stop(server)
    check(rc == 0, f"exit {rc}: {t.stderr()}")
    recs = t.records()
    check([get(r, "url.path") for r in recs] == ["/fast"], f"records {recs}")
    # The launched command is not affected by the tracer's own drop.
    p = subprocess.run([a.binary, "-q", "-u", "root", "--", "grep", "CapEff", "/proc/self/status"],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 0 and int(p.stdout.split()[1], 16) != 0,
          f"a command launched as root lost its capabilities: {p.stdout!r}")


run_main(test)
