#!/usr/bin/env bash
# Overhead of odigos-trace on nginx serving a small static file, measured with wrk.
#
#   sudo bench/nginx_wrk.sh [PAIRS]        (default 10; see docs/BENCHMARKS.md)
#
# Starts its own nginx (127.0.0.1:$PORT, $WORKERS workers, access_log off, sendfile on,
# a 612-byte index.html), then runs PAIRS alternating pairs of
#   A: wrk untraced
#   B: wrk while `odigos-trace --pid <nginx master> -q -o FILE` runs
# (pair order alternates AB, BA, AB... so that drift hits both sides). B waits for the
# tracer's "attached" line before starting wrk. A B run is valid when the number of
# "kind":"request" records in FILE matches wrk's completed requests within +-CONNS
# (requests in flight when wrk stops); invalid runs are reported and left out.
# Prints medians, the B/A requests/s ratio with a bootstrap 95% CI (resampling pairs)
# and the p99 latency ratio.
#
# Environment: TRACER (default build/odigos-trace), PORT=18080, WORKERS=2, THREADS=1,
# CONNS=8, DURATION=5s, OUT (results directory; default a temp dir that is kept).
# Needs nginx (nginx-light), wrk, python3: scripts/install-deps.sh installs them.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PAIRS=${1:-10}
TRACER=${TRACER:-$REPO/build/odigos-trace}
PORT=${PORT:-18080}
WORKERS=${WORKERS:-2}
THREADS=${THREADS:-1}
CONNS=${CONNS:-8}
DURATION=${DURATION:-5s}
URL="http://127.0.0.1:$PORT/index.html"

[ "$(id -u)" -eq 0 ] || { echo "nginx_wrk.sh: needs root (the tracer loads BPF programs)" >&2; exit 1; }
for tool in nginx wrk python3; do
  command -v "$tool" >/dev/null || { echo "nginx_wrk.sh: $tool missing: run scripts/install-deps.sh" >&2; exit 1; }
done
[ -x "$TRACER" ] || { echo "nginx_wrk.sh: $TRACER not found: build with scripts/build.sh or set TRACER" >&2; exit 1; }

WORK=$(mktemp -d /tmp/nginx-wrk.XXXXXX)
chmod 755 "$WORK"
# a private copy: a rebuild of build/ during the runs must not change or remove the binary
cp "$TRACER" "$WORK/odigos-trace"
TRACER_SRC=$TRACER
TRACER=$WORK/odigos-trace
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT" "$WORK/html" "$WORK/tmp"
NGINX_PID=; TRACER_PID=
cleanup() {
  [ -n "$TRACER_PID" ] && kill -INT "$TRACER_PID" 2>/dev/null || true
  if [ -n "$NGINX_PID" ]; then kill -QUIT "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# ---- nginx ---------------------------------------------------------------------------
python3 - "$WORK/html/index.html" <<'EOF'
import sys
head = "<!DOCTYPE html>\n<html>\n<head><title>bench</title></head>\n<body>\n<p>"
tail = "</p>\n</body>\n</html>\n"
body = head + "x" * (612 - len(head) - len(tail)) + tail
assert len(body) == 612
open(sys.argv[1], "w").write(body)
EOF
chmod 644 "$WORK/html/index.html"
cat >"$WORK/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $WORKERS;
user www-data;
pid $WORK/nginx.pid;
error_log $WORK/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  default_type text/html;
  client_body_temp_path $WORK/tmp/body;
  proxy_temp_path $WORK/tmp/proxy;
  fastcgi_temp_path $WORK/tmp/fastcgi;
  uwsgi_temp_path $WORK/tmp/uwsgi;
  scgi_temp_path $WORK/tmp/scgi;
  server {
    listen 127.0.0.1:$PORT;
    root $WORK/html;
  }
}
EOF
nginx -c "$WORK/nginx.conf" -p "$WORK" 2>"$WORK/nginx.stderr" &
NGINX_PID=$!
for _ in $(seq 100); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen('$URL', timeout=1).read()" 2>/dev/null && break
  kill -0 "$NGINX_PID" 2>/dev/null || { cat "$WORK/nginx.stderr" "$WORK/error.log" >&2 2>/dev/null; exit 1; }
  sleep 0.1
done
echo "nginx master $NGINX_PID, workers: $(pgrep -P "$NGINX_PID" | tr '\n' ' ')"

# ---- runs ------------------------------------------------------------------------------
STATS="python3 $HERE/nginx_wrk_stats.py"
printf 'pair\tside\torder\trps\tcompleted\tp99_us\trecords\tvalid\tnginx_cpu_s\twrk_cpu_s\ttracer_cpu_s\ttracer_summary\n' >"$OUT/runs.tsv"

