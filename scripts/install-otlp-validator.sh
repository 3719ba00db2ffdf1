#!/usr/bin/env bash
# Installs the official OTLP codecs the OTLP tests decode with (tests/otlp/receiver.js):
# @opentelemetry/otlp-transformer, which ships protobufjs code generated from
# opentelemetry-proto, from the npm registry into a cache outside the source tree
# ($ODIGOS_OTLP_NODE_DIR, default /var/cache/odigos-trace/otlp-node). Idempotent;
# fails (exit 1) with a clear message when npm or the registry is not reachable.
set -euo pipefail
DIR="${ODIGOS_OTLP_NODE_DIR:-/var/cache/odigos-trace/otlp-node}"
PKG=@opentelemetry/otlp-transformer
VERSION=0.57.2

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "install-otlp-validator: node and npm are needed: run scripts/install-deps.sh test" >&2
  exit 1
fi
have=$(node -p "try { require('$DIR/node_modules/$PKG/package.json').version } catch (e) { '' }" 2>/dev/null || true)
if [ "$have" = "$VERSION" ]; then
  echo "install-otlp-validator: $PKG@$VERSION present in $DIR"
  exit 0
fi
mkdir -p "$DIR"
[ -f "$DIR/package.json" ] || echo '{"name":"odigos-otlp-validator","private":true}' > "$DIR/package.json"
echo "install-otlp-validator: installing $PKG@$VERSION into $DIR"
if ! npm install --prefix "$DIR" --no-audit --no-fund --ignore-scripts --fetch-retries=2 \
     --fetch-timeout=60000 "$PKG@$VERSION" >"$DIR/npm-install.log" 2>&1; then
  tail -20 "$DIR/npm-install.log" >&2
  echo "install-otlp-validator: error: npm could not install $PKG@$VERSION (is the npm registry" \
       "reachable?); the OTLP tests need it" >&2
  exit 1
fi
echo "install-otlp-validator: done"
