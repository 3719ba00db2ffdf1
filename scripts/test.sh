#!/usr/bin/env bash
# Second command: installs everything the tests need, builds, and runs the whole
# suite (unit tests, then integration tests that load the real BPF programs and
# trace real servers; these need root). .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh all
./scripts/build.sh
cd build
ctest --output-on-failure --timeout 600 "$@"
