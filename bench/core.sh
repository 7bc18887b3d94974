#!/usr/bin/env bash
# Host-core benchmark (see bench/README.md): installs wrk when missing, builds
# release artifacts, runs bench/core.py. Tunables: DURATION RUNS CONNS WARMUP.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release --locked -p covet -p hello-hyper -p covet-static-response -p covet-headers \
  -p covet-rate-limit -p covet-auth-jwt
exec python3 bench/core.py
