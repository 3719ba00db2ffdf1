#!/usr/bin/env python3
"""Helpers of bench/nginx_wrk.sh, bench/lossless_rate.sh and bench/startup.sh
(python3 standard library only).

  run OUTFILE CMD...          run CMD (wrk) with stdout+stderr to OUTFILE; write its CPU
                              seconds (user + system, wait4) to OUTFILE.cpu
  parse WRKFILE               print "requests_per_s completed p99_us"
  bpfprogs PID                BPF programs PID holds (fds of programs and of links, from
                              /proc/PID/fdinfo): "prog_id run_time_ns run_cnt name" lines
  bpfdelta BEFORE AFTER OUT   per-program difference of two bpfprogs snapshots to OUT;
                              print "run_time_ns run_cnt programs" (sums)
  mem PID                     print "rss_kb hwm_kb bpfmap_rss_kb anon_kb" (see mem_of)
  mem-reset PID               the same, then reset VmHWM to the current RSS (clear_refs 5), so
                              that a later VmHWM is the peak from now on
  summary-line ERRFILE        print "records lost events" from the tracer's summary line
                              ("-" for a figure it does not print)
  bthist FILE                 bpftrace histogram counts: "total sendfile writev recvfrom"
  attached-wait PID OUTFILE   wait until bpftrace (PID, stdout in OUTFILE) attached all the
                              probes it announced
  summary RUNS.TSV [C_LABEL]  medians, ratios B/A, C/A (and B/C) with bootstrap CIs,
                              CPU, BPF run time and memory per request; C_LABEL names
                              side C when it is not the bpftrace reference
  startup OUT.TSV LABEL N -- CMD...
                              run CMD N times; time from exec to the "attached" line on its
                              stderr, measured from outside; append rows to OUT.TSV
  startup-summary OUT.TSV     median and max per label
"""
import glob
import json
import os
import random
import re
import select
import signal
import statistics as st
import subprocess
import sys
import time


