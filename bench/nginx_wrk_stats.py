#!/usr/bin/env python3
"""Helpers of bench/nginx_wrk.sh (python3 standard library only).

  nginx_wrk_stats.py run OUTFILE CMD...   run CMD (wrk) with stdout+stderr to OUTFILE; write
                                          its CPU seconds (user + system, wait4) to OUTFILE.cpu
  nginx_wrk_stats.py parse WRKFILE        print "requests_per_s completed p99_us"
  nginx_wrk_stats.py summary RUNS.TSV     medians, B/A ratio with bootstrap CI, p99 ratio,
                                          CPU per request
"""
import os
import random
import re
import statistics as st
import subprocess
import sys


def run(out, cmd):
    with open(out, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
    with open(out + ".cpu", "w") as f:
        f.write(f"{ru.ru_utime + ru.ru_stime:.3f}\n")
    return os.waitstatus_to_exitcode(status)


def parse(path):
    t = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    done = int(re.search(r"(\d+) requests in", t).group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
    mult = {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
    print(f"{rps} {done} {float(m.group(1)) * mult:.1f}")


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


def summary(path):
    rows = [l.rstrip("\n").split("\t") for l in open(path)]
    head, rows = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(head)}
    A = {r[0]: r for r in rows if r[1] == "A"}
    B = {r[0]: r for r in rows if r[1] == "B"}
    invalid = [p for p, r in B.items() if r[col["valid"]] != "yes"]
    pairs = [p for p in A if p in B and p not in invalid]
    print(f"valid pairs: {len(pairs)} of {len(A)}" +
          (f"; INVALID B runs (records != wrk completed +- connections): pairs {', '.join(invalid)}"
           if invalid else ""))
    if not pairs:
        return 1

    def f(rs, name):
        return [float(rs[p][col[name]]) for p in pairs]

    a, b = f(A, "rps"), f(B, "rps")
    a99, b99 = f(A, "p99_us"), f(B, "p99_us")
    lo, hi = bootstrap_ratio(a, b)
    per_pair = sorted(y / x for x, y in zip(a, b))
    print(f"A untraced: median {st.median(a):.0f} req/s (min {min(a):.0f}, max {max(a):.0f}); "
          f"p99 median {st.median(a99):.0f} us")
    print(f"B traced:   median {st.median(b):.0f} req/s (min {min(b):.0f}, max {max(b):.0f}); "
          f"p99 median {st.median(b99):.0f} us")
    print(f"B/A requests/s: {st.median(b) / st.median(a):.3f} (bootstrap 95% CI {lo:.3f}..{hi:.3f}, "
          f"10000 resamples of pairs); per-pair ratios {per_pair[0]:.3f}..{per_pair[-1]:.3f}, "
          f"median {st.median(per_pair):.3f}")
    print(f"B/A p99 latency (ratio of medians): {st.median(b99) / st.median(a99):.2f}")
    recs, done = f(B, "records"), f(B, "completed")
    print(f"records vs wrk completed (valid B runs): max |diff| "
          f"{max(abs(x - y) for x, y in zip(recs, done)):.0f}")

    # CPU per request: other work on a shared machine disturbs it much less than requests/s
    na = [x / n * 1e6 for x, n in zip(f(A, "nginx_cpu_s"), f(A, "completed"))]
    nb = [x / n * 1e6 for x, n in zip(f(B, "nginx_cpu_s"), done)]
    wa = [x / n * 1e6 for x, n in zip(f(A, "wrk_cpu_s"), f(A, "completed"))]
    wb = [x / n * 1e6 for x, n in zip(f(B, "wrk_cpu_s"), done)]
    tb = [x / max(n, 1) * 1e6 for x, n in zip(f(B, "tracer_cpu_s"), recs)]
    print(f"CPU us per request, median: nginx A {st.median(na):.1f}, B {st.median(nb):.1f} "
          f"(B/A {st.median(nb) / st.median(na):.2f}); wrk A {st.median(wa):.1f}, "
          f"B {st.median(wb):.1f}; tracer process {st.median(tb):.1f} (whole run incl. drain)")
    ta = [x + y for x, y in zip(na, wa)]
    tt = [x + y + z for x, y, z in zip(nb, wb, tb)]
    lo, hi = bootstrap_ratio(tt, ta)
    print(f"CPU us per request, nginx + wrk (+ tracer): A {st.median(ta):.1f}, B {st.median(tt):.1f}; "
          f"A/B = requests/s ratio expected when the {os.cpu_count()} vCPUs are the bottleneck: "
          f"{st.median(ta) / st.median(tt):.3f} (bootstrap 95% CI {lo:.3f}..{hi:.3f})")
    return 0


def main():
    cmd = sys.argv[1]
    if cmd == "run":
        return run(sys.argv[2], sys.argv[3:])
    if cmd == "parse":
        return parse(sys.argv[2])
    if cmd == "summary":
        return summary(sys.argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main() or 0)
