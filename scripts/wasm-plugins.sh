#!/usr/bin/env bash
# Builds the WASM plugins in wasm-plugins/ (their own cargo workspace) for
# wasm32-wasip2, installing that target with rustup when it is missing.
# Also wasm-plugins/lean (its own workspace). The components land in $CARGO_TARGET_DIR/wasm32-wasip2/release/*.wasm.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi
cd wasm-plugins
cargo build --target wasm32-wasip2 --release --locked "$@"
# The benchmark's WASI-free guest: a workspace of its own (see its Cargo.toml).
cd lean
cargo build --target wasm32-wasip2 --release --locked
