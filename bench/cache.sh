#!/usr/bin/env bash
# Cache benchmark (see bench/README.md, "Cache"): (1) a cache hit through
# covet (cache filter + proxy plugin) vs nginx proxy_cache, same 1 KiB JSON
# object from the same origin (bench/cache/origin.py), server pinned to CPU 0
# (one worker), wrk and the origin on CPU 1: RPS, p50/p99, the server's CPU
# µs per request and covet's ratios to nginx; (2) a miss storm on one key
# (200 connections, slow origin, purged every 500 ms): origin requests per
# second and per round with coalescing on and off. Installs wrk and nginx
# when missing (or set NGINX). Tunables: DURATION RUNS CONNS WARMUP
# STORM_SECONDS STORM_CONNS DELAY_MS PURGE_MS.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
apt_install() { # Debian packages, with sudo when not root
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}
command -v wrk >/dev/null || apt_install wrk
[ -x "${NGINX:-/usr/sbin/nginx}" ] || command -v nginx >/dev/null || apt_install nginx
[ -x "${NGINX:-/usr/sbin/nginx}" ] || export NGINX="$(command -v nginx)"
cargo build --release --locked -p covet -p covet-proxy -p covet-cache
exec python3 bench/cache/run.py
