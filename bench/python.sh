#!/usr/bin/env bash
# Python benchmark (see bench/README.md): the same apps under covet, Granian
# and uvicorn in one run. Installs wrk and the peers (into ./.venv), builds a
# release covet, runs bench/python/run.py. Tunables: DURATION RUNS CONNS WARMUP.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
bash scripts/python-env.sh --bench
cargo build --release --locked -p covet
exec python3 bench/python/run.py
