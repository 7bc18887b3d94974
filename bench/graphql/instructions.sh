#!/usr/bin/env bash
# Instructions per request under callgrind, GraphQL route against proxy route
# (bench/README.md, "GraphQL"): covet (bench/graphql/covet.yaml, both routes in
# one process) under valgrind, the REST service (nginx, bench/graphql/rest.conf)
# outside it. Per route: counters zeroed after a 2 s warm-up, then wrk -c10 for
# SECONDS_LOAD s (the GraphQL route with bench/graphql/post.lua), the count
# dumped. Unlike CPU time on a shared VM the count repeats run to run, so it is
# the figure to compare changes with. Needs the release build bench/graphql.sh
# makes; KEEP=dir keeps the callgrind output (callgrind_annotate
# --inclusive=yes DIR/cg.out.2 is the GraphQL route).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
R=$CARGO_TARGET_DIR/release
OUT=${KEEP:-$(mktemp -d)}
mkdir -p "$OUT"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s|@LISTEN@|127.0.0.1:$port|" -e "s|@WORK@|$OUT|g" bench/graphql/rest.conf > "$OUT/rest.conf"
taskset -c 1 "${NGINX:-/usr/sbin/nginx}" -p "$OUT" -c "$OUT/rest.conf" > "$OUT/nginx.out" 2>&1 &
up=$!
trap 'kill $up ${pid:-} 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$OUT"' EXIT
sed -e "s|@UPSTREAM@|127.0.0.1:$port|" -e "s|@RELEASE@|$R|" bench/graphql/covet.yaml > "$OUT/m.yaml"
rm -f "$OUT"/cg.out*
COVET_ADMIN_LISTEN=off COVET_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" \
  "$R/covet" host --plugins "$OUT/m.yaml" > "$OUT/out.txt" 2>/dev/null &
pid=$!
for _ in $(seq 1 150); do grep -q listening "$OUT/out.txt" 2>/dev/null && break; sleep 0.2; done
addr=$(sed -n 's/listening on http:\/\///p' "$OUT/out.txt" | head -1)
dumps=0
measure() { # name, path, wrk args...: prints instructions per request of one route
  local name=$1 path=$2; shift 2
  dumps=$((dumps + 1))
  wrk -t1 -c10 -d2s "$@" "http://$addr$path" > /dev/null
  callgrind_control -z "$pid" > /dev/null 2>&1
  local n total
  n=$(wrk -t1 -c10 -d"${SECONDS_LOAD:-4}s" "$@" "http://$addr$path" | grep -oP '\d+(?= requests in)')
  callgrind_control -d "$pid" > /dev/null 2>&1
  sleep 1
  total=$(grep -hoP '^summary: \K\d+' "$OUT/cg.out.$dumps")
  printf '%-8s %8d requests %10.0f instructions/request\n' "$name" "$n" "$(echo "$total / $n" | bc -l)"
  echo "$total / $n" | bc -l > "$OUT/$name.ipr"
}
measure proxy /users/1
measure graphql /graphql -s bench/graphql/post.lua
kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
printf 'graphql / proxy: %.2fx instructions per request (user space, plugins included)\n' \
  "$(echo "$(cat "$OUT/graphql.ipr") / $(cat "$OUT/proxy.ipr")" | bc -l)"
