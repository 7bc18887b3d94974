#!/usr/bin/env python3
"""Compression benchmark (run via bench/compress.sh): covet + static-response
+ compress vs nginx `gzip on` at the same level, the same 50 KB JSON body.

Each server is pinned to SERVER_CPU (0), wrk to CLIENT_CPU (1). Every request
sends `Accept-Encoding` for the coding measured, so every response is
compressed anew (neither server caches compressed bodies). CPU µs per
request is the server's process tree (user + system) over the run ÷
requests; the median of RUNS runs. Before measuring, one request per case
checks the response really is compressed and records its size."""
import gzip
import json
import os
import sys
import tempfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from harness import ForegroundServer, Server, free_port, measure_split, render  # noqa: E402

RELEASE = os.path.join(os.environ["CARGO_TARGET_DIR"], "release")
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
SECONDS = int(os.environ.get("DURATION", "10"))
RUNS = int(os.environ.get("RUNS", "3"))
CONNS = int(os.environ.get("CONNS", "16"))
WARMUP = int(os.environ.get("WARMUP", "3"))


def measure(server, accept):
    """Warm-up, then RUNS wrk runs: medians, with CPU µs per request (user, system, total)."""
    headers = (f"Accept-Encoding: {accept}",) if accept else ()
    return measure_split(server, "/data.json", SECONDS, RUNS, CONNS, WARMUP, headers)


def body():
    """About 50 KB of JSON records (the e2e test's shape)."""
    records = [{"id": i, "name": f"user-{i}", "score": (i * 7919) % 1000, "tags": ["a", "b"], "active": i % 3 == 0}
               for i in range(700)]
    return json.dumps(records, separators=(",", ":")).encode()


def start_covet(work, encodings):
    filters = "[compress]" if encodings else "[]"
    manifest = os.path.join(work, f"covet-{encodings or 'plain'}.yaml")
    with open(manifest, "w") as f:
        f.write(f"""
listen: [{{ addr: 127.0.0.1:0 }}]
log: {{ access: false }}
plugins:
  data: {{ kind: native, path: {RELEASE}/libcovet_static_response.so, config: {{ body_file: {work}/data.json }} }}
  compress:
    kind: native
    path: {RELEASE}/libcovet_compress.so
    config: {{ encodings: [{encodings or 'gzip'}], levels: {{ gzip: 6, br: 4, zstd: 3 }}, min_size: 1024, types: [application/json] }}
routes:
  - {{ path: /data.json, methods: [GET], filters: {filters}, handler: data }}
""")
    return Server([os.path.join(RELEASE, "covet"), "host", "--plugins", manifest],
                 env={"COVET_ADMIN_LISTEN": "off", "COVET_LOG": "warn"})


def start_nginx(work, gzip_on):
    port = free_port()
    conf = render(HERE, "nginx.conf", work, LISTEN=f"127.0.0.1:{port}", WORK=work, GZIP="on" if gzip_on else "off")
    return ForegroundServer([NGINX, "-p", work, "-c", conf], port, os.path.join(work, "nginx.out"))


def check(server, accept, plain):
    """The response's content-encoding and size; a gzip body must decode to the original."""
    req = urllib.request.Request(server.url("/data.json"), headers={"Accept-Encoding": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=5) as resp:
        data, coding = resp.read(), resp.headers.get("content-encoding")
    if coding == "gzip" and gzip.decompress(data) != plain:
        raise RuntimeError("a gzip response did not decode to the original")
    if coding is None and data != plain:
        raise RuntimeError("an identity response is not the original")
    return coding, len(data)


def main():
    plain = body()
    cases = [("nginx gzip 6", lambda w: start_nginx(w, True), "gzip"),
             ("covet compress gzip 6", lambda w: start_covet(w, "gzip"), "gzip"),
             ("covet compress br 4", lambda w: start_covet(w, "br"), "br"),
             ("covet compress zstd 3", lambda w: start_covet(w, "zstd"), "zstd"),
             ("nginx uncompressed", lambda w: start_nginx(w, False), ""),
             ("covet uncompressed", lambda w: start_covet(w, ""), "")]
    print(f"{len(plain)} byte JSON body; wrk -t1 -c{CONNS} -d{SECONDS}s, {RUNS} runs (median), warm-up {WARMUP}s; "
          f"server on CPU {os.environ.get('SERVER_CPU', '0')}, wrk on CPU {os.environ.get('CLIENT_CPU', '1')}")
    print(f"{'server':<24} {'encoding':>8} {'bytes':>7} {'rps':>9} {'p50 us':>8} {'p99 us':>8} "
          f"{'cpu us/req':>10} {'usr':>7} {'sys':>7}")
    results = {}
    with tempfile.TemporaryDirectory() as work:
        os.chmod(work, 0o755)  # nginx's worker (nobody, when run as root) reads the file
        with open(os.path.join(work, "data.json"), "wb") as f:
            f.write(plain)
        os.chmod(os.path.join(work, "data.json"), 0o644)
        for name, start, accept in cases:
            server = start(work)
            try:
                coding, size = check(server, accept, plain)
                if (coding or "") != accept:
                    raise RuntimeError(f"{name}: expected {accept or 'identity'}, got {coding}")
                m = measure(server, accept)
            finally:
                server.stop()
            results[name] = m
            print(f"{name:<24} {coding or '-':>8} {size:>7} {m['rps']:>9.0f} {m['p50']:>8.0f} {m['p99']:>8.0f} "
                  f"{m['cpu_us']:>10.1f} {m['usr_us']:>7.1f} {m['sys_us']:>7.1f}"
                  f"{'  non2xx=' + str(m['non2xx']) if m['non2xx'] else ''}", flush=True)
    c, n = results["covet compress gzip 6"], results["nginx gzip 6"]
    print(f"covet gzip / nginx gzip: cpu/req {c['cpu_us'] / n['cpu_us']:.3f}x, rps {c['rps'] / n['rps']:.3f}x")


if __name__ == "__main__":
    main()
