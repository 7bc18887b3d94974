#!/usr/bin/env bash
# Creates the project-local virtualenv (./.venv) the Python tests and examples
# use, from the same python3 the host embeds ($PYO3_PYTHON), and installs
# python-plugins/requirements.txt and deploy/requirements.txt into it. Idempotent: does nothing when the
# venv already holds exactly those requirements. `--bench` also installs the
# benchmark peers (granian, uvicorn[standard]).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

venv=.venv
reqs=(python-plugins/requirements.txt)
# The deployment checks (tests/e2e/deploy.rs): kubernetes-validate, hadolint.
reqs+=(deploy/requirements.txt)
[ "${1:-}" = "--bench" ] && reqs+=(bench/python/requirements.txt)
stamp="$venv/.covet-$(cat "${reqs[@]}" | sha256sum | cut -c1-16)"
[ -f "$stamp" ] && exit 0

if [ ! -x "$venv/bin/python" ]; then
  "$PYO3_PYTHON" -m venv "$venv"
fi
args=()
for r in "${reqs[@]}"; do args+=(-r "$r"); done
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}"
rm -f "$venv"/.covet-*
touch "$stamp"
