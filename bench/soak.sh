#!/usr/bin/env bash
# Soak test: does odigos-trace's memory, fd count or loss drift under hours of steady load?
#
#   sudo bench/soak.sh [DURATION]        DURATION: 90s, 30m, 1h (default), 2h; a bare number is seconds
#
# Starts a private nginx (127.0.0.1, $WORKERS workers, access_log off, a 612-byte index.html)
# and `odigos-trace --pid <nginx master> -q -o FILE`, then until DURATION is over repeats
#   - wrk -t1 -c4 -d${KEEPALIVE_S}s  (keep-alive connections),
#   - wrk -t1 -c4 -d${CHURN_S}s -H 'Connection: close'  (a new connection per request: churn),
#   - a pause of ${PAUSE_S}s  (idle tracer),
# each request paced by a wrk Lua delay() of $DELAY_MS ms per connection, a moderate load.
# Every $ROTATE_S s FILE is truncated to 0 bytes (as logrotate's copytruncate does); -o
# /dev/null is not used: odigos-trace fchmods and ftruncates its -o target, which fails on a
# device (and would chmod /dev/null 0600).
# Every $INTERVAL_S s the tracer's VmRSS, VmHWM, RssAnon, open fds and FILE's apparent and
# allocated size are appended to samples.tsv. At the end (or Ctrl-C) prints first/last/max
# RSS, the RSS slope in KiB per hour (least squares over the second half of the samples),
# records written and losses from the tracer's summary line, and requests completed by wrk.
# Cleans up everything it started on exit; keeps only the results directory (samples.tsv,
# tracer.err, wrk.log, summary.txt).
#
# Environment: TRACER (default build/odigos-trace; a private copy is run), WORKERS=1,
# DELAY_MS=2, KEEPALIVE_S=20, CHURN_S=5, PAUSE_S=5, INTERVAL_S=10, ROTATE_S=60,
# RESULTS (default /tmp/odigos-soak-results.XXXXXX).
# Needs root, nginx, wrk, python3 (scripts/install-deps.sh installs them).
set -euo pipefail
NAME=soak.sh
REPO=$(cd "$(dirname "$0")/.." && pwd)
TRACER=${TRACER:-$REPO/build/odigos-trace}
WORKERS=${WORKERS:-1}
DELAY_MS=${DELAY_MS:-2}
KEEPALIVE_S=${KEEPALIVE_S:-20}
CHURN_S=${CHURN_S:-5}
PAUSE_S=${PAUSE_S:-5}
INTERVAL_S=${INTERVAL_S:-10}
ROTATE_S=${ROTATE_S:-60}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

die() { echo "$NAME: $*" >&2; exit 1; }

to_seconds() {
  local d=$1
  case $d in
    *h) echo $((${d%h} * 3600)) ;;
    *m) echo $((${d%m} * 60)) ;;
    *s) echo $((${d%s})) ;;
    *) echo $((d)) ;;
  esac
}
[[ ${1:-1h} =~ ^[0-9]+[smh]?$ ]] || die "DURATION '${1:-}' is not like 90s, 30m, 1h"
DURATION_S=$(to_seconds "${1:-1h}")
[ "$DURATION_S" -ge "$((2 * INTERVAL_S))" ] || die "DURATION must be at least $((2 * INTERVAL_S))s"

[ "$(id -u)" -eq 0 ] || die "needs root (the tracer loads BPF programs)"
for tool in wrk python3 "$NGINX"; do command -v "$tool" >/dev/null || die "$tool missing: run scripts/install-deps.sh"; done
[ -x "$TRACER" ] || die "$TRACER not found: build first or set TRACER"

WORK=$(mktemp -d /tmp/odigos-soak.XXXXXX)
RESULTS=${RESULTS:-$(mktemp -d /tmp/odigos-soak-results.XXXXXX)}
mkdir -p "$RESULTS"
chmod 755 "$WORK"
NGINX_PID='' TRACER_PID='' LOAD_PID=''

