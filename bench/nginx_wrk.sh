#!/usr/bin/env bash
# Overhead of odigos-trace on nginx serving a small static file, measured with wrk, with a
# bpftrace script as a reference.
#
#   sudo bench/nginx_wrk.sh [ROUNDS]      (default 12 with bpftrace, 10 without; see docs/BENCHMARKS.md)
#
# Starts its own nginx (127.0.0.1:$PORT, $WORKERS workers, access_log off, sendfile on,
# a 612-byte index.html), then runs ROUNDS rounds of
#   A: wrk untraced
#   B: wrk while `odigos-trace --pid <nginx master> -q -o FILE` runs
#   C: wrk while `bpftrace bench/bpftrace_ref.bt <nginx master and worker pids>` runs
#      (latency histograms of read/recv*/write*/send*/sendfile of those processes)
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
# CONNS=8, DURATION=5s, BPFTRACE=1 (0: no side C), BPF_STATS=1 (0: leave the sysctl alone),
# OUT (results directory; default a temp dir that is kept).
# Needs nginx (nginx-light), wrk, python3, bpftrace, bpftool: scripts/install-deps.sh installs them.
set -euo pipefail
NAME=nginx_wrk.sh
source "$(dirname "$0")/nginx_common.sh"
THREADS=${THREADS:-1}
CONNS=${CONNS:-8}
DURATION=${DURATION:-5s}
BPFTRACE=${BPFTRACE:-1}
BPF_STATS=${BPF_STATS:-1}
BT_SCRIPT=$BENCH_DIR/bpftrace_ref.bt

require_root_and_tools nginx wrk python3
C_NOTE=
if [ "$BPFTRACE" = 1 ]; then
  if ! command -v bpftrace >/dev/null; then
    BPFTRACE=0; C_NOTE="side C skipped: bpftrace not installed (scripts/install-deps.sh installs it)"
  elif [ "$WORKERS" -gt 15 ]; then
    BPFTRACE=0; C_NOTE="side C skipped: bpftrace_ref.bt takes at most 16 PIDs (WORKERS=$WORKERS)"
  fi
else
  C_NOTE="side C skipped: BPFTRACE=0"
fi
[ -n "$C_NOTE" ] && echo "$NAME: $C_NOTE" >&2
if [ "$BPFTRACE" = 1 ]; then SIDES=(A B C); DEFAULT_ROUNDS=12; else SIDES=(A B); DEFAULT_ROUNDS=10; fi
ROUNDS=${1:-$DEFAULT_ROUNDS}

setup_work nginx-wrk
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
BPF_NOTE="kernel.bpf_stats_enabled left alone (BPF_STATS=0): BPF run times are not measured"
if [ "$BPF_STATS" = 1 ]; then
  if enable_bpf_stats; then
    BPF_NOTE="kernel.bpf_stats_enabled=1 during every run (was $BPF_STATS_OLD; restored at exit): adds two clock reads per BPF program run on sides B and C"
  else BPF_NOTE="kernel.bpf_stats_enabled unavailable: BPF run times are not measured"; fi
fi
start_nginx
echo "nginx master $NGINX_PID, workers: $(nginx_workers)"

# ---- runs ------------------------------------------------------------------------------
# one line of runs.tsv: the fields joined by tabs (24 columns)
row() { local IFS=$'\t'; echo "$*"; }
row pair side order rps completed p99_us records valid drops nginx_cpu_s wrk_cpu_s tracer_user_s tracer_sys_s tracer_cpu_s \
  bpf_ns bpf_runs bpf_progs hwm_start_kb rss_kb hwm_kb bpfmap_kb anon_kb timed_calls tracer_summary >"$OUT/runs.tsv"

