#!/usr/bin/env bash
# Hook-cost benchmark: syscall tracepoints (design a) vs tp_btf sock_{send,recv}_length
# (design b), see docs/HOOK_DESIGN.md.
#
#   sudo bench/hookcost/run.sh [ROUNDS]          (default 10 rounds; 0: build only)
#
# Environment:
#   N=10000          timed round trips per loadgen run
#   RUNS=3           loadgen runs per measurement (loadgen reports their median)
#   MODES="write sendto"
#   ODIGOS_TRACE=/work/main/build/odigos-trace   also measure the real tracer ("real");
#                    set ODIGOS_TRACE= (empty) to skip it
#   STATS_PASSES=3   passes with kernel.bpf_stats_enabled=1 (per-program run time)
#   PIN=1            pin loadgen (client+server) to CPU 1 and the tracer/loader to CPU 0
#   HC_WAKE_MODE=2   ring-buffer wake-up policy of designs a/b (see hc_common.bpf.h and
#                    wakeup.sh): 2 = one wake-up when the backlog crosses 64 KiB
#   OUT=bench/hookcost/out/<time>
#
# Every round measures, in a rotated order, for each mode:
#   none                       nothing attached
#   a, b, real                 attached, filtering on the loadgen's two processes
#   a-direct, b-direct         a and b with plain BTF-pointer loads instead of
#                              BPF_CORE_READ (bpf_probe_read_kernel) for kernel fields
#   a-untraced, b-untraced, real-untraced
#                              attached, filtering on another process (a sleep):
#                              the cost that processes NOT traced pay
# then STATS_PASSES passes with kernel.bpf_stats_enabled=1 record run_cnt/run_time_ns per
# BPF program (kept out of the timed rounds: the statistics themselves cost time per run).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ROUNDS=${1:-10}
N=${N:-10000}
RUNS=${RUNS:-3}
MODES=${MODES:-"write sendto"}
ODIGOS_TRACE=${ODIGOS_TRACE-$REPO/build/odigos-trace}
PIN=${PIN:-1}
STATS_PASSES=${STATS_PASSES:-3}
OUT=${OUT:-$HERE/out/$(date +%Y%m%d-%H%M%S)}
BUILD=$HERE/build
BPFTOOL=${BPFTOOL:-$(command -v bpftool || echo /usr/sbin/bpftool)}

[ "$(id -u)" -eq 0 ] || { echo "run.sh: needs root (BPF)" >&2; exit 1; }
mkdir -p "$BUILD"

