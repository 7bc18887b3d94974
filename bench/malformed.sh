#!/usr/bin/env bash
# The malformed-HTTP/1.1 matrix (issue 19, docs/http1-errors.md): starts covet
# (epoll and io_uring, an echo-like route at / that reads the body), bare
# hyper (bench/hello-hyper) and nginx when installed, sends every case of
# bench/malformed.py to each and prints the status each answered.
#   BEFORE=/path/to/old/covet  adds a column for another covet build, run
#                              with no route (an old build refuses today's
#                              plugin ABI), so body cases answer 404 there
#   MARKDOWN=1                 prints a Markdown table
# Install nginx with: apt-get install -y nginx-light
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build -q -p covet -p hello-hyper -p covet-static-response
BIN="$CARGO_TARGET_DIR/debug"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

cat >"$WORK/covet.yaml" <<EOF
listen: [{ addr: 127.0.0.1:0 }]
admin: { listen: "off" }
plugins:
  hello: { kind: native, path: $BIN/libcovet_static_response.so, config: { body: "hello" } }
routes:
  - { path: /, methods: [GET, POST], handler: hello }
EOF

# start NAME CMD...: runs CMD, waits for its `listening on http://ADDR` line.
start() {
  local name=$1; shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PIDS+=($!)
  for _ in $(seq 100); do
    addr=$(sed -n 's#^listening on http://##p' "$WORK/$name.out" | head -1)
    [ -n "$addr" ] && { COLUMNS+=("$name=$addr"); return; }
    sleep 0.1
  done
  echo "$name did not start: $(cat "$WORK/$name.err")" >&2; exit 1
}

COLUMNS=()
printf 'listen: [{ addr: 127.0.0.1:0 }]\nadmin: { listen: "off" }\n' >"$WORK/bare.yaml"
if [ -n "${BEFORE:-}" ]; then start before env COVET_IO=epoll "$BEFORE" host --plugins "$WORK/bare.yaml"; fi
start covet env COVET_IO=epoll "$BIN/covet" host --plugins "$WORK/covet.yaml"
start covet-uring env COVET_IO=uring "$BIN/covet" host --plugins "$WORK/covet.yaml"
start hyper "$BIN/hello-hyper"
if command -v nginx >/dev/null; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$WORK/nginx"
  cat >"$WORK/nginx.conf" <<EOF
daemon off; worker_processes 1; pid $WORK/nginx/pid; error_log $WORK/nginx/error.log;
events {}
http { access_log off; client_body_temp_path $WORK/nginx;
  server { listen 127.0.0.1:$port; location / { return 200 "hello"; } } }
EOF
  nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" &
  PIDS+=($!)
  sleep 0.5
  COLUMNS+=("nginx=127.0.0.1:$port")
fi
exec_args=("${COLUMNS[@]}")
[ -n "${MARKDOWN:-}" ] && exec_args=(--markdown "${exec_args[@]}")
python3 bench/malformed.py "${exec_args[@]}"
