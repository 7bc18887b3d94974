#!/usr/bin/env python3
"""Python benchmark (run via bench/python.sh): the same apps under covet,
Granian and uvicorn, in one run, each server pinned to CPU 0 (one core, one
process: Granian `--workers 1 --runtime-threads 1`, uvicorn one worker with
uvloop and httptools, covet one process whose Python pool has one thread),
wrk pinned to CPU 1.

Granian is measured in several configurations (event loop uvloop or
asyncio, runtime mode st or mt, task implementation asyncio or rust) on the
raw ASGI app; the fastest is the baseline of every ratio and serves FastAPI.

1. raw ASGI hello (bench/python/hello_asgi.py): covet `asgi:` vs Granian vs uvicorn;
2. decorator-API hello (bench/python/hello_covet.py) under covet vs Granian's raw ASGI;
3. the FastAPI example (python-plugins/fastapi_app, GET /hello and GET /items/1): covet vs Granian vs uvicorn.

Prints RPS, p50, p99, server CPU µs per request (the process tree's
utime+stime over the run ÷ requests), context switches per request (the
tree's voluntary + involuntary, from /proc), and the ratios the issue targets."""
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "lib"))
import statistics  # noqa: E402

from harness import CLK_TCK, SERVER_CPU, Server, wrk  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.path.join(ROOT, ".venv")
BIN = os.path.join(VENV, "bin")
# More venvs (colon-separated, e.g. `.venv-3.11` while covet is built for
# 3.12) whose Granian is measured too: the baseline is Granian's fastest
# configuration across every interpreter tried (its rust task implementation
# exists only before 3.12).
GRANIAN_VENVS = [VENV, *(os.path.join(ROOT, v) for v in os.environ.get("GRANIAN_VENVS", "").split(":") if v)]
COVET = os.path.join(os.environ["CARGO_TARGET_DIR"], "release", "covet")
HERE = os.path.join(ROOT, "bench", "python")
FASTAPI_DIR = os.path.join(ROOT, "python-plugins", "fastapi_app")
SECONDS = int(os.environ.get("DURATION", "8"))
RUNS = int(os.environ.get("RUNS", "3"))
CONNS = int(os.environ.get("CONNS", "50"))
WARMUP = int(os.environ.get("WARMUP", "2"))


def tree_cpu_seconds(pid):
    """utime+stime of `pid` and all its descendants (Granian forks a worker)."""
    total, stack = 0.0, [pid]
    while stack:
        p = stack.pop()
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
            for task in os.listdir(f"/proc/{p}/task"):
                stack.extend(int(c) for c in open(f"/proc/{p}/task/{task}/children").read().split())
        except FileNotFoundError:
            continue
    return total


def tree_switches(pid):
    """Context switches (voluntary + involuntary) of `pid`'s threads and descendants."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                for line in open(f"/proc/{p}/task/{task}/status"):
                    if "ctxt_switches:" in line:
                        total += int(line.split()[1])
                stack.extend(int(c) for c in open(f"/proc/{p}/task/{task}/children").read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def server_pid(server):
    return server.proc.pid


class Peer:
    """A Python server on a free port, pinned to SERVER_CPU; same interface as harness.Server."""

    def __init__(self, argv, cwd, ready_path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, *argv], cwd=cwd,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addr = f"127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if urllib.request.urlopen(self.url(ready_path), timeout=1).status == 200:
                    return
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{argv[0]} did not start")
                time.sleep(0.05)

    def url(self, path="/"):
        return f"http://{self.addr}{path}"

    def cpu_seconds(self):
        return tree_cpu_seconds(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# Granian configurations tried on the raw ASGI app: (label, extra flags).
GRANIAN_CONFIGS = [
    ("uvloop st", ["--loop", "uvloop", "--runtime-mode", "st"]),
    ("uvloop mt", ["--loop", "uvloop", "--runtime-mode", "mt"]),
    ("asyncio st", ["--loop", "asyncio", "--runtime-mode", "st"]),
    ("uvloop st rust-task", ["--loop", "uvloop", "--runtime-mode", "st", "--task-impl", "rust"]),
]


def python_version(venv):
    out = subprocess.run([os.path.join(venv, "bin", "python"), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def granian(module, cwd, ready, flags=(), venv=VENV):
    return Peer([os.path.join(venv, "bin", "granian"), "--interface", "asgi", "--host", "127.0.0.1", "--port", "{port}",
                 "--workers", "1", "--runtime-threads", "1", "--no-ws", "--log-level", "warning", *flags, module],
                cwd, ready)


def uvicorn(module, cwd, ready):
    return Peer([os.path.join(BIN, "python"), "-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}",
                 "--workers", "1", "--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http", "httptools",
                 module], cwd, ready)


# More covet builds measured in the same run (e.g. one per Python version):
# `COVET_ALSO="LABEL=BINARY:VENV,..."`, each with the venv of its interpreter.
COVET_ALSO = [(label, *rest.split(":", 1)) for label, rest in
              (item.split("=", 1) for item in os.environ.get("COVET_ALSO", "").split(",") if item)]


def covet(tmp, binary=COVET, venv=VENV, processes=1):
    """covet on the bench apps; `processes` above 1 runs the supervisor and
    that many child hosts (its CPU is counted over the process tree)."""
    manifest = os.path.join(tmp, "plugins.yaml")
    with open(manifest, "w") as f:
        f.write(f"""
