"""Soak (issue 19): a release covet host (CPU 0) serves three swappable
routes — `/native` (the `versioned-v1`/`-v2` fixture .so files), `/wasm`
(the `covet_wasm_probe` component, config label v1/v2) and `/python` (a
decorator app, files v1.py/v2.py). `soak-load` (CPU 1) keeps CONNS keep-alive
connections per route busy for DURATION seconds, swaps one plugin every
SWAP_MS rotating native → WASM → Python, and samples the host's RSS every
SAMPLE seconds into CSV (rss.csv in OUT, default $CARGO_TARGET_DIR/soak/).

After WARMUP seconds it reports min/max/last RSS and their spread as a % of
the first post-warm-up sample; exits 1 if the spread exceeds LIMIT_PCT or
any request failed or any swap was refused."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import CLIENT_CPU, Server  # noqa: E402

TARGET = os.environ.get("CARGO_TARGET_DIR", "target")
RELEASE = os.path.join(TARGET, "release")
WASM = os.path.join(TARGET, "wasm32-wasip2", "release", "covet_wasm_probe.wasm")
DURATION = int(os.environ.get("DURATION", "1800"))
WARMUP = int(os.environ.get("WARMUP", "180"))
CONNS = os.environ.get("CONNS", "8")
SWAP_MS = os.environ.get("SWAP_MS", "1000")
SAMPLE = os.environ.get("SAMPLE", "10")
LIMIT_PCT = float(os.environ.get("LIMIT_PCT", "10"))
OUT = os.environ.get("OUT", os.path.join(TARGET, "soak"))

PY_APP = """from covet import Covet, Response

app = Covet()
calls = 0

@app.get("/python")
def handle():
    global calls
    calls += 1
    return Response(b"{version} %d" % calls, 200, [("x-plugin-build", "{version}")])
"""


def lib(name):
    return os.path.abspath(os.path.join(RELEASE, f"lib{name}.so"))


def write_fixtures(dir_):
    """The manifest (all three routes on v1), the Python apps and the route spec."""
    for version in ("v1", "v2"):
        with open(os.path.join(dir_, f"{version}.py"), "w") as f:
            f.write(PY_APP.replace("{version}", version))
    manifest = os.path.join(dir_, "plugins.yaml")
    with open(manifest, "w") as f:
        f.write(f"""listen: [{{ addr: 127.0.0.1:0 }}]
admin: {{ listen: 127.0.0.1:0 }}
log: {{ access: false, level: warn }}
plugins:
  native: {{ kind: native, path: {lib("covet_versioned_v1")} }}
  wasm: {{ kind: wasm, path: {WASM}, config: {{ probe: echo, label: v1 }} }}
  python: {{ kind: python, app: {dir_}/v1.py:app }}
routes:
  - {{ path: /native, handler: native }}
  - {{ path: /wasm, handler: wasm }}
  - {{ path: /python, handler: python }}
""")
    spec = [
        {"path": "/native", "plugin": "native", "stamp": "header",
         "swaps": [{"path": lib(f"covet_versioned_{v}")} for v in ("v1", "v2")]},
        {"path": "/wasm", "plugin": "wasm", "stamp": "label",
         "swaps": [{"path": WASM, "config": {"probe": "echo", "label": v}} for v in ("v1", "v2")]},
        {"path": "/python", "plugin": "python", "stamp": "header",
         "swaps": [{"path": os.path.join(dir_, f"{v}.py")} for v in ("v1", "v2")]},
    ]
    spec_path = os.path.join(dir_, "routes.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    return manifest, spec_path


def run_load(server, admin, spec, csv_path):
    argv = ["taskset", "-c", CLIENT_CPU, os.path.join(RELEASE, "soak-load"), "--target", server.addr,
            "--admin", admin, "--spec", spec, "--host-pid", str(server.proc.pid), "--duration-secs", str(DURATION),
            "--swap-ms", SWAP_MS, "--conns", CONNS, "--sample-secs", SAMPLE]
    report = None
    with open(csv_path, "w") as csv, subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as load:
        for line in load.stdout:
            if line.startswith("# "):
                report = json.loads(line[2:])
                continue
            csv.write(line)
            csv.flush()
            print(line.rstrip(), flush=True)
    if load.returncode != 0 or report is None:
        raise RuntimeError(f"soak-load exited {load.returncode}")
    return report


def rows(csv_path):
    with open(csv_path) as f:
        header = f.readline().strip().split(",")
        return [dict(zip(header, map(float, line.split(",")))) for line in f if line.strip()]


def summarize(samples, report):
    after = [s for s in samples if s["t_s"] >= WARMUP] or samples[-1:]
    first, rss = after[0]["rss_kib"], [s["rss_kib"] for s in after]
    spread = (max(rss) - min(rss)) / first * 100
    failures = report["non_200"] + report["connection_errors"] + report["bad_stamps"]
    requests = report["requests_ok"] + failures
    mib = lambda k: f"{k / 1024:.1f} MiB"  # noqa: E731
    print(f"\nstart RSS {mib(samples[0]['rss_kib'])}; after warm-up ({WARMUP} s): first {mib(first)}, "
          f"min {mib(min(rss))}, max {mib(max(rss))}, last {mib(rss[-1])}, spread {spread:.1f}% of first "
          f"(limit {LIMIT_PCT:g}%)")
    print(f"{report['seconds']:.0f} s: {report['swaps']} swaps ({report['swap_errors']} refused), "
          f"{requests:,} requests ({requests / report['seconds']:,.0f}/s), {failures} failed "
          f"(non-200 {report['non_200']}, connection errors {report['connection_errors']}, "
          f"bad stamps {report['bad_stamps']})")
    if report["failure_examples"]:
        print("first failures:", *report["failure_examples"], sep="\n  ")
    print("\nminute | RSS MiB | swaps | requests | failures")
    step = max(1, len(samples) // 15)
    for s in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
        print(f"{s['t_s'] / 60:6.1f} | {s['rss_kib'] / 1024:7.1f} | {s['swaps']:5.0f} | {s['requests']:,.0f} | "
              f"{s['failures']:.0f}")
    return spread <= LIMIT_PCT and failures == 0 and report["swap_errors"] == 0


def main():
    os.makedirs(OUT, exist_ok=True)
    csv_path = os.path.join(OUT, "rss.csv")
    with tempfile.TemporaryDirectory() as dir_:
        manifest, spec = write_fixtures(dir_)
        server = Server([os.path.join(RELEASE, "covet"), "host", "--plugins", manifest])
        admin = server.proc.stdout.readline().strip().removeprefix("admin listening on http://")
        for path in ("/native", "/wasm", "/python"):
            server.wait_200(path)
        try:
            report = run_load(server, admin, spec, csv_path)
            with open(f"/proc/{server.proc.pid}/smaps_rollup") as f:
                open(os.path.join(OUT, "smaps_rollup.txt"), "w").write(f.read())
        finally:
            server.stop()
    with open(os.path.join(OUT, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    ok = summarize(rows(csv_path), report)
    print(f"\nCSV: {csv_path}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
