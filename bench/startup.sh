#!/usr/bin/env bash
# Startup time of odigos-trace: from exec to the "attached" line on its stderr, measured from
# outside (a python3 parent takes the time just before fork+exec and when the complete line
# arrives on the pipe), N times in each of three situations:
#   idle       nginx idle
#   time_wait  nginx idle, the host holding many TIME_WAIT sockets (made beforehand with
#              wrk -H 'Connection: close'; target TIME_WAIT=12000, counted with ss; with one
#              server address and port the count levels off near 14000 here: connect() takes
#              even ports, half of ip_local_port_range, and a new connection from a port
#              recycles the server's TIME_WAIT socket of the same 4-tuple)
#   busy       wrk -H 'Connection: close' loading nginx during the runs: busy CPUs and
#              TIME_WAIT sockets appearing all the time
# Each run: `odigos-trace --pid <nginx master> -q -o FILE`, wait for "attached", SIGINT.
# Prints every run, then median, min and max per situation, the tracer's own "attached ...
# in N ms" figure beside it, and whether the goal (max <= 300 ms) is met.
#
#   sudo bench/startup.sh [N]        (default 20)
#
# Environment: TRACER (default build/odigos-trace), PORT=18080, WORKERS=2,
# SCENARIOS="idle time_wait busy", TIME_WAIT=12000, GOAL_MS=300, OUT (results directory).
set -euo pipefail
NAME=startup.sh
source "$(dirname "$0")/nginx_common.sh"
N=${1:-20}
SCENARIOS=${SCENARIOS:-idle time_wait busy}
TIME_WAIT=${TIME_WAIT:-12000}
GOAL_MS=${GOAL_MS:-300}

require_root_and_tools nginx wrk python3 ss
setup_work startup
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
: >"$OUT/startup.tsv"
start_nginx
echo "nginx master $NGINX_PID, workers: $(nginx_workers)"

tw_count() { ss -Htan state time-wait | wc -l; }

# make_time_wait TARGET: short connections until TARGET TIME_WAIT sockets exist (at most 30 s)
make_time_wait() {
  local i
  for i in $(seq 15); do
    [ "$(tw_count)" -ge "$1" ] && return 0
    fg_run $STATS run "$OUT/tw-wrk.txt" wrk -t1 -c16 -d2s -H 'Connection: close' "$URL" || true
  done
  echo "$NAME: only $(tw_count) TIME_WAIT sockets after 30 s of short connections (target $1)" >&2
}

run_scenario() { # label
  fg_run $STATS startup "$OUT/startup.tsv" "$1" "$N" -- "$TRACER" --pid "$NGINX_PID" -q -o "$OUT/startup.ndjson"
}

{
  machine_note
  echo "cores: not pinned; in 'busy' nginx ($WORKERS workers), wrk and the tracer share all $(nproc) vCPUs"
  tracer_note
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "command: $(basename "$TRACER") --pid <nginx master> -q -o FILE; $N runs per situation"
} | tee "$OUT/meta.txt"

for s in $SCENARIOS; do
  case $s in
    idle)
      echo "idle: nginx idle, $(tw_count) TIME_WAIT sockets"
      run_scenario idle ;;
    time_wait)
      make_time_wait "$TIME_WAIT"
      echo "time_wait: nginx idle, $(tw_count) TIME_WAIT sockets before the runs"
      run_scenario time_wait
      echo "  ($(tw_count) TIME_WAIT sockets after the runs)" ;;
    busy)
      # long enough for every run; stopped as soon as the runs end
      $STATS run "$OUT/busy-wrk.txt" wrk -t1 -c16 -d600s -H 'Connection: close' "$URL" &
      busy_pid=$!; register_bg "$busy_pid"
      sleep 2
      echo "busy: wrk -c16 -H 'Connection: close' loading nginx, $(tw_count) TIME_WAIT sockets, load average $(cut -d' ' -f1 /proc/loadavg)"
      run_scenario busy
      echo "  ($(tw_count) TIME_WAIT sockets after the runs)"
      stop_bg "$busy_pid" ;;
    *) die "unknown scenario '$s' (idle, time_wait, busy)" ;;
  esac
done
rm -f "$OUT/startup.ndjson"
$STATS startup-summary "$OUT/startup.tsv" "$GOAL_MS" | tee "$OUT/summary.txt"
echo "raw results: $OUT"
