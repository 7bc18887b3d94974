#!/usr/bin/env python3
"""Cache benchmark (run via bench/cache.sh).

Part 1, a cache hit: covet (cache filter + proxy plugin) vs nginx
`proxy_cache`, both in front of the same origin (bench/cache/origin.py, a
1 KiB JSON object with `Cache-Control: max-age=3600`), pre-warmed, so every
measured request is a hit (the origin's count is checked to stay put). The
server is pinned to SERVER_CPU (one worker), wrk and the origin to
CLIENT_CPU; a warm-up, then RUNS runs of DURATION seconds, the median of
each figure: RPS, p50, p99 and the server's CPU µs per request (utime +
stime of its process tree ÷ requests, split into user and system), and
covet's ratios to nginx.

Part 2, a miss storm on one key: STORM_CONNS wrk connections ask for
`/slow` (the origin answers after DELAY_MS) while a purger purges it
(`POST /v1/cache/purge {"prefix": "/slow"}`) every PURGE_MS, so each round
is a storm of concurrent misses on one key. Reported: origin requests per
second and per round (per purge), with `coalesce: true` and `false`."""
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from harness import CLIENT_CPU, SERVER_CPU, ForegroundServer, Server, free_port, measure_split, render, wrk  # noqa: E402

RELEASE = os.path.join(os.environ["CARGO_TARGET_DIR"], "release")
SECONDS = int(os.environ.get("DURATION", "10"))
RUNS = int(os.environ.get("RUNS", "3"))
CONNS = int(os.environ.get("CONNS", "50"))
WARMUP = int(os.environ.get("WARMUP", "3"))
STORM_SECONDS = int(os.environ.get("STORM_SECONDS", "10"))
STORM_CONNS = int(os.environ.get("STORM_CONNS", "200"))
DELAY_MS = int(os.environ.get("DELAY_MS", "200"))
PURGE_MS = int(os.environ.get("PURGE_MS", "500"))
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
PATH = "/obj"


class Origin(Server):
    def __init__(self):
        super().__init__([sys.executable, os.path.join(HERE, "origin.py"), str(DELAY_MS)], cpu=CLIENT_CPU)

    def count(self, path):
        return json.load(urllib.request.urlopen(self.url("/_count"), timeout=5)).get(path, 0)


def start_covet(work, origin, coalesce, admin=None):
    manifest = render(HERE, "covet.yaml", work, ORIGIN=origin.addr, RELEASE=RELEASE, COALESCE=coalesce)
    env = {"COVET_ADMIN_LISTEN": admin or "off", "COVET_LOG": "warn"}
    server = Server([os.path.join(RELEASE, "covet"), "host", "--plugins", manifest], env)
    # The listener is up before the plugins are initialised.
    server.wait_200("/_covet/ready")
    return server


def start_nginx(work, origin):
    port = free_port()
    conf = render(HERE, "nginx.conf", work, LISTEN=f"127.0.0.1:{port}", ORIGIN=origin.addr, WORK=work)
    return ForegroundServer([NGINX, "-p", work, "-c", conf], port, os.path.join(work, "nginx.out"))


def warm(server, origin, status_header, hit_mark):
    """Two requests: the first fills the cache, the second must be a hit with the origin's object."""
    for _ in range(2):
        reply = urllib.request.urlopen(server.url(PATH), timeout=5)
        body, status = reply.read(), reply.headers.get(status_header, "")
    if len(body) != 1024 or hit_mark not in status:
        raise RuntimeError(f"{server.url(PATH)}: {len(body)} bytes, {status_header}: {status!r}")


def hit_bench(work, origin):
    results = {}
    for name, start, header, mark in [
        ("covet cache hit", lambda: start_covet(work, origin, "true"), "cache-status", "; hit"),
        ("nginx proxy_cache hit", lambda: start_nginx(work, origin), "x-cache-status", "HIT"),
    ]:
        server = start()
        try:
            warm(server, origin, header, mark)
            before = origin.count(PATH)
            results[name] = measure_split(server, PATH, SECONDS, RUNS, CONNS, WARMUP)
            results[name]["origin"] = origin.count(PATH) - before
        finally:
            server.stop()
    return results


