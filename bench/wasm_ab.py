#!/usr/bin/env python3
"""A/B of two covet builds on the no-op WASM filter: CPU µs per request of
/native-filter, /wasm-filter (fresh instance) and /wasm-filter-reused, in
interleaved rounds (A B, B A, ...) so that a shared VM's drift hits both;
median per build. Callgrind cannot run the WASM runtime (the pooling
allocator reserves terabytes of address space), hence CPU time from /proc.

    COVET_A=/path/covet-before COVET_B=/path/covet-after ROUNDS=4 DURATION=5 \
        python3 bench/wasm_ab.py

Needs the release libcovet_static_response.so / libcovet_headers.so and the
covet_wasm_noop.wasm component under $CARGO_TARGET_DIR (bench/wasm.sh builds
them); run with `source scripts/env.sh`."""
import os, sys, statistics, tempfile
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from harness import Server, measure

T = os.environ["CARGO_TARGET_DIR"]
R, W = os.path.join(T, "release"), os.path.join(T, "wasm32-wasip2", "release")
MANIFEST = f"""
listen: [{{ addr: 127.0.0.1:0 }}]
log: {{ access: false }}
plugins:
  static: {{ kind: native, path: {R}/libcovet_static_response.so, config: {{ body: "ok" }} }}
  native-noop: {{ kind: native, path: {R}/libcovet_headers.so, config: {{ request: {{ remove: [x-absent] }} }} }}
  wasm-noop: {{ kind: wasm, path: {W}/covet_wasm_noop.wasm }}
  wasm-noop-reused: {{ kind: wasm, path: {W}/covet_wasm_noop.wasm, instances: reused }}
routes:
  - {{ path: /native-filter, filters: [native-noop], handler: static }}
  - {{ path: /wasm-filter, filters: [wasm-noop], handler: static }}
  - {{ path: /wasm-filter-reused, filters: [wasm-noop-reused], handler: static }}
"""
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SECONDS = int(os.environ.get("DURATION", "5"))
routes = ["/native-filter", "/wasm-filter", "/wasm-filter-reused"]
BIN = {"A": os.environ["COVET_A"], "B": os.environ["COVET_B"]}
res = {b: {r: [] for r in routes} for b in BIN}
with tempfile.TemporaryDirectory() as work:
    path = os.path.join(work, "m.yaml")
    open(path, "w").write(MANIFEST)
    for i in range(ROUNDS):
        for b in (["A", "B"] if i % 2 == 0 else ["B", "A"]):
            s = Server([BIN[b], "host", "--plugins", path], env={"COVET_LOG": "warn", "COVET_ADMIN_LISTEN": "off"})
            s.wait_200("/native-filter")
            for r in routes:
                m = measure(s, r, SECONDS, 1, 50, 1)
                res[b][r].append(m["cpu_us"])
                print(f"round {i} {b} {r:<20} {m['cpu_us']:7.2f} us cpu/req  {m['rps']:8.0f} rps", flush=True)
            s.proc.terminate(); s.proc.wait(timeout=10)
print()
for b in BIN:
    med = {r: statistics.median(res[b][r]) for r in routes}
    print(f"{b} ({BIN[b]}) native {med['/native-filter']:.2f}  wasm fresh {med['/wasm-filter']:.2f} (+{med['/wasm-filter']-med['/native-filter']:.2f})"
          f"  wasm reused {med['/wasm-filter-reused']:.2f} (+{med['/wasm-filter-reused']-med['/native-filter']:.2f}) us cpu/req (median of {ROUNDS})")
