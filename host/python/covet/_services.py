"""Host services for Python plugins: the awaitables behind `covet.sleep`,
`covet.spawn`, `covet.every`, `covet.state` and `covet.http` (docs/python.md,
"Host services").

Each call names no plugin: the plugin instance making it is found in a
context variable the host sets for everything it runs for that instance
(loading its file, its init and shutdown hooks, every request task, and the
tasks those start). The instance carries the host's handle on its services
(a `_covet_host.Services`, built in Rust with the plugin's manifest grants).

A call hands an asyncio future to the Rust side, which runs the service on
the host's tokio runtime without the GIL and resolves the future on the
event-loop thread with `(True, value)` or `(False, (kind, message, grant))`;
`_wait` turns the latter into a `HostServiceError` subclass. Cancelling the
awaiting task aborts the Rust side's work. Services are async-only: the
event loop they resolve on is the host's, so sync endpoints and filters
(run on the thread pool) cannot await them.

Nothing here imports `_covet_host`, so the package stays importable (and
unit-testable) outside the host.
"""

import asyncio
import contextvars
import inspect
import sys
import traceback

from . import trace as _trace

__all__ = [
    "HostServiceError", "ServiceDenied", "OutboundDenied", "StateDenied", "ServiceTimeout",
    "ServiceUnavailable", "ServiceProtocolError", "ServiceBackendError", "ServiceShutDown",
    "sleep", "spawn", "every", "state", "State",
]

_current = contextvars.ContextVar("covet_instance", default=None)

#: The host's event loop (set by the host's bridge when its loop starts).
_host_loop = None


class HostServiceError(Exception):
    """A host service call failed. `kind` is the host's short name for the
    failure (`denied`, `timeout`, `connect`, `tls`, `http`, `backend`,
    `unsupported`, `config`, `shut_down`, `usage`)."""

    kind = "error"

    def __init__(self, message: str, kind: "str | None" = None):
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind


class ServiceDenied(HostServiceError, PermissionError):
    """The plugin has no manifest grant for this; `grant` names the
    `capabilities:` key that would allow it."""

    kind = "denied"
    grant = ""


class OutboundDenied(ServiceDenied):
    """Outbound HTTP to a host the plugin's `capabilities: { outbound_http: [...] }` lacks."""

    grant = "outbound_http"


class StateDenied(ServiceDenied):
    """A shared-state namespace the plugin's `capabilities: { state: [...] }` lacks."""

    grant = "state"


class ServiceTimeout(HostServiceError, TimeoutError):
    """The call did not finish within its limit (the message names it)."""

    kind = "timeout"


class ServiceUnavailable(HostServiceError, ConnectionError):
    """A connection could not be made (refused, unreachable, TLS handshake)."""

    kind = "connect"


class ServiceProtocolError(HostServiceError):
    """A bad request (URL, header) or an HTTP protocol error."""

    kind = "http"


class ServiceBackendError(HostServiceError):
    """The shared-state backend failed, or does not support the operation."""

    kind = "backend"


class ServiceShutDown(HostServiceError):
    """The plugin instance is shutting down (swapped out, reloaded or the host stops)."""

    kind = "shut_down"


_BY_KIND = {
    "timeout": ServiceTimeout,
    "connect": ServiceUnavailable,
    "tls": ServiceUnavailable,
    "http": ServiceProtocolError,
    "backend": ServiceBackendError,
    "unsupported": ServiceBackendError,
    "shut_down": ServiceShutDown,
}


def _error(kind: str, message: str, grant: "str | None" = None) -> HostServiceError:
    """The exception for a failure reported by the host."""
    if kind == "denied":
        cls = {"outbound_http": OutboundDenied, "state": StateDenied}.get(grant, ServiceDenied)
        return cls(message)
    return _BY_KIND.get(kind, HostServiceError)(message, kind)


