#!/usr/bin/env python3
"""WASM benchmark, one covet process for the covet rows (same run, same binary):

1. filter cost: native static-response behind a no-op native filter (`headers`
   removing a header the request does not have) vs behind the no-op WASM filter (fresh instance per
   call from the snapshot taken after `init`, the default), with `instances:
   fresh-init` (init in every instance), built without std (`wasm-plugins/lean`:
   no WASI imports), and with `instances: reused`; the
   µs a WASM filter adds per request, from CPU time per request under load
   and from the median latency of one connection;
2. handler: the no-op WASM handler (fresh, fresh without WASI, reused) vs native static-response;
3. wasi:http: the hello-http component under covet (fresh instance per request
   like `wasmtime serve`, and reused) vs under `wasmtime serve`.

Run via bench/wasm.sh."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import SERVER_CPU, Server, measure  # noqa: E402

TARGET = os.environ["CARGO_TARGET_DIR"]
RELEASE = os.path.join(TARGET, "release")
WASM = os.path.join(TARGET, "wasm32-wasip2", "release")
SECONDS = int(os.environ.get("DURATION", "8"))
RUNS = int(os.environ.get("RUNS", "3"))
CONNS = int(os.environ.get("CONNS", "50"))
WARMUP = int(os.environ.get("WARMUP", "2"))


def lib(name):
    return os.path.join(RELEASE, f"lib{name}.so")


def component(name):
    return os.path.join(WASM, f"{name}.wasm")


MANIFEST = f"""
listen: [{{ addr: 127.0.0.1:0 }}]
log: {{ access: false }}
plugins:
  static: {{ kind: native, path: {lib('covet_static_response')}, config: {{ body: "ok" }} }}
  native-noop: {{ kind: native, path: {lib('covet_headers')}, config: {{ request: {{ remove: [x-absent] }} }} }}
  wasm-noop: {{ kind: wasm, path: {component('covet_wasm_noop')} }}
  wasm-noop-reused: {{ kind: wasm, path: {component('covet_wasm_noop')}, instances: reused }}
  wasm-noop-init: {{ kind: wasm, path: {component('covet_wasm_noop')}, instances: fresh-init }}
  wasm-noop-lean: {{ kind: wasm, path: {component('covet_wasm_noop_lean')} }}
  hello: {{ kind: wasm, path: {component('hello_http')} }}
  hello-reused: {{ kind: wasm, path: {component('hello_http')}, instances: reused }}
routes:
  - {{ path: /static, handler: static }}
  - {{ path: /native-filter, filters: [native-noop], handler: static }}
  - {{ path: /wasm-filter, filters: [wasm-noop], handler: static }}
  - {{ path: /wasm-filter-reused, filters: [wasm-noop-reused], handler: static }}
  - {{ path: /wasm-filter-init, filters: [wasm-noop-init], handler: static }}
  - {{ path: /wasm-filter-lean, filters: [wasm-noop-lean], handler: static }}
  - {{ path: /wasm-handler, handler: wasm-noop }}
  - {{ path: /wasm-handler-reused, handler: wasm-noop-reused }}
  - {{ path: /wasm-handler-lean, handler: wasm-noop-lean }}
  - {{ path: /hello, handler: hello }}
  - {{ path: /hello-reused, handler: hello-reused }}
"""


class WasmtimeServe:
    """`wasmtime serve` on a free port, pinned like covet (`-Scli`: a Rust std
    component imports wasi:cli/environment, outside the bare proxy world)."""

    def __init__(self, wasm):
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, "wasmtime", "serve", "-Scli", "--addr", "127.0.0.1:0", wasm],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        match = re.search(r"http://([\d.]+:\d+)", line)
        if not match:
            raise RuntimeError(f"wasmtime serve did not start: {line!r}")
        self.addr = match.group(1)
        self.version = subprocess.run(["wasmtime", "--version"], capture_output=True, text=True).stdout.strip()

    def url(self, path="/"):
        return f"http://{self.addr}{path}"

    cpu_seconds = Server.cpu_seconds

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def row(name, m, base=None):
    ratio = f"{m['rps'] / base['rps']:>7.3f}" if base else f"{'':>7}"
    print(f"{name:<40} {m['rps']:>9.0f} {m['p50']:>8.0f} {m['p99']:>8.0f} {m['cpu_us']:>8.2f} {ratio}"
          f"{'  non2xx=' + str(m['non2xx']) if m['non2xx'] else ''}", flush=True)


def header():
    print(f"{'':<40} {'rps':>9} {'p50 us':>8} {'p99 us':>8} {'cpu us':>8} {'ratio':>7}")


def main():
    print(f"wrk -t1 -c{CONNS} -d{SECONDS}s, {RUNS} runs (median), warm-up {WARMUP}s; "
          f"server on CPU {os.environ.get('SERVER_CPU', '0')}, wrk on CPU {os.environ.get('CLIENT_CPU', '1')}")
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "wasm.yaml")
        with open(path, "w") as f:
            f.write(MANIFEST)
        covet = Server([os.path.join(RELEASE, "covet"), "host", "--plugins", path],
                       env={"COVET_LOG": "warn", "COVET_ADMIN_LISTEN": "off"})
        covet.wait_200("/static")
        time.sleep(3)  # the snapshots after init are taken in the background (~0.2 s each here)
        m = {}
        print("\n1. a no-op filter in front of static-response")
        header()
        filters = ["/native-filter", "/wasm-filter", "/wasm-filter-init", "/wasm-filter-lean", "/wasm-filter-reused"]
        for route in filters:
            m[route] = measure(covet, route, SECONDS, RUNS, CONNS, WARMUP)
            row(route, m[route], m["/native-filter"])
        one = {r: measure(covet, r, SECONDS, RUNS, 1, 1) for r in filters}
        modes = [("fresh instance", "/wasm-filter"), ("fresh, init per instance", "/wasm-filter-init"),
                 ("fresh, guest without WASI", "/wasm-filter-lean"), ("reused instance", "/wasm-filter-reused")]
        for mode, route in modes:
            cpu = m[route]["cpu_us"] - m["/native-filter"]["cpu_us"]
            p50 = one[route]["p50"] - one["/native-filter"]["p50"]
            print(f"   WASM filter, {mode}: +{cpu:.1f} µs CPU per request (c={CONNS}), +{p50:.0f} µs p50 at c=1")

        print("\n2. the handler")
        header()
        for route in ["/static", "/wasm-handler", "/wasm-handler-lean", "/wasm-handler-reused"]:
            m[route] = measure(covet, route, SECONDS, RUNS, CONNS, WARMUP)
            row(route, m[route], m["/static"])

        print("\n3. the hello-http wasi:http component")
        header()
        for route in ["/hello", "/hello-reused"]:
            m[route] = measure(covet, route, SECONDS, RUNS, CONNS, WARMUP)
        covet.stop()
        ws = None
        if shutil.which("wasmtime"):
            serve = WasmtimeServe(component("hello_http"))
            time.sleep(0.2)
            ws = measure(serve, "/hello", SECONDS, RUNS, CONNS, WARMUP)
            serve.stop()
            row(f"{serve.version} serve (ratio 1)", ws, ws)
        else:
            print("   (wasmtime not installed: bench/wasm.sh installs it)")
        row("covet, fresh instance (the default)", m["/hello"], ws)
        row("covet, instances: reused", m["/hello-reused"], ws)


if __name__ == "__main__":
    main()
