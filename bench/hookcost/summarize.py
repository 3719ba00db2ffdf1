#!/usr/bin/env python3
"""Summarises a bench/hookcost/run.sh output directory as Markdown tables.

Per measurement the loadgen reports the median over its runs of
  wall: elapsed ns per round trip, and
  cpu:  CPU ns (client + server, user + system) per round trip.
Here, per (mode, config):
  value   = median over rounds (min..max over rounds)
  delta   = per round, config minus that round's "none" (paired), then median (min..max)
  per call = delta / 4 (a round trip is 4 socket calls: 2 sends, 2 receives)
"""
import re
import statistics as st
import sys
from collections import defaultdict
from pathlib import Path

WARMUP = 1000  # loadgen default
ORDER = ["none", "a", "b", "a-direct", "b-direct", "real", "a-untraced", "b-untraced",
         "real-untraced"]


def fmt_range(vals, signed=False):
    f = "{:+.0f}" if signed else "{:.0f}"
    return f"{f.format(st.median(vals))} ({f.format(min(vals))}..{f.format(max(vals))})"


def main(out: Path) -> None:
    meta = (out / "meta.txt").read_text()
    n = int(re.search(r"\bN=(\d+)", meta).group(1))
    runs = int(re.search(r"\bRUNS=(\d+)", meta).group(1))
    rows = [l.split("\t") for l in (out / "results.tsv").read_text().splitlines()[1:] if l]
    by = defaultdict(dict)  # (mode, cfg) -> round -> row
    for r in rows:
        by[(r[0], r[1])][r[2]] = r
    modes = list(dict.fromkeys(r[0] for r in rows))
    cfgs = sorted(dict.fromkeys(r[1] for r in rows),
                  key=lambda c: ORDER.index(c) if c in ORDER else 99)
    rounds = len({r[2] for r in rows})

    print("```")
    print(meta.strip())
    print("```\n")
    print(f"{rounds} rounds. Values: median over rounds (min..max). Deltas: paired with the "
          "same round's `none`, median (min..max); per call = delta / 4. 'min vs min': the "
          "lowest CPU ns/rt of the config minus the lowest of `none`, / 4 (interference from "
          "other work only adds time, so the minima are the least disturbed estimate).\n")
    print("| mode | config | wall ns/rt | wall delta | CPU ns/rt | CPU delta | CPU delta per "
          "socket call | min vs min, per call | events/measurement | ring-buffer drops | records |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for mode in modes:
        bw = {k: float(v[3]) for k, v in by[(mode, "none")].items()}
        bc = {k: float(v[4]) for k, v in by[(mode, "none")].items()}
        for cfg in cfgs:
            rs = by.get((mode, cfg))
            if not rs:
                continue
            wall = [float(v[3]) for v in rs.values()]
            cpu = [float(v[4]) for v in rs.values()]
            if cfg == "none":
                print(f"| {mode} | none | {fmt_range(wall)} | - | {fmt_range(cpu)} | - | - | - | - | - | - |")
                continue
            dw = [float(v[3]) - bw[k] for k, v in rs.items() if k in bw]
            dc = [float(v[4]) - bc[k] for k, v in rs.items() if k in bc]
            ev = [int(v[5]) for v in rs.values() if v[5] not in ("-", "")]
            dr = [int(v[6]) for v in rs.values() if v[6] not in ("-", "")]
            rec = [int(v[7]) for v in rs.values() if v[7] not in ("-", "")]
            evs = f"{min(ev)}..{max(ev)}" if ev else "-"
            drs = f"{sum(dr)}" if dr else "-"
            recs = f"{min(rec)}..{max(rec)}" if rec else "-"
            print(f"| {mode} | {cfg} | {fmt_range(wall)} | {fmt_range(dw, True)} | "
                  f"{fmt_range(cpu)} | {fmt_range(dc, True)} | {st.median(dc) / 4:+.0f} | "
                  f"{(min(cpu) - min(bc.values())) / 4:+.0f} | "
                  f"{evs} | {drs} | {recs} |")
    per = (n + WARMUP) * runs
    print(f"\nevents: ring-buffer records the minimal loader counted per measurement (expected "
          f"{4 * per} + one EOF per connection = {4 * per + runs}); drops: summed over rounds; "
          f"records: `\"kind\":\"request\"` lines the real tracer wrote per measurement "
          f"(expected {2 * per}: client side and server side of each round trip).\n")

    srows = [l.split("\t") for l in (out / "stats.tsv").read_text().splitlines()[1:] if l]
    if not srows:
        return
    calls = 4 * per
    progs = defaultdict(lambda: defaultdict(list))  # (mode, cfg) -> name -> [(cnt, ns/run)]
    tot = defaultdict(lambda: defaultdict(int))  # (mode, cfg) -> pass -> run_time_ns
    for mode, cfg, pss, line in srows:
        kv = dict(p.split("=", 1) for p in line.split()[1:])
        progs[(mode, cfg)][kv["name"]].append((int(kv["run_cnt"]), float(kv["ns_per_run"])))
        tot[(mode, cfg)][pss] += int(kv["run_time_ns"])
    npass = len({r[2] for r in srows})
    print(f"Per-program BPF run time (kernel.bpf_stats_enabled=1, {npass} extra passes; medians "
          "over passes; programs with fewer than 100 runs omitted). Sum per socket call = all "
          f"programs' run time / the loadgen's {calls} socket calls (programs also run for other "
          "processes on the machine, so this slightly over-counts).\n")
    print("| mode | config | program | run_cnt | ns/run | sum per socket call (min..max over passes) |")
    print("|---|---|---|---|---|---|")
    for (mode, cfg), names in progs.items():
        per_call = [t / calls for t in tot[(mode, cfg)].values()]
        for name, obs in names.items():
            cnt = st.median(o[0] for o in obs)
            if cnt < 100:
                continue
            print(f"| {mode} | {cfg} | {name} | {cnt:.0f} | {st.median(o[1] for o in obs):.0f} | "
                  f"{fmt_range(per_call)} |")

if __name__ == "__main__":
    main(Path(sys.argv[1]))