class _Instance:
    """The host's view of one plugin instance on the Python side: its
    services, its context (in which the host runs its code) and the
    background tasks it started."""

    def __init__(self, plugin: str, host):
        self.plugin = plugin
        self.host = host
        self.tasks = set()
        self.periodic = []
        self.started = False
        self.closed = False
        self.context = contextvars.Context()
        self.context.run(_current.set, self)

    def _start(self) -> None:
        """On the loop thread, once loaded and initialised: starts the
        periodic functions registered while loading."""
        self.started = True
        pending, self.periodic = self.periodic, []
        for seconds, fn in pending:
            self.context.copy().run(spawn, _periodic(fn, seconds))

    def _close(self) -> int:
        """On the loop thread, at shutdown: cancels every background task;
        returns how many were running."""
        self.closed = True
        tasks, self.tasks = self.tasks, set()
        for task in tasks:
            task.cancel()
        return len(tasks)

    def _task_done(self, task) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, ServiceShutDown):
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            print(f"plugin '{self.plugin}': background task {task.get_name()} failed:\n{text}", file=sys.stderr)


def _instance(what: str) -> _Instance:
    """The calling plugin instance, on the host's loop; else a usage error."""
    inst = _current.get()
    if inst is None:
        raise HostServiceError(
            f"{what} needs a covet plugin instance: use it in code the host runs for a plugin "
            "(an async endpoint, filter hook or ASGI app, an init/shutdown hook, or a task started from one)",
            "usage",
        )
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None or (_host_loop is not None and loop is not _host_loop):
        raise HostServiceError(
            f"{what} is async-only: await it on the host's event loop (from an `async def` endpoint "
            "or filter), not from sync code on the thread pool or another event loop",
            "usage",
        )
    if inst.closed:
        raise ServiceShutDown(f"plugin '{inst.plugin}' is shutting down", "shut_down")
    return inst


async def _wait(start, *args):
    """Starts a host operation (`start(future, *args)` returns its abort
    handle) and awaits its result."""
    future = asyncio.get_running_loop().create_future()
    pending = start(future, *args)
    try:
        ok, value = await future
    except asyncio.CancelledError:
        pending.cancel()
        raise
    if ok:
        return value
    raise _error(*value)


