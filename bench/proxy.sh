#!/usr/bin/env bash
# Proxy benchmark (see bench/README.md, "Proxy"): covet's proxy plugin vs
# nginx proxy_pass (upstream keep-alive) vs HAProxy, same bare hyper upstream
# (bench/hello-hyper), same load: wrk saturating (closed loop), then h2load at
# a fixed rate (open loop). The proxy is pinned to CPU 0 with one
# worker/thread; the load generator and the upstream share CPU 1. Prints RPS,
# p50/p99 and the proxy's CPU µs per request (whole process tree; user and
# system), and covet's ratios to each peer (bench/proxy/run.py). Installs wrk,
# h2load (nghttp2-client), haproxy and nginx when missing (nginx:
# /usr/sbin/nginx, or set NGINX). Tunables: DURATION RUNS CONNS WARMUP RATE
# PROXIES (default covet,nginx,haproxy,hyper).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
apt_install() { # Debian packages, with sudo when not root
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}
command -v wrk >/dev/null || apt_install wrk
command -v h2load >/dev/null || apt_install nghttp2-client
command -v haproxy >/dev/null || apt_install haproxy
[ -x "${NGINX:-/usr/sbin/nginx}" ] || command -v nginx >/dev/null || apt_install nginx
[ -x "${NGINX:-/usr/sbin/nginx}" ] || export NGINX="$(command -v nginx)"
cargo build --release --locked -p covet -p covet-proxy -p hello-hyper
exec python3 bench/proxy/run.py
