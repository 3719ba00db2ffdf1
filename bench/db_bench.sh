#!/usr/bin/env bash
# shellcheck disable=SC2086,SC2054,SC2317 # $STATS/$DB_STATS are "python3 FILE"; set,get is one argument; db_cleanup runs from a trap
# Overhead of odigos-trace on Redis (redis-benchmark) and PostgreSQL (pgbench).
#
#   sudo bench/db_bench.sh [PAIRS]        (default 10 pairs per workload; see docs/BENCHMARKS.md)
#
# Workloads (WORKLOADS, default "redis-pipe redis pg"; add pg-select for pgbench -S):
#   redis-pipe  redis-benchmark -P $PIPELINE -t set,get -n $REDIS_N_PIPE -c $REDIS_CLIENTS -q --csv
#   redis       redis-benchmark -t set,get -n $REDIS_N -c $REDIS_CLIENTS -q --csv
#   pg          pgbench -M prepared -c $PG_CLIENTS -T $PG_DURATION -l   (built-in TPC-B-like script)
#   pg-select   pgbench -M prepared -S -c $PG_CLIENTS -T $PG_DURATION -l (select only)
# against a private redis-server (127.0.0.1, a free port, no persistence) and a private
# PostgreSQL 15 cluster (initdb as user postgres into the work directory, 127.0.0.1, a free port,
# fsync=off, synchronous_commit=off, full_page_writes=off; pgbench -i -s $PG_SCALE once).
# Each workload runs PAIRS pairs of
#   A: the load generator, untraced
#   B: the same while `odigos-trace --pid <server pid> -q -o FILE` runs (started before, the load
#      generator starts once the tracer printed its "attached" line; the tracer is stopped once
#      FILE stopped growing for 1 s)
# in alternating order (AB, BA, AB, ...) after an untraced warm-up. A B run counts only if
#   redis: the records in FILE with protocol redis and db.operation.name SET (GET), complete,
#          equal the SET (GET) calls of INFO commandstats (CONFIG RESETSTAT before each run);
#   pg:    the executions recorded in FILE whose db.query.text starts with
#          "UPDATE pgbench_accounts" ("SELECT abalance FROM pgbench_accounts" for pg-select; one
#          per transaction; prepare-only exchanges of -M prepared left out) number between pgbench's
#          "number of transactions actually processed" and that + failed + clients (transactions
#          cut by the -T deadline); and the tracer's summary line says "0 events lost".
# Prints medians and B/A ratios with bootstrap 95% CIs of throughput (redis-benchmark
# requests/s per test; pgbench tps without initial connection time) and latency (redis-benchmark
# avg and p99 per test; pgbench latency average, and p99 from its per-transaction -l log), and CPU
# per operation of the server, the load generator and the tracer.
#
# Environment: TRACER (default build/odigos-trace; a private copy is used), WORKLOADS,
# REDIS_N_PIPE=500000, REDIS_N=100000, REDIS_CLIENTS=4, PIPELINE=16, PG_CLIENTS=2,
# PG_DURATION=5, PG_SCALE=1, REDIS_PORT / PG_PORT (default: free ports), PG_BIN
# (default /usr/lib/postgresql/15/bin), KEEP_TRACES=0 (1: keep the NDJSON files), TRACER_ARGS
# (extra tracer options, e.g. "--ringbuf-size 64M"; split on spaces), OUT (results directory;
# default a temp dir that is kept). The PostgreSQL data directory is removed at exit.
# Needs redis-server, redis-benchmark, redis-cli, PostgreSQL (initdb, postgres, pg_isready),
# pgbench, setpriv, python3, and root.
set -euo pipefail
NAME=db_bench.sh
source "$(dirname "$0")/nginx_common.sh" # die, process/CPU helpers, cleanup trap, setup_work
DB_STATS="python3 $BENCH_DIR/db_bench_stats.py"
PAIRS=${1:-${PAIRS:-10}}
WORKLOADS=${WORKLOADS:-redis-pipe redis pg}
REDIS_N_PIPE=${REDIS_N_PIPE:-500000}
REDIS_N=${REDIS_N:-100000}
REDIS_CLIENTS=${REDIS_CLIENTS:-4}
PIPELINE=${PIPELINE:-16}
PG_CLIENTS=${PG_CLIENTS:-2}
PG_DURATION=${PG_DURATION:-5}
PG_SCALE=${PG_SCALE:-1}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
KEEP_TRACES=${KEEP_TRACES:-0}
TRACER_ARGS=${TRACER_ARGS:-}
[[ "$PAIRS" =~ ^[1-9][0-9]*$ ]] || die "PAIRS must be a positive integer (got '$PAIRS')"
for w in $WORKLOADS; do
  case $w in redis-pipe | redis | pg | pg-select) ;; *) die "unknown workload '$w' (redis-pipe, redis, pg, pg-select)" ;; esac
