# A/B rounds of wrk against the private nginx of nginx_common.sh, shared by bench/nginx_wrk.sh and
# bench/nginx_https.sh (sourced after nginx_common.sh, not run).
#
#   A: wrk untraced
#   B: wrk while `odigos-trace --pid <nginx master> -q -o FILE` runs; wrk starts once the tracer
#      is attached. Valid when the records of FILE (lines matching RECORD_PATTERN) equal wrk's
#      completed requests within +-CONNS (requests in flight when wrk stops) and the tracer's
#      summary says 0 events lost.
# Each run appends one row to $OUT/runs.tsv (`nginx_wrk_stats.py summary` reads it) and BPF
# program statistics of B runs to $OUT/bpf-ROUND-B.tsv. A third side C is the caller's run_c
# (run_odigos runs the tracer with other arguments).
#
# The caller sets OUT, URL, THREADS, CONNS, DURATION (and what nginx_common.sh needs) and may
# set RECORD_PATTERN (default: every "kind":"request" record).
# shellcheck shell=bash

RECORD_PATTERN=${RECORD_PATTERN:-'"kind":"request"'}

# one line of runs.tsv: the fields joined by tabs (24 columns)
row() { local IFS=$'\t'; echo "$*"; }
runs_header() {
  row pair side order rps completed p99_us records valid drops nginx_cpu_s wrk_cpu_s tracer_user_s tracer_sys_s tracer_cpu_s \
    bpf_ns bpf_runs bpf_progs hwm_start_kb rss_kb hwm_kb bpfmap_kb anon_kb timed_calls tracer_summary >"$OUT/runs.tsv"
}

