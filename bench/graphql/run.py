#!/usr/bin/env python3
"""GraphQL benchmark (run via bench/graphql.sh): the CPU covet spends per
request answering a GraphQL query that resolves one REST field, against
proxying a request to the same REST endpoint with covet's proxy plugin.

One covet process (pinned to SERVER_CPU, 0) serves both routes; the REST
service (nginx returning a fixed JSON user) and wrk share CLIENT_CPU (1).
Per case: a WARMUP-second warm-up, then RUNS wrk runs of DURATION seconds
(-t1 -cCONNS, closed loop); the medians of RPS, p50, p99 and covet's CPU µs
per request (utime + stime over the run ÷ requests). Then the ratio
graphql / proxy of CPU per request: the whole cost of the GraphQL layer
(parsing the JSON request and the document, validation, execution, the
resolver's call and JSON mapping, serialising the answer)."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from harness import CLIENT_CPU, ForegroundServer, Server, free_port, measure_split, render  # noqa: E402

RELEASE = os.path.join(os.environ["CARGO_TARGET_DIR"], "release")
SECONDS = int(os.environ.get("DURATION", "10"))
RUNS = int(os.environ.get("RUNS", "3"))
CONNS = int(os.environ.get("CONNS", "50"))
WARMUP = int(os.environ.get("WARMUP", "3"))
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
RATE = int(os.environ.get("RATE", "5000"))
QUERY = '{ user(id: "1") { id name } }'
GRAPHQL_HEADERS = ["content-type: application/json", "accept: application/graphql-response+json"]




def measure(server, path, script=None):
    """Warm-up, then RUNS wrk runs (a Lua `script` for the POST): medians, CPU µs per request split."""
    return measure_split(server, path, SECONDS, RUNS, CONNS, WARMUP, script=script)


def paced(server, path, work, body=None):
    """RUNS h2load runs at a fixed RATE (--h1, CONNS connections, pinned to CLIENT_CPU; a POST of
    `body` when given): medians of achieved RPS, p50/p99 (per-request log) and CPU µs per request.
    Both routes get the same open-loop load, below covet's ceiling, so each does the same work."""
    results = []
    log = os.path.join(work, "h2load.log")
    extra = []
    if body is not None:
        data = os.path.join(work, "body.json")
        with open(data, "w") as f:
            f.write(body)
        extra = ["-d", data] + [arg for h in GRAPHQL_HEADERS for arg in ("-H", h)]
    for _ in range(RUNS):
        if os.path.exists(log):
            os.remove(log)  # h2load appends
        user0, sys0 = server.cpu_times()
        argv = ["taskset", "-c", CLIENT_CPU, "h2load", "--h1", "-t1", f"-c{CONNS}", f"--rps={RATE / CONNS:g}",
                f"-D{SECONDS}", f"--log-file={log}", *extra, server.url(path)]
        subprocess.run(argv, capture_output=True, check=True)
        user1, sys1 = server.cpu_times()
        lines = [line.split("\t") for line in open(log).read().splitlines()]
        ok = sorted(int(f[2]) for f in lines if f[1].startswith("2"))
        n = max(len(ok), 1)
        r = {"rps": len(ok) / SECONDS, "p50": ok[len(ok) // 2], "p99": ok[int(len(ok) * 0.99)],
             "usr_us": (user1 - user0) * 1e6 / n, "sys_us": (sys1 - sys0) * 1e6 / n, "non2xx": len(lines) - len(ok)}
        r["cpu_us"] = r["usr_us"] + r["sys_us"]
        results.append(r)
    median = {k: statistics.median(r[k] for r in results) for k in ["rps", "p50", "p99", "cpu_us", "usr_us", "sys_us"]}
    median["non2xx"] = sum(r["non2xx"] for r in results)
    return median


def check(server):
    """Both routes answer what the REST service says (once the host has initialised its plugins:
    until then it answers 503 NOT_READY)."""
    for _ in range(100):
        rest = subprocess.run(["curl", "-sS", "--max-time", "5", server.url("/users/1")], capture_output=True,
                              text=True)
        if "NOT_READY" not in rest.stdout:
            break
        time.sleep(0.1)
    if json.loads(rest.stdout).get("name") != "Ada Lovelace":
        raise RuntimeError(f"proxy answered {rest.stdout!r} {rest.stderr!r}")
    body = json.dumps({"query": QUERY})
    gql = subprocess.run(["curl", "-sS", "--max-time", "5", "-H", "content-type: application/json", "-d", body,
                          server.url("/graphql")], capture_output=True, text=True)
    if json.loads(gql.stdout) != {"data": {"user": {"id": "1", "name": "Ada Lovelace"}}}:
        raise RuntimeError(f"graphql answered {gql.stdout!r} {gql.stderr!r}")


def row(name, m):
    print(f"{name:<22} {m['rps']:>9.0f} {m['p50']:>8.0f} {m['p99']:>8.0f} {m['cpu_us']:>8.2f} {m['usr_us']:>8.2f} "
          f"{m['sys_us']:>8.2f}{'  non2xx=' + str(m['non2xx']) if m['non2xx'] else ''}", flush=True)


def main():
    print(f"covet on CPU 0 (proxy route and graphql route, one process); wrk and the REST service (nginx, "
          f"1 worker) on CPU {CLIENT_CPU}; {RUNS} runs of {SECONDS}s each (median), wrk -t1 -c{CONNS}")
    with tempfile.TemporaryDirectory() as work:
        port = free_port()
        conf = render(HERE, "rest.conf", work, LISTEN=f"127.0.0.1:{port}", WORK=work)
        rest = ForegroundServer(["taskset", "-c", CLIENT_CPU, NGINX, "-p", work, "-c", conf], port,
                                os.path.join(work, "nginx.out"))
        try:
            manifest = render(HERE, "covet.yaml", work, UPSTREAM=f"127.0.0.1:{port}", RELEASE=RELEASE)
            covet = Server([os.path.join(RELEASE, "covet"), "host", "--plugins", manifest],
                           env={"COVET_ADMIN_LISTEN": "off", "COVET_LOG": "warn"})
            try:
                check(covet)
                proxy = measure(covet, "/users/1")
                graphql = measure(covet, "/graphql", os.path.join(HERE, "post.lua"))
                if RATE:
                    proxy_paced = paced(covet, "/users/1", work)
                    graphql_paced = paced(covet, "/graphql", work, json.dumps({"query": QUERY}))
            finally:
                covet.stop()
        finally:
            rest.stop()
    header = f"{'':<22} {'RPS':>9} {'p50 us':>8} {'p99 us':>8} {'CPU us':>8} {'user':>8} {'sys':>8}"
    print(f"\nsaturating: wrk -t1 -c{CONNS} (closed loop), warm-up {WARMUP}s\n{header}")
    row("proxy GET /users/1", proxy)
    row("graphql POST user(id)", graphql)
    verdict(graphql, proxy)
    if RATE:
        print(f"\nfixed rate: h2load --h1 -c{CONNS} at {RATE} req/s (open loop)\n{header}")
        row("proxy GET /users/1", proxy_paced)
        row("graphql POST user(id)", graphql_paced)
        verdict(graphql_paced, proxy_paced)


def verdict(graphql, proxy):
    ratio = graphql["cpu_us"] / proxy["cpu_us"]
    print(f"CPU per request, graphql / proxy: {ratio:.2f}x (target <= 1.5x: {'met' if ratio <= 1.5 else 'missed'})")


if __name__ == "__main__":
    main()
