#!/usr/bin/env bash
# I/O backend benchmark (see docs/io.md): epoll vs io_uring, covet +
# static-response, HTTP/1.1 at 50 and 1,000 connections. Installs wrk when
# missing, raises the fd limit, builds release artifacts, runs bench/io.py.
# Tunables: DURATION RUNS WARMUP CONNS (comma-separated).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
ulimit -n "$(ulimit -Hn)"
cargo build --release --locked -p covet -p covet-static-response
exec python3 bench/io.py
