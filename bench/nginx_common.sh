# Shared by bench/nginx_wrk.sh, bench/nginx_https.sh, bench/lossless_rate.sh, bench/startup.sh and
# bench/db_bench.sh (sourced, not run).
#
# Provides: a private nginx (start_nginx), a private copy of the tracer, process helpers
# (CPU, memory, BPF program statistics from /proc), kernel.bpf_stats_enabled handling and one
# cleanup trap that stops everything the script started (tracer, bpftrace, wrk, nginx) and
# restores the sysctl, on normal exit, error, Ctrl-C or SIGTERM.
#
# The caller sets NAME (for messages) and may set PORT, WORKERS, TRACER before sourcing.
# shellcheck shell=bash

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
STATS="python3 $BENCH_DIR/nginx_wrk_stats.py"
TRACER=${TRACER:-$REPO/build/odigos-trace}
PORT=${PORT:-18080}
WORKERS=${WORKERS:-2}
NAME=${NAME:-bench}
URL="http://127.0.0.1:$PORT/index.html"

die() { echo "$NAME: $*" >&2; exit 1; }

require_root_and_tools() { # tool...
  [ "$(id -u)" -eq 0 ] || die "needs root (the tracer loads BPF programs)"
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "$tool missing: run scripts/install-deps.sh"
  done
  [ -x "$TRACER" ] || die "$TRACER not found: build with scripts/build.sh or set TRACER"
}

# ---- cleanup: every background process we start is registered here ---------------------
BG_PIDS=()          # stopped with SIGINT, then SIGKILL after 5 s
NGINX_PID=
BPF_STATS_OLD=
register_bg() { BG_PIDS+=("$1"); }
unregister_bg() {
  local p keep=()
  for p in "${BG_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  BG_PIDS=("${keep[@]}")
}
# stop_bg PID [SECONDS]: SIGINT, wait up to SECONDS (default 5), then SIGKILL (the tracer and
# bpftrace detach their probes when their file descriptors close, also on SIGKILL). bpftrace
# 0.17 needs ~1.3 s to exit after SIGINT here, and once took more than 5 s on the loaded
# machine (losing its histograms), hence the longer wait the scripts give the tracers.
stop_bg() {
  local p=$1 secs=${2:-5} i
  kill -INT "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; unregister_bg "$p"; return 0; }
  for i in $(seq $((secs * 10))); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && { echo "$NAME: pid $p ignored SIGINT for $secs s: SIGKILL" >&2; kill -KILL "$p" 2>/dev/null; }
  wait "$p" 2>/dev/null || true
  unregister_bg "$p"
}
# fg_run CMD...: run CMD as a registered background job and wait for it. bash runs a trap only
# once the foreground command ends; `wait` returns at once on a signal, so Ctrl-C and SIGTERM
# stop a long wrk or measurement loop immediately (cleanup sends it SIGINT).
fg_run() {
  "$@" &
  local p=$! rc=0
  register_bg "$p"
  wait "$p" || rc=$?
  unregister_bg "$p"
  return "$rc"
}
bench_cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  [ "$rc" -eq 0 ] || echo "$NAME: exit status $rc: stopping what it started" >&2
  for p in "${BG_PIDS[@]}"; do stop_bg "$p"; done
  stop_nginx
  if [ -n "$BPF_STATS_OLD" ]; then
    sysctl -q -w kernel.bpf_stats_enabled="$BPF_STATS_OLD" >/dev/null 2>&1 ||
      echo "$NAME: could not restore kernel.bpf_stats_enabled=$BPF_STATS_OLD" >&2
    BPF_STATS_OLD=
  fi
  exit "$rc"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- work directory and a private tracer copy ---------------------------------------------
# A rebuild of build/ during the runs must not change or remove the binary.
setup_work() { # prefix
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$WORK"
  cp "$TRACER" "$WORK/odigos-trace"
  TRACER_SRC=$TRACER
  TRACER=$WORK/odigos-trace
  mkdir -p "$WORK/html" "$WORK/tmp"
}

