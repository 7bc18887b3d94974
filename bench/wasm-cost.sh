#!/usr/bin/env bash
# What one request costs the host, per route of bench/wasm.sh's manifest, in
# figures that repeat run to run on a busy machine (unlike RPS):
#   - instructions per request under callgrind (counters zeroed after a
#     warm-up, as bench/instructions.sh);
#   - page faults, syscalls (all, and madvise / mprotect / mmap / munmap /
#     ioctl / getrandom) per request, counted by `perf stat` software events
#     and syscall tracepoints while wrk drives the route;
#   - CPU µs per request (utime + stime delta / requests) from the same run.
# Routes: ROUTES (default: the no-filter / native-filter / WASM-filter rows,
# the handlers and hello-http). Tunables: SECONDS_LOAD (5), CONNS (10),
# CALLGRIND (1; 0 skips it), KEEP (a dir: keeps each route's callgrind output,
# for callgrind_annotate --inclusive=yes DIR/_route.cg). Needs a release build and the WASM plugins
# (bench/wasm.sh builds both).
# valgrind cannot reserve the pool's address space (~8 GiB per slot), so the
# callgrind run uses a pool of 6 instances (COVET_WASM_POOL_INSTANCES) and 4
# connections, and measures CG_ROUTES (fresh-instance routes first: idle
# reused instances keep their slots).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
R="$CARGO_TARGET_DIR/release"
W="$CARGO_TARGET_DIR/wasm32-wasip2/release"
SECONDS_LOAD="${SECONDS_LOAD:-5}"
CONNS="${CONNS:-10}"
CALLGRIND="${CALLGRIND:-1}"
ROUTES="${ROUTES:-/static /native-filter /wasm-filter /wasm-filter-init /wasm-filter-lean /wasm-filter-reused /wasm-handler /wasm-handler-reused /hello /hello-reused}"
CG_ROUTES="${CG_ROUTES:-/static /native-filter /wasm-filter /wasm-filter-init /wasm-filter-lean /wasm-handler /hello /wasm-filter-reused}"
NOOP="${NOOP:-$W/covet_wasm_noop.wasm}" # the no-op guest the wasm-* routes load
export COVET_ADMIN_LISTEN=off COVET_LOG=warn,covet::runtime::wasm=info
work=$(mktemp -d); trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

cat >"$work/wasm.yaml" <<YAML
listen: [{ addr: 127.0.0.1:0 }]
log: { access: false }
plugins:
  static: { kind: native, path: $R/libcovet_static_response.so, config: { body: "ok" } }
  native-noop: { kind: native, path: $R/libcovet_headers.so, config: { request: { remove: [x-absent] } } }
  wasm-noop: { kind: wasm, path: $NOOP }
  wasm-noop-reused: { kind: wasm, path: $NOOP, instances: reused }
  wasm-noop-init: { kind: wasm, path: $NOOP, instances: fresh-init }
  wasm-noop-lean: { kind: wasm, path: $W/covet_wasm_noop_lean.wasm }
  hello: { kind: wasm, path: $W/hello_http.wasm }
  hello-reused: { kind: wasm, path: $W/hello_http.wasm, instances: reused }
routes:
  - { path: /static, handler: static }
  - { path: /native-filter, filters: [native-noop], handler: static }
  - { path: /wasm-filter, filters: [wasm-noop], handler: static }
  - { path: /wasm-filter-reused, filters: [wasm-noop-reused], handler: static }
  - { path: /wasm-filter-init, filters: [wasm-noop-init], handler: static }
  - { path: /wasm-filter-lean, filters: [wasm-noop-lean], handler: static }
  - { path: /wasm-handler, handler: wasm-noop }
  - { path: /wasm-handler-reused, handler: wasm-noop-reused }
  - { path: /hello, handler: hello }
  - { path: /hello-reused, handler: hello-reused }
YAML

