#!/usr/bin/env bash
# io_uring runtime comparison (see docs/io.md, "Alternatives measured"): one
# hyper 1 hello server on tokio epoll, tokio-uring (covet's adapter), monoio and
# compio, single-threaded, HTTP/1.1 at 50 and 1,000 connections. bench/uring-alt
# is its own workspace (monoio/compio stay out of covet's graph), so it is
# built with --manifest-path. Installs wrk when missing, raises the fd limit.
# Tunables: DURATION RUNS WARMUP CONNS RUNTIMES (comma-separated).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
ulimit -n "$(ulimit -Hn)"
cargo build --release --locked --manifest-path bench/uring-alt/Cargo.toml
exec python3 bench/uring-alt/bench.py
