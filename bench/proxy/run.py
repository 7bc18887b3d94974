#!/usr/bin/env python3
"""Proxy benchmark (run via bench/proxy.sh): covet's proxy plugin vs nginx
`proxy_pass` vs HAProxy vs a bare hyper proxy (bench/hello-hyper's
`hyper-proxy`: hyper's server and hyper-util's pooled client with nothing
else, the floor of a proxy built on hyper) in front of the same bare hyper
upstream.

Each proxy is pinned to SERVER_CPU (0) with one worker/thread; the load
generator and the upstream (bench/hello-hyper, one tokio worker) share
CLIENT_CPU (1). Two loads per proxy, RUNS runs of DURATION seconds each, the
median of each figure reported:

- saturating: wrk -t1 -cCONNS (closed loop) after a WARMUP-second warm-up;
- fixed rate: h2load --h1 -cCONNS at RATE requests/s in all (open loop, below
  every proxy's ceiling, so each does the same work; RATE=0 skips it).

Figures: RPS, p50, p99, and the proxy's CPU µs per request (utime + stime of
its whole process tree — nginx's master and worker — over the run ÷
requests), split into user and system time. A first row measures the
upstream alone (wrk straight at it): the ceiling of this load generator on
its core."""
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from harness import CLIENT_CPU, SERVER_CPU, ForegroundServer, Server, free_port, measure_split, render  # noqa: E402

RELEASE = os.path.join(os.environ["CARGO_TARGET_DIR"], "release")
SECONDS = int(os.environ.get("DURATION", "10"))
RUNS = int(os.environ.get("RUNS", "3"))
CONNS = int(os.environ.get("CONNS", "50"))
WARMUP = int(os.environ.get("WARMUP", "3"))
PATH = "/hello"
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
HAPROXY = os.environ.get("HAPROXY", "haproxy")
PROXIES = os.environ.get("PROXIES", "covet,nginx,haproxy,hyper").split(",")
RATE = int(os.environ.get("RATE", "10000"))