# wrk; its CPU seconds go to $1.cpu
run_wrk() { fg_run $STATS run "$1" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$URL"; }

within_conns() { [ $(($1 - $2)) -le "$CONNS" ] && [ $(($2 - $1)) -le "$CONNS" ]; }

# records of FILE that count (lines matching RECORD_PATTERN, an extended regular expression)
record_count() { grep -cE "$RECORD_PATTERN" "$1" 2>/dev/null || true; }

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

# check_tls_records PATH EXPECT: a tracer on $NGINX_PID while 20 HTTPS GETs of PATH go over one
# keep-alive connection to 127.0.0.1:$PORT, each answered 200 with the body EXPECT ("len=N":
# any N bytes): dies unless the TLS probes attached and every request gave one record.
# Sets ATTACH_LINE (the tracer's "attached ..." line).
check_tls_records() {
  local nd="$OUT/check.ndjson" err="$OUT/check.err" pid n
  "$TRACER" --pid "$NGINX_PID" -q -o "$nd" 2>"$err" &
  pid=$!; register_bg "$pid"
  wait_attached "$pid" "$err"
  python3 - "$PORT" "$1" "$2" <<'EOF' || die "the check requests failed"
import http.client, ssl, sys
port, path, expect = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = http.client.HTTPSConnection("127.0.0.1", port, context=ssl._create_unverified_context(), timeout=5)
for _ in range(20):  # one keep-alive connection
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    ok = len(body) == int(expect[4:]) if expect.startswith("len=") else body == expect.encode()
    assert r.status == 200 and ok, (r.status, body[:80])
c.close()
EOF
  for _ in $(seq 50); do [ "$(record_count "$nd")" -ge 20 ] && break; sleep 0.1; done
  stop_bg "$pid" 60
  n=$(record_count "$nd")
  if [ "$n" != 20 ] || grep -q 'not traced' "$err"; then
    cat "$err" >&2
    die "check run: $n HTTPS records (tls.established) for 20 requests; see $nd"
  fi
  ATTACH_LINE=$(grep -m1 attached "$err" | sed 's/^odigos-trace: //')
  echo "check run: 20 requests -> 20 HTTPS records (tls.established true); tracer: $ATTACH_LINE"
}

# cpu_mark PID: "user sys ns", the CPU PID has used so far (for usage_since).
cpu_mark() {
  local u s
  read -r u s < <(proc_cpu_split "$1")
  echo "$u $s $(proc_cpu_ns "$1")"
}
# usage_since PID MARK: "user sys ns rss hwm maps anon": CPU since MARK, memory now.
usage_since() {
  local u0 s0 c0 u s
  read -r u0 s0 c0 <<<"$2"
  read -r u s < <(proc_cpu_split "$1")
  echo "$(fsub "$u0" "$u") $(fsub "$s0" "$s")" \
    "$(awk -v a="$c0" -v b="$(proc_cpu_ns "$1")" 'BEGIN{printf "%.4f", b - a}')" \
    "$($STATS mem "$1")"
}

run_b() { run_odigos "$1" "$2" B records; } # round order

# run_odigos ROUND ORDER SIDE CHECK [TRACER ARGS...]: wrk while `odigos-trace --pid <nginx
# master> [ARGS] -q -o FILE` runs. CHECK "records": valid when FILE's records match wrk's
# completed requests (+-CONNS) and no event was lost; "lost": only the latter (a side whose
# tracer is not expected to write a record per request, e.g. --no-tls on HTTPS).
run_odigos() {
  local round=$1 order=$2 side=$3 check=$4 sfx=
  shift 4
  [ "$side" = B ] || sfx=-$side
  local nd="$OUT/trace-$round$sfx.ndjson" err="$OUT/tracer-$round$sfx.err" pid
  rm -f "$nd"; : >"$err"
  "$TRACER" --pid "$NGINX_PID" "$@" -q -o "$nd" 2>"$err" &
  pid=$!; register_bg "$pid"
  wait_attached "$pid" "$err"
  local mark
  mark=$(cpu_mark "$pid") # CPU from here on: attach and startup excluded
  traced_wrk "$round" "$side" "$pid"
  # let the tracer catch up: stop once the record count is stable for 1 s (at most 30 s)
  local prev=-1 cur
  for _ in $(seq 60); do
    cur=$(record_count "$nd")
    [ "$cur" = "$prev" ] && break
    prev=$cur
    sleep 0.5
  done
  local tu ts tc rss hwm maps anon
  read -r tu ts tc rss hwm maps anon < <(usage_since "$pid" "$mark")
  stop_bg "$pid" 60
  local records s_records drops events summary valid=yes
  records=$(record_count "$nd")
  read -r s_records drops events < <($STATS summary-line "$err")
  summary=$(grep -E 'records|lost' "$err" | tail -1 | sed 's/^odigos-trace: //' | tr '\t' ' ')
  [ "$check" != records ] || within_conns "$records" "$completed" || valid=no
  [ "$drops" = 0 ] || valid=no
  grep -q 'events lost (ring buffer full)' "$err" && valid=no
  row "$round" "$side" "$order" "$rps" "$completed" "$p99" "$records" "$valid" "$drops" "$n_cpu" "$(cat "$OUT/wrk-$round-$side.txt.cpu")" \
    "$tu" "$ts" "$tc" "$bpf_ns" "$bpf_runs" "$bpf_progs" "$hwm_start" "$rss" "$hwm" "$maps" "$anon" - "$summary" >>"$OUT/runs.tsv"
  printf '  round %2d %s: %9.0f req/s  p99 %7.0f us  wrk completed %s, records %s, lost %s (%s); tracer CPU %ss (user %ss, sys %ss); BPF %s ns/req; RSS %s MiB (peak %s, at start %s, ring buffer maps %s)\n' \
    "$round" "$side" "$rps" "$p99" "$completed" "$records" "$drops" "$([ $valid = yes ] && echo valid || echo INVALID)" "$tc" "$tu" "$ts" \
    "$(awk -v a="$bpf_ns" -v n="$completed" 'BEGIN{printf "%.0f", n ? a / n : 0}')" \
    "$((rss / 1024))" "$((hwm / 1024))" "$((hwm_start / 1024))" "$((maps / 1024))"
  rm -f "$nd" # large; the count is in runs.tsv
}

# run_rounds ROUNDS SIDE...: a discarded 2 s warm-up, then ROUNDS rounds of the sides in
# rotating order (ABC, BCA, CAB, ...; AB, BA with two) so that drift hits every side; run_X
# runs side X. Sets LOAD_START (load average before the first run).
run_rounds() {
  local rounds=$1 p i n order
  shift
  local sides=("$@")
  runs_header
  LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "warm-up (discarded)"
  fg_run $STATS run "$OUT/wrk-warmup.txt" wrk -t"$THREADS" -c"$CONNS" -d2s "$URL"
  n=${#sides[@]}
  for ((p = 1; p <= rounds; p++)); do
    order=
    for ((i = 0; i < n; i++)); do order+=${sides[$(((p - 1 + i) % n))]}; done
    for ((i = 0; i < n; i++)); do
      case ${order:$i:1} in
        A) run_a "$p" "$order" ;;
        B) run_b "$p" "$order" ;;
        C) run_c "$p" "$order" ;;
      esac
    done
  done
}

