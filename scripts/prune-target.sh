#!/usr/bin/env bash
# Keeps the persistent cargo target dir ($CARGO_TARGET_DIR, scripts/env.sh)
# from filling the disk. It is shared by every clone and CI run on a machine,
# and each clone path builds its own copy of the workspace crates, so stale
# artifacts pile up: 73 GB once, when a CI run's linker died of a full disk
# (SIGBUS in ld) halfway through the fuzz build.
#
# Called at the start of scripts/test.sh. When the dir is over
# COVET_TARGET_MAX_GB (default 40) or the disk under it has less than
# COVET_MIN_FREE_GB free (default 20), it removes, in order and only until
# both hold again: incremental caches, the fuzz build, the release build, the
# whole dir. Each removal is printed; the next build just takes longer.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

max_gb="${COVET_TARGET_MAX_GB:-40}"
min_free_gb="${COVET_MIN_FREE_GB:-20}"
dir="$CARGO_TARGET_DIR"
[ -d "$dir" ] || exit 0

size_gb() { du -s --block-size=1G "$dir" 2>/dev/null | cut -f1; }
free_gb() { df --output=avail --block-size=1G "$(dirname "$dir")" | tail -n 1 | tr -d ' '; }
fits() { [ "$(size_gb)" -le "$max_gb" ] && [ "$(free_gb)" -ge "$min_free_gb" ]; }

fits && exit 0
echo "prune-target: $dir is $(size_gb) GB with $(free_gb) GB free (limits: ${max_gb} GB, ${min_free_gb} GB free)"
steps=(
  "incremental caches:$(find "$dir" -maxdepth 4 -type d -name incremental -printf '%p ' 2>/dev/null)"
  "fuzz build:$dir/fuzz"
  "release build:$dir/release"
  "whole target dir:$dir"
)
for step in "${steps[@]}"; do
  what="${step%%:*}"
  paths="${step#*:}"
  [ -n "${paths// /}" ] || continue
  echo "prune-target: removing the $what"
  # shellcheck disable=SC2086 # a space-separated list of paths without spaces
  rm -rf $paths
  [ -d "$dir" ] && fits && break
done
echo "prune-target: now $( [ -d "$dir" ] && size_gb || echo 0) GB, $(free_gb) GB free"
