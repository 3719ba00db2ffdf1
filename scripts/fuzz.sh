#!/usr/bin/env bash
# Longer fuzzing runs than CTest's (20 s each). Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# Targets: every tests/fuzz/fuzz_NAME.cpp: http1, redis, postgres, mysql (sessions on
# split/gapped/uncaptured streams), sql (the sanitiser), events (ring-buffer records into the
# connection tracker). The corpus grows in build/corpus_<target>; a crash leaves crash-* files
# in build/: add the input to tests/fuzz/corpus/<target>/ (every CTest run replays the seed
# corpus first, so it stays a regression test) and, where it shows a rule, a unit test.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-600}
shift || true
TARGETS=${*:-$(cd tests/fuzz && ls fuzz_*.cpp | sed 's/^fuzz_//; s/\.cpp$//' | tr '\n' ' ')}
./scripts/build.sh >/dev/null
cd build
for t in $TARGETS; do
  mkdir -p corpus_$t
  cp -n ../tests/fuzz/corpus/$t/* corpus_$t/ 2>/dev/null || true
  echo "fuzz_$t: ${SECONDS_EACH}s"
  ./fuzz_$t -max_total_time="$SECONDS_EACH" -print_final_stats=1 corpus_$t
done
