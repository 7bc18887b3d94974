#!/usr/bin/env python3
"""I/O backend benchmark: covet + static-response on epoll (tokio) vs io_uring
(`COVET_IO=uring`), HTTP/1.1, at 50 and 1,000 connections. Server on CPU 0
(so one runtime thread for io_uring), wrk -t1 on CPU 1, warm-up, median of
RUNS runs, CPU µs per request from /proc/PID/stat. Run via bench/io.sh."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import Server, measure  # noqa: E402

RELEASE = os.path.join(os.environ["CARGO_TARGET_DIR"], "release")
SECONDS = int(os.environ.get("DURATION", "8"))
RUNS = int(os.environ.get("RUNS", "3"))
WARMUP = int(os.environ.get("WARMUP", "3"))
CONNS = [int(c) for c in os.environ.get("CONNS", "50,1000").split(",")]


def manifest():
    lib = os.path.join(RELEASE, "libcovet_static_response.so")
    return f"""
listen: [{{ addr: 127.0.0.1:0 }}]
log: {{ access: false }}
plugins:
  hello: {{ kind: native, path: {lib}, config: {{ body: "hello" }} }}
routes:
  - {{ path: /, methods: [GET], handler: hello }}
"""


def io_uring_fds(pid):
    """How many of the process's fds are io_uring instances (proves the backend)."""
    fd_dir = f"/proc/{pid}/fd"
    links = (os.readlink(os.path.join(fd_dir, fd)) for fd in os.listdir(fd_dir))
    return sum(1 for link in links if link == "anon_inode:[io_uring]")


def covet(path, backend):
    server = Server([os.path.join(RELEASE, "covet"), "host", "--plugins", path],
                    env={"COVET_IO": backend, "COVET_LOG": "warn"})
    server.wait_200("/")
    rings = io_uring_fds(server.proc.pid)
    if (backend == "uring") != (rings > 0):
        server.stop()
        raise RuntimeError(f"asked for {backend}, but the host holds {rings} io_uring fds")
    return server


def main():
    print(f"covet + static-response, HTTP/1.1, wrk -t1 -d{SECONDS}s, {RUNS} runs (median), warm-up {WARMUP}s; "
          f"server on CPU {os.environ.get('SERVER_CPU', '0')}, wrk on CPU {os.environ.get('CLIENT_CPU', '1')}")
    print(f"{'backend':<8} {'conns':>6} {'rps':>10} {'p50 us':>9} {'p99 us':>9} {'cpu us':>8} {'vs epoll':>9}")
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "static.yaml")
        with open(path, "w") as f:
            f.write(manifest())
        for conns in CONNS:
            base = None
            for backend in ("epoll", "uring"):
                server = covet(path, backend)
                m = measure(server, "/", SECONDS, RUNS, conns, WARMUP)
                server.stop()
                base = base or m
                ratio = m["rps"] / base["rps"]
                print(f"{backend:<8} {conns:>6} {m['rps']:>10.0f} {m['p50']:>9.0f} {m['p99']:>9.0f} "
                      f"{m['cpu_us']:>8.2f} {ratio:>9.3f}"
                      f"{'  non2xx=' + str(m['non2xx']) if m['non2xx'] else ''}", flush=True)


if __name__ == "__main__":
    main()