# ---- wrk ---------------------------------------------------------------------------------
def run(out, cmd):
    with open(out, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        while True:
            try:
                _, status, ru = os.wait4(p.pid, 0)
                break
            except KeyboardInterrupt:  # Ctrl-C or the script's cleanup: stop wrk, then stop
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                return 130
    with open(out + ".cpu", "w") as f:
        f.write(f"{ru.ru_utime + ru.ru_stime:.3f}\n")
    return os.waitstatus_to_exitcode(status)


def parse_wrk(path):
    t = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    done = int(re.search(r"(\d+) requests in", t).group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
    mult = {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
    return rps, done, float(m.group(1)) * mult


# ---- BPF programs of a process ---------------------------------------------------------------
def fdinfo(pid, fd):
    d = {}
    try:
        for line in open(f"/proc/{pid}/fdinfo/{fd}"):
            k, _, v = line.partition(":")
            d[k.strip()] = v.strip()
    except OSError:
        pass
    return d


def bpf_progs(pid):
    """{prog_id: (run_time_ns, run_cnt, name)} of the BPF programs a process holds.

    bpftool's "pids" field (who holds a program) needs bpftool built with its BPF skeleton,
    which Debian's 7.1 is not here; it reads the same thing we read: /proc/PID/fdinfo. A
    program fd lists prog_id, run_time_ns and run_cnt; a link fd lists the prog_id of the
    program it attaches. The kernel fills run_time_ns/run_cnt only while
    kernel.bpf_stats_enabled is 1 (or a BPF_ENABLE_STATS fd is open)."""
    progs, linked = {}, set()
    for path in glob.glob(f"/proc/{pid}/fd/*"):
        fd = path.rsplit("/", 1)[1]
        try:
            target = os.readlink(path)
        except OSError:
            continue
        if target == "anon_inode:bpf-prog":
            d = fdinfo(pid, fd)
            if "prog_id" in d:
                progs[int(d["prog_id"])] = (int(d.get("run_time_ns", 0)), int(d.get("run_cnt", 0)))
        elif target == "anon_inode:bpf_link":
            d = fdinfo(pid, fd)
            if "prog_id" in d:
                linked.add(int(d["prog_id"]))
    names = {}
    try:
        out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True,
                             timeout=20).stdout
        for p in json.loads(out or "[]"):
            names[p["id"]] = (p.get("name", "?"), p.get("run_time_ns", 0), p.get("run_cnt", 0))
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    for pid_ in linked - set(progs):  # program held only through its link
        n = names.get(pid_)
        progs[pid_] = (n[1], n[2]) if n else (0, 0)
    return {i: (rt, rc, names.get(i, ("?",))[0]) for i, (rt, rc) in progs.items()}


def print_bpf_progs(pid):
    for i, (rt, rc, name) in sorted(bpf_progs(pid).items()):
        print(f"{i}\t{rt}\t{rc}\t{name}")


def read_progs(path):
    d = {}
    for line in open(path):
        i, rt, rc, name = line.rstrip("\n").split("\t")
        d[int(i)] = (int(rt), int(rc), name)
    return d


def bpf_delta(before, after, out):
    a, b = read_progs(before), read_progs(after)
    tot_rt = tot_rc = 0
    with open(out, "w") as f:
        f.write("prog_id\tname\trun_time_ns\trun_cnt\n")
        for i, (rt, rc, name) in sorted(b.items()):
            rt0, rc0, _ = a.get(i, (0, 0, name))
            f.write(f"{i}\t{name}\t{rt - rt0}\t{rc - rc0}\n")
            tot_rt += rt - rt0
            tot_rc += rc - rc0
    print(f"{tot_rt} {tot_rc} {len(b)}")


# ---- memory of a process ------------------------------------------------------------------
def mem_of(pid):
    """(VmRSS, VmHWM, Rss of BPF map mappings, RssAnon) in kB.

    The BPF ring buffer is mmapped by libbpf: one read-write consumer page and a read-only
    mapping of the producer page plus the data pages mapped twice (so that a record wrapping
    around the end reads contiguously). /proc/PID/smaps names every mmapped BPF map
    "anon_inode:bpf-map" (the ring buffer and mmappable arrays such as .rodata); the kernel
    maps all their pages at mmap time (remap_vmalloc_range), so they count in VmRSS from the
    start, touched or not: a 16 MiB ring buffer shows as 32 MiB + 8 KiB of Rss (16 MiB Pss).
    Rss of those mappings is kernel memory of the maps, not memory the tracer allocated;
    VmRSS minus it is what the tracer's own code and heap use (file-backed text included)."""
    st_ = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        st_[k] = v.strip()
    kb = lambda k: int(st_.get(k, "0 kB").split()[0])
    bpfmap = 0
    cur_is_bpf = False
    for line in open(f"/proc/{pid}/smaps"):
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            cur_is_bpf = line.rstrip().endswith("anon_inode:bpf-map")
        elif cur_is_bpf and line.startswith("Rss:"):
            bpfmap += int(line.split()[1])
    return kb("VmRSS"), kb("VmHWM"), bpfmap, kb("RssAnon")


# ---- tracer and bpftrace output ------------------------------------------------------------
def summary_line(path):
    """records, lost events and (when printed) decoded events from the tracer's last summary
    line: "odigos-trace: <reason> (T s): N records from P processes; ...; L events lost"."""
    line = ""
    for l in open(path, errors="replace"):
        if re.search(r"records? from .* events lost", l):
            line = l
    if not line:
        return "-", "-", "-"
    rec = re.search(r"(\d+) records?", line)
    lost = re.search(r"(\d+) events lost", line) or re.search(r"(\d+) (?:events? )?lost", line)
    ev = re.search(r"(\d+) events(?! lost)", line)
    return (rec.group(1) if rec else "-", lost.group(1) if lost else "-", ev.group(1) if ev else "-")


SYSCALL_NR = {0: "read", 1: "write", 19: "readv", 20: "writev", 40: "sendfile", 44: "sendto",
              45: "recvfrom", 46: "sendmsg", 47: "recvmsg"}


def bt_hist(path):
    """Total count per key of the @ns histograms bpftrace printed at exit."""
    counts, key = {}, None
    for line in open(path, errors="replace"):
        m = re.match(r"^@ns\[(\d+)\]:", line)
        if m:
            key = int(m.group(1))
            counts.setdefault(key, 0)
            continue
        m = re.match(r"^[\[(].*?[\])]\s+(\d+)\s*\|", line)
        if m and key is not None:
            counts[key] += int(m.group(1))
    return counts


def attached_wait(pid, out, timeout=20.0):
    """bpftrace prints "Attaching N probes..." before attaching; it is attached when it holds
    N perf_event fds (one per tracepoint/uprobe)."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        try:
            m = re.search(r"Attaching (\d+) probes?", open(out, errors="replace").read())
        except OSError:
            m = None
        if not os.path.exists(f"/proc/{pid}"):
            return 1
        if m:
            n = 0
            for path in glob.glob(f"/proc/{pid}/fd/*"):
                try:
                    n += os.readlink(path) == "anon_inode:[perf_event]"
                except OSError:
                    pass
            if n >= int(m.group(1)) - 1:  # BEGIN's probe may already be gone
                time.sleep(0.2)
                return 0
        time.sleep(0.05)
    return 1


# ---- statistics -----------------------------------------------------------------------------
def bootstrap_ratio(a, b, n=10000, seed=1):
    """95% percentile CI of median(b)/median(a), resampling pairs."""
    rng = random.Random(seed)
    k = len(a)
    boots = []
    for _ in range(n):
        idx = [rng.randrange(k) for _ in range(k)]
        boots.append(st.median(b[i] for i in idx) / st.median(a[i] for i in idx))
    boots.sort()
    return boots[int(0.025 * n)], boots[int(0.975 * n) - 1]


def bootstrap_median(x, n=10000, seed=1):
    rng = random.Random(seed)
    k = len(x)
    boots = sorted(st.median(x[rng.randrange(k)] for _ in range(k)) for _ in range(n))
    return boots[int(0.025 * n)], boots[int(0.975 * n) - 1]


def fnum(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def summary(path, c_label=None):
    """c_label names side C (default: the bpftrace reference of nginx_wrk.sh), e.g.
    "odigos-trace --no-tls"; with a label, side C is another tracer run, valid when it lost
    no events."""
    c_name = c_label or "bpftrace"
    c_short = c_name.ljust(12)
    rows = [l.rstrip("\n").split("\t") for l in open(path)]
    head, rows = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(head)}
    side = {s: {r[0]: r for r in rows if r[1] == s} for s in "ABC"}
    A, B, C = side["A"], side["B"], side["C"]
    has_c = bool(C)
    bad = {s: [p for p, r in side[s].items() if r[col["valid"]] != "yes"] for s in "BC"}
    okB = [p for p in A if p in B and p not in bad["B"]]
    okC = [p for p in A if p in C and p not in bad["C"]]
    okBC = [p for p in okB if p in okC]
    print(f"valid rounds: B {len(okB)} of {len(A)}" + (f", C {len(okC)} of {len(A)}" if has_c else ""))
    if bad["B"]:
        print(f"  INVALID B runs (records != wrk completed +- connections, or events lost): "
              f"rounds {', '.join(bad['B'])}")
    if bad["C"]:
        why = ("bpftrace did not time every request's sendfile" if not c_label
               else "events lost")
        print(f"  INVALID C runs ({why}): "
              f"rounds {', '.join(bad['C'])}")
    if not okB:
        return 1

    def f(rs, name, pairs):
        return [fnum(rs[p][col[name]]) for p in pairs]

    def med(x):
        x = [v for v in x if v is not None]
        return st.median(x) if x else float("nan")

    def ratio_line(label, num, den, pairs, name, fmt=".3f"):
        a, b = f(den, name, pairs), f(num, name, pairs)
        lo, hi = bootstrap_ratio(a, b)
        per = sorted(y / x for x, y in zip(a, b))
        return (f"{label}: {st.median(b) / st.median(a):{fmt}} (bootstrap 95% CI {lo:{fmt}}..{hi:{fmt}}, "
                f"{len(pairs)} rounds); per-round {per[0]:{fmt}}..{per[-1]:{fmt}}, median {st.median(per):{fmt}}")

    every = [p for p in A]
    for s, rs, ok in (("A untraced", A, every), ("B odigos  ", B, okB), ("C " + c_name.ljust(8), C, okC)):
        if not ok:
            continue
        r, p99 = f(rs, "rps", ok), f(rs, "p99_us", ok)
        print(f"{s}: median {st.median(r):.0f} req/s (min {min(r):.0f}, max {max(r):.0f}); "
              f"p99 median {st.median(p99):.0f} us")
    print(ratio_line("B/A requests/s", B, A, okB, "rps"))
    if okC:
        print(ratio_line("C/A requests/s", C, A, okC, "rps"))
        print(ratio_line(f"B/C requests/s (> 1: odigos-trace cheaper than {c_name})", B, C, okBC, "rps")
              if okBC else "B/C: no round with both B and C valid")
    print(ratio_line("B/A p99 latency", B, A, okB, "p99_us", ".2f"))
    if okC:
        print(ratio_line("C/A p99 latency", C, A, okC, "p99_us", ".2f"))
    recs, done = f(B, "records", okB), f(B, "completed", okB)
    print(f"records vs wrk completed (valid B runs): max |diff| "
          f"{max(abs(x - y) for x, y in zip(recs, done)):.0f}; events lost: 0 in every valid run")

    # CPU per request: other work on a shared machine disturbs it much less than requests/s
    def per_req(rs, name, pairs, n_name="completed"):
        return [x / max(n, 1) * 1e6 if x is not None else None
                for x, n in zip(f(rs, name, pairs), f(rs, n_name, pairs))]
    print("CPU us per request, median (nginx master+workers from /proc/PID/stat, wrk from wait4):")
    print(f"  nginx: A {med(per_req(A, 'nginx_cpu_s', every)):.1f}, B {med(per_req(B, 'nginx_cpu_s', okB)):.1f}"
          + (f", C {med(per_req(C, 'nginx_cpu_s', okC)):.1f}" if okC else "")
          + "  (includes the BPF programs, which run in nginx's syscalls and softirqs)")
    print(f"  wrk:   A {med(per_req(A, 'wrk_cpu_s', every)):.1f}, B {med(per_req(B, 'wrk_cpu_s', okB)):.1f}"
          + (f", C {med(per_req(C, 'wrk_cpu_s', okC)):.1f}" if okC else ""))
    tu, ts = per_req(B, "tracer_user_s", okB, "records"), per_req(B, "tracer_sys_s", okB, "records")
    tc = per_req(B, "tracer_cpu_s", okB, "records")
    lo, hi = bootstrap_median([x for x in tc if x is not None])
    print(f"  odigos-trace process: {med(tc):.2f} per record (95% CI {lo:.2f}..{hi:.2f}; schedstat, ns "
          f"resolution), of which user {med(tu):.2f}, system {med(ts):.2f} (utime/stime, 10 ms ticks); "
          f"from 'attached' to the end of the drain")
    if okC:
        cu, cs = per_req(C, "tracer_user_s", okC), per_req(C, "tracer_sys_s", okC)
        cc = per_req(C, "tracer_cpu_s", okC)
        if any(x is not None for x in cc):  # side C has a process of its own (not the uprobe floor)
            print(f"  {c_name + ' process:':<21} {med(cc):.2f} per request (user {med(cu):.2f}, system {med(cs):.2f})")

    def bpf_lines(label, rs, pairs):
        ns, runs = f(rs, "bpf_ns", pairs), f(rs, "bpf_runs", pairs)
        done_ = f(rs, "completed", pairs)
        if not any(ns) or not any(runs):
            print(f"  {label}: no figures (kernel.bpf_stats_enabled was off)")
            return
        npr = [x / n for x, n in zip(ns, done_)]
        lo, hi = bootstrap_median(npr)
        print(f"  {label}: {med(npr):.0f} ns per request (95% CI {lo:.0f}..{hi:.0f}), "
              f"{med([x / max(r, 1) for x, r in zip(ns, runs)]):.0f} ns per program run, "
              f"{med([r / n for r, n in zip(runs, done_)]):.2f} runs per request")
    print("BPF program run time (kernel.bpf_stats_enabled; during wrk only; all invocations, "
          "including those filtered out for other processes such as wrk):")
    bpf_lines("odigos-trace", B, okB)
    per_prog(os.path.dirname(path), "B", okB, {p: float(B[p][col["completed"]]) for p in okB})
    if okC and any(x is not None for x in f(C, "bpf_ns", okC)):
        bpf_lines(c_short, C, okC)

    def mem_lines(label, rs, pairs):
        rss, hwm = f(rs, "rss_kb", pairs), f(rs, "hwm_kb", pairs)
        maps, anon = f(rs, "bpfmap_kb", pairs), f(rs, "anon_kb", pairs)
        hwm0 = f(rs, "hwm_start_kb", pairs)
        if not any(rss):
            return
        mib = lambda x: med(x) / 1024
        print(f"  {label}: steady VmRSS {mib(rss):.1f} MiB, peak during the run (VmHWM since attach) "
              f"{mib(hwm):.1f} MiB, peak while starting (VmHWM at attach) {mib(hwm0):.1f} MiB")
        print(f"  {'':12}  mmapped BPF maps (the ring buffer) {mib(maps):.1f} MiB; without them: steady "
              f"{mib([x - m for x, m in zip(rss, maps)]):.1f} MiB, run peak "
              f"{mib([x - m for x, m in zip(hwm, maps)]):.1f} MiB; RssAnon (heap) {mib(anon):.1f} MiB")
    print("memory, median of runs (per run in runs.tsv; 'ring buffer' = every anon_inode:bpf-map "
          "mapping in /proc/PID/smaps):")
    mem_lines("odigos-trace", B, okB)
    if okC:
        mem_lines(c_short, C, okC)
    ta = [x + y for x, y in zip(per_req(A, "nginx_cpu_s", okB), per_req(A, "wrk_cpu_s", okB))]
    tt = [x + y + z for x, y, z in zip(per_req(B, "nginx_cpu_s", okB), per_req(B, "wrk_cpu_s", okB), tc)]
    lo, hi = bootstrap_ratio(tt, ta)
    print(f"CPU us per request, nginx + wrk (+ tracer): A {st.median(ta):.1f}, B {st.median(tt):.1f}; "
          f"A/B = requests/s ratio expected when the {os.cpu_count()} vCPUs are the bottleneck: "
          f"{st.median(ta) / st.median(tt):.3f} (bootstrap 95% CI {lo:.3f}..{hi:.3f})")
    return 0


def per_prog(outdir, s, pairs, completed):
    """Per-program medians from bpf-ROUND-B.tsv files."""
    per = {}
    for p in pairs:
        path = os.path.join(outdir, f"bpf-{p}-{s}.tsv")
        if not os.path.exists(path):
            continue
        for line in list(open(path))[1:]:
            _, name, rt, rc = line.rstrip("\n").split("\t")
            rt, rc = int(rt), int(rc)
            per.setdefault(name, []).append((rt / completed[p], rc / completed[p], rt / rc if rc else 0))
    rows = sorted(per.items(), key=lambda kv: -st.median(x[0] for x in kv[1]))
    for name, xs in rows:
        ns_req = st.median(x[0] for x in xs)
        if ns_req < 0.5 and st.median(x[1] for x in xs) < 0.001:
            continue
        print(f"    {name:<20} {ns_req:7.0f} ns/request  {st.median(x[1] for x in xs):6.2f} runs/request  "
              f"{st.median(x[2] for x in xs):6.0f} ns/run")


# ---- startup ------------------------------------------------------------------------------------
def startup(out, label, n, cmd):
    """Time from just before fork+exec to the "attached" line on the command's stderr."""
    with open(out, "a") as f:
        for i in range(1, n + 1):
            t0 = time.monotonic_ns()
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            buf, t1, self_ms = b"", None, "-"
            deadline = time.monotonic() + 15
            try:
                while t1 is None and time.monotonic() < deadline:
                    r, _, _ = select.select([p.stderr], [], [], 0.5)
                    if not r:
                        if p.poll() is not None:
                            break
                        continue
                    chunk = os.read(p.stderr.fileno(), 65536)
                    if not chunk:
                        break
                    buf += chunk
                    k = buf.find(b"attached")
                    if k >= 0 and b"\n" in buf[k:]:
                        t1 = time.monotonic_ns()  # the line is complete: the tracer wrote it
                        m = re.search(rb"attached[^\n]* in (\d+) ms", buf)
                        self_ms = m.group(1).decode() if m else "-"
            finally:
                p.send_signal(signal.SIGINT)
                try:
                    rest = p.communicate(timeout=10)[1]
                except subprocess.TimeoutExpired:
                    p.kill()
                    rest = p.communicate()[1]
            if t1 is None:
                sys.stderr.write((buf + (rest or b"")).decode(errors="replace"))
                f.write(f"{label}\t{i}\t-\t-\tfailed\n")
                print(f"  {label} {i:3d}: no 'attached' line (exit {p.returncode})")
                continue
            ms = (t1 - t0) / 1e6
            f.write(f"{label}\t{i}\t{ms:.1f}\t{self_ms}\tok\n")
            print(f"  {label} {i:3d}: {ms:6.1f} ms to 'attached' (tracer says {self_ms} ms)", flush=True)


def startup_summary(path, goal_ms=300.0):
    rows = [l.rstrip("\n").split("\t") for l in open(path)]
    labels = []
    for r in rows:
        if r[0] not in labels:
            labels.append(r[0])
    worst = 0.0
    for lab in labels:
        ok = [float(r[2]) for r in rows if r[0] == lab and r[4] == "ok"]
        selfm = [float(r[3]) for r in rows if r[0] == lab and r[4] == "ok" and r[3] != "-"]
        failed = sum(1 for r in rows if r[0] == lab and r[4] != "ok")
        if not ok:
            print(f"{lab}: every run failed")
            worst = float("inf")
            continue
        worst = max(worst, max(ok))
        print(f"{lab}: exec -> 'attached' median {st.median(ok):.0f} ms, max {max(ok):.0f} ms, "
              f"min {min(ok):.0f} ms over {len(ok)} runs"
              + (f" ({failed} FAILED)" if failed else "")
              + (f"; tracer's own figure median {st.median(selfm):.0f} ms, max {max(selfm):.0f} ms" if selfm else ""))
    print(f"goal <= {goal_ms:.0f} ms (max of every run): {'met' if worst <= goal_ms else 'NOT met'} "
          f"(worst {worst:.0f} ms)")
    return 0


def interrupted(signum, frame):
    raise KeyboardInterrupt


def main():
    # Started in the background by a non-interactive shell, SIGINT arrives ignored; the
    # scripts stop helpers with SIGINT (or SIGTERM): turn both into KeyboardInterrupt, which
    # stops the helper's own child (wrk, the tracer). Handled signals are reset to their
    # defaults in exec'd children, so wrk and the tracer get a normal SIGINT.
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    a = sys.argv[2:]
    if cmd == "run":
        return run(a[0], a[1:])
    if cmd == "parse":
        rps, done, p99 = parse_wrk(a[0])
        print(f"{rps} {done} {p99:.1f}")
        return 0
    if cmd == "bpfprogs":
        print_bpf_progs(int(a[0]))
        return 0
    if cmd == "bpfdelta":
        bpf_delta(a[0], a[1], a[2])
        return 0
    if cmd in ("mem", "mem-reset"):
        print(*mem_of(int(a[0])))
        if cmd == "mem-reset":
            with open(f"/proc/{int(a[0])}/clear_refs", "w") as f:
                f.write("5\n")
        return 0
    if cmd == "summary-line":
        print(*summary_line(a[0]))
        return 0
    if cmd == "bthist":
        c = bt_hist(a[0])
        print(sum(c.values()), c.get(40, 0), c.get(20, 0), c.get(45, 0))
        return 0
    if cmd == "bthist-names":
        c = bt_hist(a[0])
        print(", ".join(f"{SYSCALL_NR.get(k, k)} {v}" for k, v in sorted(c.items())))
        return 0
    if cmd == "attached-wait":
        return attached_wait(int(a[0]), a[1])
    if cmd == "summary":
        return summary(a[0], a[1] if len(a) > 1 else None)
    if cmd == "startup":
        label, n = a[1], int(a[2])
        assert a[3] == "--"
        return startup(a[0], label, n, a[4:])
    if cmd == "startup-summary":
        return startup_summary(a[0], float(a[1]) if len(a) > 1 else 300.0)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main() or 0)
    except KeyboardInterrupt:  # children were stopped on the way out (finally blocks)
        sys.exit(130)
