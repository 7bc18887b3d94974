"""The Python half of covet's Python runtime (embedded in the host binary).

The Rust side (host/src/runtime/python) calls these functions: loading a
plugin into a fresh module namespace, calling decorator-app endpoints and
filters, driving ASGI apps (http and lifespan), and turning exceptions into
plain tuples the host turns into structured error responses. Every result
crossing back to Rust is a tuple of str/int/bytes/lists, nothing else.

With tracing on, each call also gets `span` (a `_covet_host.Span`, the span
of that plugin call), which goes into `covet.trace`'s context variable for
that call only: a sync call sets it and resets it after; a coroutine or an
ASGI request sets it inside its own task's context (a copy made for that
task), so it follows its awaits and ends with it. With tracing off `span`
is None and nothing is set.
"""

import asyncio
import contextvars
import importlib.abc
import importlib.util
import itertools
import json
import os
import selectors
import sys
import threading
import traceback

import _covet_host

_loop = None
_counter = itertools.count()
_span_var = None


class _LogWriter:
    """sys.stdout / sys.stderr: each line goes to the host log."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, level):
        self.level = level
        self.pending = ""

    def write(self, text):
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            _covet_host.log(self.level, line)
        return len(text)

    def flush(self):
        if self.pending:
            _covet_host.log(self.level, self.pending)
            self.pending = ""

    def isatty(self):
        return False

    def writable(self):
        return True


class _EmbeddedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes `import covet` find the package embedded in the host binary."""

    def __init__(self, sources):
        self.sources = {name: (is_pkg, src) for name, is_pkg, src in sources}

    def find_spec(self, name, path=None, target=None):
        if name not in self.sources:
            return None
        is_pkg = self.sources[name][0]
        return importlib.util.spec_from_loader(name, self, origin="<covet>/" + name, is_package=is_pkg)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        is_pkg, src = self.sources[module.__name__]
        if is_pkg:
            module.__path__ = []
        exec(compile(src, "<covet>/" + module.__name__.replace(".", "/") + ".py", "exec"), module.__dict__)


def setup(sources, paths):
    """Interpreter start: stdout/stderr to the log, `covet` importable, sys.path."""
    sys.stdout = _LogWriter("info")
    sys.stderr = _LogWriter("warn")
    if sources:
        sys.meta_path.insert(0, _EmbeddedFinder(sources))
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)


class _HostSelector(selectors.EpollSelector):
    """The loop's selector. It never blocks: the host waits, in its tokio
    runtime, for this selector's epoll descriptor, for jobs and for the
    loop's next timer (host/src/runtime/python/aloop.rs), then runs a turn.
    `select` makes the epoll_wait call only when the host saw the descriptor
    become readable, or the last look found something (level-triggered fds
    may still be ready)."""

    def __init__(self):
        super().__init__()
        self.look = True

    def select(self, timeout=None):
        if not self.look:
            return []
        ready = super().select(0)
        self.look = bool(ready)
        return ready


_selector = None


def make_loop():
    """Makes the event loop (driven by the host); returns its selector's epoll fd."""
    global _loop, _selector
    _selector = _HostSelector()
    _loop = asyncio.SelectorEventLoop(_selector)
    services = getattr(sys.modules.get("covet"), "_services", None)
    if services is not None:
        services._host_loop = _loop
    return _selector.fileno()


def enter_loop():
    """The calling thread drives the loop from now on (what `run_forever`
    sets up: the running loop, the loop's thread, async generator hooks)."""
    _loop._thread_id = threading.get_ident()
    asyncio.events._set_running_loop(_loop)
    asyncio.set_event_loop(_loop)
    sys.set_asyncgen_hooks(firstiter=_loop._asyncgen_firstiter_hook, finalizer=_loop._asyncgen_finalizer_hook)


def leave_loop():
    """The calling thread stops driving the loop (another takes it over)."""
    asyncio.events._set_running_loop(None)
    _loop._thread_id = None


