"""cgroup v2 filtering with --cgroup (no --pid) and --unit.

Test servers: A moved into a new cgroup odigos-test-<pid>, C into a child cgroup of it created
before the tracer starts, D into a child cgroup created after the tracer attached (the man
page: "this cgroup v2 directory ... or below it"), B left outside. curl (outside) talks to all
four. Expected: server-side records of A, C and D only, no client-side records.
Also: --unit nonexistent-unit-xyz exits 125 naming the unit's cgroup path; a directory that is
not a cgroup v2 directory (a cgroup v1 hierarchy, a plain directory) is refused with 125; and,
when systemd does not own the hierarchy, --unit NAME finds a unit cgroup created by hand under
the cgroup2 mount's system.slice.

The cgroup2 hierarchy is used wherever it is mounted: /sys/fs/cgroup (unified) or
/sys/fs/cgroup/unified (hybrid). Oracles: /proc/PID/cgroup (where the kernel says each server
is) and curl's own -w output."""
import os
import re
import subprocess
import tempfile
import time

from harness import (Failure, Tracer, check, free_port, get, require_root, run_main, skip,
                     start_python_server, stop, summary)


def mounts(fstype):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, post = line.split(" - ", 1)
            if post.split()[0] == fstype:
                out.append(pre.split()[4])
    return out


def cgroup2_root():
    m = mounts("cgroup2")
    if "/sys/fs/cgroup" in m:
        return "/sys/fs/cgroup"
    return m[0] if m else None


