#!/usr/bin/env bash
# Overhead of odigos-trace on nginx serving a small static file, measured with wrk, with a
# bpftrace script as a reference.
#
#   sudo bench/nginx_wrk.sh [ROUNDS [TRACER]]   (default 12 rounds with bpftrace, 10 without;
#                                               TRACER build/odigos-trace; see docs/BENCHMARKS.md)
#
# Starts its own nginx (127.0.0.1:$PORT, $WORKERS workers, access_log off, sendfile on,
# a 612-byte index.html), then runs ROUNDS rounds of
#   A: wrk untraced
#   B: wrk while `odigos-trace --pid <nginx master> -q -o FILE` runs
#   C: wrk while `bpftrace bench/bpftrace_ref.bt <nginx master and worker pids>` runs
#      (latency histograms of read/recv*/write*/send*/sendfile of those processes), or with
#      FLOOR=1: while bench/hook_floor's empty BPF programs sit on the four hooks odigos-trace
#      uses per socket call (the hooks' own cost; valid when they ran >= 8 times per request)
# The order rotates (ABC, BCA, CAB, ...; AB, BA without C) so that drift hits every side.
# B and C start wrk only once the tracer is attached. A B run is valid when the number of
# "kind":"request" records in FILE matches wrk's completed requests within +-CONNS
# (requests in flight when wrk stops) and the tracer reports 0 events lost; a C run is valid
# when bpftrace timed one sendfile per completed request (+-CONNS). Invalid runs are reported
# and left out. Prints medians, the ratios B/A, C/A and B/C of requests/s and of p99 latency
# with bootstrap 95% CIs (resampling rounds), CPU per request, the BPF programs' run time per
# request (kernel.bpf_stats_enabled=1 for the whole benchmark, restored at exit), and the
# tracer's memory (VmRSS, VmHWM, minus the ring buffer mapping).
#
# Environment: TRACER (default build/odigos-trace), PORT=18080, WORKERS=2, THREADS=1,
# CONNS=8, DURATION=5s, BPFTRACE=1 (0: no side C), FLOOR=0 (1: side C is the hook floor; needs
# clang, bpftool, cc, libbpf-dev), BPF_STATS=1 (0: leave the sysctl alone), OUT (results
# directory; default a temp dir that is kept).
# Needs nginx (nginx-light), wrk, python3, bpftrace, bpftool: scripts/install-deps.sh installs them.
set -euo pipefail
NAME=nginx_wrk.sh
[ $# -ge 2 ] && TRACER=$2 # as the other scripts: [ROUNDS [TRACER]]
source "$(dirname "$0")/nginx_common.sh"
source "$(dirname "$0")/nginx_ab.sh"
THREADS=${THREADS:-1}
CONNS=${CONNS:-8}
DURATION=${DURATION:-5s}
BPFTRACE=${BPFTRACE:-1}
BPF_STATS=${BPF_STATS:-1}
FLOOR=${FLOOR:-0}
[ "$FLOOR" = 1 ] && BPFTRACE=0 # side C is the hook floor instead of bpftrace
BT_SCRIPT=$BENCH_DIR/bpftrace_ref.bt

require_root_and_tools nginx wrk python3
C_NOTE=
if [ "$BPFTRACE" = 1 ]; then
  if ! command -v bpftrace >/dev/null; then
    BPFTRACE=0; C_NOTE="side C skipped: bpftrace not installed (scripts/install-deps.sh installs it)"
  elif [ "$WORKERS" -gt 15 ]; then
    BPFTRACE=0; C_NOTE="side C skipped: bpftrace_ref.bt takes at most 16 PIDs (WORKERS=$WORKERS)"
  fi
elif [ "$FLOOR" != 1 ]; then
  C_NOTE="side C skipped: BPFTRACE=0"
fi
[ -n "$C_NOTE" ] && echo "$NAME: $C_NOTE" >&2
if [ "$BPFTRACE" = 1 ] || [ "$FLOOR" = 1 ]; then SIDES=(A B C); DEFAULT_ROUNDS=12; else SIDES=(A B); DEFAULT_ROUNDS=10; fi
C_LABEL=
ROUNDS=${1:-$DEFAULT_ROUNDS}

setup_work nginx-wrk
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
setup_bpf_stats "sides B and C"
start_nginx
echo "nginx master $NGINX_PID, workers: $(nginx_workers)"

# ---- runs: A and B (run_a, run_b, run_rounds) are in nginx_ab.sh -------------------------
run_c() { # round order
  local err="$OUT/bpftrace-$1.err" hist="$OUT/bpftrace-$1.out" pid
  # shellcheck disable=SC2046
  bpftrace "$BT_SCRIPT" "$NGINX_PID" $(nginx_workers) >"$hist" 2>"$err" &
  pid=$!; register_bg "$pid"
  # bpftrace prints "Attaching N probes..." on stdout
  $STATS attached-wait "$pid" "$hist" || { cat "$hist" "$err" >&2; die "bpftrace did not attach"; }
  local mark
  mark=$(cpu_mark "$pid") # bpftrace's compile and attach excluded
  traced_wrk "$1" C "$pid"
  local tu ts tc rss hwm maps anon
  read -r tu ts tc rss hwm maps anon < <(usage_since "$pid" "$mark")
  stop_bg "$pid" 60
  local total sf wv rf valid=yes
  read -r total sf wv rf < <($STATS bthist "$hist")
  within_conns "$sf" "$completed" || valid=no
  row "$1" C "$2" "$rps" "$completed" "$p99" - "$valid" - "$n_cpu" "$(cat "$OUT/wrk-$1-C.txt.cpu")" \
    "$tu" "$ts" "$tc" "$bpf_ns" "$bpf_runs" "$bpf_progs" "$hwm_start" "$rss" "$hwm" "$maps" "$anon" "$total" \
    "$($STATS bthist-names "$hist")" >>"$OUT/runs.tsv"
  printf '  round %2d C: %9.0f req/s  p99 %7.0f us  wrk completed %s, bpftrace timed %s calls (sendfile %s, writev %s, recvfrom %s) (%s); BPF %s ns/req\n' \
    "$1" "$rps" "$p99" "$completed" "$total" "$sf" "$wv" "$rf" "$([ $valid = yes ] && echo valid || echo INVALID)" \
    "$(awk -v a="$bpf_ns" -v n="$completed" 'BEGIN{printf "%.0f", n ? a / n : 0}')"
}

# ---- FLOOR=1: side C is the least odigos-trace's hooks cost ----------------------------------
# bench/hook_floor: empty BPF programs on the four tp_btf hooks odigos-trace runs per socket call
# (sock_send_length, sock_recv_length, tcp_sendmsg_locked, sk_data_ready), for every process as
# odigos-trace's are: the hooks' own cost, before any filtering, copying or decoding. Valid (with
# kernel.bpf_stats_enabled) when they ran >= 8 times per request (B's programs run ~11 times).
if [ "$FLOOR" = 1 ]; then
  require_root_and_tools clang bpftool cc
  mkdir -p "$WORK/floor"
  clang -g -O2 -mcpu=v3 -Wall -target bpf -D__TARGET_ARCH_x86 -c "$BENCH_DIR/hook_floor/floor.bpf.c" \
    -o "$WORK/floor/floor.bpf.o" || die "cannot compile hook_floor/floor.bpf.c"
  cc -O2 -Wall -o "$WORK/floor/floor_load" "$BENCH_DIR/hook_floor/floor_load.c" -lbpf || die "cannot build floor_load"
  C_LABEL="hook floor"
  run_c() { # round order
    local err="$OUT/floor-$1.err" pid valid=yes
    "$WORK/floor/floor_load" "$WORK/floor/floor.bpf.o" 2>"$err" &
    pid=$!; register_bg "$pid"
    wait_attached "$pid" "$err"
    traced_wrk "$1" C "$pid"
    stop_bg "$pid"
    if [ "$bpf_runs" != 0 ] && [ -n "$bpf_runs" ]; then
      awk -v r="$bpf_runs" -v n="$completed" 'BEGIN { exit !(n > 0 && r / n >= 8) }' || valid=no
    fi
    row "$1" C "$2" "$rps" "$completed" "$p99" - "$valid" 0 "$n_cpu" "$(cat "$OUT/wrk-$1-C.txt.cpu")" \
      - - - "$bpf_ns" "$bpf_runs" "$bpf_progs" - - - - - - - >>"$OUT/runs.tsv"
    printf '  round %2d C: %9.0f req/s  p99 %7.0f us  empty hook programs ran %s times per request (%s)\n' "$1" "$rps" "$p99" \
      "$(awk -v r="$bpf_runs" -v n="$completed" 'BEGIN { printf "%.2f", n ? r / n : 0 }')" "$([ $valid = yes ] && echo valid || echo INVALID)"
  }
fi

run_rounds "$ROUNDS" "${SIDES[@]}"

# ---- summary -----------------------------------------------------------------------------
{
  machine_note
  cores_note
  tracer_note
  echo "load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine adds noise)"
  echo "command: wrk -t$THREADS -c$CONNS -d$DURATION --latency $URL; B adds: $(basename "$TRACER") --pid <nginx master> -q -o FILE"
  if [ "$BPFTRACE" = 1 ]; then
    echo "C adds: bpftrace bench/bpftrace_ref.bt <master and worker pids> ($(bpftrace --version 2>/dev/null | head -1))"
  elif [ "$FLOOR" = 1 ]; then
    echo "C adds: bench/hook_floor: empty BPF programs on tp_btf sock_send_length, sock_recv_length, tcp_sendmsg_locked, sk_data_ready (every process); valid when they ran >= 8 times per request"
  else echo "$C_NOTE"; fi
  echo "$BPF_NOTE"
  echo "round orders: ${SIDES[*]} rotated each round; $ROUNDS rounds"
} | tee "$OUT/meta.txt"
$STATS summary "$OUT/runs.tsv" ${C_LABEL:+"$C_LABEL"} | tee "$OUT/summary.txt"
echo "raw results: $OUT"