# ---- build --------------------------------------------------------------------
LIBBPF_A=$(ls /usr/lib/*/libbpf.a /usr/lib/libbpf.a 2>/dev/null | head -1 || true)
[ -n "$LIBBPF_A" ] || { echo "run.sh: libbpf.a not found (libbpf-dev)" >&2; exit 1; }
for d in design_syscalls design_sockbtf; do
  clang -g -O2 -mcpu=v3 -Wall -Werror -target bpf -D__TARGET_ARCH_x86 \
    -I"$REPO/bpf" -I"$HERE" -c "$HERE/$d.bpf.c" -o "$BUILD/$d.bpf.o"
  clang -g -O2 -mcpu=v3 -Wall -Werror -target bpf -D__TARGET_ARCH_x86 -DHC_DIRECT \
    -I"$REPO/bpf" -I"$HERE" -c "$HERE/$d.bpf.c" -o "$BUILD/${d}_direct.bpf.o"
done
gcc -O2 -Wall -Wextra -Werror -o "$BUILD/loadgen" "$HERE/loadgen.c"
gcc -O2 -Wall -Wextra -Werror -I"$HERE" -o "$BUILD/hookload" "$HERE/hookload.c" \
  "$LIBBPF_A" -lelf -lz
echo "built into $BUILD"
[ "$ROUNDS" = 0 ] && exit 0 # build only
mkdir -p "$OUT"

if [ -n "$ODIGOS_TRACE" ] && [ ! -x "$ODIGOS_TRACE" ]; then
  echo "run.sh: $ODIGOS_TRACE not found: skipping the real tracer (build it with scripts/build.sh)" >&2
  ODIGOS_TRACE=
fi
if [ -n "$ODIGOS_TRACE" ]; then
  # a private copy: a rebuild of build/ during the rounds must not change or remove it
  cp "$ODIGOS_TRACE" "$OUT/odigos-trace"
  echo "real tracer: $ODIGOS_TRACE, built $(date -u -r "$ODIGOS_TRACE" +%FT%TZ)" >"$OUT/tracer.txt"
  ODIGOS_TRACE=$OUT/odigos-trace
fi
TRACERS="a b a-direct b-direct"
[ -n "$ODIGOS_TRACE" ] && TRACERS="$TRACERS real"
UNTRACED="a b"
[ -n "$ODIGOS_TRACE" ] && UNTRACED="$UNTRACED real"
export HC_WAKE_MODE=${HC_WAKE_MODE:-2}

if [ "$PIN" = 1 ]; then LG_PIN=(taskset -c 1); TR_PIN=(taskset -c 0); else LG_PIN=(); TR_PIN=(); fi

# ---- one measurement -------------------------------------------------------------
SLEEPER=
cleanup() {
  [ -n "${TR_PID:-}" ] && kill -INT "$TR_PID" 2>/dev/null || true
  [ -n "${LG_PID:-}" ] && kill "$LG_PID" 2>/dev/null || true
  [ -n "$SLEEPER" ] && kill "$SLEEPER" 2>/dev/null || true
  if [ -n "${STATS_WAS:-}" ]; then sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"; fi
}
trap cleanup EXIT
sleep 100000 &
SLEEPER=$!

wait_attached() { # file pid
  for _ in $(seq 200); do
    grep -q attached "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { cat "$1" >&2; return 1; }
    sleep 0.05
  done
  echo "run.sh: tracer did not attach:" >&2; cat "$1" >&2; return 1
}

# measure MODE CFG ROUND STATS(0/1): appends to results.tsv (or stats.tsv)
measure() {
  local mode=$1 cfg=$2 round=$3 stats=$4 tag=$OUT/tmp
  local tracer=${cfg%-untraced} target
  : >"$tag.lgerr" # truncate first: a stale "waiting" line must not be seen
  "${LG_PIN[@]}" "$BUILD/loadgen" -g -m "$mode" -n "$N" -r "$RUNS" >"$tag.lg" 2>"$tag.lgerr" &
  LG_PID=$!
  for _ in $(seq 250); do grep -q waiting "$tag.lgerr" && break; sleep 0.02; done
  grep -q waiting "$tag.lgerr" || { echo "run.sh: loadgen did not start" >&2; cat "$tag.lgerr" >&2; exit 1; }
  if [ "$cfg" = "${tracer}-untraced" ]; then target=$SLEEPER; else target=$LG_PID; fi
  TR_PID=
  : >"$tag.tr"; : >"$tag.trerr"; rm -f "$tag.ndjson"
  case $tracer in
    none) ;;
    a) "${TR_PIN[@]}" "$BUILD/hookload" "$BUILD/design_syscalls.bpf.o" "$target" >"$tag.tr" 2>"$tag.trerr" & TR_PID=$! ;;
    b) "${TR_PIN[@]}" "$BUILD/hookload" "$BUILD/design_sockbtf.bpf.o" "$target" >"$tag.tr" 2>"$tag.trerr" & TR_PID=$! ;;
    a-direct) "${TR_PIN[@]}" "$BUILD/hookload" "$BUILD/design_syscalls_direct.bpf.o" "$target" >"$tag.tr" 2>"$tag.trerr" & TR_PID=$! ;;
    b-direct) "${TR_PIN[@]}" "$BUILD/hookload" "$BUILD/design_sockbtf_direct.bpf.o" "$target" >"$tag.tr" 2>"$tag.trerr" & TR_PID=$! ;;
    real)
      "${TR_PIN[@]}" "$ODIGOS_TRACE" --pid "$target" -q -o "$tag.ndjson" >"$tag.tr" 2>"$tag.trerr" & TR_PID=$! ;;
  esac
  [ -n "$TR_PID" ] && wait_attached "$tag.trerr" "$TR_PID"
  local ids=
  if [ "$tracer" = real ]; then
    # the programs this tracer holds (prog_id in its fdinfo): other tracers may be
    # running on the machine too
    ids=$(grep -h '^prog_id:' /proc/"$TR_PID"/fdinfo/* 2>/dev/null | awk '{print $2}' | sort -u | tr '\n' ' ' || true)
  fi
  kill -USR1 "$LG_PID"
  wait "$LG_PID"; LG_PID=
  local progstats=
  if [ "$tracer" = real ]; then
    # per-program statistics, while the tracer still holds its programs (it exits by
    # itself once its targets have exited)
    progstats=$("$BPFTOOL" prog show --json | IDS="$ids" python3 -c '
import json, os, sys
ids = set(os.environ["IDS"].split())
for p in json.load(sys.stdin):
    if str(p["id"]) not in ids: continue
    name, pid, rc, rt = p.get("name", "?"), p["id"], p.get("run_cnt", 0), p.get("run_time_ns", 0)
    print(f"PROG name={name} id={pid} run_cnt={rc} run_time_ns={rt} ns_per_run={rt/rc if rc else 0:.1f}")')
    # the tracer exits by itself once its targets have exited, after draining the ring
    # buffer (SIGINT would discard what is still queued); give it up to 60 s
    for _ in $(seq 600); do kill -0 "$TR_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  if [ -n "$TR_PID" ]; then kill -INT "$TR_PID" 2>/dev/null || true; wait "$TR_PID" || true; TR_PID=; fi
  local med cpu events="" drops="" records=""
  med=$(sed -n 's/.* median_ns=\([0-9.]*\).*/\1/p' "$tag.lg")
  cpu=$(sed -n 's/.* cpu_median_ns=\([0-9.]*\).*/\1/p' "$tag.lg")
  case $tracer in
    a|b|a-direct|b-direct)
      events=$(sed -n 's/^EVENTS events=\([0-9]*\).*/\1/p' "$tag.tr")
      drops=$(sed -n 's/^EVENTS.*drops_ringbuf=\([0-9]*\).*/\1/p' "$tag.tr")
      progstats=$(grep '^PROG' "$tag.tr" || true) ;;
    real)
      records=$(grep -c '"kind":"request"' "$tag.ndjson" 2>/dev/null || true)
      drops=$(sed -n 's/.* \([0-9]*\) events lost.*/\1/p' "$tag.trerr" | tail -1) ;;
  esac
  if [ "$stats" = 1 ]; then
    while read -r line; do
      [ -n "$line" ] || continue
      printf '%s\t%s\t%s\t%s\n' "$mode" "$cfg" "$round" "$line" >>"$OUT/stats.tsv"
    done <<<"$progstats"
  else
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$cfg" "$round" "$med" "$cpu" \
      "${events:--}" "${drops:--}" "${records:--}" >>"$OUT/results.tsv"
    printf '  %-7s %-14s round %s: wall %8.1f ns/rt, cpu %8.1f ns/rt  events=%s drops=%s records=%s\n' \
      "$mode" "$cfg" "$round" "$med" "$cpu" "${events:--}" "${drops:--}" "${records:--}"
  fi
}

