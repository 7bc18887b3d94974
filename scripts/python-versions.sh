#!/usr/bin/env bash
# The Python runtime on the other CPython versions it supports (docs/python.md
# "Python versions"): for each of $PYTHONS (default: 3.11 when scripts/env.sh
# chose 3.12, else 3.12), builds covet
# against it (its own target dir, Python runtime only), makes its venv
# (.venv -> .venv-X.Y), runs the `covet` package's unit tests under it and the
# e2e `python::` tests with that covet binary; then points .venv back at the
# default interpreter's venv. Request tasks start eagerly on 3.12+ and are
# scheduled on 3.11: one of the two paths is tested here.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
default_python="$PYO3_PYTHON"
restore() { PYO3_PYTHON="$default_python" bash scripts/python-env.sh; }
trap restore EXIT

# pyenv's build first (its shims only run the versions pyenv has selected).
find_python() {
  local found
  found="$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/"python$1" 2>/dev/null | sort -V | tail -1)"
  [ -n "$found" ] && { echo "$found"; return; }
  command -v "python$1" 2>/dev/null || true
}

default_version="$("$default_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$default_version" = 3.12 ]; then others=3.11; else others=3.12; fi
for version in ${PYTHONS:-$others}; do
  py="$(find_python "$version")"
  if [ -z "$py" ] || ! "$py" -c 'import sysconfig, sys; sys.exit(not sysconfig.get_config_var("Py_ENABLE_SHARED"))'; then
    echo "python-versions: SKIPPED $version: no python$version with a shared libpython on this machine" >&2
    continue
  fi
  echo "python-versions: CPython $version ($py)"
  target="$CARGO_TARGET_DIR/python$version"
  PYO3_PYTHON="$py" CARGO_TARGET_DIR="$target" cargo build -p covet --no-default-features --features python --locked
  PYO3_PYTHON="$py" bash scripts/python-env.sh
  # Under the venv's interpreter: the examples these tests load import pydantic.
  .venv/bin/python -m unittest discover -q host/python/tests
  # That covet has no WASM runtime: the one python:: test chaining a WASM
  # filter is left to the default build's passes.
  COVET_BIN="$target/debug/covet" cargo test --workspace --locked --test e2e python:: -- \
    --skip python::filters::a_python_filter_in_one_chain_with_native_and_wasm_filters
done
