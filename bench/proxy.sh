#!/usr/bin/env bash
# Proxy benchmark (see bench/README.md, "Proxy"): covet's proxy plugin vs
# nginx proxy_pass (upstream keep-alive) vs HAProxy, same bare hyper upstream
# (bench/hello-hyper), same wrk load. The proxy is pinned to CPU 0 with one
# worker/thread; wrk and the upstream share CPU 1. Prints RPS, p50/p99 and the
# proxy's CPU µs per request (whole process tree), and covet's ratios to each
# peer. Installs wrk and haproxy when missing (nginx: /usr/sbin/nginx, or set
# NGINX). Tunables: DURATION RUNS CONNS WARMUP.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
install() { # Debian packages, with sudo when not root
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}
command -v wrk >/dev/null || install wrk
command -v haproxy >/dev/null || install haproxy
[ -x "${NGINX:-/usr/sbin/nginx}" ] || command -v nginx >/dev/null || install nginx
[ -x "${NGINX:-/usr/sbin/nginx}" ] || export NGINX="$(command -v nginx)"
cargo build --release --locked -p covet -p covet-proxy -p hello-hyper
exec python3 bench/proxy/run.py
