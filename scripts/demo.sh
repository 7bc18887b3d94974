#!/usr/bin/env bash
# The demo, from a fresh machine: builds covet and its plugins (release),
# stages the plugin libraries in examples/artifacts/, and serves
# examples/plugins.yaml. Try the curl lines printed at start-up.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

plugins=(covet-static-response covet-headers covet-rate-limit covet-auth-jwt)
cargo build --release --locked -p covet $(printf -- "-p %s " "${plugins[@]}")
mkdir -p examples/artifacts
for p in "${plugins[@]}"; do
  cp "$CARGO_TARGET_DIR/release/lib${p//-/_}.so" examples/artifacts/
done

export DEMO_JWT_SECRET="${DEMO_JWT_SECRET:-change-me-demo-secret-0123456789}"
cat <<'TXT'
covet demo — in another terminal:
  curl -i localhost:8080/                              # static-response
  curl -i localhost:8080/api/hello                     # 401: auth-jwt wants a token
  TOKEN=$(python3 examples/make_token.py)              # an HS256 token for the demo secret
  curl -i -H "authorization: Bearer $TOKEN" localhost:8080/api/hello
  curl -s localhost:8080/_covet/ready
TXT
exec "$CARGO_TARGET_DIR/release/covet" host --plugins examples/plugins.yaml
