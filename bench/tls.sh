#!/usr/bin/env bash
# TLS and HTTP/3 benchmark (see bench/tls.py and bench/README.md): installs
# h2load (Debian's nghttp2-client) when missing, builds release artifacts
# (covet, the static-response plugin, bench/h3-load), runs bench/tls.py.
# Tunables: DURATION RUNS CONNS STREAMS WARMUP HANDSHAKE_TASKS.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
command -v h2load >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client; }
cargo build --release --locked -p covet -p covet-static-response -p h3-load
exec python3 bench/tls.py
