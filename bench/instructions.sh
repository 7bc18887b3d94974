#!/usr/bin/env bash
# Instructions per request under callgrind: bare hyper vs covet + static-response
# vs covet's 3-filter chain. Unlike RPS on a shared 2-core VM, instruction
# counts repeat run to run, so this is the figure to compare changes with.
# Counters are zeroed after a warm-up; then wrk sends load for $SECONDS_LOAD s.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release --locked -p covet -p hello-hyper -p covet-static-response -p covet-headers \
  -p covet-rate-limit -p covet-auth-jwt -p covet-noop-filter
R="$CARGO_TARGET_DIR/release"
# The admin API off: the default port 9901 may be taken, and it is not measured.
export COVET_ADMIN_LISTEN=off
SECONDS_LOAD="${SECONDS_LOAD:-6}"
SECRET="bench-secret-bench-secret-bench-secret!"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
TOKEN=$(python3 examples/make_token.py --secret "$SECRET" --ttl 86400)

manifest() { # $1 = filters list
  cat <<YAML
listen: [{ addr: 127.0.0.1:0 }]
log: { access: false }
plugins:
  hello: { kind: native, path: $R/libcovet_static_response.so, config: { body: "hello" } }
  tag: { kind: native, path: $R/libcovet_headers.so, config: { response: { set: { x-user: "{jwt.sub}" } } } }
  noop: { kind: native, path: $R/libcovet_noop_filter.so }
  strip: { kind: native, path: $R/libcovet_headers.so, config: { request: { remove: [x-absent] } } }
  limiter: { kind: native, path: $R/libcovet_rate_limit.so, config: { rate: 10000000/s, burst: 10000000, key: ip } }
  auth:
    kind: native
    path: $R/libcovet_auth_jwt.so
    config: { keys: [{ kid: demo-hs, algorithms: [HS256], secret_env: BENCH_JWT_SECRET }], audience: demo, issuer: covet-demo }
routes:
  - { path: /, methods: [GET], filters: $1, handler: hello }
YAML
}

measure() { # $1 = label, rest = command
  local label=$1; shift
  local out="$work/cg.out" log="$work/stdout"
  # The previous run's log still says `listening` until the new process
  # truncates it: remove it first, so the wait below sees this run's line.
  rm -f "$log"
  BENCH_JWT_SECRET="$SECRET" valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$log" 2>/dev/null &
  local pid=$!
  local addr=""
  for _ in $(seq 1 150); do
    addr=$(sed -n 's/^listening on http:\/\///p' "$log" 2>/dev/null | head -1)
    [ -n "$addr" ] && break
    sleep 0.2
  done
  [ -n "$addr" ] || { echo "$label: covet did not start (see $log)" >&2; exit 1; }
  local url="http://$addr/"
  wrk -t1 -c10 -d2s -H "authorization: Bearer $TOKEN" "$url" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  local n; n=$(wrk -t1 -c10 -d"${SECONDS_LOAD}s" -H "authorization: Bearer $TOKEN" "$url" | grep -oP '\d+(?= requests in)')
  callgrind_control -d "$pid" >/dev/null 2>&1; sleep 1
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  local total; total=$(cat "$out".* "$out" 2>/dev/null | grep -oP '^summary: \K\d+' | sort -n | tail -1)
  printf '%-32s %8d requests %10.0f instructions/request\n' "$label" "$n" "$(echo "$total / $n" | bc -l)"
  rm -f "$out"*
}

manifest "[]" > "$work/static.yaml"
manifest "[tag, limiter, auth]" > "$work/chain.yaml"
manifest "[noop]" > "$work/noop.yaml"
manifest "[strip]" > "$work/strip.yaml"
measure "bare hyper" "$R/hello-hyper"
measure "covet static" "$R/covet" host --plugins "$work/static.yaml"
# The same route on the io_uring backend (docs/io.md "The adapter").
COVET_IO=uring measure "covet static, io_uring" "$R/covet" host --plugins "$work/static.yaml"
measure "covet 3-filter chain" "$R/covet" host --plugins "$work/chain.yaml"
# A filter that does nothing (bench/noop-filter: on_request continues): what
# the host spends per filter call is this row minus "covet static".
measure "covet static + no-op filter" "$R/covet" host --plugins "$work/noop.yaml"
# A filter with a little work (headers removing an absent header, request
# rules only, so it is not called after the handler).
measure "covet static + headers filter" "$R/covet" host --plugins "$work/strip.yaml"
