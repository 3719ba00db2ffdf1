#!/usr/bin/env bash
# What each design charges syscalls that are not socket I/O (docs/HOOK_DESIGN.md).
#
#   sudo bench/hookcost/nonsocket.sh [ROUNDS]      (default 7; builds with run.sh 0)
#
# sysloop (pinned to CPU 1) runs getppid(), read() of /dev/zero or write() to
# /dev/null in a loop, while nothing / design a / design b is attached, either
# filtering on sysloop itself (traced) or on another process (untraced).
# Prints ns per call: median over rounds (min..max) and the paired delta vs none.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$HERE/build
ROUNDS=${1:-7}
N=${N:-300000}
RUNS=${RUNS:-3}
"$HERE/run.sh" 0 >/dev/null
gcc -O2 -Wall -Wextra -Werror -o "$BUILD/sysloop" "$HERE/sysloop.c"
TMP=$(mktemp -d)
SL=; HL=; SLEEPER=
cleanup() {
  [ -n "$HL" ] && kill -INT "$HL" 2>/dev/null || true
  [ -n "$SL" ] && kill "$SL" 2>/dev/null || true
  [ -n "$SLEEPER" ] && kill "$SLEEPER" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
sleep 100000 &
SLEEPER=$!
export HC_WAKE_MODE=2
CFGS=(none a a-direct b a-untraced b-untraced)
printf 'mode\tcfg\tround\tns_per_call\n' >"$TMP/res.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
  for mode in getppid read write; do
    n=${#CFGS[@]}
    for ((i = 0; i < n; i++)); do
      cfg=${CFGS[$(((i + r - 1) % n))]}
      : >"$TMP/sl.err"; : >"$TMP/hl.err"
      taskset -c 1 "$BUILD/sysloop" -g -m "$mode" -n "$N" -r "$RUNS" >"$TMP/sl.out" 2>"$TMP/sl.err" &
      SL=$!
      for _ in $(seq 250); do grep -q waiting "$TMP/sl.err" && break; sleep 0.02; done
      target=$SL
      case $cfg in *-untraced) target=$SLEEPER ;; esac
      obj=
      case ${cfg%-untraced} in
        a) obj=design_syscalls ;;
        a-direct) obj=design_syscalls_direct ;;
        b) obj=design_sockbtf ;;
      esac
      if [ -n "$obj" ]; then
        taskset -c 0 "$BUILD/hookload" "$BUILD/$obj.bpf.o" "$target" >"$TMP/hl.out" 2>"$TMP/hl.err" &
        HL=$!
        for _ in $(seq 200); do grep -q attached "$TMP/hl.err" && break; sleep 0.05; done
      fi
      kill -USR1 "$SL"; wait "$SL"; SL=
      if [ -n "$HL" ]; then kill -INT "$HL"; wait "$HL" || true; HL=; fi
      med=$(sed -n 's/.* median_ns=\([0-9.]*\).*/\1/p' "$TMP/sl.out")
      printf '%s\t%s\t%s\t%s\n' "$mode" "$cfg" "$r" "$med" >>"$TMP/res.tsv"
      printf '  %-8s %-11s round %s: %7.1f ns/call\n' "$mode" "$cfg" "$r" "$med" >&2
    done
  done
done
mkdir -p "$HERE/out"
cp "$TMP/res.tsv" "$HERE/out/nonsocket-$(date +%Y%m%d-%H%M%S).tsv"
python3 - "$TMP/res.tsv" <<'EOF'
import statistics as st, sys
from collections import defaultdict
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()[1:]]
by = defaultdict(dict)
for m, c, r, v in rows:
    by[(m, c)][r] = float(v)
print("| syscall | config | ns/call, median (min..max) | delta vs none, median (min..max) |")
print("|---|---|---|---|")
for m in dict.fromkeys(r[0] for r in rows):
    base = by[(m, "none")]
    for c in dict.fromkeys(r[1] for r in rows):
        v = by[(m, c)]
        vals = list(v.values())
        cell = f"{st.median(vals):.1f} ({min(vals):.1f}..{max(vals):.1f})"
        if c == "none":
            print(f"| {m} | {c} | {cell} | - |")
        else:
            d = [v[k] - base[k] for k in v if k in base]
            print(f"| {m} | {c} | {cell} | {st.median(d):+.1f} ({min(d):+.1f}..{max(d):+.1f}) |")
EOF