start() { # $@ = command prefix (empty, or valgrind ...); sets PID and ADDR
  local log="$work/stdout.$RANDOM"
  "$@" "$R/covet" host --plugins "$work/wasm.yaml" >"$log" 2>&1 &
  PID=$!
  ADDR=""
  for _ in $(seq 1 300); do
    ADDR=$(sed -n 's/^listening on http:\/\///p' "$log" 2>/dev/null | head -1)
    [ -n "$ADDR" ] && break
    sleep 0.2
  done
  # Listening comes before the plugins' init, and the snapshots after init
  # (wasm-noop, wasm-noop-lean) are taken in the background: wait for both
  # (minutes under valgrind: each is two compiles).
  for _ in $(seq 1 3000); do
    [ -n "$ADDR" ] && [ "$(grep -c 'start from a snapshot taken after init' "$log")" -ge 2 ] && return 0
    sleep 0.2
  done
  echo "covet did not start: $(cat "$log")" >&2
  exit 1
}

load() { # $1 = route, $2 = seconds: prints the number of requests; warns of non-2xx answers
  local out; out=$(wrk -t1 -c"$CONNS" -d"$2s" "http://$ADDR$1")
  if grep -q 'Non-2xx' <<<"$out"; then echo "warning: $1: $(grep 'Non-2xx' <<<"$out")" >&2; fi
  grep -oP '\d+(?= requests in)' <<<"$out"
}

ticks() { # utime + stime of $PID, in clock ticks
  awk '{ print $14 + $15 }' "/proc/$PID/stat"
}

EVENTS="page-faults,raw_syscalls:sys_enter,syscalls:sys_enter_madvise,syscalls:sys_enter_mprotect,syscalls:sys_enter_mmap,syscalls:sys_enter_munmap,syscalls:sys_enter_ioctl,syscalls:sys_enter_getrandom"

echo "per request, wrk -t1 -c$CONNS -d${SECONDS_LOAD}s after a 2 s warm-up"
printf '%-22s %9s %7s %8s %7s %7s %7s %7s %7s %7s %7s\n' route requests cpu_us faults syscalls madvise mprotect mmap munmap ioctl getrand
start
hz=$(getconf CLK_TCK)
for route in $ROUTES; do
  load "$route" 2 >/dev/null
  before=$(ticks)
  perf stat -x, -e "$EVENTS" -p "$PID" -o "$work/perf" -- sleep "$((SECONDS_LOAD + 1))" &
  perf_pid=$!
  sleep 0.5
  n=$(load "$route" "$SECONDS_LOAD")
  after=$(ticks)
  wait "$perf_pid" || true
  get() { awk -F, -v e="$1" '$3 == e { print $1 }' "$work/perf"; }
  printf '%-22s %9d %7.1f' "$route" "$n" "$(echo "($after - $before) * 1000000 / $hz / $n" | bc -l)"
  for e in page-faults raw_syscalls:sys_enter syscalls:sys_enter_madvise syscalls:sys_enter_mprotect syscalls:sys_enter_mmap \
           syscalls:sys_enter_munmap syscalls:sys_enter_ioctl syscalls:sys_enter_getrandom; do
    printf ' %7.2f' "$(echo "$(get "$e") / $n" | bc -l)"
  done
  echo
done
kill "$PID"; wait "$PID" 2>/dev/null || true

[ "$CALLGRIND" = 1 ] || exit 0
echo
CONNS=4
echo "instructions per request under callgrind (wrk -t1 -c$CONNS -d${SECONDS_LOAD}s after a 2 s warm-up)"
out="$work/cg.out"
COVET_WASM_POOL_INSTANCES=6 start valgrind --tool=callgrind --callgrind-out-file="$out"
for route in $CG_ROUTES; do
  load "$route" 2 >/dev/null
  callgrind_control -z "$PID" >/dev/null 2>&1
  n=$(load "$route" "$SECONDS_LOAD")
  rm -f "$out".*
  callgrind_control -d "$PID" >/dev/null 2>&1
  sleep 1
  total=$(cat "$out".* 2>/dev/null | grep -oP '^(summary|totals): \K\d+' | sort -n | tail -1)
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cat "$out".* > "$KEEP/${route//\//_}.cg"; fi
  printf '%-22s %8d requests %10.0f instructions/request\n' "$route" "$n" "$(echo "$total / $n" | bc -l)"
done
