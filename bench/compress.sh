#!/usr/bin/env bash
# Compression benchmark (see bench/README.md, "Compression"): covet +
# static-response + the compress plugin vs nginx `gzip on`, both gzip level 6,
# both serving the same 50 KB JSON body (nginx from a file, covet from
# static-response's body_file). Server pinned to CPU 0 (one worker / covet on
# one core), wrk on CPU 1; RPS, p50/p99 and the server's CPU µs per request
# (process tree, user + system), and covet's ratio to nginx. Also covet with
# brotli (q4) and zstd (3), and both servers uncompressed, for scale.
# Installs wrk and nginx when missing (or set NGINX). Tunables: DURATION RUNS
# CONNS WARMUP.
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
cargo build --release --locked -p covet -p covet-compress -p covet-static-response
exec python3 bench/compress/run.py
