#!/usr/bin/env bash
# The data plane at scale (issue 18, docs/io.md): bare hyper, nginx and covet
# (static route and the 3-filter chain, on epoll and on io_uring) at 50, 1K
# and 10K connections, with the server on one core and on both cores;
# requests/s, p50/p99, server CPU µs per request and RSS, with every ratio to
# hyper and nginx from the same run. Then the idle side: N connections opened
# at once (an accept storm: how long until all are answered, errors) and held
# idle, RSS per connection at 1K, 10K and 18K. Installs wrk and nginx when
# missing, raises the fd limit, builds release artifacts, runs bench/scale.py.
# Tunables: DURATION RUNS WARMUP CONNS CORES IDLE SERVERS (see bench/scale.py).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
apt_install() {
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@"
}
command -v wrk >/dev/null || apt_install wrk
[ -x "${NGINX:-/usr/sbin/nginx}" ] || command -v nginx >/dev/null || apt_install nginx
[ -x "${NGINX:-/usr/sbin/nginx}" ] || export NGINX="$(command -v nginx)"
ulimit -n "$(ulimit -Hn)"
# An accept storm of 18,000 needs accept queues that long: the kernel caps
# every listen backlog at net.core.somaxconn (4096 by default).
BACKLOG="${BACKLOG:-20000}"
if [ "$(id -u)" -eq 0 ] && [ "$(cat /proc/sys/net/core/somaxconn)" -lt "$BACKLOG" ]; then
  sysctl -qw net.core.somaxconn="$BACKLOG" net.ipv4.tcp_max_syn_backlog="$BACKLOG" || true
fi
echo "net.core.somaxconn=$(cat /proc/sys/net/core/somaxconn), listen backlog $BACKLOG"
export BACKLOG
cargo build --release --locked -p covet -p covet-static-response -p covet-headers -p covet-rate-limit \
  -p covet-auth-jwt -p hello-hyper -p covet-conns
exec python3 bench/scale.py
