#!/usr/bin/env bash
# What one traced OpenSSL call costs the calling thread, on this machine, now: the uprobe
# machinery (breakpoint trap, uretprobe return) and the tracer's BPF programs, separately.
#
#   sudo bench/tls_uprobe_cost.sh [TRACER]        (default build/odigos-trace)
#
# bench/tls_call_loop.c calls SSL_read (then SSL_write) on an SSL object without a connection:
# every call enters the internal function odigos-trace probes (ssl_read_internal /
# ssl_write_internal, first instruction `push`, which the kernel emulates) and fails at once.
# The loop runs against a private copy of libssl (LD_LIBRARY_PATH), so no probe here traps
# another process. ns of the loop thread's CPU time (user + kernel) per call, median of
# ROUNDS rounds of N calls, for:
#   none          no probe
#   odigos        odigos-trace --pid LOOP -q -o FILE: its entry uprobe + uretprobe on the
#                 internal function and their 2 BPF programs (the enter program stores the
#                 call, the exit program finds ret <= 0 and deletes it: the path of nginx's
#                 second SSL_read per request, which returns WANT_READ)
#   odigos+stats  the same with kernel.bpf_stats_enabled=1: BPF run time per call by program
#   perf-entry    a counting perf uprobe (perf probe + perf stat -p, no BPF) on the internal
#                 function: the emulated breakpoint trap plus perf's own counting
#   perf-ret      a counting perf uretprobe there (entry trap + return through the trampoline)
#   perf-both     both at once (two consumers of one uprobe, as odigos-trace has)
#   perf-sstep    a counting perf uprobe on SSL_read / SSL_write itself, whose first
#                 instruction (`sub $N,%rsp`) the kernel must single-step
# The perf probe events (group odigos_bench) are deleted at exit.
# Environment: N=200000 calls per round, ROUNDS=5, CC=cc. Needs root, a C compiler, OpenSSL
# headers (libssl-dev), perf, objdump; bpftool for program names.
set -euo pipefail
NAME=tls_uprobe_cost.sh
[ $# -ge 1 ] && TRACER=$1
source "$(dirname "$0")/nginx_common.sh"
N=${N:-200000}
ROUNDS=${ROUNDS:-5}
CC=${CC:-cc}
require_root_and_tools perf objdump nm "$CC"
PROBES=()
tls_cost_cleanup() {
  local rc=$? e
  trap '' INT TERM # a second signal must not cut the cleanup short (probes, sysctl)
  for e in "${PROBES[@]}"; do perf probe -q -d "odigos_bench:$e" >/dev/null 2>&1 || echo "$NAME: could not delete perf probe odigos_bench:$e" >&2; done
  PROBES=()
  (exit "$rc")
  bench_cleanup
}
trap tls_cost_cleanup EXIT
setup_work tls-uprobe-cost
mkdir -p "$WORK/lib"
"$CC" -O2 -o "$WORK/tls_call_loop" "$BENCH_DIR/tls_call_loop.c" -lssl -lcrypto 2>"$WORK/cc.err" ||
  { cat "$WORK/cc.err" >&2; die "cannot build tls_call_loop (libssl-dev installed?)"; }
SYS_SSL=$(ldd "$WORK/tls_call_loop" | grep -o '/[^ ]*libssl\.so[^ ]*' | head -1)
[ -n "$SYS_SSL" ] || die "tls_call_loop links no libssl"
LIB=$WORK/lib/$(basename "$SYS_SSL")
cp "$SYS_SSL" "$LIB"

# the address (vaddr) of a dynamic symbol, and of the first direct call in it that is not a PLT stub
sym_addr() { nm -D --defined-only "$LIB" | awk -v s="$1" '$3 == s || index($3, s "@@") == 1 { print "0x" $1; exit }'; }
first_call() {
  local a
  a=$(sym_addr "$1")
  objdump -d --no-show-raw-insn --start-address="$a" --stop-address=$((a + 160)) "$LIB" |
    awk '$2 == "call" && $0 !~ /@plt/ { print "0x" $3; exit }'
}
enabled_bpf_stats=0
enable_bpf_stats && enabled_bpf_stats=1

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# measure LABEL read|write KIND [PERF EVENTS]: start the loop (it waits), attach KIND (none,
# odigos-trace, or perf stat counting PERF EVENTS) to it, start the calls; print the median
# ns per call and set NS_<label>_<fn>
measure() {
  local label=$1 fn=$2 kind=$3 prog=${4:-} fifo="$WORK/go" out="$WORK/loop-$1-$2.out" apid='' err="$WORK/$1-$2.err"
  rm -f "$fifo"; mkfifo "$fifo"
  LD_LIBRARY_PATH=$WORK/lib "$WORK/tls_call_loop" "$fn" "$N" "$ROUNDS" <"$fifo" >"$out" &
  local lpid=$!
  register_bg "$lpid"
  exec 9>"$fifo"
  for _ in $(seq 100); do grep -q ready "$out" && break; sleep 0.05; done
  grep -q "$LIB" "/proc/$lpid/maps" || die "the loop does not map $LIB"
  case $kind in
    odigos)
      "$TRACER" --pid "$lpid" -q -o "$WORK/trace.ndjson" 2>"$err" &
      apid=$!; register_bg "$apid"
      wait_attached "$apid" "$err"
      # attached means the socket probes; the TLS probes come from the scan of its maps
      for _ in $(seq 100); do [ "$($STATS bpfprogs "$apid" | grep -c openssl)" -ge 2 ] && break; sleep 0.05; done
      sleep 0.3
      $STATS bpfprogs "$apid" >"$WORK/bpf.before" ;;
    perf)
      perf stat -x, -e "$prog" -p "$lpid" -o "$err" &
      apid=$!; register_bg "$apid"
      sleep 1 ;;
  esac
  echo go >&9
  exec 9>&-
  wait "$lpid" || true
  unregister_bg "$lpid"
  local ns bpf=
  ns=$(tail -n +2 "$out" | median)
  if [ "$kind" = odigos ] && [ "$(sysctl -n kernel.bpf_stats_enabled)" = 1 ]; then
    $STATS bpfprogs "$apid" >"$WORK/bpf.after"
    $STATS bpfdelta "$WORK/bpf.before" "$WORK/bpf.after" "$WORK/bpf-$fn.tsv" >/dev/null
    bpf=$(awk -F'\t' -v calls=$((N * ROUNDS)) 'NR > 1 && $2 ~ /openssl|tls_exit/ { t += $3; printf "%s %.0f ns x %.2f/call, ", $2, $4 ? $3 / $4 : 0, $4 / calls } END { printf "BPF total %.0f ns/call", t / calls }' "$WORK/bpf-$fn.tsv")
  fi
  [ -n "$apid" ] && stop_bg "$apid" 30
  printf '  %-12s %-5s %8.0f ns/call   (rounds: %s)%s\n' "$label" "$fn" "$ns" "$(tail -n +2 "$out" | tr '\n' ' ')" "${bpf:+
              $bpf}"
  local var=${label//-/_}
  eval "NS_${var//+/_}_$fn=$ns"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
machine_note
tracer_note
echo "library: $SYS_SSL (private copy $LIB); $N calls per round, median of $ROUNDS rounds"
first_insn() { objdump -d --no-show-raw-insn --start-address="$1" --stop-address=$(($1 + 8)) "$LIB" | awk -F'\t' '/^ *[0-9a-f]+:/ { print $2; exit }' | sed 's/ *$//'; }
add_probe() { # event spec
  perf probe -q -x "$LIB" -a "odigos_bench:$1=$2" >/dev/null 2>"$WORK/perf-probe.err" || { cat "$WORK/perf-probe.err" >&2; die "perf probe $2 failed"; }
  case $2 in *%return) PROBES+=("$1__return") ;; *) PROBES+=("$1") ;; esac # perf's name for a return probe
}
for fn in read write; do
  pub=SSL_$fn
  internal=$(first_call "$pub")
  [ -n "$internal" ] || die "no call found in $pub"
  add_probe "${fn}_ent" "$internal"
  add_probe "${fn}_ret" "$internal%return"
  add_probe "${fn}_pub" "$pub"
