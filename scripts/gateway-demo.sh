#!/usr/bin/env bash
# The gateway example (examples/gateway.yaml) as is: builds covet and the
# proxy, auth-jwt and rate-limit plugins (release) into examples/artifacts/,
# makes a demo CA and a certificate for localhost/127.0.0.1 and an Ed25519
# signing key with its JWK set in examples/artifacts/gateway/ (openssl), starts
# the identity provider (:9100, serves the JWKS) and the users (:9101) and
# orders (:9102) services (examples/gateway/upstream.py, Python standard
# library), then serves the gateway on https://127.0.0.1:8443 in the
# foreground. Try the curl lines printed at start-up; Ctrl-C stops everything.
# GATEWAY_NO_BUILD=1 skips the cargo build (uses the release artifacts there).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

plugins=(covet-proxy covet-auth-jwt covet-rate-limit)
if [ -z "${GATEWAY_NO_BUILD:-}" ]; then
  cargo build --release --locked -p covet $(printf -- "-p %s " "${plugins[@]}")
fi
mkdir -p examples/artifacts/gateway
for p in "${plugins[@]}"; do
  cp "$CARGO_TARGET_DIR/release/lib${p//-/_}.so" examples/artifacts/
done

keys=examples/artifacts/gateway
if [ ! -s "$keys/cert.pem" ]; then # a demo CA (ca.pem, for curl --cacert) and the listener's certificate
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -keyout "$keys/ca.key" -out "$keys/ca.pem" -subj "/CN=covet gateway demo CA" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$keys/key.pem" -subj /CN=localhost 2>/dev/null |
    openssl x509 -req -CA "$keys/ca.pem" -CAkey "$keys/ca.key" -set_serial "0x$(openssl rand -hex 8)" -days 365 \
      -out "$keys/cert.pem" 2>/dev/null \
      -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n')
fi
[ -s "$keys/signing.pem" ] || python3 examples/gateway/token.py keygen "$keys"

pids=()
cleanup() {
  trap - EXIT INT TERM
  [ "${#pids[@]}" -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_service() { # name port [--jwks FILE]
  python3 examples/gateway/upstream.py --name "$1" --port "$2" "${@:3}" &
  pids+=($!)
  for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$2/healthz" >/dev/null 2>&1 && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "$1 did not start (port $2 in use?)" >&2; exit 1; }
    sleep 0.1
  done
  echo "$1 did not answer on 127.0.0.1:$2" >&2
  exit 1
}
start_service idp 9100 --jwks "$keys/jwks.json"
start_service users 9101
start_service orders 9102

cat <<TXT
covet gateway demo — in another terminal (from $(pwd)):
  CA="--cacert examples/artifacts/gateway/ca.pem"                   # the demo CA that signed the listener's certificate
  curl -i \$CA https://localhost:8443/api/users/1                   # 401: no token
  TOKEN=\$(python3 examples/gateway/token.py mint examples/artifacts/gateway/signing.pem --sub ada)
  curl -i \$CA -H "authorization: Bearer \$TOKEN" https://localhost:8443/api/users/1     # → users :9101 /users/1
  curl -i \$CA -H "authorization: Bearer \$TOKEN" -d '{"item": 7}' https://localhost:8443/api/orders
  curl -s \$CA -H "authorization: Bearer \$TOKEN" -w '%{http_code} ' \$(printf -- '-o /dev/null https://localhost:8443/api/orders/%s ' \$(seq 25)); echo   # 429s past the burst of 20
  curl -s localhost:9901/v1/upstreams                               # endpoint health, counters (admin API)
  curl -s localhost:9901/metrics | grep covet_upstream
  kill ${pids[2]}    # stop the orders service: 502 UPSTREAM_UNAVAILABLE, and the health check marks it down
TXT
"$CARGO_TARGET_DIR/release/covet" host --plugins examples/gateway.yaml &
pids+=($!)
wait "${pids[-1]}"
