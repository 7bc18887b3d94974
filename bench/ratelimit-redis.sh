#!/usr/bin/env bash
# rate-limit with the Redis backend vs the in-process (memory) backend, same
# run: requests per second, p50/p99 latency and the host's CPU µs per request
# of one rate-limited route (static "hello" handler), each the median of RUNS
# wrk runs after a warm-up. The limit (1,000,000/s, the most the Redis backend
# takes, with a burst of 10,000,000) is far
# above what is sent, so nothing is refused: the figures are the cost of the
# check. covet runs on SERVER_CPU (0), wrk on CLIENT_CPU (1), redis-server on
# REDIS_CPU (default: the client's, so the host's core is covet's alone); Redis
# is reached through a unix socket. redis.timeout is 1s with on_error: deny, so
# a slow or failed check shows as a non-2xx instead of passing unmeasured.
# Tunables: DURATION RUNS CONNS WARMUP.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }
cargo build --release --locked -p covet -p covet-static-response -p covet-rate-limit
export COVET_ADMIN_LISTEN=off
work=$(mktemp -d)
REDIS_CPU="${REDIS_CPU:-${CLIENT_CPU:-1}}"
taskset -c "$REDIS_CPU" redis-server --port 0 --save "" --appendonly no --unixsocket "$work/redis.sock" >/dev/null &
redis_pid=$!
trap 'kill "$redis_pid" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do [ -S "$work/redis.sock" ] && break; sleep 0.05; done
WORK="$work" python3 - <<'PY'
import os, sys
sys.path.insert(0, "bench/lib")
from harness import Server, measure  # noqa: E402

release = os.path.join(os.environ["CARGO_TARGET_DIR"], "release")
work = os.environ["WORK"]
seconds = int(os.environ.get("DURATION", "10"))
runs = int(os.environ.get("RUNS", "3"))
conns = int(os.environ.get("CONNS", "50"))
warmup = int(os.environ.get("WARMUP", "3"))

def manifest(backend):
    redis = ', backend: redis, redis: { timeout: 1s, on_error: deny }' if backend == "redis" else ""
    return f"""listen: [{{ addr: 127.0.0.1:0 }}]
log: {{ access: false, level: warn }}
services: {{ state: {{ backend: redis, url: "redis+unix://{work}/redis.sock", timeout: 1s }} }}
plugins:
  hello: {{ kind: native, path: {release}/libcovet_static_response.so, config: {{ body: "hello" }} }}
  limiter:
    kind: native
    path: {release}/libcovet_rate_limit.so
    config: {{ rate: 1000000/s, burst: 10000000, key: ip{redis} }}
    capabilities: {{ state: [ratelimit] }}
routes:
  - {{ path: /, methods: [GET], filters: [limiter], handler: hello }}
"""

print(f"{'backend':8} {'req/s':>10} {'p50 µs':>8} {'p99 µs':>8} {'CPU µs/req':>11} {'non-2xx':>8}")
for backend in ["memory", "redis"]:
    path = os.path.join(work, f"{backend}.yaml")
    with open(path, "w") as f:
        f.write(manifest(backend))
    server = Server([os.path.join(release, "covet"), "host", "--plugins", path])
    try:
        server.wait_200()
        m = measure(server, "/", seconds, runs, conns, warmup)
    finally:
        server.stop()
    print(f"{backend:8} {m['rps']:10.0f} {m['p50']:8.0f} {m['p99']:8.0f} {m['cpu_us']:11.1f} {m['non2xx']:8d}")
PY
