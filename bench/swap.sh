#!/usr/bin/env bash
# Hot swap under load (see bench/README.md): builds release artifacts and runs
# bench/swap.py. Tunables: CONNS (50) SWAPS (100) STEADY seconds (10) GAP_MS (50).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release --locked -p covet -p swap-load -p covet-versioned-v1 -p covet-versioned-v2
exec python3 bench/swap.py