# ---- rounds ------------------------------------------------------------------------
CFGS=(none)
for t in $TRACERS; do CFGS+=("$t"); done
for t in $UNTRACED; do CFGS+=("$t-untraced"); done
{
  echo "date: $(date -u +%FT%TZ)"
  echo "kernel: $(uname -r); cpus: $(nproc); $(grep -m1 'model name' /proc/cpuinfo)"
  echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null) ($(git -C "$REPO" status --porcelain 2>/dev/null | wc -l) paths modified/untracked)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "N=$N RUNS=$RUNS ROUNDS=$ROUNDS STATS_PASSES=$STATS_PASSES MODES=$MODES PIN=$PIN HC_WAKE_MODE=$HC_WAKE_MODE ODIGOS_TRACE=${ODIGOS_TRACE:-none}"
} | tee "$OUT/meta.txt"
printf 'mode\tcfg\tround\twall_ns\tcpu_ns\tevents\tdrops\trecords\n' >"$OUT/results.tsv"
printf 'mode\tcfg\tpass\tprogram\n' >"$OUT/stats.tsv"
sysctl -qw kernel.bpf_stats_enabled=0 2>/dev/null || true
for ((r = 1; r <= ROUNDS; r++)); do
  for mode in $MODES; do
    n=${#CFGS[@]}
    for ((i = 0; i < n; i++)); do
      measure "$mode" "${CFGS[$(((i + r - 1) % n))]}" "$r" 0
    done
  done
done

# ---- per-program BPF statistics (extra passes) --------------------------------------------
STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1
for ((p = 1; p <= STATS_PASSES; p++)); do
  for mode in $MODES; do
    for cfg in "${CFGS[@]:1}"; do measure "$mode" "$cfg" "$p" 1; done
  done
done
sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"; STATS_WAS=

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.txt"
rm -f "$OUT"/tmp.* "$OUT/odigos-trace"
python3 "$HERE/summarize.py" "$OUT" | tee "$OUT/summary.md"
