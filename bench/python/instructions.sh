#!/usr/bin/env bash
# Instructions per request under callgrind on Python routes: an async and a
# sync decorator-app endpoint, a raw ASGI app, and the raw ASGI app behind a
# sync Python filter. Instruction counts repeat run to run (unlike RPS on a
# shared 2-core VM), so this is the figure to compare a change of the
# Python runtime's request path with (e.g. covet.trace with tracing off).
# Usage: bash bench/python/instructions.sh [COVET_BINARY] (default: the
# release build, made here). Compare two builds by passing each binary.
# Counters are zeroed after a warm-up; then one keep-alive connection sends
# $REQUESTS requests one after another (a fixed count, one request in flight:
# each costs the same wake-ups however busy the machine is, so the figure
# repeats on a shared VM where wrk's batching under load would vary it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
source scripts/env.sh
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
COVET=${1:-}
if [ -z "$COVET" ]; then
  cargo build --release --locked -p covet
  COVET="$CARGO_TARGET_DIR/release/covet"
fi
export COVET_ADMIN_LISTEN=off
REQUESTS="${REQUESTS:-2000}"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cat > "$work/m.yaml" <<YAML
listen: [{ addr: 127.0.0.1:0 }]
log: { access: false }
python: { threads: 1 }
plugins:
  raw: { kind: python, asgi: $ROOT/bench/python/hello_asgi.py:app }
  deco: { kind: python, app: $ROOT/bench/python/hello_covet.py:app }
  noop: { kind: python, filter: $ROOT/bench/python/noop_filter.py }
routes:
  - { path: /raw, handler: raw }
  - { path: /rawf, filters: [noop], handler: raw }
  - { path: /deco, handler: deco }
  - { path: /deco-sync, handler: deco }
YAML

send() { # $1 = url, $2 = how many: sequential GETs on one connection
  python3 - "$1" "$2" <<'PY'
import http.client, sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
conn = http.client.HTTPConnection(url.hostname, url.port)
for _ in range(int(sys.argv[2])):
    conn.request("GET", url.path)
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200, resp.status
PY
}

measure() { # $1 = path
  local path=$1 out="$work/cg.out" log="$work/stdout"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$COVET" host --plugins "$work/m.yaml" >"$log" 2>/dev/null &
  local pid=$!
  # A whole "listening on http://IP:PORT" line (not one still being written).
  local addr=""
  for _ in $(seq 1 600); do
    addr=$(sed -n 's/^listening on http:\/\/\([0-9.]*:[0-9]*\)$/\1/p' "$log" 2>/dev/null | head -1)
    [ -n "$addr" ] && sleep 0.5 && addr=$(sed -n 's/^listening on http:\/\/\([0-9.]*:[0-9]*\)$/\1/p' "$log" | head -1) && break
    sleep 0.2
  done
  local url="http://$addr$path"
  # Listening comes before the plugins are ready (503 until then).
  for _ in $(seq 1 600); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ] && break; sleep 0.2; done
  send "$url" 200
  callgrind_control -z "$pid" >/dev/null 2>&1
  local n=$REQUESTS
  send "$url" "$n"
  callgrind_control -d "$pid" >/dev/null 2>&1; sleep 1
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  local total; total=$(cat "$out".* "$out" 2>/dev/null | grep -oP '^summary: \K\d+' | sort -n | tail -1)
  printf '%-12s %8d requests %10.0f instructions/request\n' "$path" "$n" "$(echo "$total / $n" | bc -l)"
  rm -f "$out"*
}

for path in /deco /deco-sync /raw /rawf; do
  measure "$path"
done