# wrk; its CPU seconds go to $1.cpu
run_wrk() { $STATS run "$1" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$URL"; }

# CPU seconds (user + system) of a process, from /proc/PID/stat fields 14 and 15
proc_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / hz}' /proc/"$1"/stat 2>/dev/null || echo 0
}
# ... of the nginx master and its workers
nginx_cpu() {
  local total=0 p
  for p in "$NGINX_PID" $(pgrep -P "$NGINX_PID"); do
    total=$(awk -v a="$total" -v b="$(proc_cpu "$p")" 'BEGIN{printf "%.3f", a + b}')
  done
  echo "$total"
}
sub() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b - a}'; }

record_count() { grep -c '"kind":"request"' "$1" 2>/dev/null || true; }

run_a() { # pair order
  local n0 n1
  n0=$(nginx_cpu)
  run_wrk "$OUT/wrk-$1-A.txt"
  n1=$(nginx_cpu)
  read -r rps completed p99 < <($STATS parse "$OUT/wrk-$1-A.txt")
  printf '%s\tA\t%s\t%s\t%s\t%s\t-\t-\t%s\t%s\t-\t-\n' "$1" "$2" "$rps" "$completed" "$p99" \
    "$(sub "$n0" "$n1")" "$(cat "$OUT/wrk-$1-A.txt.cpu")" >>"$OUT/runs.tsv"
  printf '  pair %2d A: %9.0f req/s  p99 %7.0f us\n' "$1" "$rps" "$p99"
}

run_b() { # pair order
  local nd="$OUT/trace-$1.ndjson" err="$OUT/tracer-$1.err" n0 n1
  rm -f "$nd"; : >"$err"
  "$TRACER" --pid "$NGINX_PID" -q -o "$nd" 2>"$err" &
  TRACER_PID=$!
  for _ in $(seq 300); do
    grep -q attached "$err" && break
    kill -0 "$TRACER_PID" 2>/dev/null || { cat "$err" >&2; exit 1; }
    sleep 0.05
  done
  grep -q attached "$err" || { echo "tracer did not attach:" >&2; cat "$err" >&2; exit 1; }
  n0=$(nginx_cpu)
  run_wrk "$OUT/wrk-$1-B.txt"
  n1=$(nginx_cpu)
  # let the tracer catch up: stop once the record count is stable for 1 s (at most 30 s)
  local prev=-1 cur
  for _ in $(seq 60); do
    cur=$(record_count "$nd")
    [ "$cur" = "$prev" ] && break
    prev=$cur
    sleep 0.5
  done
  local tcpu
  tcpu=$(proc_cpu "$TRACER_PID")
  kill -INT "$TRACER_PID"; wait "$TRACER_PID" || true; TRACER_PID=
  local records summary
  records=$(record_count "$nd")
  summary=$(grep -E 'records|lost' "$err" | tail -1 | sed 's/^odigos-trace: //' | tr '\t' ' ')
  read -r rps completed p99 < <($STATS parse "$OUT/wrk-$1-B.txt")
  local valid=yes
  if [ $((records - completed)) -gt "$CONNS" ] || [ $((completed - records)) -gt "$CONNS" ]; then valid=no; fi
  printf '%s\tB\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$rps" "$completed" "$p99" "$records" \
    "$valid" "$(sub "$n0" "$n1")" "$(cat "$OUT/wrk-$1-B.txt.cpu")" "$tcpu" "$summary" >>"$OUT/runs.tsv"
  printf '  pair %2d B: %9.0f req/s  p99 %7.0f us  wrk completed %s, records %s (%s), tracer CPU %ss  [%s]\n' \
    "$1" "$rps" "$p99" "$completed" "$records" "$([ $valid = yes ] && echo valid || echo INVALID)" "$tcpu" "$summary"
  rm -f "$nd" # large; the count is in runs.tsv
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "warm-up (discarded)"
wrk -t"$THREADS" -c"$CONNS" -d2s "$URL" >/dev/null
for ((p = 1; p <= PAIRS; p++)); do
  if ((p % 2)); then run_a "$p" AB; run_b "$p" AB; else run_b "$p" BA; run_a "$p" BA; fi
done

# ---- summary -----------------------------------------------------------------------------
{
  echo "machine: $(nproc) vCPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), kernel $(uname -r)"
  echo "cores: not pinned; nginx ($WORKERS workers), wrk (-t$THREADS -c$CONNS) and the tracer share all $(nproc) vCPUs"
  echo "tracer: $TRACER_SRC (built $(date -u -r "$TRACER_SRC" +%FT%TZ 2>/dev/null || echo '?'); $("$TRACER" --version 2>/dev/null | head -1); repository HEAD now $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo "load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine adds noise)"
  echo "command: wrk -t$THREADS -c$CONNS -d$DURATION --latency $URL; B adds: $(basename "$TRACER") --pid <nginx master> -q -o FILE"
} | tee "$OUT/meta.txt"
$STATS summary "$OUT/runs.tsv" | tee "$OUT/summary.txt"
echo "raw results: $OUT"