def turn(look):
    """One pass of the loop: what is ready runs once. Returns 0.0 when more
    is ready, the seconds until the next timer, or None (nothing scheduled)."""
    if look:
        _selector.look = True
    # A turn whose jobs did all there was to do (eager tasks that finished,
    # inline calls) has nothing ready, no I/O and no timer due: the pass
    # would find nothing, so it is skipped.
    if _loop._ready or _selector.look or (_loop._scheduled and _loop._scheduled[0]._when <= _loop.time()):
        _loop._run_once()
    if _loop._ready:
        return 0.0
    if _loop._scheduled:
        return max(0.0, _loop._scheduled[0]._when - _loop.time())
    return None


def load(plugin, path, module, attr, instance=None):
    """Loads the plugin's code into a fresh module (a new name on every load),
    in the plugin instance's context (see `instance`)."""
    if instance is not None:
        return instance.context.copy().run(_load, plugin, path, module, attr)
    return _load(plugin, path, module, attr)


def instance(plugin, services, limit):
    """A plugin instance's Python side (`covet._services._Instance`): the
    context its code runs in, which tells host service calls whose grants
    apply; `limit` is its time limit in seconds (see `stalled`)."""
    inst = sys.modules["covet"]._services._Instance(plugin, services)
    inst.task_name = "covet:%s:%r" % (plugin, float(limit))
    return inst


_DEFAULT_LIMIT = 30.0
_seen = [None, None, 0.0, False]  # turn, task, first seen (monotonic), stopped


def _limit(task):
    """A task's time limit: its plugin's for tasks the host started (named
    `covet:PLUGIN:SECONDS`), the default for others."""
    name = task.get_name()
    if name.startswith("covet:"):
        try:
            return float(name.rsplit(":", 1)[1])
        except ValueError:
            pass
    return _DEFAULT_LIMIT


def stalled(turn):
    """From the host's watchdog thread, while turn `turn` of the loop has run
    for a while: True when the task (or inline sync call) running now has
    run without awaiting (seen running in this same turn) for longer than
    its limit, and was not stopped for it yet."""
    import time
    task = asyncio.current_task(_loop) if _loop is not None else None
    limit = None if task is None else _limit(task)
    if task is None and _inline[0] is not None:
        task, limit = _inline
    now = time.monotonic()
    if task is None:
        return False
    if _seen[0] != turn or _seen[1] is not task:
        _seen[:] = [turn, task, now, False]
        return False
    if _seen[3] or now - _seen[2] <= limit:
        return False
    _seen[3] = True
    return True


def run_in(instance, fn, args):
    """`fn(*args)` in the instance's context (a fresh copy)."""
    return instance.context.copy().run(fn, *args)


def _load(plugin, path, module, attr):
    if module:
        mod = importlib.import_module(module)
    else:
        directory = path.rsplit("/", 1)[0]
        if directory not in sys.path:
            sys.path.append(directory)
        name = "_covet_plugin_%s_%d" % (plugin.replace("-", "_"), next(_counter))
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    if attr is None:
        return mod
    target = mod
    for part in attr.split("."):
        target = getattr(target, part)
    return target


def describe():
    """The current exception's traceback, as text."""
    return traceback.format_exc()


