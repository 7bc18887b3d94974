#!/usr/bin/env bash
# GraphQL benchmark (see bench/README.md, "GraphQL"): covet's CPU per request
# for a GraphQL query resolving one REST field (the graphql plugin) against
# proxying a request to the same REST endpoint (the proxy plugin), one covet
# process pinned to CPU 0, wrk and the REST service (nginx) on CPU 1
# (bench/graphql/run.py). Installs wrk, nginx (nginx:
# /usr/sbin/nginx, or set NGINX) and h2load. Tunables: DURATION RUNS CONNS
# WARMUP RATE (the fixed-rate pass; 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
apt_install() { # Debian packages, with sudo when not root
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}
command -v wrk >/dev/null || apt_install wrk
command -v h2load >/dev/null || apt_install nghttp2-client
[ -x "${NGINX:-/usr/sbin/nginx}" ] || command -v nginx >/dev/null || apt_install nginx
[ -x "${NGINX:-/usr/sbin/nginx}" ] || export NGINX="$(command -v nginx)"
cargo build --release --locked -p covet -p covet-proxy -p covet-graphql
exec python3 bench/graphql/run.py
