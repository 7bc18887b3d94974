#!/usr/bin/env bash
# Creates the project-local virtualenv (./.venv) the Python tests and examples
# use, from the same python3 the host embeds ($PYO3_PYTHON), and installs
# python-plugins/requirements.txt and deploy/requirements.txt into it. Idempotent: does nothing when the
# venv already holds exactly those requirements. `--bench` also installs the
# benchmark peers (granian, uvicorn[standard]).
#
# One venv per Python version: .venv is a link to .venv-X.Y for the version
# of $PYO3_PYTHON (a build against 3.12 or 3.13, see docs/python.md "Python
# versions"), made on first use, so switching versions back and forth
# reinstalls nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

version="$("$PYO3_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
venv_version() { "$1/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true; }
# A venv of another version made before .venv was a link goes.
if [ -d .venv ] && [ ! -L .venv ] && [ "$(venv_version .venv)" != "$version" ]; then rm -rf .venv; fi
if [ -L .venv ] && [ "$(readlink .venv)" != ".venv-$version" ]; then rm .venv; fi
[ -e .venv ] || [ -L .venv ] || ln -s ".venv-$version" .venv

venv=.venv
reqs=(python-plugins/requirements.txt)
# The deployment checks (tests/e2e/deploy.rs): kubernetes-validate, hadolint.
reqs+=(deploy/requirements.txt)
[ "${1:-}" = "--bench" ] && reqs+=(bench/python/requirements.txt)
stamp="$venv/.covet-$(cat "${reqs[@]}" | sha256sum | cut -c1-16)"
[ -f "$stamp" ] && exit 0

if [ ! -x "$venv/bin/python" ]; then
  "$PYO3_PYTHON" -m venv "$(readlink -f "$venv")"
fi
args=()
for r in "${reqs[@]}"; do args+=(-r "$r"); done
# Through the link's target, so installed scripts name .venv-X.Y's python.
"$(readlink -f "$venv")/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}"
rm -f "$venv"/.covet-*
touch "$stamp"
