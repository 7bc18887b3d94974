#!/usr/bin/env bash
# WASM benchmark (see bench/README.md): a no-op WASM filter vs a no-op native
# filter on the same route, a WASM handler vs the native static-response, and
# one wasi:http component under covet vs under `wasmtime serve`. Installs wrk
# and wasmtime-cli 48 when missing, builds release artifacts and the WASM
# plugins, runs bench/wasm.py. Tunables: DURATION RUNS CONNS WARMUP.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
if ! wasmtime --version 2>/dev/null | grep -q '^wasmtime 48\.'; then
  # 48.x is the newest wasmtime that builds with rustc 1.95 (as the host's).
  CARGO_TARGET_DIR="$CARGO_TARGET_DIR/wasmtime-cli" cargo install wasmtime-cli --version '^48' --locked
fi
cargo build --release --locked -p covet -p covet-static-response -p covet-headers
bash scripts/wasm-plugins.sh
exec python3 bench/wasm.py
