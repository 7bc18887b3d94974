#!/usr/bin/env bash
# The Python runtime on the other CPython versions it supports (docs/python.md
# "Python versions"): for each of $PYTHONS (default: 3.11 when scripts/env.sh
# chose 3.12, else 3.12), builds covet
# against it (Python runtime only), makes its venv
# (.venv -> .venv-X.Y), runs the `covet` package's unit tests under it and the
# e2e `python::` tests with that covet binary; then points .venv back at the
# default interpreter's venv. Request tasks start eagerly on 3.12+ and are
# scheduled on 3.11: one of the two paths is tested here.
#
# The build shares the default target dir. pyo3 learns the interpreter from
# $PYO3_PYTHON, which is not part of cargo's artifact hashes: built as is, the
# pyo3 crates for 3.11 would overwrite the default ones (and the next default
# build rebuild them back), and a target dir of its own rebuilds the whole
# dependency tree when the cache is cold (tokio, hyper, rustls, aws-lc: about
# ten CPU minutes). A per-version profile override on pyo3-build-config (the
# crate every pyo3 crate builds on; a codegen-units value no other build uses)
# gives it, and only what depends on it, hashes of their own: the pyo3 crates,
# covet's Python runtime and covet are built once per version and kept, the
# rest of the tree is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
default_python="$PYO3_PYTHON"
# The default binary the per-version build re-links over (put back even when that build fails).
saved=""
restore() {
  if [ -n "$saved" ]; then
    cp -p --remove-destination "$saved" "$CARGO_TARGET_DIR/debug/covet"
    rm -f "$saved"
  fi
  PYO3_PYTHON="$default_python" bash scripts/python-env.sh
}
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
  # The target dir of its own the versions had before (2 GB): no longer used.
  rm -rf "${CARGO_TARGET_DIR:?}/python$version"
  units="$(( 100 + ${version#*.} ))"  # 111 for 3.11: any value the default build does not use
  bin="$CARGO_TARGET_DIR/python-versions/covet-$version"
  mkdir -p "$(dirname "$bin")"
  # The build re-links $CARGO_TARGET_DIR/debug/covet; the default binary is put back after.
  saved="$(mktemp)"
  cp -p "$CARGO_TARGET_DIR/debug/covet" "$saved"
  PYO3_PYTHON="$py" cargo build -p covet --no-default-features --features python --locked \
    --config "profile.dev.package.pyo3-build-config.codegen-units=$units"
  cp --remove-destination "$CARGO_TARGET_DIR/debug/covet" "$bin"
  cp -p --remove-destination "$saved" "$CARGO_TARGET_DIR/debug/covet"
  rm -f "$saved"
  saved=""
  PYO3_PYTHON="$py" bash scripts/python-env.sh
  # Under the venv's interpreter: the examples these tests load import pydantic.
  .venv/bin/python -m unittest discover -q host/python/tests
  # That covet has no WASM runtime: the one python:: test chaining a WASM
  # filter is left to the default build's passes.
  COVET_BIN="$bin" cargo test --workspace --locked --test e2e python:: -- \
    --skip python::filters::a_python_filter_in_one_chain_with_native_and_wasm_filters
done
