#!/usr/bin/env bash
# First command on a fresh Debian 12 machine: installs what is missing, builds,
# and runs the embedded demo (a small HTTP server and client, traced live).
# Usage: sudo ./scripts/demo.sh [extra odigos-trace demo flags, e.g. --duration 10s]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh build
./scripts/build.sh
exec ./build/odigos-trace demo "$@"