done
for fn in read write; do
  pub=SSL_$fn
  internal=$(first_call "$pub")
  echo "$pub at $(sym_addr "$pub") starts with '$(first_insn "$(sym_addr "$pub")")'; it calls $internal, which starts with '$(first_insn "$internal")'"
  measure none "$fn" none
  # without the stats' clock reads, unless something else on the machine had them on
  [ "$BPF_STATS_OLD" = 1 ] || sysctl -q -w kernel.bpf_stats_enabled=0
  measure odigos "$fn" odigos
  [ "$enabled_bpf_stats" = 1 ] && sysctl -q -w kernel.bpf_stats_enabled=1 && measure odigos+stats "$fn" odigos
  measure perf-entry "$fn" perf "odigos_bench:${fn}_ent"
  measure perf-ret "$fn" perf "odigos_bench:${fn}_ret__return"
  measure perf-both "$fn" perf "odigos_bench:${fn}_ent,odigos_bench:${fn}_ret__return"
  measure perf-sstep "$fn" perf "odigos_bench:${fn}_pub"
done
echo "load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$BPF_STATS_OLD" = 1 ]; then
  echo "kernel.bpf_stats_enabled was 1 already (someone else's measurement) and stayed 1: 'odigos' includes the stats' two clock reads per BPF run too"
else
  echo "kernel.bpf_stats_enabled: 0 except in the odigos+stats runs (restored at exit); the BPF run times include its two clock reads per run"
fi
echo "added per call (median of rounds minus 'none'):"
for fn in read write; do
  eval "base=\$NS_none_$fn od=\$NS_odigos_$fn pe=\$NS_perf_entry_$fn pr=\$NS_perf_ret_$fn pb=\$NS_perf_both_$fn ps=\$NS_perf_sstep_$fn"
  awk -v fn="$fn" -v b="$base" -v o="$od" -v e="$pe" -v r="$pr" -v both="$pb" -v s="$ps" 'BEGIN {
    printf "  SSL_%s: odigos-trace %.2f us; counting perf uprobe on the emulated push %.2f us, uretprobe %.2f us, both %.2f us; counting perf uprobe on the single-stepped sub %.2f us\n",
      fn, (o - b) / 1e3, (e - b) / 1e3, (r - b) / 1e3, (both - b) / 1e3, (s - b) / 1e3 }'
done
echo "raw results: $WORK"
