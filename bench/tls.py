#!/usr/bin/env python3
"""TLS and HTTP/3 benchmark (run via bench/tls.sh). One covet with a plain
listener and a TLS + HTTP/3 listener on the same static handler; server on
CPU 0, load generator on CPU 1; warm-up, then the median of RUNS runs, with
the server's CPU time per request from /proc/PID/stat.

- HTTP/2 over TLS vs h2c: h2load -c CONNS -m STREAMS (ALPN h2 vs prior knowledge).
- HTTP/3 vs HTTP/1.1: bench/h3-load (quinn + h3, CONNS connections × 1
  request in flight) vs h2load --h1 -c CONNS (keep-alive, 1 in flight).
- TLS handshakes/s: bench/h3-load `handshakes`: HANDSHAKE_TASKS loops of
  TCP connect + full TLS 1.3 handshake + one HTTP/1.1 GET + close."""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import CLIENT_CPU, SERVER_CPU, CLK_TCK  # noqa: E402

RELEASE = os.path.join(os.environ["CARGO_TARGET_DIR"], "release")
SECONDS = int(os.environ.get("DURATION", "10"))
RUNS = int(os.environ.get("RUNS", "3"))
CONNS = int(os.environ.get("CONNS", "50"))
STREAMS = int(os.environ.get("STREAMS", "10"))
WARMUP = int(os.environ.get("WARMUP", "3"))
HANDSHAKE_TASKS = int(os.environ.get("HANDSHAKE_TASKS", "16"))
LOAD = os.path.join(RELEASE, "h3-load")

MANIFEST = f"""
listen:
  - addr: 127.0.0.1:0
  - addr: 127.0.0.1:0
    tls: {{ cert: site.pem, key: site.key }}
    http3: true
log: {{ access: false, level: warn }}
plugins:
  hello: {{ kind: native, path: {RELEASE}/libcovet_static_response.so, config: {{ body: "hello" }} }}
routes:
  - {{ path: /, methods: [GET], handler: hello }}
"""


class Covet:
    """covet pinned to SERVER_CPU; reads its plain, https and h3 addresses."""

    def __init__(self, work):
        path = os.path.join(work, "tls.yaml")
        with open(path, "w") as f:
            f.write(MANIFEST)
        argv = ["taskset", "-c", SERVER_CPU, os.path.join(RELEASE, "covet"), "host", "--plugins", path]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env=dict(os.environ, COVET_ADMIN_LISTEN="off", COVET_LOG="warn"))
        lines = [self.proc.stdout.readline().strip() for _ in range(3)]
        found = {m.group(1): m.group(2) for m in (re.match(r"listening on (\w+)://(\S+)", l) for l in lines) if m}
        if set(found) != {"http", "https", "h3"}:
            raise RuntimeError(f"covet did not start: {lines!r}")
        self.plain, self.tls = found["http"], found["https"]

    def cpu_seconds(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=40)


def pinned(argv):
    return subprocess.run(["taskset", "-c", CLIENT_CPU, *argv], capture_output=True, text=True, check=True).stdout


def h2load(url, seconds, extra, work):
    log = os.path.join(work, "h2load.log")
    if os.path.exists(log):
        os.remove(log)  # h2load appends to its log file
    out = pinned(["h2load", "-t1", "-D", str(seconds), "--log-file", log, *extra, url])
    lat = sorted(int(line.split("\t")[2]) for line in open(log) if line.count("\t") >= 2)
    failed = int(re.search(r"(\d+) failed", out).group(1)) + int(re.search(r"(\d+) errored", out).group(1))
    return {"requests": len(lat), "rps": float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1)),
            "p99": lat[int(len(lat) * 0.99)] if lat else 0, "errors": failed}


def h3load(mode, addr, seconds):
    args = [addr, "/", str(seconds)]
    args += [str(CONNS), "1"] if mode == "h3" else [str(HANDSHAKE_TASKS)]
    r = json.loads(pinned([LOAD, mode, *args, CA]))
    return {"requests": r["requests"], "rps": r["rps"], "p99": r["p99_us"], "errors": r["errors"]}


def measure(server, run):
    run(WARMUP)
    results = []
    for _ in range(RUNS):
        cpu0 = server.cpu_seconds()
        r = run(SECONDS)
        r["cpu_us"] = (server.cpu_seconds() - cpu0) * 1e6 / max(r["requests"], 1)
        results.append(r)
    m = {k: statistics.median(r[k] for r in results) for k in ["rps", "p99", "cpu_us"]}
    m["errors"] = sum(r["errors"] for r in results)
    return m


def row(name, m, base=None):
    ratio = f"{m['rps'] / base['rps']:>7.3f}" if base else f"{'':>7}"
    errors = f"  errors={m['errors']}" if m["errors"] else ""
    print(f"{name:<38} {m['rps']:>10.0f} {m['p99']:>9.0f} {m['cpu_us']:>8.2f} {ratio}{errors}", flush=True)


def main():
    global CA
    with tempfile.TemporaryDirectory() as work:
        subprocess.run([LOAD, "certs", work], check=True)
        CA = os.path.join(work, "ca.pem")
        os.chdir(work)
        server = Covet(work)
        try:
            print(f"covet on CPU {SERVER_CPU}, load on CPU {CLIENT_CPU}; {RUNS} runs of {SECONDS}s (median), "
                  f"warm-up {WARMUP}s; same static handler on every protocol")
            print(f"{'case':<38} {'rps':>10} {'p99 us':>9} {'cpu us':>8} {'ratio':>7}")
            h2c = measure(server, lambda s: h2load(f"http://{server.plain}/", s, ["-c", str(CONNS), "-m", str(STREAMS)], work))
            row(f"h2c (h2load -c{CONNS} -m{STREAMS})", h2c)
            h2 = measure(server, lambda s: h2load(f"https://{server.tls}/", s, ["-c", str(CONNS), "-m", str(STREAMS)], work))
            row("HTTP/2 over TLS (ratio vs h2c)", h2, h2c)
            h1 = measure(server, lambda s: h2load(f"http://{server.plain}/", s, ["--h1", "-c", str(CONNS)], work))
            row(f"HTTP/1.1 (h2load --h1 -c{CONNS})", h1)
            h3 = measure(server, lambda s: h3load("h3", server.tls, s))
            row(f"HTTP/3 (h3-load {CONNS} conns x 1) vs HTTP/1.1", h3, h1)
            hs = measure(server, lambda s: h3load("handshakes", server.tls, s))
            row(f"TLS 1.3 handshake + GET ({HANDSHAKE_TASKS} loops)", hs)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
