"""Hot swap under load (issue 3): a covet host (CPU 0) serves `/app` from the
`versioned-v1` fixture plugin; `swap-load` (CPU 1) keeps CONNS keep-alive
connections busy, measures a steady phase, then swaps the plugin SWAPS times
between the v1 and v2 builds through the admin API. Prints the report and the
memory each loaded library build keeps mapped."""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from harness import CLIENT_CPU, Server  # noqa: E402

TARGET = os.environ.get("CARGO_TARGET_DIR", "target")
RELEASE = os.path.join(TARGET, "release")
CONNS = os.environ.get("CONNS", "50")
SWAPS = os.environ.get("SWAPS", "100")
STEADY = os.environ.get("STEADY", "10")
GAP_MS = os.environ.get("GAP_MS", "50")


def lib(name):
    return os.path.abspath(os.path.join(RELEASE, f"lib{name}.so"))


def manifest(dir_):
    path = os.path.join(dir_, "plugins.yaml")
    with open(path, "w") as f:
        f.write(f"""listen:
  - addr: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
log:
  access: false
  level: warn
plugins:
  app:
    kind: native
    path: {lib("covet_versioned_v1")}
routes:
  - path: /app
    handler: app
""")
    return path


def library_mappings(pid):
    """Rss (KiB) of each private library copy the host mapped, by copy name."""
    sizes, current = {}, None
    for line in open(f"/proc/{pid}/smaps"):
        head = re.match(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s+(.*)$", line)
        if head:
            name = head.group(1)
            current = os.path.basename(name.split()[0]) if "covet-" in name and ".so" in name else None
        elif current and line.startswith("Rss:"):
            sizes[current] = sizes.get(current, 0) + int(line.split()[1])
    return sizes


def main():
    with tempfile.TemporaryDirectory() as dir_:
        server = Server([os.path.join(RELEASE, "covet"), "host", "--plugins", manifest(dir_)])
        admin = server.proc.stdout.readline().strip().removeprefix("admin listening on http://")
        server.wait_200("/app")
        rss_before = server.rss_kib()
        argv = ["taskset", "-c", CLIENT_CPU, os.path.join(RELEASE, "swap-load"), "--target", server.addr,
                "--admin", admin, "--plugin", "app", "--v1", lib("covet_versioned_v1"),
                "--v2", lib("covet_versioned_v2"), "--conns", CONNS, "--swaps", SWAPS,
                "--steady-secs", STEADY, "--gap-ms", GAP_MS]
        report = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
        report["rss_kib"] = {"before_swaps": rss_before, "after_swaps": server.rss_kib()}
        report["library_rss_kib"] = library_mappings(server.proc.pid)
        server.stop()
    print(json.dumps(report, indent=2))
    steady, swapping = report["steady"]["latency"], report["swapping"]["latency"]
    f = report["failures"]
    print(f"\nsteady   p50 {steady['p50_us']} µs  p99 {steady['p99_us']} µs  ({report['steady']['rps']:.0f} rps)")
    print(f"swapping p50 {swapping['p50_us']} µs  p99 {swapping['p99_us']} µs  ({report['swapping']['rps']:.0f} rps)"
          f"  → p99 ratio {swapping['p99_us'] / max(steady['p99_us'], 1):.2f}× (target ≤ 2×)")
    s = report["swaps"]
    print(f"swap latency p50 {s['p50_ms']:.2f} ms  p99 {s['p99_ms']:.2f} ms  max {s['max_ms']:.2f} ms (target p99 ≤ 10 ms)")
    print(f"failures: non-200 {f['non_200']}, connection errors {f['connection_errors']}, "
          f"bad stamps {f['bad_build_stamps']}, refused swaps {len(f['swap_errors'])}; "
          f"new build seen after {report['epochs_new_build_seen']}/{s['count']} swaps")


if __name__ == "__main__":
    main()
