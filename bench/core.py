#!/usr/bin/env python3
"""Host-core benchmark: bare hyper vs covet + static-response vs covet with the
headers → rate-limit → auth-jwt → static-response chain. Also covet's idle RSS
and the time from process start to the first 200. Run via bench/core.sh."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import Server, measure  # noqa: E402

RELEASE = os.path.join(os.environ["CARGO_TARGET_DIR"], "release")
SECONDS = int(os.environ.get("DURATION", "10"))
RUNS = int(os.environ.get("RUNS", "3"))
CONNS = int(os.environ.get("CONNS", "50"))
WARMUP = int(os.environ.get("WARMUP", "3"))
SECRET = "bench-secret-bench-secret-bench-secret!"


def lib(name):
    return os.path.join(RELEASE, f"lib{name}.so")


def manifest(access_log, chain):
    filters = "[tag, limiter, auth]" if chain else "[]"
    return f"""
listen: [{{ addr: 127.0.0.1:0 }}]
log: {{ access: {str(access_log).lower()} }}
plugins:
  hello: {{ kind: native, path: {lib('covet_static_response')}, config: {{ body: "hello" }} }}
  tag: {{ kind: native, path: {lib('covet_headers')}, config: {{ response: {{ set: {{ x-user: "{{jwt.sub}}" }} }} }} }}
  limiter: {{ kind: native, path: {lib('covet_rate_limit')}, config: {{ rate: 10000000/s, burst: 10000000, key: ip }} }}
  auth:
    kind: native
    path: {lib('covet_auth_jwt')}
    config:
      keys: [{{ kid: demo-hs, algorithms: [HS256], secret_env: BENCH_JWT_SECRET }}]
      audience: demo
      issuer: covet-demo
routes:
  - {{ path: /, methods: [GET], filters: {filters}, handler: hello }}
"""


def covet(workdir, name, access_log, chain):
    path = os.path.join(workdir, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(manifest(access_log, chain))
    return Server([os.path.join(RELEASE, "covet"), "host", "--plugins", path],
                  env={"BENCH_JWT_SECRET": SECRET, "COVET_LOG": "warn,covet::access=info"})


def token():
    script = os.path.join(os.path.dirname(__file__), "..", "examples", "make_token.py")
    return subprocess.run([sys.executable, script, "--secret", SECRET, "--ttl", "86400"],
                          capture_output=True, text=True, check=True).stdout.strip()


def row(name, m, base):
    ratio = m["rps"] / base["rps"] if base else 1.0
    print(f"{name:<34} {m['rps']:>10.0f} {m['p50']:>9.0f} {m['p99']:>9.0f} {m['cpu_us']:>8.2f} {ratio:>7.3f}"
          f"{'  non2xx=' + str(m['non2xx']) if m['non2xx'] else ''}", flush=True)


def main():
    auth = (f"authorization: Bearer {token()}",)
    print(f"wrk -t1 -c{CONNS} -d{SECONDS}s, {RUNS} runs (median), warm-up {WARMUP}s; "
          f"server on CPU {os.environ.get('SERVER_CPU', '0')}, wrk on CPU {os.environ.get('CLIENT_CPU', '1')}")
    print(f"{'server':<34} {'rps':>10} {'p50 us':>9} {'p99 us':>9} {'cpu us':>8} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as work:
        base = Server([os.path.join(RELEASE, "hello-hyper")])
        b = measure(base, "/", SECONDS, RUNS, CONNS, WARMUP)
        base.stop()
        row("bare hyper", b, None)
        cases = [("covet static (access log off)", False, False, ()),
                 ("covet static (access log on)", True, False, ()),
                 ("covet 3-filter chain (log off)", False, True, auth)]
        for name, log, chain, headers in cases:
            server = covet(work, name.split()[1], log, chain)
            row(name, measure(server, "/", SECONDS, RUNS, CONNS, WARMUP, headers), b)
            server.stop()
        startup(work)


def startup(work):
    server = covet(work, "startup", False, False)
    first = server.wait_200("/")
    import time
    time.sleep(1.0)
    print(f"\ncovet start → first 200: {first * 1000:.1f} ms; idle RSS after 1 s: {server.rss_kib() / 1024:.1f} MiB")
    server.stop()


if __name__ == "__main__":
    main()
