#!/usr/bin/env bash
# The highest event rate odigos-trace decodes with zero drops on this machine, and what
# limits it.
#
#   sudo bench/lossless_rate.sh
#
# Part 1, default ring buffer: for each nginx worker count in WORKERS_LIST and each wrk
# connection count in CONNS_LIST, one untraced wrk run (capacity of the machine at that step)
# and one traced run (`odigos-trace --pid <nginx master> -q -o FILE`, 16 MiB ring buffer).
# Part 2, small ring buffers: at the heaviest step, traced runs with --ringbuf-size from
# RB_LIST, to show where the kernel starts dropping events and why.
# Each traced step reports requests/s, records/s, events/s (when the tracer's summary prints
# an event count), events lost, records vs wrk's completed requests, and where the CPU time
# went over the wrk window: busy % of all vCPUs (/proc/stat), and the CPU % of nginx (master
# and workers), wrk, the tracer and everything else on the host (one vCPU = 100 %), and the
# rate at which the tracer would fill one vCPU (records per tracer CPU-second).
#
# Environment: TRACER (default build/odigos-trace), PORT=18080, WORKERS_LIST="2",
# CONNS_LIST="1 2 4 8 16 64 256", THREADS=1 (wrk threads; 2 adds load-generator CPU),
# DURATION=5s, RB_LIST="8K 32K 128K 512K 2M" (empty: skip part 2), UNTRACED=1 (0: skip the
# untraced runs), OUT (results directory).
set -euo pipefail
NAME=lossless_rate.sh
source "$(dirname "$0")/nginx_common.sh"
WORKERS_LIST=${WORKERS_LIST:-2}
CONNS_LIST=${CONNS_LIST:-1 2 4 8 16 64 256}
THREADS=${THREADS:-1}
DURATION=${DURATION:-5s}
RB_LIST=${RB_LIST-8K 32K 128K 512K 2M}
UNTRACED=${UNTRACED:-1}

require_root_and_tools nginx wrk python3
setup_work lossless-rate
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
HZ=$(getconf CLK_TCK)
DUR_S=$(python3 -c "import re,sys; m=re.fullmatch(r'(\d+(?:\.\d+)?)(ms|s|m)?', '$DURATION'); print(float(m.group(1)) * {'ms': 1e-3, 's': 1, 'm': 60, None: 1}[m.group(2)])")

printf 'part\tworkers\tconns\tringbuf\tuntraced_rps\trps\tcompleted\trecords\tevents\tlost\tdiff\tvalid\tbusy_pct\tnginx_pct\twrk_pct\ttracer_pct\tother_pct\trecords_per_tracer_cpu_s\tp99_us\n' >"$OUT/steps.tsv"

# pct CPU_SECONDS WINDOW_SECONDS: percent of one vCPU
pct() { awk -v c="$1" -v d="$2" 'BEGIN{printf "%.0f", 100 * c / d}'; }

untraced_rps() { # conns; sets BASE (no $(...): a signal must reach the running wrk at once)
  fg_run $STATS run "$OUT/wrk-untraced-c$1.txt" wrk -t"$THREADS" -c"$1" -d"$DURATION" --latency "$URL"
  BASE=$($STATS parse "$OUT/wrk-untraced-c$1.txt" | cut -d' ' -f1)
}

