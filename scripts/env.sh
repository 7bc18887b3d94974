# Sourced by the scripts: one persistent cargo target dir outside the clone,
# so CI runs and fresh clones build incrementally.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/covet-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