def _seconds(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, got {type(value).__name__}")
    if value != value or value < 0 or value > 1e9:
        raise ValueError(f"{what} must be between 0 and 1e9 seconds, got {value!r}")
    return float(value)


def _ttl(value) -> "float | None":
    return None if value is None else _seconds(value, "ttl")


async def sleep(seconds: float) -> None:
    """Waits `seconds` on the host's timer. Raises `ServiceShutDown` if the
    plugin instance shuts down meanwhile."""
    seconds = _seconds(seconds, "covet.sleep(seconds)")
    inst = _instance("covet.sleep")
    await _wait(inst.host.sleep, seconds)


def spawn(coro, *, name: "str | None" = None) -> asyncio.Task:
    """Runs coroutine `coro` in the background as a task owned by the calling
    plugin instance: it is cancelled when the instance shuts down (swap,
    reload, host stop). An exception it raises is logged. It runs without
    the span of the request that started it (`covet.trace` is a no-op
    there, its outbound calls start traces of their own). Returns the task."""
    if not asyncio.iscoroutine(coro):
        raise TypeError(f"covet.spawn takes a coroutine (call the async function), got {type(coro).__name__}")
    try:
        inst = _instance("covet.spawn")
    except HostServiceError:
        coro.close()
        raise
    # A background task outlives the request that started it: it runs without its span.
    context = contextvars.copy_context()
    context.run(_trace._span.set, None)
    task = asyncio.get_running_loop().create_task(coro, name=name, context=context)
    inst.tasks.add(task)
    task.add_done_callback(inst._task_done)
    return task


async def _periodic(fn, seconds: float) -> None:
    """Calls `fn` now and then every `seconds` after each call ends, until
    the instance shuts down; a failing call is logged, the next one runs."""
    while True:
        try:
            result = fn()
            if inspect.isawaitable(result):
                await result
        except (asyncio.CancelledError, ServiceShutDown):
            raise
        except Exception as exc:  # noqa: BLE001 - logged, the schedule goes on
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            print(f"periodic {getattr(fn, '__qualname__', fn)!r} failed:\n{text}", file=sys.stderr)
        await sleep(seconds)


def every(seconds: float):
    """Decorator: runs the decorated function (async, or a quick sync one)
    right away and then every `seconds`, as a background task of the plugin
    instance (cancelled at its shutdown). Used at module level, it starts
    once the host has loaded and initialised the plugin; used inside running
    plugin code, at once."""
    seconds = _seconds(seconds, "covet.every(seconds)")
    if seconds <= 0:
        raise ValueError("covet.every(seconds) needs a positive interval")

    def register(fn):
        if not callable(fn):
            raise TypeError("covet.every decorates a function")
        _schedule(fn, seconds)
        return fn

    return register


def _schedule(fn, seconds: float) -> None:
    """Starts `_periodic(fn, seconds)` for the current instance, or queues it until the instance starts."""
    inst = _current.get()
    if inst is None:
        raise HostServiceError("covet.every is used while the host loads a plugin (module level) or in plugin code", "usage")
    if inst.started:
        spawn(_periodic(fn, seconds))
    else:
        inst.periodic.append((seconds, fn))


def _value(value, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes or str, got {type(value).__name__}")


def _key(key) -> str:
    if not isinstance(key, str):
        raise TypeError(f"a state key must be a str, got {type(key).__name__}")
    return key


class State:
    """One shared-state namespace (`covet.state("sessions")`). Values are
    stored as bytes: `set` takes bytes or str (UTF-8), `get` returns bytes
    or None; counters are decimal text (`get` after `incr` is e.g. b"5").
    The namespace is checked against the calling plugin's grants at each
    call, so a `State` may be created at module level."""

    __slots__ = ("namespace",)

    def __init__(self, namespace: str):
        if not isinstance(namespace, str) or not namespace:
            raise ValueError("a state namespace is a non-empty str")
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"covet.state({self.namespace!r})"

    async def get(self, key: str) -> "bytes | None":
        """The value of `key`, or None when absent or expired."""
        host = _instance("covet.state().get").host
        return await _wait(host.state_get, self.namespace, _key(key))

    async def set(self, key: str, value: "bytes | str", ttl: "float | None" = None) -> None:
        """Stores `value`, replacing any value and TTL; `ttl` seconds, None: no expiry."""
        args = (self.namespace, _key(key), _value(value, "value"), _ttl(ttl))
        await _wait(_instance("covet.state().set").host.state_set, *args)

    async def incr(self, key: str, delta: int = 1, ttl: "float | None" = None) -> int:
        """Adds `delta` to the integer at `key` (absent: 0), returns the new
        value; `ttl` applies only when this call creates the key."""
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an int, got {type(delta).__name__}")
        args = (self.namespace, _key(key), delta, _ttl(ttl))
        return await _wait(_instance("covet.state().incr").host.state_incr, *args)

    async def compare_and_set(self, key: str, expected: "bytes | str | None", new: "bytes | str | None", ttl: "float | None" = None) -> bool:
        """Replaces the value with `new` (None: deletes it) only when it
        equals `expected` (None: the key must be absent); returns whether it did."""
        expected = None if expected is None else _value(expected, "expected")
        new = None if new is None else _value(new, "new")
        args = (self.namespace, _key(key), expected, new, _ttl(ttl))
        return await _wait(_instance("covet.state().compare_and_set").host.state_cas, *args)

    async def delete(self, key: str) -> bool:
        """Removes `key`; returns whether it existed."""
        host = _instance("covet.state().delete").host
        return await _wait(host.state_delete, self.namespace, _key(key))


def state(namespace: str) -> State:
    """The shared-state namespace `namespace` (granted in the manifest with
    `capabilities: { state: [namespace] }`)."""
    return State(namespace)
