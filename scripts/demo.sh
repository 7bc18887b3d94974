#!/usr/bin/env bash
# The demo, from a fresh machine: builds covet and its plugins (release) and
# the ab-tagger WASM plugin, stages them in examples/artifacts/, and serves
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
bash scripts/python-env.sh                  # ./.venv with FastAPI for the ASGI example
bash scripts/wasm-plugins.sh -p ab-tagger   # a WASM filter (installs the wasm32-wasip2 target if missing)
cp "$CARGO_TARGET_DIR/wasm32-wasip2/release/ab_tagger.wasm" examples/artifacts/

export DEMO_JWT_SECRET="${DEMO_JWT_SECRET:-change-me-demo-secret-0123456789}"
cat <<'TXT'
covet demo — in another terminal:
  curl -i localhost:8080/                              # static-response, behind the WASM A/B tagger (x-ab-variant, set-cookie)
  curl -i localhost:8080/api/hello                     # 401: auth-jwt wants a token
  TOKEN=$(python3 examples/make_token.py)              # an HS256 token for the demo secret
  curl -i -H "authorization: Bearer $TOKEN" localhost:8080/api/hello
  curl -i -H 'x-tenant: acme' localhost:8080/users/1   # Python app behind a Python filter (x-audit, x-tenant)
  curl -i localhost:8080/users/1                       # 400 from the Python filter: no x-tenant
  curl -i -H 'x-tenant: acme' -d '{"name":"grace","email":"g@example.com"}' localhost:8080/users   # 201
  curl -i localhost:8080/items/1                       # the FastAPI example over ASGI, behind native filters
  curl -i localhost:8080/items/abc                     # FastAPI's own 422
  curl -s localhost:8080/_covet/ready
TXT
exec "$CARGO_TARGET_DIR/release/covet" host --plugins examples/plugins.yaml
