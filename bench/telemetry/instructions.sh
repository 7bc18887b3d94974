#!/usr/bin/env bash
# What tracing costs per request on the static route, in instructions under
# callgrind (bench/README.md, "Telemetry"; docs/telemetry.md, "Cost"): the
# method of bench/instructions.sh (release build, covet + static-response,
# access log off, counters zeroed after a 2 s warm-up, then wrk -c10 for
# SECONDS_LOAD s) for four manifests that differ only in `telemetry:`:
#
#   off         no telemetry block (no tracer installed)
#   ratio 0     tracing on, nothing sampled: ids and propagation only
#   ratio 0.01  1% of new traces recorded and exported over OTLP/gRPC
#   ratio 1     every request recorded and exported
#
# The collector (bench/telemetry/otlp_sink.rs: covet-telemetry's test
# collector as a process of its own) runs outside valgrind, so its work is
# not counted, while covet's whole export path (queue, batching, protobuf,
# the gRPC call on the background task) is. Prints instructions per request,
# each ratio to `off`, and how many spans the collector received.
# PROTOCOL=http exports over OTLP/HTTP instead; BUILD=0 skips the builds;
# KEEP=dir keeps the callgrind
# output (callgrind_annotate --inclusive=yes DIR/cg.<label>.out).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
if [ "${BUILD:-1}" != 0 ]; then # BUILD=0: use the binaries already built
  cargo build --release --locked -p covet -p covet-static-response
  cargo build --locked -p covet-e2e --example otlp-sink
fi
R="$CARGO_TARGET_DIR/release"
SECONDS_LOAD="${SECONDS_LOAD:-6}"
PROTOCOL="${PROTOCOL:-grpc}"
OUT=${KEEP:-$(mktemp -d)}
mkdir -p "$OUT"
export COVET_ADMIN_LISTEN=off COVET_LOG=warn

"$CARGO_TARGET_DIR/debug/examples/otlp-sink" > "$OUT/sink.txt" &
sink=$!
trap 'kill $sink ${pid:-} 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$OUT"' EXIT
for _ in $(seq 1 50); do grep -q "^$PROTOCOL " "$OUT/sink.txt" 2>/dev/null && break; sleep 0.1; done
endpoint=$(sed -n "s/^$PROTOCOL //p" "$OUT/sink.txt")

manifest() { # $1 = telemetry block (YAML) or empty
  cat <<YAML
listen: [{ addr: 127.0.0.1:0 }]
log: { access: false }
$1
plugins:
  hello: { kind: native, path: $R/libcovet_static_response.so, config: { body: "hello" } }
routes:
  - { path: /, methods: [GET], handler: hello }
YAML
}

traced() { # $1 = sample ratio
  printf 'telemetry:\n  otlp: { endpoint: "%s", protocol: %s }\n  tracing: { sample_ratio: %s }\n' "$endpoint" "$PROTOCOL" "$1"
}

declare -A per_request
measure() { # $1 = label, $2 = manifest file
  local label=$1 cg="$OUT/cg.$1.out" log="$OUT/stdout.$1"
  valgrind --tool=callgrind --callgrind-out-file="$cg" "$R/covet" host --plugins "$2" > "$log" 2>/dev/null &
  pid=$!
  for _ in $(seq 1 150); do grep -q listening "$log" 2>/dev/null && break; sleep 0.2; done
  local url="http://$(sed -n 's/^listening on http:\/\///p' "$log" | head -1)/"
  wrk -t1 -c10 -d2s "$url" > /dev/null
  callgrind_control -z "$pid" > /dev/null 2>&1
  local n; n=$(wrk -t1 -c10 -d"${SECONDS_LOAD}s" "$url" | grep -oP '\d+(?= requests in)')
  callgrind_control -d "$pid" > /dev/null 2>&1
  sleep 1
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  local total; total=$(cat "$cg"* 2>/dev/null | grep -oP '^summary: \K\d+' | sort -n | tail -1)
  per_request[$label]=$(echo "$total / $n" | bc -l)
  printf '%-12s %8d requests %10.0f instructions/request\n' "$label" "$n" "${per_request[$label]}"
}

manifest "" > "$OUT/off.yaml"
manifest "$(traced 0)" > "$OUT/ratio0.yaml"
manifest "$(traced 0.01)" > "$OUT/ratio0.01.yaml"
manifest "$(traced 1.0)" > "$OUT/ratio1.yaml"
echo "covet + static-response, access log off, OTLP over $PROTOCOL to $endpoint"
for label in off ratio0 ratio0.01 ratio1; do
  measure "$label" "$OUT/$label.yaml"
done
for label in ratio0 ratio0.01 ratio1; do
  printf '%-12s %+.2f%% over off\n' "$label" "$(echo "(${per_request[$label]} / ${per_request[off]} - 1) * 100" | bc -l)"
done
kill -INT "$sink"; wait "$sink" 2>/dev/null || true
grep '^received' "$OUT/sink.txt"
