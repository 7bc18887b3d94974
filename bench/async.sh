#!/usr/bin/env bash
# Instructions per request under callgrind: a route with 4 synchronous
# filters (examples/require-header on `host`: one header lookup, one metadata
# value) vs the same route with 4 async filters doing the same work behind a ready `.await`
# (covet-async-plugin, mode "ready"): the difference / 4 is what one async
# native phase costs over a sync one (the boxed plugin future, the host's
# Outcome::Pending box, the FFI poll with the waker crossing). Counters are
# zeroed after a warm-up, as in bench/instructions.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release --locked -p covet -p covet-static-response -p require-header -p covet-async-plugin
R="$CARGO_TARGET_DIR/release"
export COVET_ADMIN_LISTEN=off
SECONDS_LOAD="${SECONDS_LOAD:-6}"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

manifest() { # $1 = filter plugin path, $2 = its config
  cat <<YAML
listen: [{ addr: 127.0.0.1:0 }]
log: { access: false }
plugins:
  hello: { kind: native, path: $R/libcovet_static_response.so, config: { body: "hello" } }
  f1: { kind: native, path: $1, config: $2 }
  f2: { kind: native, path: $1, config: $2 }
  f3: { kind: native, path: $1, config: $2 }
  f4: { kind: native, path: $1, config: $2 }
routes:
  - { path: /, methods: [GET], filters: [f1, f2, f3, f4], handler: hello }
YAML
}

measure() { # $1 = label, $2 = manifest; prints instructions/request
  local out="$work/cg.out" log="$work/stdout"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$R/covet" host --plugins "$2" >"$log" 2>/dev/null &
  local pid=$!
  for _ in $(seq 1 100); do grep -q listening "$log" 2>/dev/null && break; sleep 0.2; done
  local url="http://$(sed -n 's/^listening on http:\/\///p' "$log" | head -1)/"
  wrk -t1 -c10 -d2s "$url" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  local n; n=$(wrk -t1 -c10 -d"${SECONDS_LOAD}s" "$url" | grep -oP '\d+(?= requests in)')
  callgrind_control -d "$pid" >/dev/null 2>&1; sleep 1
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  local total; total=$(cat "$out".* "$out" 2>/dev/null | grep -oP '^summary: \K\d+' | sort -n | tail -1)
  rm -f "$out"*
  local per; per=$(echo "$total / $n" | bc -l)
  printf '%-28s %8d requests %10.0f instructions/request\n' "$1" "$n" "$per" >&2
  echo "$per"
}

manifest "$R/librequire_header.so" '{ header: host }' > "$work/sync.yaml"
manifest "$R/libcovet_async_plugin.so" '{ mode: ready, label: host }' > "$work/async.yaml"
# Idle work (timer ticks, parked workers) is counted too and spread over the
# requests of the window, so a busy machine that lets fewer requests through
# inflates a run: alternate the two configurations RUNS times and take the
# median of each. Run it on a quiet machine.
RUNS="${RUNS:-3}"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
sync_runs=(); async_runs=()
for _ in $(seq "$RUNS"); do
  sync_runs+=("$(measure "4 sync filters" "$work/sync.yaml")")
  async_runs+=("$(measure "4 async filters" "$work/async.yaml")")
done
sync=$(printf '%s\n' "${sync_runs[@]}" | median)
async=$(printf '%s\n' "${async_runs[@]}" | median)
per_phase=$(echo "($async - $sync) / 4" | bc -l)
printf 'median of %d: sync %.0f, async %.0f instructions/request\n' "$RUNS" "$sync" "$async"
# At ~3 instructions per ns (one core of the bench machine), 0.3 µs ≈ 900 instructions.
printf 'async - sync, per filter phase: %.0f instructions (target: ≤ 0.3 µs ≈ 900 instructions)\n' "$per_phase"
