#!/usr/bin/env bash
# The native-only covet (`cargo build -p covet --no-default-features`: no
# Python, no WASM runtime; what the container image's `COVET_FEATURES=native`
# builds, docs/fleet.md): builds it in the shared target dir, keeps a copy at
# $CARGO_TARGET_DIR/native-only/covet, and checks that it
#   1. does not link libpython (ldd) and contains no wasmtime code (nm);
#   2. serves a native route (static-response) and exits 0 on SIGTERM;
#   3. refuses `kind: python` and `kind: wasm` at `covet check` (exit 2) with
#      file:line:column and the missing cargo feature named.
#
# Cost: the covet crate is compiled again, and the first time also the part of
# its dependency tree whose features differ without wasmtime (tokio and what
# builds on it: about a minute on 2 cores); later runs reuse those. The build re-links target/debug/covet to the
# native-only binary; the binary that was there before is put back at the
# end (and any later `cargo build` re-links the default one anyway), so the
# end-to-end tests keep their full covet.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

target="${CARGO_TARGET_DIR:-target}"
work="$(mktemp -d)"
host_pid=""
cleanup() {
  [ -n "$host_pid" ] && kill "$host_pid" 2>/dev/null || true
  # --remove-destination: target/debug/covet is a hard link into deps/; writing
  # through it would overwrite cargo's own copy of the native-only build.
  [ -f "$work/covet.before" ] && cp -p --remove-destination "$work/covet.before" "$target/debug/covet"
  rm -rf "$work"
}
trap cleanup EXIT
[ -f "$target/debug/covet" ] && cp -p "$target/debug/covet" "$work/covet.before"
cargo build -p covet --no-default-features --locked
mkdir -p "$target/native-only"
cp --remove-destination "$target/debug/covet" "$target/native-only/covet"
bin="$target/native-only/covet"
static_so="$target/debug/libcovet_static_response.so"
fail() { echo "native-only: FAIL: $*" >&2; exit 1; }

# 1. What it links and contains.
if ldd "$bin" | grep -qi libpython; then fail "$bin links libpython: $(ldd "$bin" | grep -i libpython)"; fi
if nm "$bin" | grep -q wasmtime; then fail "$bin contains wasmtime symbols"; fi
echo "native-only: no libpython, no wasmtime ($(du -h "$bin" | cut -f1))"

# 2. It serves a native route (the static-response plugin, from `cargo build --workspace`,
# which test.sh runs first: building it alone here could resolve other features and rebuild deps).
[ -f "$static_so" ] || fail "$static_so is missing: run \`cargo build --workspace\` first"
cat > "$work/native.yaml" <<EOF
listen:
  - addr: 127.0.0.1:0
plugins:
  hello:
    kind: native
    path: $static_so
    config: { body: "native only\n" }
routes:
  - path: /hello
    handler: hello
EOF
"$bin" check -p "$work/native.yaml" >/dev/null || fail "covet check refused the native manifest"
COVET_ADMIN_LISTEN=127.0.0.1:0 "$bin" host -p "$work/native.yaml" >"$work/host.out" 2>"$work/host.log" &
host_pid=$!
addr=""
for _ in $(seq 1 200); do
  addr="$(grep -o '^listening on http://[0-9.:]*' "$work/host.out" | head -1 | sed 's|.*http://||')" || true
  [ -n "$addr" ] && break
  kill -0 "$host_pid" 2>/dev/null || fail "the host exited: $(cat "$work/host.log")"
  sleep 0.05
done
[ -n "$addr" ] || fail "no listening line: $(cat "$work/host.log")"
body="$(curl -fsS "http://$addr/hello")" || fail "GET /hello failed: $(cat "$work/host.log")"
[ "$body" = "native only" ] || fail "GET /hello answered '$body'"
kill -TERM "$host_pid"
wait "$host_pid" || fail "the host did not exit 0 on SIGTERM: $(cat "$work/host.log")"
host_pid=""
echo "native-only: served GET /hello, stopped on SIGTERM"

# 3. A python or wasm plugin is refused, naming the feature, with the line.
touch "$work/app.py" "$work/plugin.wasm"
cat > "$work/python.yaml" <<EOF
listen:
  - addr: 127.0.0.1:0
plugins:
  app:
    kind: python
    app: app.py:app
  filter:
    kind: wasm
    path: plugin.wasm
routes:
  - path: /
    filters: [filter]
    handler: app
EOF
set +e
"$bin" check -p "$work/python.yaml" >"$work/check.out" 2>&1
rc=$?
set -e
out="$(cat "$work/check.out")"
[ "$rc" -eq 2 ] || fail "covet check exited $rc (want 2): $out"
grep -q 'built without the `python` cargo feature' <<<"$out" || fail "no python feature message: $out"
grep -q 'built without the `wasm` cargo feature' <<<"$out" || fail "no wasm feature message: $out"
grep -q 'python.yaml:5:11' <<<"$out" || fail "the python refusal has no file:line:column: $out"
grep -q 'python.yaml:8:11' <<<"$out" || fail "the wasm refusal has no file:line:column: $out"
grep -q 'features python' <<<"$out" || fail "no help naming --features python: $out"
echo "native-only: kind: python and kind: wasm refused at check, with the feature named"
set +e
"$bin" host -p "$work/python.yaml" >"$work/host.out" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "covet host started on a python plugin"
grep -q 'built without the `python` cargo feature' "$work/host.out" || fail "covet host: no python feature message: $(cat "$work/host.out")"
echo "native-only: covet host refuses it too (exit $rc)"
