#!/usr/bin/env bash
# Soak (see bench/README.md): builds release artifacts (host, soak-load, the
# versioned fixture plugins, the WASM components) and runs bench/soak.py:
# mixed keep-alive load on a native, a WASM and a Python route with one swap
# per second for DURATION seconds, RSS sampled into $CARGO_TARGET_DIR/soak/rss.csv.
# Tunables: DURATION (1800) WARMUP (180) CONNS per route (8) SWAP_MS (1000)
# SAMPLE seconds (10) LIMIT_PCT (10) OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release --locked -p covet -p swap-load -p covet-versioned-v1 -p covet-versioned-v2
bash scripts/wasm-plugins.sh
exec python3 bench/soak.py