class Upstream(Server):
    """hello-hyper pinned to CLIENT_CPU, next to wrk (the proxy's core stays the proxy's)."""

    def __init__(self, binary):
        self.proc = subprocess.Popen(["taskset", "-c", CLIENT_CPU, binary], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on http://"):
            raise RuntimeError(f"hello-hyper did not start: {line!r}")
        self.addr = line.strip().removeprefix("listening on http://")


def measure(server, path):
    """Warm-up, then RUNS wrk runs: the median of each figure, CPU µs per request (user, system, total)."""
    return measure_split(server, path, SECONDS, RUNS, CONNS, WARMUP)


def paced(server, path, work):
    """RUNS h2load runs at a fixed RATE (h2load --h1, CONNS connections each sending RATE/CONNS per
    second, pinned to CLIENT_CPU): the medians of achieved RPS, p50 and p99 (from the per-request log)
    and CPU µs per request. Unlike wrk's closed loop, every proxy gets the same load, below its ceiling."""
    results = []
    log = os.path.join(work, "h2load.log")
    for _ in range(RUNS):
        if os.path.exists(log):
            os.remove(log)  # h2load appends
        user0, sys0 = server.cpu_times()
        argv = ["taskset", "-c", CLIENT_CPU, "h2load", "--h1", "-t1", f"-c{CONNS}", f"--rps={RATE / CONNS:g}",
                f"-D{SECONDS}", f"--log-file={log}", server.url(path)]
        subprocess.run(argv, capture_output=True, check=True)
        user1, sys1 = server.cpu_times()
        lines = [line.split("\t") for line in open(log).read().splitlines()]
        ok = sorted(int(f[2]) for f in lines if f[1].startswith("2"))
        n = max(len(ok), 1)
        results.append({"rps": len(ok) / SECONDS, "p50": ok[len(ok) // 2], "p99": ok[int(len(ok) * 0.99)],
                        "usr_us": (user1 - user0) * 1e6 / n, "sys_us": (sys1 - sys0) * 1e6 / n,
                        "non2xx": len(lines) - len(ok)})
        results[-1]["cpu_us"] = results[-1]["usr_us"] + results[-1]["sys_us"]
    median = {k: statistics.median(r[k] for r in results) for k in ["rps", "p50", "p99", "cpu_us", "usr_us", "sys_us"]}
    median["non2xx"] = sum(r["non2xx"] for r in results)
    return median


def start_covet(work, upstream):
    manifest = render(HERE, "covet.yaml", work, UPSTREAM=upstream, RELEASE=RELEASE)
    return Server([os.path.join(RELEASE, "covet"), "host", "--plugins", manifest],
                 env={"COVET_ADMIN_LISTEN": "off", "COVET_LOG": "warn"})


def start_hyper(work, upstream):
    """The bare hyper proxy (bench/hello-hyper/src/bin/hyper-proxy.rs): the floor of a hyper-based proxy."""
    return Server([os.path.join(RELEASE, "hyper-proxy"), upstream])


def start_nginx(work, upstream):
    port = free_port()
    conf = render(HERE, "nginx.conf", work, LISTEN=f"127.0.0.1:{port}", UPSTREAM=upstream, WORK=work)
    return ForegroundServer([NGINX, "-p", work, "-c", conf], port, os.path.join(work, "nginx.out"))


def start_haproxy(work, upstream):
    port = free_port()
    conf = render(HERE, "haproxy.cfg", work, LISTEN=f"127.0.0.1:{port}", UPSTREAM=upstream)
    return ForegroundServer([HAPROXY, "-db", "-f", conf], port, os.path.join(work, "haproxy.out"))


def check(server):
    """One request through the proxy must reach the upstream and answer its body."""
    out = subprocess.run(["curl", "-sS", "--max-time", "5", server.url(PATH)], capture_output=True, text=True)
    if out.stdout != "hello":
        raise RuntimeError(f"{server.url(PATH)} answered {out.stdout!r} {out.stderr!r}")


def row(name, m):
    print(f"{name:<22} {m['rps']:>9.0f} {m['p50']:>8.0f} {m['p99']:>8.0f} {m['cpu_us']:>8.2f} {m['usr_us']:>8.2f} "
          f"{m['sys_us']:>8.2f}"
          f"{'  non2xx=' + str(m['non2xx']) if m['non2xx'] else ''}", flush=True)


def main():
    print(f"proxy on CPU {SERVER_CPU} (1 worker/thread); the load generator and the upstream (hello-hyper, "
          f"1 tokio worker) on CPU {CLIENT_CPU}; {RUNS} runs of {SECONDS}s each (median), GET {PATH}")
    results, fixed = {}, {}
    with tempfile.TemporaryDirectory() as work:
        upstream = Upstream(os.path.join(RELEASE, "hello-hyper"))
        try:
            base = measure(upstream, PATH)
            for key, name, start in [("covet", "covet proxy", start_covet),
                                     ("nginx", "nginx proxy_pass", start_nginx),
                                     ("haproxy", "haproxy", start_haproxy),
                                     ("hyper", "bare hyper proxy", start_hyper)]:
                if key not in PROXIES:
                    continue
                server = start(work, upstream.addr)
                try:
                    check(server)
                    results[name] = measure(server, PATH)
                    if RATE:
                        fixed[name] = paced(server, PATH, work)
                finally:
                    server.stop()
        finally:
            upstream.stop()
    print(f"\nsaturating: wrk -t1 -c{CONNS} (closed loop), warm-up {WARMUP}s")
    header()
    row("upstream alone", base)
    for name, m in results.items():
        row(name, m)
    ratios(results)
    if fixed:
        print(f"\nfixed rate: h2load --h1 -c{CONNS} at {RATE} requests/s in all (open loop)")
        header()
        for name, m in fixed.items():
            row(name, m)
        ratios(fixed)


def header():
    print(f"{'server':<22} {'rps':>9} {'p50 us':>8} {'p99 us':>8} {'cpu us':>8} {'usr us':>8} {'sys us':>8}")


def ratios(results):
    c = results.get("covet proxy")
    for peer in ["nginx proxy_pass", "haproxy", "bare hyper proxy"]:
        p = results.get(peer)
        if not (c and p):
            continue
        target = " (target: cpu/req and p99 <= 1.0x nginx)" if peer.startswith("nginx") else ""
        print(f"covet / {peer}: rps {c['rps'] / p['rps']:.3f}x, p99 {c['p99'] / p['p99']:.3f}x, "
              f"cpu/req {c['cpu_us'] / p['cpu_us']:.3f}x{target}")


if __name__ == "__main__":
    main()
