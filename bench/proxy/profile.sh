#!/usr/bin/env bash
# perf profile of covet's proxy under the bench/proxy.sh load (covet on CPU 0,
# wrk and hello-hyper on CPU 1): samples by DSO and the top symbols, flat and
# with children. Needs perf and the release build bench/proxy.sh makes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
source scripts/env.sh
R=$CARGO_TARGET_DIR/release
OUT=$(mktemp -d)
taskset -c 1 "$R/hello-hyper" > "$OUT/up.txt" &
up=$!
trap 'kill $up ${pid:-} 2>/dev/null; [ -n "${KEEP:-}" ] && cp "$OUT/perf.data" "$KEEP"; rm -rf "$OUT"' EXIT
sleep 0.5
upstream=$(sed -n 's/listening on http:\/\///p' "$OUT/up.txt" | head -1)
sed -e "s|@UPSTREAM@|$upstream|" -e "s|@RELEASE@|$R|" bench/proxy/covet.yaml > "$OUT/m.yaml"
COVET_ADMIN_LISTEN=off COVET_LOG=warn taskset -c 0 "$R/covet" host --plugins "$OUT/m.yaml" > "$OUT/out.txt" 2>&1 &
pid=$!
sleep 1.5
addr=$(sed -n 's/listening on http:\/\///p' "$OUT/out.txt" | head -1)
taskset -c 1 wrk -t1 -c50 -d3s "http://$addr/hello" > /dev/null
taskset -c 1 wrk -t1 -c50 -d10s "http://$addr/hello" > "$OUT/wrk.txt" &
load=$!
sleep 2
perf record -F 2000 ${CALLGRAPH:--g} -p "$pid" -o "$OUT/perf.data" -- sleep 6 2>/dev/null >/dev/null
wait "$load"
grep Requests/sec "$OUT/wrk.txt"
perf report -i "$OUT/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8
perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -${TOP:-40}
perf report -i "$OUT/perf.data" --children --sort symbol --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -${TOP:-40}
