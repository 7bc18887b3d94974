#!/usr/bin/env bash
# Smoke run of every fuzz target (fuzz/, docs/fuzzing.md): builds them with
# cargo-fuzz on the nightly toolchain (installing cargo-fuzz when missing),
# then runs each over its corpus (fuzz/corpus/<target>) and a few seconds of
# new inputs. Any crash, failed assertion, hang (-timeout) or out-of-memory
# fails the script; the input that did it is left in $COVET_FUZZ_ARTIFACTS.
#
#   COVET_FUZZ_SECONDS   seconds of new inputs per target after the corpus (default 5)
#   COVET_FUZZ_TARGET_DIR  cargo target dir (default $CARGO_TARGET_DIR/fuzz,
#                        kept between runs so a warm CI run rebuilds only what changed)
#   COVET_FUZZ_PROFILE   dev (default: unoptimised, debug assertions; a cold build
#                        took 7.5 min on 2 cores in December 2026, with no debug
#                        info for dependencies (fuzz/Cargo.toml; 9.8 min with it),
#                        against ~11 for release) or release (optimised with
#                        debug assertions: many more inputs per second, for long runs)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

seconds="${COVET_FUZZ_SECONDS:-5}"
target_dir="${COVET_FUZZ_TARGET_DIR:-$CARGO_TARGET_DIR/fuzz}"
artifacts="${COVET_FUZZ_ARTIFACTS:-fuzz/artifacts}"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo +nightly install cargo-fuzz --locked
fi

# -s none: no sanitizer (the code under test is safe Rust; libpython and
# aws-lc would need instrumented builds of their own); -a: debug assertions
# and overflow checks on, so an arithmetic overflow is a crash.
profile="${COVET_FUZZ_PROFILE:-dev}"
# No incremental cache: the fuzz targets are built once per CI run, and the
# cache (10 GB after a few weeks of runs) only fills the disk.
export CARGO_INCREMENTAL=0
case "$profile" in
  dev) build=(-s none --dev --target-dir "$target_dir"); out=debug ;;
  release) build=(-s none -a --target-dir "$target_dir"); out=release ;;
  *) echo "COVET_FUZZ_PROFILE must be dev or release, not '$profile'" >&2; exit 2 ;;
esac
cargo +nightly fuzz build "${build[@]}"
bin_dir="$target_dir/$(rustc +nightly -vV | sed -n 's/^host: //p')/$out"
# The Python targets (asgi_scope) link $PYO3_PYTHON's libpython without an
# rpath (cargo-fuzz builds them, not covet's build script): point the loader
# at it, since a pyenv build is not in the system's library path.
libdir="$("$PYO3_PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')"
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
for target in $(cargo +nightly fuzz list); do
  mkdir -p "$artifacts/$target" "$scratch/$target"
  echo "fuzz-smoke: $target (corpus fuzz/corpus/$target, then ${seconds}s)"
  # New inputs go to the scratch dir (listed first); the repo's corpus is only read.
  if ! "$bin_dir/$target" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 \
      -artifact_prefix="$artifacts/$target/" -print_final_stats=1 \
      "$scratch/$target" "fuzz/corpus/$target" >"$scratch/$target.log" 2>&1; then
    tail -n 40 "$scratch/$target.log"
    failed+=("$target")
  else
    grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$scratch/$target.log" | tr '\n' ' '
    echo
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz-smoke: FAILED: ${failed[*]} (inputs in $artifacts/)" >&2
  exit 1
fi
echo "fuzz-smoke: every target ran clean"
