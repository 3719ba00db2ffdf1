#!/usr/bin/env bash
# Overhead of odigos-trace's TLS plaintext decoding of Go's crypto/tls (uprobes on
# (*Conn).Write/Read, no return probes) on a Go HTTPS server, measured with wrk.
#
#   sudo bench/go_https.sh [ROUNDS [TRACER]]    (default 10 rounds, TRACER build/odigos-trace)
#
# Builds tests/fixtures/go/tlsprog (standard library only; go build as test_tls_go.py does:
# GOFLAGS=-mod=mod GOPROXY=off CGO_ENABLED=0, -buildvcs=false, not stripped unless STRIP=1)
# into a temp dir and runs `tlsprog -serve 127.0.0.1:$PORT`: net/http over crypto/tls,
# HTTP/1.1 keep-alive, a self-signed ECDSA P-256 certificate made at start; the handler writes
# "hello GET /x (0 bytes)\n". Then ROUNDS rounds of (the A/B machinery of nginx_ab.sh, with
# the Go server's PID where it says nginx):
#   A: wrk https untraced
#   B: wrk https while `odigos-trace --pid <Go server> -q -o FILE` runs
# in alternating order (AB, BA, ...); with FLOOR=1 also
#   C: wrk https while counting perf uprobes (no BPF) sit on the points odigos-trace probes
#      (named by its -v output), for the server only: the least a uprobe design pays
# in rotating order (ABC, BCA, CAB, ...). wrk (OpenSSL) is not traced. A B run is valid when the
# HTTPS records in FILE ("kind":"request" with "tls":{"established":true}) equal wrk's completed
# requests within +-CONNS and the tracer reports 0 events lost; invalid runs are reported and
# left out. Before the rounds a check run sends 20 requests on one connection and requires 20
# such records. Prints medians, B/A ratios of requests/s and p99 with bootstrap 95% CIs, CPU per
# request ("nginx" in nginx_wrk_stats.py's summary is the Go server here), tracer CPU per record,
# BPF run time and run count per request per program (kernel.bpf_stats_enabled=1 for the whole
# benchmark, restored at exit), and memory.
#
# Environment: TRACER, PORT=18644, THREADS=1, CONNS=8, DURATION=5s, BPF_STATS=1, STRIP=0,
# FLOOR=0, GOMAXPROCS (unset: Go uses every vCPU), OUT (results directory; default a temp dir
# that is kept). Needs go, wrk, python3; bpftool for program names; FLOOR=1: perf, objdump.
set -euo pipefail
NAME=go_https.sh
PORT=${PORT:-18644}
ROUNDS=${1:-10}
[ $# -ge 2 ] && TRACER=$2
source "$(dirname "$0")/nginx_common.sh"
source "$(dirname "$0")/nginx_ab.sh"
URL="https://127.0.0.1:$PORT/x"
RECORD_PATTERN='^\{"kind":"request".*"tls":\{"established":true\}'
THREADS=${THREADS:-1}
CONNS=${CONNS:-8}
DURATION=${DURATION:-5s}
BPF_STATS=${BPF_STATS:-1}
STRIP=${STRIP:-0}
FLOOR=${FLOOR:-0}

require_root_and_tools go wrk python3
setup_work go-https
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"

# ---- the Go server (NGINX_PID: nginx_ab.sh traces it and counts its CPU; cleanup stops it) --
GO_FLAGS=()
[ "$STRIP" = 1 ] && GO_FLAGS=(-ldflags=-s\ -w)
(cd "$REPO/tests/fixtures/go/tlsprog" &&
  GOFLAGS=-mod=mod GOPROXY=off CGO_ENABLED=0 GOCACHE=/tmp/odigos-gocache \
    go build -buildvcs=false "${GO_FLAGS[@]}" -o "$WORK/tlsprog" .) || die "go build of tlsprog failed"
if command -v ss >/dev/null && [ -n "$(ss -Hltn "sport = :$PORT" 2>/dev/null)" ]; then
  die "port $PORT is already in use: set PORT"
fi
"$WORK/tlsprog" -serve "127.0.0.1:$PORT" >"$WORK/server.out" 2>"$WORK/server.err" &
NGINX_PID=$!
for _ in $(seq 100); do
  python3 -c "import ssl, urllib.request; urllib.request.urlopen('$URL', timeout=1, context=ssl._create_unverified_context()).read()" 2>/dev/null && break
  kill -0 "$NGINX_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; NGINX_PID=; die "the Go server did not start"; }
  sleep 0.1
done
echo "Go server $NGINX_PID ($(go version | cut -d' ' -f3), $([ "$STRIP" = 1 ] && echo stripped || echo not stripped)); $URL"

setup_bpf_stats "side B"

# ---- check: the Go TLS probes attach and every request gives one HTTPS record -------------
check_tls_records /x $'hello GET /x (0 bytes)\n'

# ---- FLOOR=1: side C is the least a uprobe design pays (nginx_ab.sh run_floor) ---------------
# Counting perf uprobes, no BPF, on the very points odigos-trace probes in the server's crypto/tls
# ((*Conn).Write and (*Conn).Read after their stack checks, Read's point after the copy), which
# the tracer names with -v; valid when they counted >= 3.9 hits per request (2 Reads, 1 Write, 1
# copy: what the B runs' program run counts show).
SIDES=(A B)
C_LABEL=
if [ "$FLOOR" = 1 ]; then
  "$TRACER" --pid "$NGINX_PID" -v -q -o /dev/null 2>"$OUT/points.err" &
  pts=$!; register_bg "$pts"
  wait_attached "$pts" "$OUT/points.err"
  stop_bg "$pts" 30
  read -r w r c < <(sed -n "s/.*TLS probe points of '[^']*' (Go [^)]*): write \(0x[0-9a-f]*\), read \(0x[0-9a-f]*\), read copied \(0x[0-9a-f]*\).*/\1 \2 \3/p" "$OUT/points.err" | head -1) ||
    die "the tracer named no Go probe points with -v (see $OUT/points.err)"
  floor_probe_add "$WORK/tlsprog" write_ent "$w"
  floor_probe_add "$WORK/tlsprog" read_ent "$r"
  floor_probe_add "$WORK/tlsprog" read_copied "$c"
  run_c() { run_floor "$1" "$2" 3.9 "$NGINX_PID"; } # round order
  SIDES=(A B C)
  C_LABEL="uprobe floor"
fi
run_rounds "$ROUNDS" "${SIDES[@]}"
kill -0 "$NGINX_PID" 2>/dev/null || die "the Go server died during the runs: $(head -c 500 "$WORK/server.err")"

# ---- summary -----------------------------------------------------------------------------
{
  machine_note
  echo "cores: not pinned; the Go server (GOMAXPROCS ${GOMAXPROCS:-unset = $(nproc)}), the load generator (wrk, $THREADS thread, doing its own TLS with OpenSSL) and the tracer share all $(nproc) vCPUs: every CPU-second the tracer or its probes spend is taken from the server or wrk"
  tracer_note
  echo "load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg); uptime now: $(uptime | sed 's/^ *//')"
  echo "command: wrk -t$THREADS -c$CONNS -d$DURATION --latency $URL; B adds: $(basename "$TRACER") --pid <Go server> -q -o FILE"
  echo "TLS: tlsprog built with $(go version | cut -d' ' -f3-); protocol/cipher: $(echo | openssl s_client -connect "127.0.0.1:$PORT" -brief 2>&1 | grep -E 'Protocol version|Ciphersuite' | sed 's/.*: //' | tr '\n' ' ')"
  echo "tracer at the check run: $ATTACH_LINE"
  echo "valid B run: records with tls.established true = wrk completed +- $CONNS, 0 events lost"
  echo "$BPF_NOTE"
  [ "$FLOOR" != 1 ] || echo "C adds: counting perf uprobes (perf stat -p <server>, no BPF) on $FLOOR_NOTE the C 'records' column is their hit count; valid when >= 3.9 hits per request"
  echo "round orders: ${SIDES[*]} rotated each round; $ROUNDS rounds; 'nginx' below = the Go server process (/proc/PID/stat, all threads)"
} | tee "$OUT/meta.txt"
$STATS summary "$OUT/runs.tsv" ${C_LABEL:+"$C_LABEL"} | sed "s/nginx master+workers/Go server/; s/^  nginx: /  server:/; s/nginx's/the server's/; s/nginx + wrk/server + wrk/" | tee "$OUT/summary.txt"
echo "raw results: $OUT"