def purger(admin, stop, rounds):
    """POSTs a purge of `/slow` every PURGE_MS until `stop` is set; counts them in `rounds`."""
    body = json.dumps({"prefix": "/slow"}).encode()
    while not stop.wait(PURGE_MS / 1000):
        req = urllib.request.Request(f"http://{admin}/v1/cache/purge", data=body, method="POST",
                                     headers={"content-type": "application/json"})
        if urllib.request.urlopen(req, timeout=5).status == 202:
            rounds.append(time.monotonic())


def storm(work, origin, coalesce):
    admin = f"127.0.0.1:{free_port()}"
    server = start_covet(work, origin, coalesce, admin)
    try:
        urllib.request.urlopen(server.url("/slow"), timeout=5).read()
        before, rounds, stop = origin.count("/slow"), [], threading.Event()
        thread = threading.Thread(target=purger, args=(admin, stop, rounds))
        thread.start()
        try:
            load = wrk(server.url("/slow"), STORM_SECONDS, STORM_CONNS)
        finally:
            stop.set()
            thread.join()
        requests = origin.count("/slow") - before
        return {"rps": load["rps"], "p99": load["p99"], "origin": requests, "rounds": len(rounds),
                "origin_per_s": requests / STORM_SECONDS, "per_round": requests / max(len(rounds), 1),
                "non2xx": load["non2xx"]}
    finally:
        server.stop()


def main():
    print(f"server on CPU {SERVER_CPU} (1 worker); wrk and the origin on CPU {CLIENT_CPU}; "
          f"{RUNS} runs of {SECONDS}s each (median), GET {PATH} (1 KiB JSON), wrk -t1 -c{CONNS}")
    with tempfile.TemporaryDirectory() as work:
        os.chmod(work, 0o755)  # nginx's worker (nobody, when started as root) writes its cache under it
        origin = Origin()
        try:
            hits = hit_bench(work, origin)
            storms = {c: storm(work, origin, c) for c in ["true", "false"]}
        finally:
            origin.stop()
    print(f"\n{'server':<24} {'rps':>9} {'p50 us':>8} {'p99 us':>8} {'cpu us':>8} {'usr us':>8} {'sys us':>8} origin")
    for name, m in hits.items():
        print(f"{name:<24} {m['rps']:>9.0f} {m['p50']:>8.0f} {m['p99']:>8.0f} {m['cpu_us']:>8.2f} "
              f"{m['usr_us']:>8.2f} {m['sys_us']:>8.2f} {m['origin']:>6}"
              f"{'  non2xx=' + str(m['non2xx']) if m['non2xx'] else ''}")
    c, n = hits["covet cache hit"], hits["nginx proxy_cache hit"]
    print(f"covet / nginx: rps {c['rps'] / n['rps']:.3f}x, p99 {c['p99'] / n['p99']:.3f}x, "
          f"cpu/req {c['cpu_us'] / n['cpu_us']:.3f}x")
    print(f"\nmiss storm: wrk -c{STORM_CONNS} on /slow ({DELAY_MS} ms origin) for {STORM_SECONDS}s, "
          f"purged every {PURGE_MS} ms")
    print(f"{'coalesce':<10} {'rounds':>7} {'origin req':>11} {'origin/s':>9} {'per round':>10} {'client rps':>11} {'p99 us':>9}")
    for coalesce, m in storms.items():
        print(f"{coalesce:<10} {m['rounds']:>7} {m['origin']:>11} {m['origin_per_s']:>9.1f} {m['per_round']:>10.1f} "
              f"{m['rps']:>11.0f} {m['p99']:>9.0f}{'  non2xx=' + str(m['non2xx']) if m['non2xx'] else ''}")


if __name__ == "__main__":
    main()
