#!/usr/bin/env python3
"""io_uring runtime comparison (docs/io.md, "Alternatives measured"): the same
hyper 1 HTTP/1.1 hello server on tokio epoll, tokio-uring (covet's adapter),
monoio (poll-io and owned-buffer paths) and compio, one thread each, at 50 and
1,000 connections. Server on CPU 0, wrk -t1 on CPU 1, warm-up, median of RUNS
runs, CPU µs per request from /proc/PID/stat. Run via bench/uring-alt.sh."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import Server, measure  # noqa: E402

BINARY = os.path.join(os.environ["CARGO_TARGET_DIR"], "release", "uring-alt")
SECONDS = int(os.environ.get("DURATION", "8"))
RUNS = int(os.environ.get("RUNS", "3"))
WARMUP = int(os.environ.get("WARMUP", "3"))
CONNS = [int(c) for c in os.environ.get("CONNS", "50,1000").split(",")]
RUNTIMES = os.environ.get("RUNTIMES", "tokio-epoll,tokio-uring,monoio-poll,monoio-rent,compio").split(",")


def io_uring_fds(pid):
    fd_dir = f"/proc/{pid}/fd"
    return sum(1 for fd in os.listdir(fd_dir) if os.readlink(os.path.join(fd_dir, fd)) == "anon_inode:[io_uring]")


def main():
    print(f"uring-alt hello (hyper 1, HTTP/1.1), wrk -t1 -d{SECONDS}s, {RUNS} runs (median), warm-up {WARMUP}s; "
          f"server on CPU {os.environ.get('SERVER_CPU', '0')}, wrk on CPU {os.environ.get('CLIENT_CPU', '1')}")
    print(f"{'runtime':<12} {'conns':>6} {'rps':>10} {'p50 us':>9} {'p99 us':>9} {'cpu us':>8} {'vs epoll':>9}")
    for conns in CONNS:
        base = None
        for runtime in RUNTIMES:
            server = Server([BINARY, runtime])
            try:
                server.wait_200("/")
                rings = io_uring_fds(server.proc.pid)
                if (runtime != "tokio-epoll") != (rings > 0):
                    raise RuntimeError(f"{runtime}: {rings} io_uring fds")
                m = measure(server, "/", SECONDS, RUNS, conns, WARMUP)
            finally:
                server.stop()
            if runtime == "tokio-epoll":
                base = m["rps"]
            ratio = f"{m['rps'] / base:.2f}x" if base else "-"
            errs = f"  non-2xx {m['non2xx']}" if m["non2xx"] else ""
            print(f"{runtime:<12} {conns:>6} {m['rps']:>10.0f} {m['p50']:>9.0f} {m['p99']:>9.0f} "
                  f"{m['cpu_us']:>8.2f} {ratio:>9}{errs}", flush=True)


if __name__ == "__main__":
    main()