# ---- nginx ---------------------------------------------------------------------------------
# start_nginx: nginx on 127.0.0.1:$PORT with $WORKERS workers, access_log off, sendfile on,
# a 612-byte index.html (at $URL); sets NGINX_PID, waits until it answers.
# With NGINX_TLS_CERT and NGINX_TLS_KEY set (PEM files), it listens with TLS (`listen ... ssl`;
# nginx then writes the body with SSL_write, sendfile does not apply) and the caller sets
# URL=https://...; the readiness check does not verify the certificate.
start_nginx() {
  if command -v ss >/dev/null && [ -n "$(ss -Hltn "sport = :$PORT" 2>/dev/null)" ]; then
    die "port $PORT is already in use (another benchmark running?): set PORT"
  fi
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
worker_rlimit_nofile 65536;
events { worker_connections 4096; }
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
    listen 127.0.0.1:$PORT${NGINX_TLS_CERT:+ ssl};
    root $WORK/html;${NGINX_TLS_CERT:+
    ssl_certificate $NGINX_TLS_CERT;
    ssl_certificate_key $NGINX_TLS_KEY;}
  }
}
EOF
  nginx -c "$WORK/nginx.conf" -p "$WORK" 2>"$WORK/nginx.stderr" &
  NGINX_PID=$!
  local i
  for i in $(seq 100); do
    python3 -c "import ssl, urllib.request; urllib.request.urlopen('$URL', timeout=1, context=ssl._create_unverified_context()).read()" 2>/dev/null && break
    kill -0 "$NGINX_PID" 2>/dev/null || { cat "$WORK/nginx.stderr" "$WORK/error.log" >&2 2>/dev/null; NGINX_PID=; die "nginx did not start"; }
    sleep 0.1
  done
  for i in $(seq 50); do [ "$(nginx_workers | wc -w)" -ge "$WORKERS" ] && break; sleep 0.1; done
  kill -0 "$NGINX_PID" 2>/dev/null || { cat "$WORK/nginx.stderr" "$WORK/error.log" >&2 2>/dev/null; NGINX_PID=; die "nginx exited"; }
}
# stop_nginx: graceful stop (SIGQUIT), SIGKILL after 5 s
stop_nginx() {
  [ -n "$NGINX_PID" ] || return 0
  local workers
  workers=$(pgrep -P "$NGINX_PID" || true)
  kill -QUIT "$NGINX_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$NGINX_PID" $workers 2>/dev/null || true
  wait "$NGINX_PID" 2>/dev/null || true
  NGINX_PID=
}
nginx_workers() { pgrep -P "$NGINX_PID" | tr '\n' ' '; }

# ---- /proc helpers ----------------------------------------------------------------------
# CPU seconds (user + system) of a process, from /proc/PID/stat fields 14 and 15
proc_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / hz}' /proc/"$1"/stat 2>/dev/null || echo 0
}
# "user system" CPU seconds of a process
proc_cpu_split() {
  awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.3f %.3f\n", $12 / hz, $13 / hz}' /proc/"$1"/stat 2>/dev/null || echo "0 0"
}
# CPU seconds of a process with ns resolution: sum_exec_runtime of its threads from
# /proc/PID/task/*/schedstat (utime/stime count 10 ms ticks, too coarse for a tracer that
# spends ~0.1 s in a run)
proc_cpu_ns() {
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{t += $1} END {printf "%.6f\n", t / 1e9}'
}
# ... of the nginx master and its workers
nginx_cpu() {
  local total=0 p
  for p in "$NGINX_PID" $(pgrep -P "$NGINX_PID"); do
    total=$(awk -v a="$total" -v b="$(proc_cpu "$p")" 'BEGIN{printf "%.3f", a + b}')
  done
  echo "$total"
}
# "busy total" jiffies of all CPUs from /proc/stat (idle and iowait are not busy)
cpu_jiffies() { awk '/^cpu /{t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t}' /proc/stat; } # user..steal (guest is inside user)
fsub() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b - a}'; }

# wait_attached PID ERRFILE: wait for the tracer's "attached" line (at most 15 s)
wait_attached() {
  local i
  for i in $(seq 300); do
    grep -q attached "$2" && return 0
    kill -0 "$1" 2>/dev/null || { cat "$2" >&2; die "the tracer exited before attaching"; }
    sleep 0.05
  done
  cat "$2" >&2
  die "the tracer did not attach within 15 s"
}

# ---- kernel.bpf_stats_enabled -----------------------------------------------------------
# Turned on for the whole benchmark (so every side runs under the same setting) and restored
# by bench_cleanup. With it on, the kernel adds two clock reads per BPF program run
# (tens of ns) and keeps run_time_ns / run_cnt per program.
enable_bpf_stats() {
  local old
  old=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null) || { echo "$NAME: kernel.bpf_stats_enabled not available: no BPF run-time figures" >&2; return 1; }
  BPF_STATS_OLD=$old
  sysctl -q -w kernel.bpf_stats_enabled=1 >/dev/null || { BPF_STATS_OLD=; echo "$NAME: cannot set kernel.bpf_stats_enabled" >&2; return 1; }
}

# BPF_STATS=1 (default): enable_bpf_stats; BPF_NOTE says what the runs measured. $1: the
# traced sides ("side B", "sides B and C").
setup_bpf_stats() {
  BPF_NOTE="kernel.bpf_stats_enabled left alone (BPF_STATS=0): BPF run times are not measured"
  [ "$BPF_STATS" = 1 ] || return 0
  if enable_bpf_stats; then
    BPF_NOTE="kernel.bpf_stats_enabled=1 during every run (was $BPF_STATS_OLD; restored at exit): adds two clock reads per BPF program run on $1"
  else BPF_NOTE="kernel.bpf_stats_enabled unavailable: BPF run times are not measured"; fi
}

cores_note() {
  echo "cores: not pinned; nginx (master + $WORKERS workers), the load generator (wrk) and the tracer (or bpftrace) share all $(nproc) vCPUs: every CPU-second the tracer spends is taken from nginx or wrk"
}
machine_note() {
  echo "machine: $(nproc) vCPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), kernel $(uname -r)"
}
tracer_note() {
  echo "tracer: $TRACER_SRC (built $(date -u -r "$TRACER_SRC" +%FT%TZ 2>/dev/null || echo '?'); $("$TRACER" --version 2>/dev/null | head -1); repository HEAD now $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'))"
}
