#!/usr/bin/env bash
# Installs every Debian 12 package odigos-trace needs to build, test and benchmark.
# Idempotent: only missing packages are installed; apt-get update runs only when needed.
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config clang llvm libbpf-dev bpftool libelf-dev
            zlib1g-dev libcapstone-dev libcli11-dev libfmt-dev nlohmann-json3-dev catch2
            libcurl4-openssl-dev)
TEST_PKGS=(python3 curl nginx-light tshark wrk iproute2 procps psmisc bpftrace libclang-rt-14-dev
           libbenchmark-dev postgresql postgresql-client redis-server redis-tools mariadb-server
           mariadb-client libdbd-mariadb-perl openssl gnutls-bin golang-go)
# tests/integration/test_traces.py: the Python and Go services' Redis/PostgreSQL clients.
TEST_PKGS+=(python3-redis python3-psycopg2 golang-github-lib-pq-dev)

want=("${BUILD_PKGS[@]}")
case "${1:-all}" in
  build) ;;
  all|test) want+=("${TEST_PKGS[@]}") ;;
  *) echo "usage: $0 [build|test|all]" >&2; exit 2 ;;
esac
# The OTLP tests' receiver (tests/otlp/receiver.js) runs on Node.js; a node that
# bundles npm (NodeSource's, which conflicts with Debian's npm) will do.
if [ "${1:-all}" != build ] && ! { command -v node && command -v npm; } >/dev/null 2>&1; then
  want+=(nodejs npm)
fi
# ...and decodes with the official OTLP codecs from the npm registry, cached
# outside the tree. A failure here only warns: the OTLP tests then fail saying why.
otlp_codecs() {
  [ "${1:-all}" = build ] && return 0
  "$(dirname "$0")/install-otlp-validator.sh" ||
    echo "install-deps: warning: OTLP codecs not installed; the OTLP tests will fail" >&2
}

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  otlp_codecs "${1:-all}"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "hint: run as root (sudo $0) to install them" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Keep package post-install scripts from starting system services (nginx,
# postgresql, redis, mariadb): the tests start their own instances on their
# own ports and directories.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
fi
trap '[ $created_policy -eq 1 ] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
otlp_codecs "${1:-all}"