# traced_step PART CONNS RINGBUF UNTRACED_RPS
traced_step() {
  local part=$1 conns=$2 rb=$3 base=$4 tag="$1-w$WORKERS-c$2-rb$3"
  local nd="$OUT/trace.ndjson" err="$OUT/tracer-$tag.err" pid args=()
  [ "$rb" = default ] || args=(--ringbuf-size "$rb")
  rm -f "$nd"
  "$TRACER" --pid "$NGINX_PID" -q -o "$nd" "${args[@]}" 2>"$err" &
  pid=$!; register_bg "$pid"
  wait_attached "$pid" "$err"
  local t0 n0 j0 b0 t1 n1 j1 b1
  local w0 w1
  t0=$(proc_cpu_ns "$pid"); n0=$(nginx_cpu); read -r b0 j0 < <(cpu_jiffies); w0=$(date +%s.%N)
  fg_run $STATS run "$OUT/wrk-$tag.txt" wrk -t"$THREADS" -c"$conns" -d"$DURATION" --latency "$URL"
  t1=$(proc_cpu_ns "$pid"); n1=$(nginx_cpu); read -r b1 j1 < <(cpu_jiffies); w1=$(date +%s.%N)
  local win; win=$(fsub "$w0" "$w1") # the measured window (wrk's duration plus its start and stop)
  local prev=-1 cur
  for _ in $(seq 60); do
    cur=$(grep -c '"kind":"request"' "$nd" 2>/dev/null || true)
    [ "$cur" = "$prev" ] && break
    prev=$cur; sleep 0.5
  done
  local t_end; t_end=$(proc_cpu_ns "$pid") # after the drain: every record decoded
  stop_bg "$pid" 60
  local rps completed p99 records s_records lost events
  read -r rps completed p99 < <($STATS parse "$OUT/wrk-$tag.txt")
  records=$(grep -c '"kind":"request"' "$nd" 2>/dev/null || true)
  read -r s_records lost events < <($STATS summary-line "$err")
  rm -f "$nd"
  local diff=$((records - completed)) valid=yes
  [ "${diff#-}" -le "$conns" ] && [ "$lost" = 0 ] || valid=no
  local busy nginx_p wrk_p tr_p other_p cap
  busy=$(awk -v b="$((b1 - b0))" -v j="$((j1 - j0))" 'BEGIN{printf "%.0f", j ? 100 * b / j : 0}')
  nginx_p=$(pct "$(fsub "$n0" "$n1")" "$win"); wrk_p=$(pct "$(cat "$OUT/wrk-$tag.txt.cpu")" "$win")
  tr_p=$(pct "$(fsub "$t0" "$t1")" "$win")
  # the rest of the busy time (in % of one vCPU): other work on the host, kernel threads, softirqs
  # not charged to a task
  other_p=$(awk -v b="$((b1 - b0))" -v hz="$HZ" -v d="$win" -v n="$nginx_p" -v w="$wrk_p" -v t="$tr_p" \
    'BEGIN{o = 100 * b / hz / d - n - w - t; printf "%.0f", (o < 0 ? 0 : o)}')
  # records per tracer CPU-second (from attach to the end of the drain): the rate that would
  # fill one vCPU
  cap=$(awk -v r="$records" -v c="$(fsub "$t0" "$t_end")" 'BEGIN{printf "%.0f", (c > 0 ? r / c : 0)}')
  local ev_s=n/a
  [ "$events" != - ] && ev_s=$(awk -v e="$events" -v d="$DUR_S" 'BEGIN{printf "%.0f", e / d}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$part" "$WORKERS" "$conns" "$rb" "$base" \
    "$rps" "$completed" "$records" "$events" "$lost" "$diff" "$valid" "$busy" "$nginx_p" "$wrk_p" "$tr_p" "$other_p" "$cap" "$p99" >>"$OUT/steps.tsv"
  printf '  %-8s w=%-2s c=%-4s rb=%-7s untraced %6s req/s | traced %6.0f req/s, %6.0f records/s, events/s %s, lost %s, records-completed %+d (%s) | CPU: busy %s%% of %s vCPUs; nginx %s%%, wrk %s%%, tracer %s%%, other %s%% of one vCPU; tracer: %s records per CPU-second; p99 %.0f us\n' \
    "$part" "$WORKERS" "$conns" "$rb" "$(echo "$base" | awk '{printf ($1 == "-" ? "-" : "%.0f"), $1}')" "$rps" \
    "$(awk -v r="$records" -v d="$DUR_S" 'BEGIN{print r / d}')" \
    "$ev_s" "$lost" "$diff" "$([ $valid = yes ] && echo lossless || echo LOSSY)" "$busy" "$(nproc)" \
    "$nginx_p" "$wrk_p" "$tr_p" "$other_p" "$cap" "$p99"
}

{
  machine_note
  cores_note
  tracer_note
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "wrk -t$THREADS -d$DURATION --latency $URL with -c from: $CONNS_LIST; nginx workers: $WORKERS_LIST"
} | tee "$OUT/meta.txt"

HEAVY_C=
for w in $WORKERS_LIST; do
  WORKERS=$w
  start_nginx
  echo "nginx master $NGINX_PID, $WORKERS workers: $(nginx_workers)"
  fg_run $STATS run "$OUT/wrk-warmup.txt" wrk -t"$THREADS" -c8 -d2s "$URL" # warm-up
  echo "part 1: default ring buffer (16 MiB)"
  for c in $CONNS_LIST; do
    BASE=-
    [ "$UNTRACED" = 1 ] && untraced_rps "$c"
    traced_step default "$c" default "$BASE"
    HEAVY_C=$c
  done
  if [ -n "$RB_LIST" ] && [ "$w" = "$(echo $WORKERS_LIST | awk '{print $NF}')" ]; then
    echo "part 2: smaller ring buffers at c=$HEAVY_C"
    for rb in $RB_LIST; do traced_step small-rb "$HEAVY_C" "$rb" -; done
  fi
  stop_nginx
done
echo "results: $OUT/steps.tsv"
python3 - "$OUT/steps.tsv" "$(nproc)" <<'EOF' | tee "$OUT/summary.txt"
import sys, csv
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
ncpu = int(sys.argv[2])
part1 = [r for r in rows if r["part"] == "default"]
ok = [r for r in part1 if r["valid"] == "yes"]
print("summary:")
if ok:
    best = max(ok, key=lambda r: float(r["rps"]))
    ev = f", {best['events']} events" if best["events"] != "-" else ""
    print(f"  highest lossless rate with the default ring buffer: {float(best['rps']):.0f} req/s "
          f"(workers {best['workers']}, {best['conns']} connections; {best['records']} records{ev}, 0 lost), "
          f"all vCPUs {best['busy_pct']}% busy (nginx {best['nginx_pct']}%, wrk {best['wrk_pct']}%, "
          f"tracer {best['tracer_pct']}% of one vCPU)")
lossy = [r for r in part1 if r["valid"] != "yes"]
print(f"  default ring buffer: {len(lossy)} of {len(part1)} steps lost events or records"
      + (": " + ", ".join(f"w{r['workers']} c{r['conns']} lost {r['lost']} diff {r['diff']}" for r in lossy) if lossy else ""))
caps = sorted(float(r["records_per_tracer_cpu_s"]) for r in ok if float(r["records_per_tracer_cpu_s"]) > 0)
if caps:
    import statistics
    cap = statistics.median(caps)
    print(f"  the tracer's own capacity: {cap:.0f} records per tracer CPU-second (median over lossless "
          f"steps): it would need a whole vCPU only at about {cap:.0f} req/s, "
          f"{cap / max(float(best['rps']), 1):.1f}x the highest rate reached here")
others = [float(r["other_pct"]) for r in part1]
if others and max(others) >= 20:
    print(f"  other work on the host took up to {max(others):.0f}% of one vCPU during these steps "
          f"(builds, tests): the request rates are lower than on an idle machine")
saturated = [r for r in part1 if float(r["busy_pct"]) >= 90]
if saturated and not lossy:
    print(f"  limit: the {ncpu} vCPUs, not the tracer: from c={saturated[0]['conns']} on the machine is "
          f">= 90% busy (nginx, wrk, the tracer and other work share the vCPUs) with no event lost; "
          f"nginx + wrk cannot produce a rate at which the 16 MiB ring buffer overflows")
elif lossy:
    worst = max(lossy, key=lambda r: int(r["lost"]) if r["lost"].isdigit() else 0)
    print(f"  limit: events were lost at w{worst['workers']} c{worst['conns']} ({float(worst['rps']):.0f} req/s, "
          f"tracer {worst['tracer_pct']}% of one vCPU, all vCPUs {worst['busy_pct']}% busy): the reader did not "
          f"empty the ring buffer in time")
elif part1:
    print(f"  limit: neither the tracer nor the CPUs (at most {max(float(r['busy_pct']) for r in part1):.0f}% busy): "
          f"more connections or nginx workers (WORKERS_LIST) may go further")
small = [r for r in rows if r["part"] == "small-rb"]
first_ok = next((r for r in small if r["valid"] == "yes"), None)
if small:
    print("  smaller ring buffers (the reader is woken when the backlog reaches size/64, at least "
          "4 KiB, and otherwise polls every 100 ms):"
          + (f" the smallest lossless size here is {first_ok['ringbuf']}" if first_ok else " every size lost events"))
for r in small:
    print(f"  --ringbuf-size {r['ringbuf']:>5}: {float(r['rps']):.0f} req/s, lost {r['lost']} events, "
          f"records - completed {r['diff']} ({'lossless' if r['valid'] == 'yes' else 'LOSSY'})")
EOF