done
need_redis=0 need_pg=0
[[ " $WORKLOADS " =~ \ redis ]] && need_redis=1
[[ " $WORKLOADS " =~ \ pg ]] && need_pg=1
tools=(python3)
[ $need_redis = 1 ] && tools+=(redis-server redis-benchmark redis-cli)
[ $need_pg = 1 ] && tools+=(pgbench setpriv "$PG_BIN/initdb" "$PG_BIN/postgres" "$PG_BIN/pg_isready")
require_root_and_tools "${tools[@]}"
[ $need_pg = 0 ] || id postgres >/dev/null 2>&1 || die "user postgres missing (install postgresql)"

# ---- servers and cleanup ------------------------------------------------------------------
REDIS_PID='' PG_PID='' PG_DIR=''
WORK='' TRACES_OF_THIS_RUN='' # set once this run created them: the cleanup removes only its own files
# stop_server PID SIGNAL: SIGNAL (redis: TERM = shutdown; postgres: INT = fast shutdown), SIGKILL after 10 s
stop_server() {
  local p=$1
  [ -n "$p" ] || return 0
  kill -"$2" "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; return 0; }
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && { echo "$NAME: server pid $p ignored SIG$2 for 10 s: SIGKILL" >&2; kill -KILL "$p" 2>/dev/null; }
  wait "$p" 2>/dev/null || true
}
stop_redis() { stop_server "$REDIS_PID" TERM; REDIS_PID=; }
stop_pg() {
  stop_server "$PG_PID" INT
  PG_PID=
  # a SIGKILLed postmaster leaves backends that exit on their own once they notice; wait for them
  # before removing the data directory
  if [ -n "$PG_DIR" ]; then
    for _ in $(seq 50); do pgrep -u postgres -f "$PG_DIR/data" >/dev/null || break; sleep 0.1; done
    rm -rf "$PG_DIR"
    PG_DIR=
  fi
}
db_cleanup() {
  local rc=$? p
  set +e
  trap - EXIT INT TERM
  for p in "${BG_PIDS[@]}"; do stop_bg "$p"; done # tracer, load generator
  stop_redis
  stop_pg
  [ -z "$TRACES_OF_THIS_RUN" ] || rm -f "$TRACES_OF_THIS_RUN" # the one being written when interrupted
  if [ -n "${WORK:-}" ]; then # keep only the results
    rm -rf "$WORK/odigos-trace" "$WORK/html" "$WORK/tmp" "$WORK/redis"
    rmdir "$WORK" 2>/dev/null
  fi
  (exit "$rc") # bench_cleanup reads the exit status from $?
  bench_cleanup
}
trap db_cleanup EXIT

setup_work db-bench
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
free_port() { $DB_STATS free-port; }

start_redis() {
  REDIS_PORT=${REDIS_PORT:-$(free_port)}
  mkdir -p "$WORK/redis"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize no \
    --dir "$WORK/redis" --logfile "$WORK/redis/redis.log" &
  REDIS_PID=$!
  for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
    kill -0 "$REDIS_PID" 2>/dev/null || { cat "$WORK/redis/redis.log" >&2; REDIS_PID=; die "redis-server did not start"; }
    sleep 0.1
  done
  redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG || die "redis-server does not answer on port $REDIS_PORT"
  echo "redis-server pid $REDIS_PID on 127.0.0.1:$REDIS_PORT ($(redis-server --version | cut -d' ' -f1-3))"
}

