#!/usr/bin/env bash
# The whole test suite, from a fresh machine: builds every artifact the
# end-to-end tests load (the covet binary, plugin .so files, test fixtures),
# then runs unit, snapshot and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

cargo build --workspace --locked
cargo test --workspace --locked "$@"
