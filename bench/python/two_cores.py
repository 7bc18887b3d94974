#!/usr/bin/env python3
"""Python on two cores (bench/README.md "Two cores"): the server may run on
CPUs 0-1 and so may wrk (this VM has no third core). covet with one process
(one interpreter, its default I/O workers: one per allowed core) and with
`processes: 2` (two interpreters, one I/O worker each), Granian with `--workers 2` in its
fastest one-core configuration (uvloop, st, rust tasks; the rust task
implementation wants CPython 3.11, so its venv is GRANIAN_VENV, default
.venv-3.11). Run after bench/python.sh's build: DURATION RUNS WARMUP as there."""
import os
import sys
import tempfile

os.environ.setdefault("SERVER_CPU", "0,1")
os.environ.setdefault("CLIENT_CPU", "0,1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402

GRANIAN_VENV = os.path.join(R.ROOT, os.environ.get("GRANIAN_VENV", ".venv-3.11"))
FLAGS = ["--loop", "uvloop", "--runtime-mode", "st", "--task-impl", "rust"]


def granian_two_workers(module="hello_asgi:app", cwd=R.HERE, ready="/"):
    return R.Peer([os.path.join(GRANIAN_VENV, "bin", "granian"), "--interface", "asgi", "--host", "127.0.0.1",
                   "--port", "{port}", "--workers", "2", "--runtime-threads", "1", "--no-ws", "--log-level", "warning",
                   *FLAGS, module], cwd, ready)


APPS = [("raw ASGI", "/raw"), ("decorator API, async", "/deco"), ("decorator API, sync", "/deco-sync"),
        ("FastAPI /hello", "/hello")]


def main():
    results = {}
    if os.environ.get("GRANIAN", "1") != "0":
        R.run_peer(results, "granian raw ASGI, 2 workers", granian_two_workers, "/")
        R.run_peer(results, "granian FastAPI /hello, 2 workers",
                   lambda: granian_two_workers("main:app", R.FASTAPI_DIR, "/hello"), "/hello")
    # One process (one interpreter, two I/O workers), then `processes: 2`
    # (two interpreters, one I/O worker each). PROCESSES=1 with SERVER_CPU=0
    # CLIENT_CPU=1 GRANIAN=0 gives the one-core figure the scaling is judged by.
    for processes in [int(p) for p in os.environ.get("PROCESSES", "1,2").split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            server = R.covet(tmp, processes=processes)
            try:
                for name, path in APPS:
                    results[f"covet {name}, processes: {processes}"] = R.bench(server, path)
            finally:
                server.stop()
    print("| server / app | RPS | p99 µs | CPU µs/req | switches/req |\n|---|---|---|---|---|")
    for name, m in results.items():
        print(f"| {name} | {m['rps']:,.0f} | {m['p99']:,.0f} | {m['cpu_us']:.1f} | {m['switches']:.2f} |")


if __name__ == "__main__":
    main()
