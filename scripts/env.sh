# Sourced by the scripts: one persistent cargo target dir outside the clone,
# so CI runs and fresh clones build incrementally.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/covet-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The Python the host embeds (pyo3 builds against it; see docs/python.md).
# Resolved to the real executable so pyenv shims or venvs do not change it.
if [ -z "${PYO3_PYTHON:-}" ]; then
  PYO3_PYTHON="$(python3 -c 'import sys; print(sys.executable)')"
  export PYO3_PYTHON
fi