start_pg() {
  PG_PORT=${PG_PORT:-$(free_port)}
  PG_DIR=$WORK/pg
  mkdir -p "$PG_DIR"
  chown postgres: "$PG_DIR"
  chmod 700 "$PG_DIR"
  local as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  (cd "$PG_DIR" && "${as_pg[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C --no-sync) \
    >"$OUT/initdb.log" 2>&1 || { cat "$OUT/initdb.log" >&2; die "initdb failed"; }
  # exec: $! is the postmaster
  (cd "$PG_DIR" && exec "${as_pg[@]}" "$PG_BIN/postgres" -D "$PG_DIR/data" -p "$PG_PORT" \
    -c listen_addresses=127.0.0.1 -c unix_socket_directories="$PG_DIR" \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off) >"$OUT/postgres.log" 2>&1 &
  PG_PID=$!
  for _ in $(seq 150); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
    kill -0 "$PG_PID" 2>/dev/null || { cat "$OUT/postgres.log" >&2; PG_PID=; die "postgres did not start"; }
    sleep 0.2
  done
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" || die "postgres does not answer on port $PG_PORT"
  echo "postgres pid $PG_PID on 127.0.0.1:$PG_PORT ($("$PG_BIN/postgres" --version)); pgbench -i -s $PG_SCALE"
  fg_run pgbench -h 127.0.0.1 -p "$PG_PORT" -U postgres -i -s "$PG_SCALE" -q postgres >"$OUT/pgbench-init.log" 2>&1 ||
    { cat "$OUT/pgbench-init.log" >&2; die "pgbench -i failed"; }
}

# ---- per-workload commands -------------------------------------------------------------------
# load_cmd WORKLOAD OUTPREFIX [SIZE]: the load generator's argv in the array CMD; SIZE replaces
# the request count (redis) or the duration in seconds (pgbench), for the warm-up
load_cmd() {
  case $1 in
    redis-pipe) CMD=(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -P "$PIPELINE" -t set,get -n "${3:-$REDIS_N_PIPE}" -c "$REDIS_CLIENTS" -q --csv) ;;
    redis) CMD=(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -t set,get -n "${3:-$REDIS_N}" -c "$REDIS_CLIENTS" -q --csv) ;;
    pg) CMD=(pgbench -h 127.0.0.1 -p "$PG_PORT" -U postgres -M prepared -c "$PG_CLIENTS" -T "${3:-$PG_DURATION}" -l --log-prefix="$2.log" postgres) ;;
    pg-select) CMD=(pgbench -h 127.0.0.1 -p "$PG_PORT" -U postgres -M prepared -S -c "$PG_CLIENTS" -T "${3:-$PG_DURATION}" -l --log-prefix="$2.log" postgres) ;;
  esac
}
is_redis() { [ "$1" = redis ] || [ "$1" = redis-pipe ]; }
server_pid() { if is_redis "$1"; then echo "$REDIS_PID"; else echo "$PG_PID"; fi; }
server_cpu() { if is_redis "$1"; then proc_cpu "$REDIS_PID"; else $DB_STATS cpu-pg "$PG_PID"; fi; }
pg_prefix() { if [ "$1" = pg-select ]; then echo "SELECT abalance FROM pgbench_accounts"; else echo "UPDATE pgbench_accounts"; fi; }
# wait until pgbench's backends are gone (their CPU is then in the postmaster's cutime/cstime)
pg_backends_gone() {
  for _ in $(seq 50); do pgrep -P "$PG_PID" -f '127\.0\.0\.1\(' >/dev/null || return 0; sleep 0.1; done
  echo "$NAME: pgbench's backends still running after 5 s" >&2
}

# runs.tsv: one row per workload, test (SET/GET for redis, TPS for pgbench), pair and side
row() { local IFS=$'\t'; echo "$*"; }
row workload test pair side order unit tput avg_us p99_us ops records valid lost incomplete \
  server_cpu_s client_cpu_s tracer_cpu_s cpu_ops cpu_note tracer_summary >"$OUT/runs.tsv"

