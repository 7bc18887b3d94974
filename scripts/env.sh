# Sourced by the scripts: one persistent cargo target dir outside the clone,
# so CI runs and fresh clones build incrementally.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/covet-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The Python the host embeds (pyo3 builds against it; see docs/python.md
# "Python versions"): pyenv's CPython 3.12 when it is there with a shared
# libpython (request tasks start eagerly on 3.12+), else python3. Resolved to
# the real executable so pyenv shims or venvs do not change it.
if [ -z "${PYO3_PYTHON:-}" ]; then
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12.*/bin/python3.12; do
    if [ -x "$candidate" ] && "$candidate" -c 'import sys, sysconfig; sys.exit(not sysconfig.get_config_var("Py_ENABLE_SHARED"))' 2>/dev/null; then
      PYO3_PYTHON="$candidate"
    fi
  done
  [ -n "${PYO3_PYTHON:-}" ] || PYO3_PYTHON="$(python3 -c 'import sys; print(sys.executable)')"
  export PYO3_PYTHON
fi
