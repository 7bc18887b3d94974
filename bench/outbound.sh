#!/usr/bin/env bash
# CPU per outbound HTTP call: covet's host service (covet-services, what every
# plugin kind's outbound HTTP goes through) against a direct hyper client, to
# the same local server. The server runs on CPU 1, the client on CPU 0; each
# mode runs RUNS times and the median is reported. Target: service ≤ 1.1× direct.
# Tunables: CALLS (per run) CONC (in flight) RUNS.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
CALLS="${CALLS:-50000}" CONC="${CONC:-16}" RUNS="${RUNS:-5}"
cargo build --release --locked -p outbound-bench
bin="$CARGO_TARGET_DIR/release/outbound-bench"
addr_file="$(mktemp)"
taskset -c 1 "$bin" server >"$addr_file" &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 50); do [ -s "$addr_file" ] && break; sleep 0.1; done
url="http://$(head -1 "$addr_file")/"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A result
for mode in direct service; do
  result[$mode]=$(for _ in $(seq "$RUNS"); do
    taskset -c 0 "$bin" "$mode" "$url" "$CALLS" "$CONC" | sed -n 's/.*cpu_us_per_call=\([0-9.]*\).*/\1/p'
  done | median)
  echo "$mode: ${result[$mode]} µs CPU per call (median of $RUNS × $CALLS calls, $CONC in flight)"
done
awk -v s="${result[service]}" -v d="${result[direct]}" 'BEGIN {printf "service / direct = %.3f× (target ≤ 1.1×)\n", s / d}'
