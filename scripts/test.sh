#!/usr/bin/env bash
# The whole test suite, from a fresh machine: builds every artifact the
# end-to-end tests load (the covet binary, plugin .so files, test fixtures,
# the WASM plugins in wasm-plugins/, the project venv .venv with FastAPI and
# uvicorn for the Python tests), then runs unit, snapshot and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# The shared target dir outgrows the disk unless pruned (scripts/prune-target.sh).
bash scripts/prune-target.sh

# redis-server (Debian package) for the shared-state and rate-limit tests, which start their own.
if ! command -v redis-server >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server
fi

# Node.js and npm (Debian packages) for the graphql-http server audits of
# tests/e2e/graphql.rs; the package itself is pinned in tests/e2e/graphql/package-lock.json.
if ! command -v npm >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
fi
npm ci --prefix tests/e2e/graphql --no-audit --no-fund --silent

cargo build --workspace --locked
# The native-only covet (no Python, no WASM runtime; docs/fleet.md): builds only
# the covet crate again, checks ldd/nm, a native route, the refusal of python/wasm.
bash scripts/native-only.sh
bash scripts/wasm-plugins.sh
bash scripts/python-env.sh
# The `covet` Python package on its own (no host), under the venv's interpreter
# (the examples these tests load import pydantic).
.venv/bin/python -m unittest discover -q host/python/tests
# Four test threads on the 2 cores: the end-to-end tests mostly wait (a
# covet process starting, timers, clients), and a pass took 225 s with the
# default two against 160 s with four. RUST_TEST_THREADS overrides it.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"
cargo test --workspace --locked "$@"
# The end-to-end suite again with every host on the io_uring backend (docs/io.md).
# `--workspace` (not `-p covet-e2e`) keeps the feature set of the run above,
# so this pass reuses its build instead of recompiling dependencies.
COVET_IO=uring cargo test --workspace --locked --test e2e "$@"
# The Python runtime on the other supported CPython (3.11 when the default is
# 3.12, and the other way round; docs/python.md "Python versions"): covet built
# against it, its venv, the python:: e2e tests.
bash scripts/python-versions.sh
# Every fuzz target (fuzz/, docs/fuzzing.md) over its corpus and a few seconds
# of new inputs, on the nightly toolchain; installs cargo-fuzz when missing.
bash scripts/fuzz-smoke.sh
