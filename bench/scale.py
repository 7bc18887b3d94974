#!/usr/bin/env python3
"""The data plane at scale (issue 18): run via bench/scale.sh.

Part 1, load: for each server (bare hyper, nginx, covet static and 3-filter
chain on epoll and on io_uring), each server core set (CORES: `0` = one
core, `0,1` = both) and each connection count (CONNS), warm up, then RUNS
wrk runs of DURATION seconds (median): requests/s, p50, p99, the server's
CPU µs per request (utime+stime of its process tree ÷ requests), its RSS
after the run, and the ratios of requests/s and p99 to nginx and hyper.
With one server core wrk runs on the other; with both, wrk shares them
(this machine has two; say so when quoting).

Part 2, idle connections and accept storms: for each server and each count
in IDLE, `covet-conns` opens the connections all at once (one GET on each,
answered), reports how long until every one was answered and how many
failed, then holds them idle while the server's RSS is read, right after
the answers ("rss busy") and once they have been idle IDLE_SECS (default
2.5 s: covet parks an HTTP/1 connection idle for 1 s, docs/io.md): RSS per
connection = (RSS idle − RSS before) ÷ connections, where "before" is read
after a first round of 200 connections was held idle and closed (so the
memory covet gives back when connections park is not counted against
start-up garbage it gives back too). covet and nginx
listen with a backlog of BACKLOG (default 20000; bench/scale.sh raises
net.core.somaxconn to match when it runs as root), bare hyper with tokio's
1024."""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# bench/core.py reads CONNS as one number; here it is a list.
_CONNS = os.environ.pop("CONNS", "50,1000,10000")
import core  # noqa: E402
from harness import ForegroundServer, Server, free_port, render, tree_times, wrk  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scale")
RELEASE = os.path.join(os.environ["CARGO_TARGET_DIR"], "release")
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
SECONDS = int(os.environ.get("DURATION", "5"))
RUNS = int(os.environ.get("RUNS", "3"))
WARMUP = int(os.environ.get("WARMUP", "2"))
CONNS = [int(c) for c in _CONNS.split(",")]
CORES = os.environ.get("CORES", "0;0,1").split(";")
IDLE = [int(c) for c in os.environ.get("IDLE", "1000,10000,18000").split(",")]
SERVERS = os.environ.get("SERVERS", "hyper,nginx,static-epoll,static-uring,chain-epoll,chain-uring").split(",")
BACKLOG = os.environ.get("BACKLOG", "20000")
IDLE_SECS = float(os.environ.get("IDLE_SECS", "2.5"))


def manifest(chain):
    """bench/core.py's manifest (static route, or the 3-filter chain), with
    room for every connection and the storm's accept queue."""
    return core.manifest(False, chain) + f"limits: {{ max_connections: 20000, listen_backlog: {BACKLOG} }}\n"


class Nginx(ForegroundServer):
    def __init__(self, work, cores):
        port = free_port()
        workers = str(len(cores.split(",")))
        conf = render(HERE, "nginx.conf", work, LISTEN=f"127.0.0.1:{port}", WORKERS=workers, WORK=work,
                      BACKLOG=BACKLOG)
        harness.SERVER_CPU = cores
        super().__init__([NGINX, "-c", conf, "-e", os.path.join(work, "nginx-error.log")], port,
                         os.path.join(work, "nginx.log"))

    def rss_kib(self):
        return tree_rss_kib(self.proc.pid)


def tree_rss_kib(root):
    """RSS of `root` and its children (nginx's master and workers)."""
    pids = [root] + [int(p) for p in subprocess.run(["pgrep", "-P", str(root)], capture_output=True,
                                                      text=True).stdout.split()]
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def start(name, work, cores):
    """(server, request headers) for a server name in SERVERS, pinned to `cores`."""
    if name == "nginx":
        return Nginx(work, cores), ()
    if name == "hyper":
        return Server([os.path.join(RELEASE, "hello-hyper")], cpu=cores), ()
    kind, backend = name.split("-")
    path = os.path.join(work, f"{kind}.yaml")
    with open(path, "w") as f:
        f.write(manifest(kind == "chain"))
    env = {"BENCH_JWT_SECRET": core.SECRET, "COVET_LOG": "warn", "COVET_IO": backend}
    server = Server([os.path.join(RELEASE, "covet"), "host", "--plugins", path], env=env, cpu=cores)
    server.wait_200("/", {"authorization": f"Bearer {TOKEN}"} if kind == "chain" else None)
    return server, ((f"authorization: Bearer {TOKEN}",) if kind == "chain" else ())


def client_cpu(cores):
    return "1" if cores == "0" else cores


