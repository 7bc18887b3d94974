#!/usr/bin/env bash
# The whole test suite, from a fresh machine: builds every artifact the
# end-to-end tests load (the covet binary, plugin .so files, test fixtures,
# the WASM plugins in wasm-plugins/),
# then runs unit, snapshot and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

cargo build --workspace --locked
bash scripts/wasm-plugins.sh
cargo test --workspace --locked "$@"
