#!/usr/bin/env bash
# What each kind of uprobe link costs one probed call on this machine (no tracer involved):
#
#   sudo bench/uprobe_links/run.sh            (ROUNDS=7 N=300000; needs clang, bpftool, cc, libbpf-dev)
#
# Modes, rotated every round, each a fresh process with the probe on its own function only:
#   none         no probe
#   perf-entry   uprobe through a perf event (libbpf's bpf_program__attach_uprobe_opts)
#   multi-entry  the same program through a uprobe_multi link (no perf event layer)
#   perf-pair    perf uprobe + perf uretprobe (two consumers): how odigos-trace probes OpenSSL/GnuTLS
#   session      one uprobe_multi session link: one consumer, one program at entry and return
# Prints the median ns of thread CPU per call for each mode and the added cost over `none`.
set -euo pipefail
cd "$(dirname "$0")"
[ "$(id -u)" -eq 0 ] || { echo "run.sh: needs root (loads BPF programs)" >&2; exit 1; }
ROUNDS=${ROUNDS:-7}
N=${N:-300000}
B=$(mktemp -d /tmp/uprobe_links.XXXXXX)
trap 'rm -rf "$B"' EXIT
clang -g -O2 -mcpu=v3 -Wall -target bpf -D__TARGET_ARCH_x86 -c links.bpf.c -o "$B/links.bpf.o"
bpftool gen skeleton "$B/links.bpf.o" name links_bpf > "$B/links.skel.h"
cc -O2 -Wall -o "$B/target" target.c
cc -O2 -Wall -I"$B" -o "$B/loader" loader.c -lbpf
OFF=$(nm "$B/target" | awk '$3 == "probed" { print $1 }')
objdump -d --start-address=0x$OFF --stop-address=$((0x$OFF + 1)) "$B/target" | grep -q 'push' ||
  { echo "run.sh: probed() does not start with push" >&2; exit 1; }
MODES=(none perf-entry multi-entry perf-pair session)
cd "$B"
for r in $(seq "$ROUNDS"); do
  for k in "${!MODES[@]}"; do
    m=${MODES[$(((k + r) % ${#MODES[@]}))]}
    ./loader "$m" "$N" "$OFF" >> results.txt
  done
done
echo "uprobe link cost, $ROUNDS rounds x $N calls, $(uname -r), $(date -u '+%F %H:%M UTC')"
python3 - results.txt "${MODES[@]}" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {m: statistics.median(int(v) for k, v in rows if k == m) for m in sys.argv[2:]}
for m in sys.argv[2:]:
    vals = sorted(int(v) for k, v in rows if k == m)
    print(f"{m:12s} {med[m]:6.0f} ns/call  (+{med[m] - med['none']:5.0f})  min {vals[0]} max {vals[-1]}")
PY