# run WORKLOAD PAIR SIDE ORDER
run() {
  local wl=$1 p=$2 side=$3 order=$4 base="$OUT/$1-$2-$3"
  local nd="$OUT/trace-$1-$2.ndjson" err="$OUT/tracer-$1-$2.err" tpid='' tc0='' tc=- summary=- lost=- valid=-
  load_cmd "$wl" "$base"
  if is_redis "$wl"; then redis-cli -p "$REDIS_PORT" config resetstat >/dev/null; fi
  if [ "$side" = B ]; then
    rm -f "$nd"; : >"$err"
    [ "$KEEP_TRACES" = 1 ] || TRACES_OF_THIS_RUN=$nd
    "$TRACER" --pid "$(server_pid "$wl")" -q -o "$nd" $TRACER_ARGS 2>"$err" &
    tpid=$!; register_bg "$tpid"
    wait_attached "$tpid" "$err"
    tc0=$(proc_cpu_ns "$tpid")
  fi
  local s0 s1
  s0=$(server_cpu "$wl")
  fg_run $STATS run "$base.out" "${CMD[@]}" || { cat "$base.out" >&2; die "$wl: load generator failed (see $base.out)"; }
  is_redis "$wl" || pg_backends_gone
  s1=$(server_cpu "$wl")
  local scpu ccpu
  scpu=$(fsub "$s0" "$s1"); ccpu=$(cat "$base.out.cpu")
  if [ -n "$tpid" ]; then
    # let the tracer catch up: stop once FILE has not grown for 1 s (at most 120 s)
    local prev=-1 cur
    for _ in $(seq 120); do
      cur=$(stat -c %s "$nd" 2>/dev/null || echo 0)
      [ "$cur" = "$prev" ] && break
      prev=$cur
      sleep 1
    done
    tc=$(awk -v a="$tc0" -v b="$(proc_cpu_ns "$tpid")" 'BEGIN{printf "%.4f", b - a}')
    stop_bg "$tpid" 60
    local _r _e
    read -r _r lost _e < <($STATS summary-line "$err")
    summary=$(grep -E 'records|lost' "$err" | tail -1 | sed 's/^odigos-trace: //' | tr '\t' ' ' || true)
    [ -n "$summary" ] || summary=-
  fi
  if is_redis "$wl"; then
    local calls_set calls_get rec_set=- rec_get=- inc_set=- inc_get=- other
    redis-cli -p "$REDIS_PORT" info commandstats >"$base.commandstats"
    read -r calls_set calls_get < <($DB_STATS commandstats "$base.commandstats")
    if [ -n "$tpid" ]; then
      read -r rec_set rec_get inc_set inc_get other < <($DB_STATS redis-count "$nd") || die "could not count the records of $nd"
      valid=yes
      [ "$rec_set" = "$calls_set" ] && [ "$rec_get" = "$calls_get" ] && [ "$lost" = 0 ] || valid=no
      grep -q 'events lost (ring buffer full)' "$err" && valid=no
    fi
    local t rps avg p99 line=
    declare -A RPS AVG P99
    while read -r t rps avg p99; do RPS[$t]=$rps AVG[$t]=$avg P99[$t]=$p99; done < <($DB_STATS redis-csv "$base.out")
    if [ -z "${RPS[SET]:-}" ] || [ -z "${RPS[GET]:-}" ]; then cat "$base.out" >&2; die "$wl: no SET/GET line in $base.out"; fi
    row "$wl" SET "$p" "$side" "$order" requests/s "${RPS[SET]}" "${AVG[SET]}" "${P99[SET]}" "$calls_set" "$rec_set" "$valid" "$lost" "$inc_set" \
      "$scpu" "$ccpu" "$tc" "$((calls_set + calls_get))" "SET and GET together" "$summary" >>"$OUT/runs.tsv"
    row "$wl" GET "$p" "$side" "$order" requests/s "${RPS[GET]}" "${AVG[GET]}" "${P99[GET]}" "$calls_get" "$rec_get" "$valid" "$lost" "$inc_get" \
      "$scpu" "$ccpu" "$tc" "$((calls_set + calls_get))" "SET and GET together" "$summary" >>"$OUT/runs.tsv"
    line=$(printf 'SET %8.0f req/s p99 %6.0f us, GET %8.0f req/s p99 %6.0f us; calls SET %s GET %s' \
      "${RPS[SET]}" "${P99[SET]}" "${RPS[GET]}" "${P99[GET]}" "$calls_set" "$calls_get")
    [ -n "$tpid" ] && line+="; records SET $rec_set GET $rec_get (incomplete $inc_set/$inc_get, other $other), lost $lost ($([ $valid = yes ] && echo valid || echo INVALID)); tracer CPU ${tc}s"
    printf '  %-10s pair %2d %s: %s\n' "$wl" "$p" "$side" "$line"
  else
    local tps processed failed lat_avg p99 logged ex=- prep=- inc=- other
    read -r tps processed failed lat_avg p99 logged < <($DB_STATS pgbench "$base.out" "$base.log")
    if [ -n "$tpid" ]; then
      read -r ex prep inc other < <($DB_STATS pg-count "$nd" "$(pg_prefix "$wl")") || die "could not count the records of $nd"
      valid=yes
      [ "$ex" -ge "$processed" ] && [ "$ex" -le $((processed + failed + PG_CLIENTS)) ] && [ "$lost" = 0 ] || valid=no
      grep -q 'events lost (ring buffer full)' "$err" && valid=no
    fi
    row "$wl" TPS "$p" "$side" "$order" tps "$tps" "$lat_avg" "$p99" "$processed" "$ex" "$valid" "$lost" "$inc" \
      "$scpu" "$ccpu" "$tc" "$processed" "per transaction" "$summary" >>"$OUT/runs.tsv"
    line=$(printf '%7.0f tps, latency avg %6.0f us p99 %6.0f us; processed %s (failed %s, logged %s)' \
      "$tps" "$lat_avg" "$p99" "$processed" "$failed" "$logged")
    [ -n "$tpid" ] && line+="; records '$(pg_prefix "$wl")...' executed $ex (prepares $prep, incomplete $inc, other $other), lost $lost ($([ $valid = yes ] && echo valid || echo INVALID)); tracer CPU ${tc}s"
    printf '  %-10s pair %2d %s: %s\n' "$wl" "$p" "$side" "$line"
  fi
  if [ -n "$tpid" ] && [ "$KEEP_TRACES" != 1 ]; then rm -f "$nd"; TRACES_OF_THIS_RUN=''; fi # large; the counts are in runs.tsv
  return 0
}

