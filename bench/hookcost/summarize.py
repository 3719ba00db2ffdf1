#!/usr/bin/env python3
"""Summarises a bench/hookcost/run.sh output directory as Markdown tables.

ns/rt: median over rounds of each round's loadgen median; spread = min..max over rounds.
delta: per round, cfg minus that round's "none" (paired), then median and min..max.
per call: delta / 4 (each round trip is 4 socket calls: 2 sends, 2 receives).
"""
import re
import statistics as st
import sys
from collections import defaultdict
from pathlib import Path

WARMUP = 1000  # loadgen default


def main(out: Path) -> None:
    meta = (out / "meta.txt").read_text()
    n = int(re.search(r"\bN=(\d+)", meta).group(1))
    runs = int(re.search(r"\bRUNS=(\d+)", meta).group(1))
    rows = [l.split("\t") for l in (out / "results.tsv").read_text().splitlines()[1:] if l]
    by = defaultdict(dict)  # (mode, cfg) -> round -> row
    for r in rows:
        by[(r[0], r[1])][r[2]] = r
    modes = list(dict.fromkeys(r[0] for r in rows))
    cfgs = list(dict.fromkeys(r[1] for r in rows))
    order = ["none", "a", "b", "real", "a-untraced", "b-untraced", "real-untraced"]
    cfgs.sort(key=lambda c: order.index(c) if c in order else 99)

    print("```")
    print(meta.strip())
    print("```\n")
    print("| mode | config | ns/round trip, median (min..max) | delta vs none, median (min..max) | "
          "delta per socket call | slowdown | events/run | ring-buffer drops | records |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in modes:
        base = {k: float(v[3]) for k, v in by[(mode, "none")].items()}
        for cfg in cfgs:
            rs = by.get((mode, cfg))
            if not rs:
                continue
            vals = [float(v[3]) for v in rs.values()]
            deltas = [float(v[3]) - base[k] for k, v in rs.items() if k in base]
            med = st.median(vals)
            bmed = st.median(base.values())
            ev = [v[5] for v in rs.values() if v[5] != "-"]
            dr = [v[6] for v in rs.values() if v[6] not in ("-", "")]
            rec = [v[7] for v in rs.values() if v[7] not in ("-", "")]
            evs = f"{int(st.median(int(e) for e in ev))}" if ev else "-"
            drs = f"{sum(int(d) for d in dr)}" if dr else "-"
            recs = f"{int(st.median(int(x) for x in rec))}" if rec else "-"
            if cfg == "none":
                print(f"| {mode} | {cfg} | {med:.0f} ({min(vals):.0f}..{max(vals):.0f}) | - | - | - | - | - | - |")
            else:
                dm = st.median(deltas)
                print(f"| {mode} | {cfg} | {med:.0f} ({min(vals):.0f}..{max(vals):.0f}) | "
                      f"{dm:+.0f} ({min(deltas):+.0f}..{max(deltas):+.0f}) | {dm / 4:+.0f} | "
                      f"{med / bmed:.3f} | {evs} | {drs} | {recs} |")
    expected = 4 * (n + WARMUP) * runs
    print(f"\nevents/run: ring-buffer records the minimal loader counted per measurement "
          f"(expected {expected} + one EOF per connection); records: `\"kind\":\"request\"` lines the "
          f"real tracer wrote (expected {2 * (n + WARMUP) * runs}: client and server side).\n")

    srows = [l.split("\t") for l in (out / "stats.tsv").read_text().splitlines()[1:] if l]
    if not srows:
        return
    print("Per-program BPF run time (kernel.bpf_stats_enabled=1, one extra pass; programs with "
          "run_cnt > 0):\n")
    print("| mode | config | program | run_cnt | ns/run | BPF ns per loadgen socket call |")
    print("|---|---|---|---|---|---|")
    calls = 4 * (n + WARMUP) * runs
    tot = defaultdict(int)
    for mode, cfg, line in srows:
        kv = dict(p.split("=", 1) for p in line.split()[1:])
        tot[(mode, cfg)] += int(kv["run_time_ns"])
    for mode, cfg, line in srows:
        kv = dict(p.split("=", 1) for p in line.split()[1:])
        if int(kv["run_cnt"]) == 0:
            continue
        print(f"| {mode} | {cfg} | {kv['name']} | {kv['run_cnt']} | {float(kv['ns_per_run']):.0f} | "
              f"{tot[(mode, cfg)] / calls:.0f} (all programs) |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
