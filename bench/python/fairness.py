#!/usr/bin/env python3
"""Worker 0's fairness under a Python load (bench/README.md "Two cores"):
one covet process with two I/O workers (the default on two cores) serving
the FastAPI example and a native static route, server and wrk unpinned on
CPUs 0-1 as a default install runs. wrk drives FastAPI GET /hello while a
probe sends GET /static, one request per fresh connection (so the kernel
spreads them over both workers), every 10 ms. Prints wrk's RPS and p99
and the probe's p50/p99/max per run.

Worker 0 drives the asyncio loop and serves its own connections; before
the driver yielded between turns, worker 1's steady feed of Python jobs
starved those connections (FastAPI p99 ~1 s, native probe max ~2.9 s).

Usage: python3 bench/python/fairness.py [COVET_BINARY ...] (default: the
release build; several binaries are measured in turn, e.g. a build of the
parent commit and this one). DURATION (8) RUNS (3) CONNS (50) PROBES (300)."""
import os
import socket
import sys
import tempfile
import threading
import time

os.environ.setdefault("SERVER_CPU", "0,1")
os.environ.setdefault("CLIENT_CPU", "0,1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402
from harness import Server, wrk  # noqa: E402

SECONDS = int(os.environ.get("DURATION", "8"))
RUNS = int(os.environ.get("RUNS", "3"))
CONNS = int(os.environ.get("CONNS", "50"))
PROBES = int(os.environ.get("PROBES", "300"))
STATIC = os.path.join(os.environ["CARGO_TARGET_DIR"], "release", "libcovet_static_response.so")


def start(tmp, binary):
    manifest = os.path.join(tmp, "plugins.yaml")
    with open(manifest, "w") as f:
        f.write(f"""
listen: [{{ addr: 127.0.0.1:0 }}]
workers: 2
log: {{ access: false }}
admin: {{ listen: "off" }}
python: {{ venv: {R.VENV}, threads: 1 }}
plugins:
  shop: {{ kind: python, asgi: {R.FASTAPI_DIR}/main.py:app }}
  st: {{ kind: native, path: {STATIC}, config: {{ body: "ok\\n" }} }}
routes:
  - {{ path: /static, handler: st }}
  - {{ path: "/{{*rest}}", handler: shop }}
""")
    server = Server([binary, "host", "--plugins", manifest], env={"COVET_ADMIN_LISTEN": "off"})
    server.wait_200("/hello")
    server.wait_200("/static")
    return server


def probe(addr, n, out):
    """`n` GET /static on fresh connections, 10 ms apart; latencies in ms into `out`."""
    host, port = addr.rsplit(":", 1)
    for _ in range(n):
        began = time.monotonic()
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"GET /static HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
            while s.recv(65536):
                pass
        out.append((time.monotonic() - began) * 1000)
        time.sleep(0.01)


def measure(binary):
    with tempfile.TemporaryDirectory() as tmp:
        server = start(tmp, binary)
        try:
            wrk(server.url("/hello"), 2, CONNS)
            for _ in range(RUNS):
                lat = []
                prober = threading.Thread(target=probe, args=(server.addr, PROBES, lat))
                prober.start()
                r = wrk(server.url("/hello"), SECONDS, CONNS)
                prober.join()
                lat.sort()
                print(f"| {binary} "
                      f"| {r['rps']:,.0f} | {r['p99'] / 1000:,.1f} | {lat[len(lat) // 2]:.1f} "
                      f"| {lat[int(len(lat) * 0.99)]:.1f} | {lat[-1]:.1f} |", flush=True)
        finally:
            server.stop()


def main():
    binaries = sys.argv[1:] or [R.COVET]
    print("| covet | FastAPI RPS | FastAPI p99 ms | /static p50 ms | /static p99 ms | /static max ms |")
    print("|---|---|---|---|---|---|")
    for binary in binaries:
        measure(binary)


if __name__ == "__main__":
    main()