# ---- runs ------------------------------------------------------------------------------------
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
{
  machine_note
  echo "cores: not pinned; the server (redis-server: one main thread; postgres: one backend process per client), the load generator (redis-benchmark: one thread; pgbench: one thread, $PG_CLIENTS connections) and the tracer share all $(nproc) vCPUs: every CPU-second the tracer spends is taken from the server or the load generator"
  tracer_note
} | tee "$OUT/meta.txt"
for wl in $WORKLOADS; do
  if is_redis "$wl" && [ -z "$REDIS_PID" ]; then start_redis; fi
  if ! is_redis "$wl" && [ -z "$PG_PID" ]; then stop_redis; start_pg; fi
  load_cmd "$wl" "$OUT/$wl-PAIR-SIDE"
  echo "$wl: ${CMD[*]}"
  case $wl in
    redis-pipe) load_cmd "$wl" "$OUT/$wl-warmup" $((REDIS_N_PIPE / 5 + 1)) ;;
    redis) load_cmd "$wl" "$OUT/$wl-warmup" $((REDIS_N / 5 + 1)) ;;
    *) load_cmd "$wl" "$OUT/$wl-warmup" 2 ;;
  esac
  echo "  warm-up (untraced, discarded): ${CMD[*]}"
  fg_run $STATS run "$OUT/$wl-warmup.out" "${CMD[@]}" || die "$wl: warm-up failed (see $OUT/$wl-warmup.out)"
  for ((p = 1; p <= PAIRS; p++)); do
    if ((p % 2)); then run "$wl" "$p" A AB; run "$wl" "$p" B AB
    else run "$wl" "$p" B BA; run "$wl" "$p" A BA; fi
  done
done
stop_redis
stop_pg

# ---- summary ---------------------------------------------------------------------------------
{
  echo "load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine adds noise)"
  echo "B adds: $(basename "$TRACER") --pid <server pid> -q -o FILE${TRACER_ARGS:+ $TRACER_ARGS}; $PAIRS pairs per workload, order AB, BA, AB, ..."
  echo "throughput: redis-benchmark requests/s per test; pgbench tps (without initial connection time)"
  echo "latency: redis-benchmark avg and p99 per test (--csv); pgbench 'latency average' and p99 of its per-transaction -l log"
} | tee -a "$OUT/meta.txt"
status=0
$DB_STATS summary "$OUT/runs.tsv" | tee "$OUT/summary.txt" || status=$? # 1: a workload without a valid B run
echo "raw results: $OUT"
exit "$status"
