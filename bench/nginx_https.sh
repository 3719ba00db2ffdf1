#!/usr/bin/env bash
# Overhead of odigos-trace's TLS plaintext decoding (OpenSSL uprobes) on nginx serving a small
# static file over HTTPS, measured with wrk.
#
#   sudo bench/nginx_https.sh [ROUNDS [TRACER]]    (default 10 rounds, TRACER build/odigos-trace)
#
# Starts its own nginx (127.0.0.1:$PORT, `listen ... ssl` with a self-signed RSA-2048
# certificate made here with openssl, $WORKERS workers, keep-alive, access_log off, a 612-byte
# index.html; with TLS nginx reads the file and writes it with SSL_write, sendfile does not
# apply), then runs ROUNDS rounds of (nginx_ab.sh):
#   A: wrk https untraced
#   B: wrk https while `odigos-trace --pid <nginx master> -q -o FILE` runs
# in alternating order (AB, BA, AB, ...); with NOTLS=1 also
#   C: wrk https while `odigos-trace --pid <nginx master> --no-tls -q -o FILE` runs (the socket
#      hooks only: the TLS connections are recognised as not decodable and ignored in the kernel)
# or, with FLOOR=1,
#   C: wrk https while counting perf uprobes (no BPF) sit on the entries of the two functions
#      odigos-trace probes, for nginx's processes: the least any uprobe design pays
# in rotating order (ABC, BCA, CAB, ...). wrk links OpenSSL too but is not traced: the tracer
# attaches its uprobes to nginx's libssl for nginx's PIDs only. B starts wrk once the tracer is
# attached. A B run is valid when the HTTPS records in FILE ("kind":"request" with
# "tls":{"established":true}) equal wrk's completed requests within +-CONNS (requests in flight
# when wrk stops) and the tracer reports 0 events lost (a C run: 0 events lost); invalid runs
# are reported and left out.
# Before the rounds, a check run sends 20 requests and requires 20 such records (the TLS probes
# work). Prints medians, the B/A ratios of requests/s and p99 with bootstrap 95% CIs, CPU per
# request, BPF run time per request and per program (uprobes included;
# kernel.bpf_stats_enabled=1 for the whole benchmark, restored at exit), and memory. Then, unless
# DIAG=0, one more traced run that is not counted, with bench/nginx_https_syscalls.bt counting
# nginx's syscalls per request (uretprobe returns show as syscall 335).
#
# Environment: TRACER, PORT=18643, WORKERS=2, THREADS=1, CONNS=8, DURATION=5s, BPF_STATS=1,
# DIAG=1, NOTLS=0, FLOOR=0, OUT (results directory; default a temp dir that is kept). If TRACER is not given and
# build/odigos-trace is missing, it is built (cmake --build build --target odigos-trace).
# Needs nginx (with the ssl module), wrk, openssl, python3 (FLOOR=1: perf, objdump); bpftool for program names, bpftrace
# for the diagnostic run.
set -euo pipefail
NAME=nginx_https.sh
PORT=${PORT:-18643}
ROUNDS=${1:-10}
[ $# -ge 2 ] && TRACER=$2
TRACER_GIVEN=${TRACER:+yes}
source "$(dirname "$0")/nginx_common.sh"
source "$(dirname "$0")/nginx_ab.sh"
URL="https://127.0.0.1:$PORT/index.html"
# a request record of a TLS connection (field order of the NDJSON writer: kind first)
RECORD_PATTERN='^\{"kind":"request".*"tls":\{"established":true\}'
THREADS=${THREADS:-1}
CONNS=${CONNS:-8}
DURATION=${DURATION:-5s}
BPF_STATS=${BPF_STATS:-1}
DIAG=${DIAG:-1}
NOTLS=${NOTLS:-0}
FLOOR=${FLOOR:-0}
[ "$NOTLS" = 1 ] && [ "$FLOOR" = 1 ] && die "NOTLS=1 and FLOOR=1 both want side C: choose one"
if [ "$NOTLS" = 1 ]; then SIDES=(A B C); C_LABEL="odigos-trace --no-tls"
elif [ "$FLOOR" = 1 ]; then SIDES=(A B C); C_LABEL="uprobe floor"
else SIDES=(A B); C_LABEL=; fi

if [ -z "$TRACER_GIVEN" ] && [ ! -x "$TRACER" ]; then
  echo "$NAME: $TRACER missing: building it" >&2
  cmake --build "$REPO/build" --target odigos-trace >&2 || die "build failed: build it or set TRACER"
fi
require_root_and_tools nginx wrk python3 openssl
nginx -V 2>&1 | grep -q -- --with-http_ssl_module || die "this nginx has no ssl module (nginx-light has it)"

setup_work nginx-https
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT" "$WORK/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
  -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" >/dev/null 2>&1 || die "openssl could not make a certificate"
chmod 600 "$WORK/tls/key.pem"
NGINX_TLS_CERT=$WORK/tls/cert.pem
NGINX_TLS_KEY=$WORK/tls/key.pem
setup_bpf_stats "side B"
start_nginx
echo "nginx master $NGINX_PID, workers: $(nginx_workers); $URL"

# libssl of a process (the first one it maps), for the notes
libssl_of() { grep -m1 -o '/[^ ]*libssl\.so[^ ]*' "/proc/$1/maps" 2>/dev/null || echo "none mapped"; }
WORKER1=$(nginx_workers | cut -d' ' -f1)
NGINX_SSL=$(libssl_of "$WORKER1")

# ---- check: the TLS probes attach and every request gives one HTTPS record ---------------
check_tls_records /index.html len=612

run_c() { run_odigos "$1" "$2" C lost --no-tls; } # round order

# ---- FLOOR=1: side C is the least a uprobe design pays ----------------------------------------
# Counting perf uprobes (nginx_ab.sh run_floor: no BPF program, no socket hook, nothing decoded) on
# the entries of the functions odigos-trace probes in nginx's libssl (ssl_read_internal /
# ssl_write_internal, the first call in SSL_read / SSL_write, starting with `push`: emulated, not
# single-stepped), for nginx's processes only. One breakpoint trap per SSL call: any design that
# sees every SSL call pays at least this. Valid when the probes counted >= 2.9 hits per request.
if [ "$FLOOR" = 1 ]; then
  for fn in read write; do
    at=$(first_call_vaddr "$NGINX_SSL" "SSL_$fn")
    [ -n "$at" ] || die "no call found in SSL_$fn of $NGINX_SSL"
    floor_probe_add "$NGINX_SSL" "${fn}_ent" "$(elf_addr "$NGINX_SSL" offset "$at")"
  done
  # shellcheck disable=SC2046
  run_c() { run_floor "$1" "$2" 2.9 "$NGINX_PID" $(nginx_workers); } # round order
fi
run_rounds "$ROUNDS" "${SIDES[@]}"

# ---- diagnostic run (not counted): nginx's syscalls per request ---------------------------
DIAG_NOTE=
diag_run() {
  local bt=$BENCH_DIR/nginx_https_syscalls.bt nd="$OUT/diag.ndjson" err="$OUT/diag-tracer.err"
  local out="$OUT/diag-bpftrace.out" berr="$OUT/diag-bpftrace.err" tpid bpid completed
  if ! command -v bpftrace >/dev/null; then DIAG_NOTE="diagnostic run skipped: bpftrace not installed"; return; fi
  if [ "$WORKERS" -gt 15 ]; then DIAG_NOTE="diagnostic run skipped: at most 16 PIDs (WORKERS=$WORKERS)"; return; fi
  echo "diagnostic run (not counted): traced, with bench/nginx_https_syscalls.bt counting nginx's syscalls"
  "$TRACER" --pid "$NGINX_PID" -q -o "$nd" 2>"$err" &
  tpid=$!; register_bg "$tpid"
  wait_attached "$tpid" "$err"
  # shellcheck disable=SC2046
  bpftrace "$bt" "$NGINX_PID" $(nginx_workers) >"$out" 2>"$berr" &
  bpid=$!; register_bg "$bpid"
  if ! $STATS attached-wait "$bpid" "$out"; then
    stop_bg "$bpid"; stop_bg "$tpid" 60
    DIAG_NOTE="diagnostic run failed: bpftrace did not attach ($(head -c 300 "$berr" | tr '\n' ' '))"
    return
  fi
  run_wrk "$OUT/wrk-diag.txt"
  stop_bg "$bpid" 60
  stop_bg "$tpid" 60
  read -r _ completed _ < <($STATS parse "$OUT/wrk-diag.txt")
  rm -f "$nd"
  DIAG_NOTE=$(python3 - "$out" "$completed" <<'EOF'
import re, sys
names = {0: "read", 1: "write", 3: "close", 17: "pread64", 20: "writev", 44: "sendto", 45: "recvfrom",
         232: "epoll_wait", 257: "openat", 262: "newfstatat", 335: "uretprobe", 336: "uprobe"}
n = int(sys.argv[2])
c = {int(k): int(v) for k, v in re.findall(r"@sys\[(\d+)\]: (\d+)", open(sys.argv[1]).read())}
top = sorted(c.items(), key=lambda kv: -kv[1])[:10]
print(f"diagnostic run: {n} requests; nginx syscalls per request: "
      + ", ".join(f"{names.get(k, k)} {v / max(n, 1):.2f}" for k, v in top)
      + f" (uretprobe returns through the uretprobe syscall: {c.get(335, 0) / max(n, 1):.2f} per request;"
      + f" optimised-uprobe syscalls: {c.get(336, 0) / max(n, 1):.2f})")
EOF
)
}
[ "$DIAG" = 1 ] && diag_run

# ---- summary -----------------------------------------------------------------------------
{
  machine_note
  echo "cores: not pinned; nginx (master + $WORKERS workers), the load generator (wrk, $THREADS thread, doing its own TLS with OpenSSL) and the tracer share all $(nproc) vCPUs: every CPU-second the tracer or its probes spend is taken from nginx or wrk"
  tracer_note
  echo "load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine adds noise); uptime now: $(uptime | sed 's/^ *//')"
  echo "command: wrk -t$THREADS -c$CONNS -d$DURATION --latency $URL; B adds: $(basename "$TRACER") --pid <nginx master> -q -o FILE"
  echo "TLS: nginx $(nginx -v 2>&1 | sed 's/.*version: //') with $NGINX_SSL ($(openssl version)); wrk with $(ldd "$(command -v wrk)" | grep -m1 -o '/[^ ]*libssl[^ ]*' || echo '?'), not traced; $(openssl x509 -in "$NGINX_TLS_CERT" -noout -text | grep -m1 -o 'Public-Key: ([0-9]* bit)') self-signed certificate; protocol/cipher: $(echo | openssl s_client -connect "127.0.0.1:$PORT" -brief 2>&1 | grep -E 'Protocol version|Ciphersuite' | sed 's/.*: //' | tr '\n' ' ')"
  echo "tracer at the check run: $ATTACH_LINE"
  echo "valid B run: records with tls.established true = wrk completed +- $CONNS, 0 events lost"
  echo "$BPF_NOTE"
  [ "$NOTLS" != 1 ] || echo "C adds: $(basename "$TRACER") --pid <nginx master> --no-tls -q -o FILE (socket hooks only; valid when 0 events lost)"
  [ "$FLOOR" != 1 ] || echo "C adds: counting perf uprobes (perf stat -p <nginx pids>, no BPF) on $FLOOR_NOTE the C 'records' column is their hit count; valid when >= 2.9 hits per request"
  echo "round orders: ${SIDES[*]} rotated each round ($(IFS=; echo "${SIDES[*]}"), ...); $ROUNDS rounds"
  if [ -n "$DIAG_NOTE" ]; then echo "$DIAG_NOTE"; fi
} | tee "$OUT/meta.txt"
$STATS summary "$OUT/runs.tsv" ${C_LABEL:+"$C_LABEL"} | tee "$OUT/summary.txt"
echo "raw results: $OUT"
