#!/usr/bin/env bash
# Instructions per proxied request under callgrind (bench/README.md, "Proxy"):
# covet (proxy plugin, bench/proxy/covet.yaml) under valgrind, hello-hyper
# upstream outside it; counters zeroed after a 2 s warm-up, then wrk -c10 for
# SECONDS_LOAD s. Unlike CPU time on this shared 2-core VM, the count repeats
# run to run (±0.2%), so it is the figure to compare changes with. Needs the
# release build bench/proxy.sh makes; KEEP=dir keeps the callgrind output
# (callgrind_annotate --inclusive=yes DIR/cg.out.1). PROXY=hyper measures the
# bare hyper proxy (bench/hello-hyper's hyper-proxy) instead: the floor.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
R=$CARGO_TARGET_DIR/release
OUT=${KEEP:-$(mktemp -d)}
mkdir -p "$OUT"
taskset -c 1 "$R/hello-hyper" > "$OUT/up.txt" &
up=$!
trap 'kill $up ${pid:-} 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$OUT"' EXIT
sleep 0.5
upstream=$(sed -n 's/listening on http:\/\///p' "$OUT/up.txt" | head -1)
sed -e "s|@UPSTREAM@|$upstream|" -e "s|@RELEASE@|$R|" bench/proxy/covet.yaml > "$OUT/m.yaml"
if [ "${PROXY:-covet}" = hyper ]; then
  name="bare hyper proxy"
  valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" "$R/hyper-proxy" "$upstream" > "$OUT/out.txt" 2>/dev/null &
else
  name="covet proxy"
  COVET_ADMIN_LISTEN=off COVET_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" \
    "$R/covet" host --plugins "$OUT/m.yaml" > "$OUT/out.txt" 2>/dev/null &
fi
pid=$!
for _ in $(seq 1 150); do grep -q listening "$OUT/out.txt" 2>/dev/null && break; sleep 0.2; done
addr=$(sed -n 's/listening on http:\/\///p' "$OUT/out.txt" | head -1)
wrk -t1 -c10 -d2s "http://$addr/hello" > /dev/null
callgrind_control -z "$pid" > /dev/null 2>&1
n=$(wrk -t1 -c10 -d"${SECONDS_LOAD:-4}s" "http://$addr/hello" | grep -oP '\d+(?= requests in)')
callgrind_control -d "$pid" > /dev/null 2>&1
sleep 1
kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
total=$(cat "$OUT"/cg.out* 2>/dev/null | grep -oP '^summary: \K\d+' | sort -n | tail -1)
printf '%s %8d requests %10.0f instructions/request (user space, plugin included)\n' "$name" "$n" "$(echo "$total / $n" | bc -l)"