stop_pid() { # PID SIGNAL: signal one process we started, SIGKILL after 10 s, reap it
  local p=$1 sig=$2
  [ -n "$p" ] || return 0
  kill -"$sig" "$p" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && { echo "$NAME: pid $p ignored SIG$sig: SIGKILL" >&2; kill -KILL "$p" 2>/dev/null || true; }
  wait "$p" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$LOAD_PID" TERM
  stop_pid "$TRACER_PID" INT
  stop_pid "$NGINX_PID" QUIT
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "$NAME: interrupted" >&2; INTERRUPTED=1' INT TERM
INTERRUPTED=0

# ---- nginx ---------------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$WORK/www"
python3 -c 'import sys; sys.stdout.write("<html>" + "x" * 599 + "</html>\n")' >"$WORK/www/index.html" # 612 bytes
chmod -R a+rX "$WORK/www"
cat >"$WORK/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $WORKERS;
pid $WORK/nginx.pid;
error_log $WORK/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    client_body_temp_path $WORK/client_body;
    proxy_temp_path $WORK/proxy;
    fastcgi_temp_path $WORK/fastcgi;
    uwsgi_temp_path $WORK/uwsgi;
    scgi_temp_path $WORK/scgi;
    server {
        listen 127.0.0.1:$PORT;
        root $WORK/www;
    }
}
EOF
"$NGINX" -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/error.log" </dev/null >/dev/null 2>"$WORK/nginx.err" &
NGINX_PID=$!
URL="http://127.0.0.1:$PORT/index.html"
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1).close()" 2>/dev/null && break
  kill -0 "$NGINX_PID" 2>/dev/null || { cat "$WORK/nginx.err" >&2; die "nginx did not start"; }
  sleep 0.1
done

# ---- tracer --------------------------------------------------------------------------------
cp "$TRACER" "$WORK/odigos-trace"
OUT=$WORK/records.ndjson
"$WORK/odigos-trace" --pid "$NGINX_PID" -q -o "$OUT" </dev/null 2>"$RESULTS/tracer.err" &
TRACER_PID=$!
for _ in $(seq 300); do
  grep -q attached "$RESULTS/tracer.err" && break
  kill -0 "$TRACER_PID" 2>/dev/null || { cat "$RESULTS/tracer.err" >&2; die "the tracer exited before attaching"; }
  sleep 0.1
done
grep -q attached "$RESULTS/tracer.err" || die "the tracer did not attach in 30 s"
echo "$NAME: nginx $NGINX_PID on port $PORT, tracer $TRACER_PID; ${DURATION_S}s of load; results in $RESULTS"

# ---- load ----------------------------------------------------------------------------------
cat >"$WORK/pace.lua" <<EOF
function delay() return $DELAY_MS end
EOF
: >"$RESULTS/wrk.log"
# A subshell. On SIGTERM it stops the wrk it waits for with SIGINT (wrk then prints what it
# completed, so wrk.log counts every request) or the sleep with SIGTERM, and exits.
load_loop() {
  local child='' sig=TERM
  trap 'if [ -n "$child" ]; then kill -"$sig" "$child" 2>/dev/null; wait "$child"; fi; exit 0' TERM
  while true; do
    sig=INT
    wrk -t1 -c4 -d"${KEEPALIVE_S}s" -s "$WORK/pace.lua" "$URL" >>"$RESULTS/wrk.log" 2>&1 &
    child=$!; wait "$child" || true
    wrk -t1 -c4 -d"${CHURN_S}s" -s "$WORK/pace.lua" -H 'Connection: close' "$URL" >>"$RESULTS/wrk.log" 2>&1 &
    child=$!; wait "$child" || true
    sig=TERM
    sleep "$PAUSE_S" &
    child=$!; wait "$child" || true
  done
}
load_loop </dev/null &
LOAD_PID=$!

# ---- sampling ------------------------------------------------------------------------------
field() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$TRACER_PID/status"; }
TSV=$RESULTS/samples.tsv
printf 't_s\tvmrss_kb\tvmhwm_kb\trssanon_kb\tfds\tout_apparent_kb\tout_alloc_kb\ttruncations\n' >"$TSV"
START=$(date +%s)
next=$START
last_rotate=$START
truncations=0
while [ "$INTERRUPTED" = 0 ]; do
  now=$(date +%s)
  if [ "$now" -lt "$next" ]; then sleep 1; continue; fi
  kill -0 "$TRACER_PID" 2>/dev/null || { cat "$RESULTS/tracer.err" >&2; die "the tracer died"; }
  printf '%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n' "$((now - START))" "$(field VmRSS)" "$(field VmHWM)" \
    "$(field RssAnon)" "$(find "/proc/$TRACER_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)" \
    "$(($(stat -c %s "$OUT") / 1024))" "$(du -k "$OUT" | cut -f1)" "$truncations" >>"$TSV"
  [ "$((now - START))" -ge "$DURATION_S" ] && break
  if [ "$((now - last_rotate))" -ge "$ROTATE_S" ]; then
    truncate -s 0 "$OUT"
    truncations=$((truncations + 1))
    last_rotate=$now
  fi
  next=$((next + INTERVAL_S))