def cgroup_of(pid):
    """The process's cgroup v2 path, relative to the cgroup2 root (kernel's view)."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return None


def move(root, rel, pid):
    with open(os.path.join(root, rel.lstrip("/"), "cgroup.procs"), "w") as f:
        f.write(str(pid))


def rmdir_retry(path):
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
    os.rmdir(path)


def curl(port, query):
    r = subprocess.run(["curl", "-s", "--max-time", "10", "-o", "/dev/null", "-w",
                        "%{http_code}", f"http://127.0.0.1:{port}/{query}"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"curl {port}/{query}: exit {r.returncode} {r.stderr}")
    return int(r.stdout)


def run_quick(cmd, timeout=20):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure(f"{cmd} did not exit within {timeout}s (expected an immediate error)")


def test(a):
    require_root()
    root = cgroup2_root()
    if root is None:
        skip("no cgroup2 hierarchy is mounted (cgroup v1 only)")
    errors = []

    def expect(cond, msg):
        if not cond:
            errors.append(msg)
        return cond

    name = f"odigos-test-{os.getpid()}"
    cg = os.path.join(root, name)
    cg_rel = "/" + name
    servers = {}
    orig = {}
    made = []
    tracer = None
    try:
        os.mkdir(cg)
        made.append(cg)
        os.mkdir(os.path.join(cg, "inner"))
        made.append(os.path.join(cg, "inner"))
        ports = {}
        for s in "ABCD":
            ports[s] = free_port()
            while ports[s] in [ports[x] for x in ports if x != s]:
                ports[s] = free_port()
            servers[s] = start_python_server(ports[s])
            orig[s] = cgroup_of(servers[s].pid)
        move(root, cg_rel, servers["A"].pid)
        move(root, cg_rel + "/inner", servers["C"].pid)
        check(cgroup_of(servers["A"].pid) == cg_rel,
              f"server A is in {cgroup_of(servers['A'].pid)!r}, expected {cg_rel!r}")
        check(cgroup_of(servers["C"].pid) == cg_rel + "/inner",
              f"server C is in {cgroup_of(servers['C'].pid)!r}")
        check(cgroup_of(servers["B"].pid) == orig["B"] and not orig["B"].startswith(cg_rel),
              f"server B is in {cgroup_of(servers['B'].pid)!r}")

        tracer = Tracer(a.binary, ["--cgroup", cg]).wait_attached()
        # A child cgroup created while tracing ("or below it").
        os.mkdir(os.path.join(cg, "late"))
        made.append(os.path.join(cg, "late"))
        move(root, cg_rel + "/late", servers["D"].pid)
        check(cgroup_of(servers["D"].pid) == cg_rel + "/late",
              f"server D is in {cgroup_of(servers['D'].pid)!r}")
        want_status = {"fast": 200, "error": 500, "notfound": 404}
        sent = [("A", "fast?srv=A"), ("B", "fast?srv=B"), ("A", "error?srv=A"),
                ("B", "notfound?srv=B"), ("C", "fast?srv=C"), ("D", "error?srv=D")]
        for s, q in sent:
            code = curl(ports[s], q)
            check(code == want_status[q.split("?")[0]], f"server {s} answered {code} for /{q}")
        time.sleep(0.5)
        rc = tracer.stop()
        check(rc == 0, f"tracer exit code {rc}:\n{tracer.stderr()}")
        recs = tracer.records(None)
        print(f"  --cgroup {cg}: {summary(recs)}")
        by_pid = {servers[s].pid: s for s in servers}
        got = sorted((by_pid.get(get(r, "process.pid"), f"pid {get(r, 'process.pid')}"),
                      r.get("side"), get(r, "url.path"), get(r, "url.query"),
                      get(r, "http.response.status_code")) for r in recs)
        core = [g for g in got if g[0] in ("A", "C") or g[0] not in ("A", "B", "C", "D")]
        want_core = sorted([("A", "server", "/fast", "srv=A", 200),
                            ("A", "server", "/error", "srv=A", 500),
                            ("C", "server", "/fast", "srv=C", 200)])
        expect(core == want_core,
               f"--cgroup {cg}: records of the cgroup (A) and its child created before the "
               f"start (C) differ (no client records expected):\n expected {want_core}\n "
               f"got      {core}")
        expect(not [g for g in got if g[0] == "B"],
               f"--cgroup {cg}: records of server B, outside the cgroup: "
               f"{[g for g in got if g[0] == 'B']}")
        expect([g for g in got if g[0] == "D"] == [("D", "server", "/error", "srv=D", 500)],
               f"--cgroup {cg}: server D, moved into {cg}/late (a child cgroup created after the "
               f"tracer attached), has records {[g for g in got if g[0] == 'D']}, expected "
               f"[('D', 'server', '/error', 'srv=D', 500)] (man page: 'or below it')")
        for r in recs:
            expect(r.get("kind") == "request" and r.get("complete") is True,
                   f"unexpected record {r}")

        # --unit for a unit that does not exist.
        p = run_quick([a.binary, "-q", "--unit", "nonexistent-unit-xyz", "--duration", "5s"])
        print(f"  --unit nonexistent-unit-xyz: exit {p.returncode}: {p.stderr.strip()}")
        expect(p.returncode == 125, f"--unit nonexistent-unit-xyz: exit {p.returncode}, "
                                    f"expected 125:\n{p.stderr}")
        expect(re.search(r"/sys/fs/cgroup/\S*nonexistent-unit-xyz\.service", p.stderr),
               f"--unit nonexistent-unit-xyz: the error does not name the unit's cgroup path "
               f"(…/nonexistent-unit-xyz.service):\n{p.stderr}")
        expect("attached" not in p.stderr, f"--unit nonexistent: attached anyway:\n{p.stderr}")

        # Directories that are not cgroup v2 directories.
        plain = tempfile.mkdtemp(prefix="odigos-notcg-")
        not_v2 = [plain] + [m for m in mounts("cgroup")][:1]
        for d in not_v2:
            not_cgroup_v2(a, d, servers["B"].pid, ports["B"], expect)
        os.rmdir(plain)

        # --unit NAME finds NAME.service under the cgroup2 mount (a unit cgroup made by hand;
        # only where systemd does not own the hierarchy).
        if open("/proc/1/comm").read().strip() == "systemd":
            print("  --unit with a hand-made unit cgroup: not run (systemd owns the hierarchy)")
        else:
            unit_check(a, root, servers, ports, made, expect)
    finally:
        if tracer and tracer.proc.poll() is None:
            tracer.stop()
        for s, p in servers.items():
            try:
                if p.poll() is None and s in orig:
                    move(root, orig[s], p.pid)
            except OSError as e:
                print(f"  cleanup: could not move server {s} back: {e}")
            stop(p)
        for d in reversed(made):
            try:
                rmdir_retry(d)
            except OSError as e:
                print(f"  cleanup: rmdir {d}: {e}")
    check(not errors, "\n".join(errors))


def not_cgroup_v2(a, d, b_pid, b_port, expect):
    """--cgroup DIR where DIR is not a cgroup v2 directory: expected exit 125 naming DIR. If
    the tracer runs anyway, one request to server B (outside DIR) shows what it traces."""
    t = Tracer(a.binary, ["--cgroup", d, "--duration", "10s"])
    try:
        t.attached.wait(20)
        if t.proc.poll() is None and any("attached" in l for l in t.stderr_lines):
            curl(b_port, "fast?srv=B-notv2")
            time.sleep(0.5)
        rc = t.stop()
    finally:
        if t.proc.poll() is None:
            t.stop()
    b_recs = [r for r in t.records(None) if get(r, "process.pid") == b_pid]
    last = t.stderr().strip().splitlines()[-1] if t.stderr().strip() else ""
    print(f"  --cgroup {d} (not cgroup v2): exit {rc}: {last}; records of B: {summary(b_recs)}")
    expect(rc == 125 and d in t.stderr(),
           f"--cgroup {d} (stat -f: {fs_type(d)}, not a cgroup v2 directory): exit {rc}, "
           f"expected 125 with an error naming it; it traced server B (pid {b_pid}, outside "
           f"{d}): {summary(b_recs)}; stderr:\n{t.stderr()}")


def fs_type(d):
    return subprocess.run(["stat", "-f", "-c", "%T", d], capture_output=True,
                          text=True).stdout.strip()


def unit_check(a, root, servers, ports, made, expect):
    unit = f"odigos-fake-{os.getpid()}"
    slice_dir = os.path.join(root, "system.slice")
    if not os.path.isdir(slice_dir):
        os.mkdir(slice_dir)
        made.append(slice_dir)
    udir = os.path.join(slice_dir, unit + ".service")
    os.mkdir(udir)
    made.append(udir)
    port = free_port()
    srv = start_python_server(port)
    servers["E"] = srv
    try:
        orig = cgroup_of(srv.pid)
        move(root, f"/system.slice/{unit}.service", srv.pid)
        check(cgroup_of(srv.pid) == f"/system.slice/{unit}.service",
              f"server E is in {cgroup_of(srv.pid)!r}")
        t = Tracer(a.binary, ["--unit", unit])
        try:
            t.wait_attached(20)
        except Failure:
            t.stop()
            expect(False, f"--unit {unit}: did not attach although the unit's cgroup "
                          f"{udir} exists ({fs_type(udir)}; /proc/{srv.pid}/cgroup says "
                          f"0::/system.slice/{unit}.service); exit {t.proc.returncode}:\n"
                          f"{t.stderr()}")
            return
        code = curl(port, "fast?srv=E")
        check(code == 200, f"server E answered {code}")
        time.sleep(0.5)
        rc = t.stop()
        recs = t.records(None)
        got = [(get(r, "process.pid"), r.get("side"), get(r, "url.path"), get(r, "url.query"),
                get(r, "http.response.status_code")) for r in recs]
        print(f"  --unit {unit}: {got}")
        expect(rc == 0, f"--unit {unit}: tracer exit {rc}:\n{t.stderr()}")
        expect(got == [(srv.pid, "server", "/fast", "srv=E", 200)],
               f"--unit {unit}: records {got}, expected "
               f"{[(srv.pid, 'server', '/fast', 'srv=E', 200)]}")
    finally:
        try:
            move(root, orig, srv.pid)
        except OSError:
            pass
        stop(srv)


run_main(test)