# ---- the uprobe floor (side C of FLOOR=1 runs) ------------------------------------------------
# Counting perf uprobes: a breakpoint trap per hit and perf's counter, no BPF program, no socket
# hook. floor_probe_add FILE NAME OFFSET adds one at a file offset, as odigos-trace attaches
# (group odigos_floor, deleted at exit; the instruction there is said in FLOOR_NOTE); run_floor
# counts them for the given PIDs only.
FLOOR_PROBES=()
FLOOR_EVENTS=
FLOOR_NOTE=
floor_cleanup() {
  local rc=$? e
  trap '' INT TERM # a second signal must not cut the cleanup short
  for e in "${FLOOR_PROBES[@]}"; do perf probe -q -d "odigos_floor:$e" >/dev/null 2>&1 || echo "$NAME: could not delete perf probe odigos_floor:$e" >&2; done
  FLOOR_PROBES=()
  (exit "$rc")
  bench_cleanup
}
# elf_addr FILE vaddr|offset N: N (a file offset, or a virtual address) as the other one, from
# the ELF LOAD segments
elf_addr() {
  local n=$(($3)) off va fs
  while read -r _ off va _ fs _; do
    off=$((off)) va=$((va)) fs=$((fs))
    if [ "$2" = vaddr ] && [ "$n" -ge "$off" ] && [ "$n" -lt $((off + fs)) ]; then printf '0x%x\n' $((n - off + va)); return; fi
    if [ "$2" = offset ] && [ "$n" -ge "$va" ] && [ "$n" -lt $((va + fs)) ]; then printf '0x%x\n' $((n - va + off)); return; fi
  done < <(readelf -lW "$1" | awk '$1 == "LOAD"')
}
floor_probe_add() { # FILE NAME OFFSET
  command -v perf >/dev/null || die "FLOOR=1 needs perf (Debian: linux-perf)"
  local va
  va=$(elf_addr "$1" vaddr "$3")
  [ -n "$va" ] || die "offset $3 is in no LOAD segment of $1"
  [ "${#FLOOR_PROBES[@]}" -gt 0 ] || trap floor_cleanup EXIT
  # perf probe takes a raw number as a file offset (see /sys/kernel/tracing/uprobe_events)
  perf probe -q -x "$1" -a "odigos_floor:$2=$3" >/dev/null 2>"$OUT/perf-probe.err" ||
    { cat "$OUT/perf-probe.err" >&2; die "perf probe at $3 of $1 failed"; }
  FLOOR_PROBES+=("$2")
  FLOOR_EVENTS+=${FLOOR_EVENTS:+,}odigos_floor:$2
  FLOOR_NOTE+="$2 $(basename "$1")+$3 ($(objdump -d --no-show-raw-insn --start-address="$va" --stop-address=$((va + 8)) "$1" |
    awk -F'\t' '/^ *[0-9a-f]+:/ { print $2; exit }' | sed 's/ *$//')); "
}
# first_call_vaddr FILE SYMBOL: the first direct call in a dynamic symbol that is not a PLT stub
first_call_vaddr() {
  local a
  a=$(nm -D --defined-only "$1" | awk -v s="$2" '$3 == s || index($3, s "@@") == 1 { print "0x" $1; exit }')
  [ -n "$a" ] || return 0
  objdump -d --no-show-raw-insn --start-address="$a" --stop-address=$((a + 160)) "$1" |
    awk '$2 == "call" && $0 !~ /@plt/ { print "0x" $3; exit }'
}
# run_floor ROUND ORDER MIN_HITS_PER_REQUEST PID...: wrk while perf stat counts the floor probes
# in PID...; valid when they counted at least MIN_HITS_PER_REQUEST per completed request.
run_floor() {
  local round=$1 order=$2 min=$3 n0 n1 pid hits valid=yes
  shift 3
  perf stat -x, -e "$FLOOR_EVENTS" -p "$(echo "$@" | tr ' ' ',')" -o "$OUT/floor-$round.csv" &
  pid=$!; register_bg "$pid"
  sleep 1
  n0=$(nginx_cpu)
  run_wrk "$OUT/wrk-$round-C.txt"
  n1=$(nginx_cpu)
  stop_bg "$pid"
  read -r rps completed p99 < <($STATS parse "$OUT/wrk-$round-C.txt")
  hits=$(awk -F, '$3 ~ /odigos_floor/ { s += $1 } END { print s + 0 }' "$OUT/floor-$round.csv" 2>/dev/null || echo 0)
  awk -v h="$hits" -v n="$completed" -v m="$min" 'BEGIN { exit !(n > 0 && h / n >= m) }' || valid=no
  row "$round" C "$order" "$rps" "$completed" "$p99" "$hits" "$valid" 0 "$(fsub "$n0" "$n1")" "$(cat "$OUT/wrk-$round-C.txt.cpu")" \
    - - - - - - - - - - - - - >>"$OUT/runs.tsv"
  printf '  round %2d C: %9.0f req/s  p99 %7.0f us  uprobe hits %s (%s per request)%s\n' "$round" "$rps" "$p99" "$hits" \
    "$(awk -v h="$hits" -v n="$completed" 'BEGIN { printf "%.2f", n ? h / n : 0 }')" "$([ $valid = yes ] || echo ' INVALID')"
}
