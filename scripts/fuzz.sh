#!/usr/bin/env bash
# Longer fuzzing runs than CTest's (30 s each). Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# Targets: http1 (the HTTP/1 session on split/gapped streams), events (ring-buffer records
# into the connection tracker). The corpus grows in build/corpus_<target>; a crash leaves
# crash-* files in build/: add the input to tests/fuzz/corpus/<target>/ and a unit test.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-600}
shift || true
TARGETS=${*:-http1 events}
./scripts/build.sh >/dev/null
cd build
for t in $TARGETS; do
  mkdir -p corpus_$t
  cp -n ../tests/fuzz/corpus/$t/* corpus_$t/ 2>/dev/null || true
  echo "fuzz_$t: ${SECONDS_EACH}s"
  ./fuzz_$t -max_total_time="$SECONDS_EACH" -print_final_stats=1 corpus_$t
done
