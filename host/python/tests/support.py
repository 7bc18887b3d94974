"""Shared helpers: puts the package (host/python) and the examples
(python-plugins) on sys.path, builds requests the way the host does, and
runs coroutines."""

import asyncio
import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "host" / "python"))

import covet  # noqa: E402


def request(method="GET", path="/", query="", headers=(), path_params=None, body=b"", metadata=None,
            request_id="req-1", client="127.0.0.1:5000"):
    """A `covet.Request` built positionally, exactly as the host builds it."""
    return covet.Request(method, path, query, list(headers), dict(path_params or {}), body,
                         dict(metadata or {}), request_id, client)


def run(value):
    """Awaits `value` when it is a coroutine (an async endpoint's result)."""
    return asyncio.run(value) if asyncio.iscoroutine(value) else value


def load(relative: str, name: str):
    """Loads a file from the repository as a fresh module (as the host does)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def call(app, method: str, path: str, query: str = "", **kwargs):
    """Routes `method path` through `app._covet_routes()` the way the host's
    matchit router does (literal segments, `{name}`, final `{*rest}`) and
    calls the endpoint; returns the wire tuple. KeyError when nothing matches."""
    for methods, pattern, index in app._covet_routes():
        params = match(pattern, path)
        if params is not None and method in methods:
            return run(app._covet_call(index, request(method, path, query, path_params=params, **kwargs)))
    raise KeyError(f"{method} {path}")


def match(pattern: str, path: str):
    parts, segments = pattern.strip("/").split("/"), path.strip("/").split("/")
    params = {}
    for i, part in enumerate(parts):
        if part.startswith("{*"):
            params[part[2:-1]] = "/".join(segments[i:])
            return params
        if i >= len(segments):
            return None
        if part.startswith("{"):
            params[part[1:-1]] = segments[i]
        elif part != segments[i]:
            return None
    return params if len(parts) == len(segments) else None
