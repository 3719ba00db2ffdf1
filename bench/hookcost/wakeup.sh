#!/usr/bin/env bash
# What the ring-buffer wake-up policy costs the traced process (docs/HOOK_DESIGN.md).
#
#   sudo bench/hookcost/wakeup.sh [REPEATS]      (default 3; builds with run.sh 0)
#
# Design b (direct loads) under each HC_WAKE_MODE (0: wake on every record while
# more than 64 KiB are queued, the tracer's policy until 35a961e; 1: never, timer only; 2: once when
# the backlog crosses 64 KiB; 3: kernel default; 4: on every record while the backlog is
# in [64 KiB, 96 KiB), the tracer's policy since 35a961e), with a reader that keeps up
# (delay 0) and one that needs 20 us per event (HC_READER_DELAY_NS=20000).
# Prints ns per round trip, BPF ns per run (bpf_stats) and ring-buffer drops.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$HERE/build
REPEATS=${1:-3}
N=${N:-10000}
RUNS=${RUNS:-3}
"$HERE/run.sh" 0 >/dev/null
TMP=$(mktemp -d)
WAS=$(sysctl -n kernel.bpf_stats_enabled)
LG=; HL=
cleanup() {
  [ -n "$HL" ] && kill -INT "$HL" 2>/dev/null || true
  [ -n "$LG" ] && kill "$LG" 2>/dev/null || true
  sysctl -qw kernel.bpf_stats_enabled="$WAS"
  rm -rf "$TMP"
}
trap cleanup EXIT
sysctl -qw kernel.bpf_stats_enabled=1
printf 'wake_mode\treader_delay_ns\trepeat\tns_per_rt\tevents\tdrops\tbpf_ns_per_run\n'
for ((r = 1; r <= REPEATS; r++)); do
  for mode in 0 1 2 3 4; do
    for delay in 0 20000; do
      : >"$TMP/lg.err"; : >"$TMP/hl.err"
      taskset -c 1 "$BUILD/loadgen" -g -n "$N" -r "$RUNS" >"$TMP/lg.out" 2>"$TMP/lg.err" &
      LG=$!
      for _ in $(seq 250); do grep -q waiting "$TMP/lg.err" && break; sleep 0.02; done
      HC_WAKE_MODE=$mode HC_READER_DELAY_NS=$delay taskset -c 0 "$BUILD/hookload" \
        "$BUILD/design_sockbtf_direct.bpf.o" "$LG" >"$TMP/hl.out" 2>"$TMP/hl.err" &
      HL=$!
      for _ in $(seq 200); do grep -q attached "$TMP/hl.err" && break; sleep 0.05; done
      kill -USR1 "$LG"; wait "$LG"; LG=
      kill -INT "$HL"; wait "$HL" || true; HL=
      python3 - "$mode" "$delay" "$r" "$TMP/lg.out" "$TMP/hl.out" <<'EOF'
import re, sys
mode, delay, rep, lg, hl = sys.argv[1:]
med = re.search(r"median_ns=([0-9.]+)", open(lg).read()).group(1)
out = open(hl).read()
ev = re.search(r"events=(\d+)", out).group(1)
dr = re.search(r"drops_ringbuf=(\d+)", out).group(1)
cnt = tim = 0
for m in re.finditer(r"run_cnt=(\d+) run_time_ns=(\d+)", out):
    cnt += int(m.group(1)); tim += int(m.group(2))
print(f"{mode}\t{delay}\t{rep}\t{med}\t{ev}\t{dr}\t{tim / cnt if cnt else 0:.0f}")
EOF
    done
  done
done
