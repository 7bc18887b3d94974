"""Shared benchmark plumbing: start a server pinned to CPU 0, drive it with
wrk pinned to CPU 1, take the median of several runs, and read the server's
CPU time per request from /proc/PID/stat (the steadier figure when the load
generator saturates its own core)."""
import os
import re
import socket
import statistics
import subprocess
import threading
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CPU = os.environ.get("SERVER_CPU", "0")
CLIENT_CPU = os.environ.get("CLIENT_CPU", "1")


class Server:
    """A server process pinned to `cpu` (SERVER_CPU by default) that prints
    `listening on http://ADDR` (other lines before it are skipped; what it
    prints later is read and dropped, so the pipe never fills)."""

    def __init__(self, argv, env=None, cwd=None, cpu=None):
        self.started = time.monotonic()
        full_env = dict(os.environ, **(env or {}))
        self.proc = subprocess.Popen(["taskset", "-c", cpu or SERVER_CPU, *argv], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=full_env, cwd=cwd, text=True)
        for line in self.proc.stdout:
            if line.startswith("listening on http://"):
                self.addr = line.strip().removeprefix("listening on http://")
                break
        else:
            raise RuntimeError(f"{argv[0]} exited before listening")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def url(self, path="/"):
        return f"http://{self.addr}{path}"

    def cpu_seconds(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def cpu_times(self):
        """(utime, stime) in seconds of the server's whole process tree."""
        return tree_times(self.proc.pid)

    def rss_kib(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def wait_200(self, path="/", headers=None, timeout=10.0):
        """Seconds from process start until `path` first answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                req = urllib.request.Request(self.url(path), headers=headers or {})
                if urllib.request.urlopen(req, timeout=1).status == 200:
                    return time.monotonic() - self.started
            except Exception:
                time.sleep(0.001)
        raise RuntimeError(f"{path} never answered 200")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def tree_times(root):
    """(utime, stime) in seconds of `root` and its live descendants (e.g. nginx's master and worker)."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = (int(fields[1]), int(fields[11]), int(fields[12]))
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, _) in stats.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return (sum(stats[p][1] for p in tree if p in stats) / CLK_TCK,
            sum(stats[p][2] for p in tree if p in stats) / CLK_TCK)


def render(template_dir, template, work, **values):
    """Copies `template_dir/template` into `work` with every `@KEY@` replaced by `values[KEY]`; returns the copy's path."""
    text = open(os.path.join(template_dir, template)).read()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    path = os.path.join(work, template)
    with open(path, "w") as f:
        f.write(text)
    return path


def free_port():
    """A loopback TCP port free now (for peers that need a fixed port in their config)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ForegroundServer:
    """A peer (nginx, HAProxy) run in the foreground on a fixed port, pinned to SERVER_CPU."""

    def __init__(self, argv, port, log):
        self.addr = f"127.0.0.1:{port}"
        with open(log, "w") as out:
            self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, *argv], stdout=out, stderr=out)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited: {open(log).read()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{argv[0]} never listened on {self.addr}")

    def url(self, path="/"):
        return f"http://{self.addr}{path}"

    def cpu_times(self):
        """(utime, stime) in seconds of the process tree."""
        return tree_times(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


_UNITS = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def _micros(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url, seconds, conns, headers=(), script=None):
    """One wrk run pinned to CLIENT_CPU (with a Lua `script` when given): requests, rps, p50 and
    p99 in µs, non-2xx count."""
    argv = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", url]
    for h in headers:
        argv[5:5] = ["-H", h]
    if script:
        argv[5:5] = ["-s", script]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _micros(pct["50"]),
        "p99": _micros(pct["99"]),
        "non2xx": int(errors.group(1)) if errors else 0,
    }


def measure(server, path, seconds, runs, conns, warmup, headers=()):
    """Warm up, then `runs` runs; the median of each figure plus CPU µs per request."""
    wrk(server.url(path), warmup, conns, headers)
    results = []
    for _ in range(runs):
        cpu0 = server.cpu_seconds()
        r = wrk(server.url(path), seconds, conns, headers)
        r["cpu_us"] = (server.cpu_seconds() - cpu0) * 1e6 / max(r["requests"], 1)
        results.append(r)
    keys = ["rps", "p50", "p99", "cpu_us"]
    median = {k: statistics.median(r[k] for r in results) for k in keys}
    median["non2xx"] = sum(r["non2xx"] for r in results)
    return median


def measure_split(server, path, seconds, runs, conns, warmup, headers=(), script=None):
    """Like `measure`, with the CPU µs per request split into user and system time
    (`usr_us`, `sys_us`, `cpu_us`) from the server's process tree."""
    wrk(server.url(path), warmup, conns, headers, script)
    results = []
    for _ in range(runs):
        user0, sys0 = server.cpu_times()
        r = wrk(server.url(path), seconds, conns, headers, script)
        user1, sys1 = server.cpu_times()
        n = max(r["requests"], 1)
        r.update(usr_us=(user1 - user0) * 1e6 / n, sys_us=(sys1 - sys0) * 1e6 / n)
        r["cpu_us"] = r["usr_us"] + r["sys_us"]
        results.append(r)
    median = {k: statistics.median(r[k] for r in results) for k in ["rps", "p50", "p99", "cpu_us", "usr_us", "sys_us"]}
    median["non2xx"] = sum(r["non2xx"] for r in results)
    return median
