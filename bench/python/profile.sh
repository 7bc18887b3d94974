#!/usr/bin/env bash
# perf profile of covet serving one Python route of bench/python under wrk
# load (server on CPU 0, wrk on CPU 1): samples by thread, by DSO, by symbol.
# Usage: bash bench/python/profile.sh [/raw|/deco|/deco-sync]. Needs perf and
# a release build (bench/python.sh makes one).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
source scripts/env.sh
OUT=$(mktemp -d)
path=${1:-/raw}
cat > $OUT/m.yaml <<YAML
listen: [{ addr: 127.0.0.1:0 }]
log: { access: false }
python: { venv: $ROOT/.venv, threads: 1 }
plugins:
  raw: { kind: python, asgi: $ROOT/bench/python/hello_asgi.py:app }
  deco: { kind: python, app: $ROOT/bench/python/hello_covet.py:app }
routes:
  - { path: /raw, handler: raw }
  - { path: /deco, handler: deco }
  - { path: /deco-sync, handler: deco }
YAML
COVET_ADMIN_LISTEN=off taskset -c 0 $CARGO_TARGET_DIR/release/covet host --plugins $OUT/m.yaml > $OUT/out.txt 2>$OUT/err.txt &
pid=$!
sleep 1.5
addr=$(sed -n 's/listening on http:\/\///p' $OUT/out.txt | head -1)
taskset -c 1 wrk -t1 -c50 -d3s http://$addr$path > /dev/null
taskset -c 1 wrk -t1 -c50 -d12s http://$addr$path > $OUT/wrk.txt &
sleep 2
perf record -F 2000 -g -p $pid -o $OUT/perf.data -- sleep 8 2>/dev/null >/dev/null
cp $OUT/perf.data /tmp/last-perf.data 2>/dev/null || true
wait %2 || true
kill $pid; wait $pid || true
grep Requests/sec $OUT/wrk.txt
perf report -i $OUT/perf.data --no-children --sort dso -g none --stdio 2>/dev/null | grep -v "^#" | grep -v "^$" | head -12
perf report -i $OUT/perf.data --no-children --sort comm,dso -g none --stdio 2>/dev/null | grep -v "^#" | grep -v "^$" | head -8
perf report -i $OUT/perf.data --no-children --sort sym --stdio -g none 2>/dev/null | grep -v "^#" | grep -v "^$" | head -40