# wrk; its CPU seconds go to $1.cpu
run_wrk() { fg_run $STATS run "$1" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$URL"; }

within_conns() { [ $(($1 - $2)) -le "$CONNS" ] && [ $(($2 - $1)) -le "$CONNS" ]; }

record_count() { grep -c '"kind":"request"' "$1" 2>/dev/null || true; }

run_a() { # round order
  local n0 n1 rps completed p99
  n0=$(nginx_cpu)
  run_wrk "$OUT/wrk-$1-A.txt"
  n1=$(nginx_cpu)
  read -r rps completed p99 < <($STATS parse "$OUT/wrk-$1-A.txt")
  row "$1" A "$2" "$rps" "$completed" "$p99" - - - "$(fsub "$n0" "$n1")" "$(cat "$OUT/wrk-$1-A.txt.cpu")" \
    - - - - - - - - - - - - - >>"$OUT/runs.tsv"
  printf '  round %2d A: %9.0f req/s  p99 %7.0f us\n' "$1" "$rps" "$p99"
}

# traced_wrk ROUND SIDE PID: wrk while PID (tracer or bpftrace) runs; BPF program snapshots
# around wrk; sets n_cpu, rps, completed, p99, bpf_ns, bpf_runs, bpf_progs, hwm_start
traced_wrk() {
  local n0 n1
  $STATS bpfprogs "$3" >"$OUT/bpf-$1-$2.before"
  # peak RSS while starting; then VmHWM restarts from the current RSS (peak during the run)
  read -r _ hwm_start _ _ < <($STATS mem-reset "$3")
  n0=$(nginx_cpu)
  run_wrk "$OUT/wrk-$1-$2.txt"
  n1=$(nginx_cpu)
  $STATS bpfprogs "$3" >"$OUT/bpf-$1-$2.after"
  read -r bpf_ns bpf_runs bpf_progs < <($STATS bpfdelta "$OUT/bpf-$1-$2.before" "$OUT/bpf-$1-$2.after" "$OUT/bpf-$1-$2.tsv")
  rm -f "$OUT/bpf-$1-$2.before" "$OUT/bpf-$1-$2.after"
  n_cpu=$(fsub "$n0" "$n1")
  read -r rps completed p99 < <($STATS parse "$OUT/wrk-$1-$2.txt")
}

run_b() { # round order
  local nd="$OUT/trace-$1.ndjson" err="$OUT/tracer-$1.err" pid
  rm -f "$nd"; : >"$err"
  "$TRACER" --pid "$NGINX_PID" -q -o "$nd" 2>"$err" &
  pid=$!; register_bg "$pid"
  wait_attached "$pid" "$err"
  local tu0 ts0 tc0
  read -r tu0 ts0 < <(proc_cpu_split "$pid") # CPU from here on: attach and startup excluded
  tc0=$(proc_cpu_ns "$pid")
  traced_wrk "$1" B "$pid"
  # let the tracer catch up: stop once the record count is stable for 1 s (at most 30 s)
  local prev=-1 cur
  for _ in $(seq 60); do
    cur=$(record_count "$nd")
    [ "$cur" = "$prev" ] && break
    prev=$cur
    sleep 0.5
  done
  local tu ts rss hwm maps anon
  local tc
  read -r tu ts < <(proc_cpu_split "$pid")
  tu=$(fsub "$tu0" "$tu"); ts=$(fsub "$ts0" "$ts"); tc=$(awk -v a="$tc0" -v b="$(proc_cpu_ns "$pid")" 'BEGIN{printf "%.4f", b - a}')
  read -r rss hwm maps anon < <($STATS mem "$pid")
  stop_bg "$pid" 60
  local records s_records drops events summary valid=yes
  records=$(record_count "$nd")
  read -r s_records drops events < <($STATS summary-line "$err")
  summary=$(grep -E 'records|lost' "$err" | tail -1 | sed 's/^odigos-trace: //' | tr '\t' ' ')
  within_conns "$records" "$completed" || valid=no
  [ "$drops" = 0 ] || valid=no
  grep -q 'events lost (ring buffer full)' "$err" && valid=no
  row "$1" B "$2" "$rps" "$completed" "$p99" "$records" "$valid" "$drops" "$n_cpu" "$(cat "$OUT/wrk-$1-B.txt.cpu")" \
    "$tu" "$ts" "$tc" "$bpf_ns" "$bpf_runs" "$bpf_progs" "$hwm_start" "$rss" "$hwm" "$maps" "$anon" - "$summary" >>"$OUT/runs.tsv"
  printf '  round %2d B: %9.0f req/s  p99 %7.0f us  wrk completed %s, records %s, lost %s (%s); tracer CPU %ss (user %ss, sys %ss); BPF %s ns/req; RSS %s MiB (peak %s, at start %s, ring buffer maps %s)\n' \
    "$1" "$rps" "$p99" "$completed" "$records" "$drops" "$([ $valid = yes ] && echo valid || echo INVALID)" "$tc" "$tu" "$ts" \
    "$(awk -v a="$bpf_ns" -v n="$completed" 'BEGIN{printf "%.0f", n ? a / n : 0}')" \
    "$((rss / 1024))" "$((hwm / 1024))" "$((hwm_start / 1024))" "$((maps / 1024))"
  rm -f "$nd" # large; the count is in runs.tsv
}

run_c() { # round order
  local err="$OUT/bpftrace-$1.err" hist="$OUT/bpftrace-$1.out" pid
  # shellcheck disable=SC2046
  bpftrace "$BT_SCRIPT" "$NGINX_PID" $(nginx_workers) >"$hist" 2>"$err" &
  pid=$!; register_bg "$pid"
  # bpftrace prints "Attaching N probes..." on stdout
  $STATS attached-wait "$pid" "$hist" || { cat "$hist" "$err" >&2; die "bpftrace did not attach"; }
  local tu0 ts0 tc0
  read -r tu0 ts0 < <(proc_cpu_split "$pid") # bpftrace's compile and attach excluded
  tc0=$(proc_cpu_ns "$pid")
  traced_wrk "$1" C "$pid"
  local tu ts rss hwm maps anon
  local tc
  read -r tu ts < <(proc_cpu_split "$pid")
  tu=$(fsub "$tu0" "$tu"); ts=$(fsub "$ts0" "$ts"); tc=$(awk -v a="$tc0" -v b="$(proc_cpu_ns "$pid")" 'BEGIN{printf "%.4f", b - a}')
  read -r rss hwm maps anon < <($STATS mem "$pid")
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

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "warm-up (discarded)"
fg_run $STATS run "$OUT/wrk-warmup.txt" wrk -t"$THREADS" -c"$CONNS" -d2s "$URL"
n=${#SIDES[@]}
for ((p = 1; p <= ROUNDS; p++)); do
  # rotate: ABC, BCA, CAB, ... (AB, BA with two sides)
  order=
  for ((i = 0; i < n; i++)); do order+=${SIDES[$(((p - 1 + i) % n))]}; done
  for ((i = 0; i < n; i++)); do
    case ${order:$i:1} in
      A) run_a "$p" "$order" ;;
      B) run_b "$p" "$order" ;;
      C) run_c "$p" "$order" ;;
    esac
  done
done

# ---- summary -----------------------------------------------------------------------------
{
  machine_note
  cores_note
  tracer_note
  echo "load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine adds noise)"
  echo "command: wrk -t$THREADS -c$CONNS -d$DURATION --latency $URL; B adds: $(basename "$TRACER") --pid <nginx master> -q -o FILE"
  if [ "$BPFTRACE" = 1 ]; then
    echo "C adds: bpftrace bench/bpftrace_ref.bt <master and worker pids> ($(bpftrace --version 2>/dev/null | head -1))"
  else echo "$C_NOTE"; fi
  echo "$BPF_NOTE"
  echo "round orders: ${SIDES[*]} rotated each round; $ROUNDS rounds"
} | tee "$OUT/meta.txt"
$STATS summary "$OUT/runs.tsv" | tee "$OUT/summary.txt"
echo "raw results: $OUT"