done

# ---- stop and summarise --------------------------------------------------------------------
stop_pid "$LOAD_PID" TERM
LOAD_PID=
sleep 2 # the tracer consumes what is left
stop_pid "$TRACER_PID" INT
TRACER_PID=
SUMMARY_LINE=$(grep -E 'records from' "$RESULTS/tracer.err" | tail -1 || true)
[ -n "$SUMMARY_LINE" ] || { cat "$RESULTS/tracer.err" >&2; die "no summary line from the tracer"; }
records=$(sed -nE 's/.*: ([0-9]+) records from.*/\1/p' <<<"$SUMMARY_LINE")
lost=$(sed -nE 's/.*; ([0-9]+) events lost.*/\1/p' <<<"$SUMMARY_LINE")
loss_warnings=$(grep -c 'events lost (ring buffer full)' "$RESULTS/tracer.err" || true)
requests=$(awk '/requests in/ { n += $1 } END { print n + 0 }' "$RESULTS/wrk.log")
wrk_runs=$(grep -c 'requests in' "$RESULTS/wrk.log" || true)
wrk_errors=$(awk '/Socket errors|Non-2xx/ { n++ } END { print n + 0 }' "$RESULTS/wrk.log")

awk -F'\t' -v records="$records" -v lost="$lost" -v warnings="$loss_warnings" \
    -v requests="$requests" -v runs="$wrk_runs" -v wrk_errors="$wrk_errors" \
    -v summary="$SUMMARY_LINE" -v dur="$DURATION_S" '
NR == 1 { next }
{ n++; t[n] = $1; rss[n] = $2; hwm[n] = $3; anon[n] = $4; fds[n] = $5 }
END {
  if (n < 2) { print "too few samples"; exit 1 }
  maxrss = 0; maxanon = 0; maxfds = 0
  for (i = 1; i <= n; i++) {
    if (rss[i] > maxrss) maxrss = rss[i]
    if (anon[i] > maxanon) maxanon = anon[i]
    if (fds[i] > maxfds) maxfds = fds[i]
  }
  # least squares over the second half of the samples (after the warm-up growth)
  half = t[n] / 2; m = 0; st = 0; sr = 0; sa = 0; stt = 0; str = 0; sta = 0
  for (i = 1; i <= n; i++) if (t[i] >= half) {
    m++; st += t[i]; sr += rss[i]; sa += anon[i]; stt += t[i] * t[i]; str += t[i] * rss[i]; sta += t[i] * anon[i]
  }
  den = m * stt - st * st
  slope_rss = den > 0 ? (m * str - st * sr) / den * 3600 : 0
  slope_anon = den > 0 ? (m * sta - st * sa) / den * 3600 : 0
  printf "samples: %d over %d s (every %d s); slope fitted on the %d samples from t >= %d s\n", n, t[n], t[2] - t[1], m, half
  printf "VmRSS   KiB: first %d, last %d, max %d; slope %+.0f KiB/h\n", rss[1], rss[n], maxrss, slope_rss
  printf "RssAnon KiB: first %d, last %d, max %d; slope %+.0f KiB/h (heap: VmRSS minus the ring buffer and binary mappings)\n", anon[1], anon[n], maxanon, slope_anon
  printf "VmHWM   KiB: last %d\n", hwm[n]
  printf "open fds: first %d, last %d, max %d\n", fds[1], fds[n], maxfds
  printf "wrk: %d runs, %d requests completed, %d runs with socket errors or non-2xx\n", runs, requests, wrk_errors
  printf "tracer: %d records written, %d events lost, %d loss warnings\n", records, lost, warnings
  printf "records - wrk requests: %+d (wrk does not count the requests in flight when a run ends: at most 4 per run)\n", records - requests
  printf "summary: %s\n", summary
}' "$TSV" | tee "$RESULTS/summary.txt"
echo "results: $RESULTS"
