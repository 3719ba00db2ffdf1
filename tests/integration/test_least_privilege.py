"""Least privilege: once attached, odigos-trace holds only what attaching TLS probes to
processes that appear later needs (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN for the kernel's uprobe
PMU, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH to read their maps and libraries), nothing
inheritable or ambient, NoNewPrivs 1; with --no-tls it holds no capability at all, and still
traces: maps, links and the ring buffer are open fds. A launched command keeps what its user is
entitled to (root keeps root)."""
import subprocess
import time

from harness import (proc_status, Tracer, check, free_port, get, require_root, run_main, start_python_server,
                     stop)


CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE, CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 2, 19, 21, 38, 39
RUNTIME_ATTACH = sum(1 << c for c in (CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE, CAP_SYS_ADMIN,
                                      CAP_PERFMON, CAP_BPF))


def test(a):
    require_root()
    for extra, expected in ((["--no-tls"], 0), ([], RUNTIME_ATTACH)):
        traced_with(a, extra, expected)


def traced_with(a, extra, expected):
    port = free_port()
    server = start_python_server(port)
    t = Tracer(a.binary, ["--pid", str(server.pid)], extra=extra).wait_attached()
    try:
        time.sleep(0.3)
        st = proc_status(t.proc.pid)
        for k in ("CapEff", "CapPrm"):
            check(int(st[k], 16) == expected, f"{extra}: {k} = {st[k]} after attach, "
                                              f"expected {expected:#x}")
        for k in ("CapInh", "CapAmb"):
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