def classify(exc):
    """An exception as ("http", status, headers, message, details_json) or ("error", traceback)."""
    covet = sys.modules.get("covet")
    http_exc = getattr(covet, "HTTPException", None)
    invalid = getattr(covet, "RequestValidationError", None)
    service_error = getattr(covet, "HostServiceError", None)
    if service_error is not None and isinstance(exc, service_error):
        return _service_failure(exc)
    if invalid is not None and isinstance(exc, invalid):
        errors = getattr(exc, "errors", None)
        errors = errors() if callable(errors) else errors
        return ("http", 422, [], "the request is invalid", json.dumps(errors, default=str))
    if http_exc is not None and isinstance(exc, http_exc):
        detail = getattr(exc, "detail", None)
        headers = getattr(exc, "headers", None) or {}
        headers = [(str(k), str(v)) for k, v in (headers.items() if hasattr(headers, "items") else headers)]
        message = detail if isinstance(detail, str) else None
        details = None if detail is None or isinstance(detail, str) else detail
        return ("http", int(exc.status_code), headers, message, json.dumps(details, default=str))
    return ("error", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


# An uncaught host service failure: its HTTP status (a timeout is the
# upstream's fault: 504, a failed connection or exchange 502, a backend or an
# instance shutting down 503, a missing grant or a misuse the plugin's: 500).
_SERVICE_STATUS = {"timeout": 504, "connect": 502, "tls": 502, "http": 502, "backend": 503, "unsupported": 500, "shut_down": 503}


def _service_failure(exc):
    """An uncaught `covet.HostServiceError` as a structured error whose message
    is the exception's (it names the host or namespace and the manifest key);
    the traceback goes to the log."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    print("host service call failed:\n" + text, file=sys.stderr)
    details = {"service_error": type(exc).__name__, "kind": exc.kind}
    grant = getattr(exc, "grant", "")
    if grant:
        details["grant"] = grant
    return ("http", _SERVICE_STATUS.get(exc.kind, 500), [], str(exc), json.dumps(details))


def _enter(span):
    """Makes `span` the span of the plugin call in progress (`covet.trace`)
    in the current context; returns the token that resets it."""
    global _span_var
    if _span_var is None:
        _span_var = sys.modules["covet"].trace._span
    return _span_var.set(span)


def _ok(wire):
    status, headers, body = wire
    return ("ok", status, headers, body)


def app_call(app, index, args, span=None):
    token = None if span is None else _enter(span)
    try:
        return _ok(app._covet_call(index, sys.modules["covet"].Request(*args)))
    except Exception as exc:
        return classify(exc)
    finally:
        if token is not None:
            _span_var.reset(token)


# The inline sync call running now (its args tuple, as an identity) and its
# limit in seconds: what the watchdog judges when no task is running.
_inline = [None, 0.0]


def app_call_inline(app, index, args, span, limit):
    """`app_call` inline on the event loop's thread; a call the watchdog
    stops (past `limit`) ends as ("cancelled",)."""
    _inline[0], _inline[1] = args, limit
    try:
        return app_call(app, index, args, span)
    except asyncio.CancelledError:
        return ("cancelled",)
    finally:
        _inline[0] = None


async def app_call_async(app, index, args, span=None):
    if span is not None:
        _enter(span)
    try:
        return _ok(await app._covet_call(index, sys.modules["covet"].Request(*args)))
    except Exception as exc:
        return classify(exc)


def _after_request(request, result):
    metadata = [(str(k), str(v)) for k, v in request.metadata.items()]
    changed = getattr(request, "_headers_changed", None)
    headers = [(str(k), str(v)) for k, v in request.headers.items()] if changed and changed() else None
    if result is None:
        return ("continue", metadata, headers)
    status, out_headers, body = sys.modules["covet"]._to_wire(result)
    return ("respond", metadata, headers, status, out_headers, body)


def filter_request(fn, args, span=None):
    token = None if span is None else _enter(span)
    try:
        request = sys.modules["covet"].Request(*args)
        return _after_request(request, fn(request))
    except Exception as exc:
        return classify(exc)
    finally:
        if token is not None:
            _span_var.reset(token)


async def filter_request_async(fn, args, span=None):
    if span is not None:
        _enter(span)
    try:
        request = sys.modules["covet"].Request(*args)
        return _after_request(request, await fn(request))
    except Exception as exc:
        return classify(exc)


def _response(args, status, headers, body):
    covet = sys.modules["covet"]
    return covet.Request(*args), covet.Response(body, status, headers)


def filter_response(fn, args, status, headers, body, span=None):
    token = None if span is None else _enter(span)
    try:
        request, response = _response(args, status, headers, body)
        result = fn(request, response)
        return _ok(sys.modules["covet"]._to_wire(response if result is None else result))
    except Exception as exc:
        return classify(exc)
    finally:
        if token is not None:
            _span_var.reset(token)


async def filter_response_async(fn, args, status, headers, body, span=None):
    if span is not None:
        _enter(span)
    try:
        request, response = _response(args, status, headers, body)
        result = await fn(request, response)
        return _ok(sys.modules["covet"]._to_wire(response if result is None else result))
    except Exception as exc:
        return classify(exc)


def call_plain(fn, args):
    """A hook (init, shutdown, _covet_init...): None, or ("error", traceback)."""
    try:
        result = fn(*args)
        if asyncio.iscoroutine(result):
            return result
        return None
    except Exception as exc:
        return classify(exc)


async def await_plain(coro):
    try:
        await coro
        return None
    except Exception as exc:
        return classify(exc)


# CPython 3.12+ can start a task eagerly: its first step runs inside the
# Task constructor, so a coroutine that never suspends (most request
# handlers) finishes there, with no loop turn and no scheduled callback.
# It still runs as a real Task (`asyncio.current_task()`, sniffio, anyio
# cancel scopes and contextvars see what they expect). 3.11 schedules it.
# COVET_PYTHON_EAGER=0 turns it off (for an app that needs its request task
# to start only once the loop runs it; docs/python.md "Python versions").
_EAGER = sys.version_info >= (3, 12) and os.environ.get("COVET_PYTHON_EAGER", "1") != "0"


_Task = asyncio.Task


def _start(coro, context, name):
    """The host's request task for `coro`: eager where the interpreter
    supports it. None when it already finished (nothing left to cancel)."""
    if _EAGER:
        task = _Task(coro, loop=_loop, context=context, name=name, eager_start=True)
        return None if task.done() else task
    return _loop.create_task(coro, context=context, name=name)


def spawn(fn, args, done, instance=None):
    """On the loop thread: runs `fn(*args)` as a task (in the plugin
    instance's context, when given); `done(result)` at its end. Returns the
    task, or None when it already finished (an eager task that never
    suspended)."""
    context = None if instance is None else instance.context.copy()
    name = None if instance is None else instance.task_name
    coro = _app_task(args, done) if fn is app_call_async else _finish(fn, args, done)
    return _start(coro, context, name)


async def _app_task(args, done):
    """`_finish(app_call_async, args, done)` as one coroutine: a decorator
    app's async endpoint, one frame fewer per request."""
    app, index, request_args, span = args
    if span is not None:
        _enter(span)
    try:
        result = _ok(await app._covet_call(index, sys.modules["covet"].Request(*request_args)))
    except asyncio.CancelledError:
        done(("cancelled",))
        raise
    except Exception as exc:
        result = classify(exc)
    done(result)


async def _finish(fn, args, done):
    try:
        result = await fn(*args)
    except asyncio.CancelledError:
        done(("cancelled",))
        raise
    except Exception as exc:
        result = classify(exc)
    done(result)


# ---- ASGI -------------------------------------------------------------------

_ASGI = {"version": "3.0", "spec_version": "2.3"}


class _Finished:
    """Set when the response is complete or the client went away; what the
    second receive() waits on (a future only if someone waits)."""

    __slots__ = ("done", "waiter")

    def __init__(self):
        self.done = False
        self.waiter = None

    def set(self):
        self.done = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self):
        if not self.done:
            if self.waiter is None:
                self.waiter = _loop.create_future()
            await self.waiter


def asgi_start(app, head, headers, body, source, state, sink, instance=None, span=None):
    """On the loop thread: one http request as a task (in a copy of the
    instance's context, holding the request's span when it has one)."""
    context = contextvars.copy_context() if instance is None else instance.context.copy()
    if span is not None:
        context.run(_enter, span)
    name = None if instance is None else instance.task_name
    return _start(asgi_http(app, head, headers, body, source, state, sink), context, name)


def _buffered_receive(body, finished):
    """receive() of a buffered body: the body as one message, then http.disconnect."""
    pending = [body]

    async def receive():
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    return receive


def _streamed_receive(source, finished):
    """receive() of a streamed body (`request_body: stream`): each call asks
    the host for the next chunk; a cut-off (over the limit, unreadable, the
    response complete) is http.disconnect, as is every call after it."""
    state = {"reading": True}

    async def receive():
        if state["reading"]:
            future = _loop.create_future()
            got = await future if source.want(future) else None
            if got is not None:
                chunk, more = got
                state["reading"] = more
                return {"type": "http.request", "body": chunk, "more_body": more}
            state["reading"] = False
            finished.set()
            return {"type": "http.disconnect"}
        await finished.wait()
        return {"type": "http.disconnect"}

    return receive


def http_scope(head, headers, state):
    """The ASGI `http` scope of one request (`head` as asgi_http takes it)."""
    method, scheme, path, raw_path, query, version, client, server = head
    scope = {
        "type": "http",
        "asgi": _ASGI,
        "http_version": version,
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": client,
        "server": server,
    }
    if state is not None:
        scope["state"] = dict(state)
    return scope


async def asgi_http(app, head, headers, body, source, state, sink):
    """One http request. `head` = (method, scheme, path, raw_path, query,
    http_version, client, server); `source` streams the body (else `body`)."""
    scope = http_scope(head, headers, state)
    finished = _Finished()
    sink.bind(finished)
    receive = _buffered_receive(body, finished) if source is None else _streamed_receive(source, finished)

    async def send(message):
        kind = message["type"]
        if kind == "http.response.start":
            sink.start(message["status"], message.get("headers") or [])
        elif kind == "http.response.body":
            more = bool(message.get("more_body", False))
            if sink.body(bytes(message.get("body", b"")), more):
                # Over the in-flight budget: wait until the client reads.
                waiter = _loop.create_future()
                sink.wait(waiter)
                await waiter
            if not more:
                finished.set()

    try:
        await app(scope, receive, send)
    except asyncio.CancelledError:
        sink.finish("cancelled")
        raise
    except Exception as exc:
        sink.finish("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return None
    finally:
        finished.set()
    sink.finish(None)
    return None


class Lifespan:
    """The ASGI lifespan protocol for one app instance."""

    def __init__(self, app):
        self.app = app
        self.state = {}
        self.inbox = asyncio.Queue()
        self.started = _loop.create_future()
        self.stopped = _loop.create_future()
        self.supported = True
        self.task = None

    async def _run(self):
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        try:
            await self.app(scope, self.inbox.get, self._send)
        except BaseException:
            if not self.started.done():
                self.supported = False
                self.started.set_result(None)
            elif not self.stopped.done():
                print("lifespan shutdown raised:\n" + traceback.format_exc(), file=sys.stderr)
        finally:
            for fut in (self.started, self.stopped):
                if not fut.done():
                    fut.set_result(None)

    async def _send(self, message):
        kind = message["type"]
        if kind == "lifespan.startup.complete" and not self.started.done():
            self.started.set_result(None)
        elif kind == "lifespan.startup.failed" and not self.started.done():
            self.started.set_result(message.get("message") or "lifespan startup failed")
        elif kind == "lifespan.shutdown.complete" and not self.stopped.done():
            self.stopped.set_result(None)
        elif kind == "lifespan.shutdown.failed" and not self.stopped.done():
            print("lifespan shutdown failed: %s" % message.get("message", ""), file=sys.stderr)
            self.stopped.set_result(None)

    async def startup(self):
        """None when started (or unsupported), else ("error", message)."""
        self.task = _loop.create_task(self._run())
        await self.inbox.put({"type": "lifespan.startup"})
        failed = await self.started
        if failed is not None:
            return ("error", str(failed))
        return None

    def state_items(self):
        return self.state if self.supported else None

    async def shutdown(self):
        if not self.supported or self.task is None or self.task.done():
            return None
        await self.inbox.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(asyncio.shield(self.stopped), 10)
        except asyncio.TimeoutError:
            self.task.cancel()
        return None


async def lifespan_start(app):
    lifespan = Lifespan(app)
    failed = await lifespan.startup()
    if failed is not None:
        return failed
    return ("ok", lifespan)


async def lifespan_stop(lifespan):
    await lifespan.shutdown()
    return None