processes: {processes}
listen: [{{ addr: 127.0.0.1:0 }}]
log: {{ access: false }}
admin: {{ listen: "off" }}
python: {{ venv: {venv}, threads: 1 }}
plugins:
  raw: {{ kind: python, asgi: {HERE}/hello_asgi.py:app }}
  deco: {{ kind: python, app: {HERE}/hello_covet.py:app }}
  shop: {{ kind: python, asgi: {FASTAPI_DIR}/main.py:app }}
routes:
  - {{ path: /raw, handler: raw }}
  - {{ path: /deco, handler: deco }}
  - {{ path: /deco-sync, handler: deco }}
  - {{ path: "/{{*rest}}", handler: shop }}
""")
    env = {"COVET_ADMIN_LISTEN": "off"}
    server = Server([binary, "host", "--plugins", manifest], env=env)
    server.wait_200("/raw")
    server.cpu_seconds = lambda: tree_cpu_seconds(server.proc.pid)
    return server


def row(name, m, base=None):
    ratio = f"{m['rps'] / base['rps']:.2f}" if base else "1.00"
    errors = f"  non-2xx={m['non2xx']}" if m["non2xx"] else ""
    print(f"| {name:<44} | {m['rps']:>9,.0f} | {m['p50']:>7,.0f} | {m['p99']:>7,.0f} | {m['cpu_us']:>6.1f} "
          f"| {m['switches']:>5.2f} | {ratio:>5} |{errors}", flush=True)


def bench(server, path):
    """Warm up, then RUNS runs: the median of each figure, with CPU µs and
    context switches per request."""
    wrk(server.url(path), WARMUP, CONNS)
    results = []
    for _ in range(RUNS):
        cpu0, sw0 = server.cpu_seconds(), tree_switches(server_pid(server))
        r = wrk(server.url(path), SECONDS, CONNS)
        n = max(r["requests"], 1)
        r["cpu_us"] = (server.cpu_seconds() - cpu0) * 1e6 / n
        r["switches"] = (tree_switches(server_pid(server)) - sw0) / n
        results.append(r)
    median = {k: statistics.median(r[k] for r in results) for k in ["rps", "p50", "p99", "cpu_us", "switches"]}
    median["non2xx"] = sum(r["non2xx"] for r in results)
    return median


def run_peer(results, name, start, path):
    server = start()
    try:
        results[name] = bench(server, path)
    finally:
        server.stop()


def main():
    print(f"wrk -t1 -c{CONNS}, {RUNS}×{SECONDS}s (median), servers on CPU {SERVER_CPU}\n")
    print(f"covet embeds Python {python_version(VENV)}\n")
    results = {}
    configs = [(venv, f"py{python_version(venv)} {label}", flags) for venv in GRANIAN_VENVS for label, flags in GRANIAN_CONFIGS]
    for venv, label, flags in configs:
        try:
            run_peer(results, f"granian raw ASGI ({label})", lambda: granian("hello_asgi:app", HERE, "/", flags, venv), "/")
        except RuntimeError as e:
            print(f"granian {label}: {e} (not measured)", flush=True)
    configs = [c for c in configs if f"granian raw ASGI ({c[1]})" in results]
    best_venv, best_label, best_flags = max(configs, key=lambda c: results[f"granian raw ASGI ({c[1]})"]["rps"])
    for name, start, path in [
        ("uvicorn raw ASGI", lambda: uvicorn("hello_asgi:app", HERE, "/"), "/"),
        ("granian FastAPI /hello", lambda: granian("main:app", FASTAPI_DIR, "/hello", best_flags, best_venv), "/hello"),
        ("uvicorn FastAPI /hello", lambda: uvicorn("main:app", FASTAPI_DIR, "/hello"), "/hello"),
        ("granian FastAPI /items/1", lambda: granian("main:app", FASTAPI_DIR, "/items/1", best_flags, best_venv), "/items/1"),
        ("uvicorn FastAPI /items/1", lambda: uvicorn("main:app", FASTAPI_DIR, "/items/1"), "/items/1"),
    ]:
        run_peer(results, name, start, path)
    covets = [("covet", COVET, VENV)] + [(f"covet {label}", binary, venv) for label, binary, venv in COVET_ALSO]
    for prefix, binary, venv in covets:
        with tempfile.TemporaryDirectory() as tmp:
            server = covet(tmp, binary, venv)
            try:
                for name, path in [("raw ASGI", "/raw"), ("decorator API (async)", "/deco"),
                                   ("decorator API (sync)", "/deco-sync"), ("FastAPI /hello", "/hello"),
                                   ("FastAPI /items/1", "/items/1")]:
                    results[f"{prefix} {name}"] = bench(server, path)
            finally:
                server.stop()
    print("| server / app | RPS | p50 µs | p99 µs | CPU µs/req | switches/req | ratio |")
    print("|---|---|---|---|---|---|---|")
    base = results[f"granian raw ASGI ({best_label})"]
    granians = [f"granian raw ASGI ({label})" for _, label, _ in configs]
    mine = [prefix for prefix, _, _ in covets]
    for name in [*granians, "uvicorn raw ASGI", *(f"{c} {app}" for c in mine
                                                  for app in ["raw ASGI", "decorator API (async)", "decorator API (sync)"])]:
        row(name, results[name], base)
    for path in ["/hello", "/items/1"]:
        fbase = results[f"granian FastAPI {path}"]
        for server in ["granian", "uvicorn", *mine]:
            row(f"{server} FastAPI {path}", results[f"{server} FastAPI {path}"], fbase)
    print(f"\nratios are RPS ÷ Granian's on the same app, Granian in its fastest configuration here ({best_label}).")
    print("targets: decorator ≥ 1.5× Granian raw ASGI; covet raw ASGI ≥ 1.2×; FastAPI ≥ 1.0×.")


if __name__ == "__main__":
    main()