def measure(server, headers, conns):
    wrk(server.url("/"), WARMUP, conns, headers)
    results = []
    for _ in range(RUNS):
        u0, s0 = tree_times(server.proc.pid)
        r = wrk(server.url("/"), SECONDS, conns, headers)
        u1, s1 = tree_times(server.proc.pid)
        r["cpu_us"] = (u1 - u0 + s1 - s0) * 1e6 / max(r["requests"], 1)
        results.append(r)
    results.sort(key=lambda r: r["rps"])
    median = dict(results[len(results) // 2])
    median["non2xx"] = sum(r["non2xx"] for r in results)
    median["rss_mib"] = tree_rss_kib(server.proc.pid) / 1024
    return median


def load(work):
    print(f"Part 1: wrk -t1, {RUNS} runs of {SECONDS}s (median by rps), warm-up {WARMUP}s")
    figures = {}
    for cores in CORES:
        harness.CLIENT_CPU = client_cpu(cores)
        print(f"\nserver on CPU {cores}, wrk on CPU {harness.CLIENT_CPU}")
        print(f"{'server':<14} {'conns':>6} {'rps':>9} {'p50 us':>9} {'p99 us':>9} {'cpu us':>7} {'rss MiB':>8}"
              f" {'rps/hyper':>9} {'rps/nginx':>9} {'p99/nginx':>9}")
        for conns in CONNS:
            for name in SERVERS:
                server, headers = start(name, work, cores)
                try:
                    m = measure(server, headers, conns)
                finally:
                    server.stop()
                figures[(cores, conns, name)] = m
                row(figures, cores, conns, name)
    return figures


def row(figures, cores, conns, name):
    m = figures[(cores, conns, name)]
    hyper, nginx = figures.get((cores, conns, "hyper")), figures.get((cores, conns, "nginx"))
    ratio = lambda base, key: f"{m[key] / base[key]:>9.2f}" if base else f"{'-':>9}"  # noqa: E731
    print(f"{name:<14} {conns:>6} {m['rps']:>9.0f} {m['p50']:>9.0f} {m['p99']:>9.0f} {m['cpu_us']:>7.2f}"
          f" {m['rss_mib']:>8.1f} {ratio(hyper, 'rps')} {ratio(nginx, 'rps')} {ratio(nginx, 'p99')}"
          f"{'  non2xx=' + str(m['non2xx']) if m['non2xx'] else ''}", flush=True)


def idle(work):
    print(f"\nPart 2: N connections opened at once (one GET each), then held idle; server on CPU {CORES[-1]}")
    print(f"{'server':<14} {'conns':>6} {'answered':>8} {'errors':>6} {'all ms':>8} {'p99 ms':>8}"
          f" {'busy MiB':>8} {'idle MiB':>8} {'KiB/conn':>8}")
    for name in SERVERS:
        if name.startswith("chain"):
            continue
        for n in IDLE:
            server, _ = start(name, work, CORES[-1])
            try:
                storm(server, name, n)
            finally:
                server.stop()


def settle(server):
    """A first small round of connections, held idle past covet's park and
    memory release, then closed: the baseline is then taken with the
    allocator's start-up garbage already given back, as the idle figure is."""
    subprocess.run(["taskset", "-c", client_cpu(CORES[-1]), os.path.join(RELEASE, "covet-conns"),
                    server.addr, "200", str(int(IDLE_SECS + 1))], stdout=subprocess.DEVNULL, check=True)
    time.sleep(1.0)


def storm(server, name, n):
    time.sleep(0.5)
    settle(server)
    before = tree_rss_kib(server.proc.pid)
    client = subprocess.Popen(["taskset", "-c", client_cpu(CORES[-1]), os.path.join(RELEASE, "covet-conns"),
                               server.addr, str(n), str(int(IDLE_SECS + 2))], stdout=subprocess.PIPE, text=True)
    result = json.loads(client.stdout.readline())
    client.stdout.readline()  # "holding"
    busy = tree_rss_kib(server.proc.pid)
    time.sleep(IDLE_SECS)
    held = tree_rss_kib(server.proc.pid)
    client.wait()
    per_conn = (held - before) / max(result["answered"], 1)
    err = f"  first error: {result['first_error']}" if result["errors"] else ""
    print(f"{name:<14} {n:>6} {result['answered']:>8} {result['errors']:>6} {result['all_answered_ms']:>8.0f}"
          f" {result['p99_ms']:>8.0f} {busy / 1024:>8.1f} {held / 1024:>8.1f} {per_conn:>8.2f}{err}", flush=True)


TOKEN = core.token()

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as work:
        if os.environ.get("PARTS", "load,idle").find("load") >= 0:
            load(work)
        if os.environ.get("PARTS", "load,idle").find("idle") >= 0:
            idle(work)
