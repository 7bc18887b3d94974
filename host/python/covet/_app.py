"""`Covet` (also spelled `CovetPy`), the decorator app, and the hooks the
host calls on it.

```python
from covet import CovetPy
app = CovetPy()

@app.get("/users/{user_id}")
async def get_user(user_id: int, q: str | None = None):
    return {"id": user_id, "q": q}
```

Routing happens in the host (a `matchit` router built from
`_covet_routes()` at load); Python only binds parameters, calls the
handler, checks its return value against its annotation and serialises it.
All signature work is done here, at decoration time; the per-request
functions are put together once, when the host first asks for the routes
(after every middleware is registered).
"""

import inspect
import re

from . import _middleware, _services
from ._params import compile_binder
from ._returns import UNSET, compile_returner
from ._wire import to_wire

__all__ = ["Covet", "CovetPy"]

_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(:path)?\}")
_METHOD = re.compile(r"^[A-Z]+$")


def _normalise_path(path: str, where: str) -> tuple:
    """(the matchit pattern, the parameter names); `{name:path}` (FastAPI's
    spelling of a catch-all) becomes `{*name}`."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"{where}: a route path must start with '/', got {path!r}")
    names = [m.group(2) for m in _PARAM.finditer(path)]
    pattern = _PARAM.sub(lambda m: "{*%s}" % m.group(2) if m.group(1) or m.group(3) else m.group(0), path)
    stray = _PARAM.sub("", pattern)
    if "{" in stray or "}" in stray:
        raise ValueError(f"{where}: bad parameter in {path!r}; use {{name}} or a final {{*rest}}")
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: {path!r} names a parameter twice")
    return pattern, set(names)


def _normalise_methods(methods, where: str) -> list:
    methods = [str(m).upper() for m in (methods or ["GET"])]
    for method in methods:
        if not _METHOD.match(method):
            raise ValueError(f"{where}: {method!r} is not an HTTP method")
    return list(dict.fromkeys(methods))


class _Endpoint:
    """One registered handler, as decoration left it."""

    __slots__ = ("fn", "bind", "returner", "status", "is_async", "blocking")

    def __init__(self, fn, bind, returner, status, blocking=False):
        self.fn, self.bind, self.returner, self.status = fn, bind, returner, status
        self.is_async = inspect.iscoroutinefunction(fn)
        self.blocking = bool(blocking)


def _make_call(fn, bind, status, returner):
    """The per-request function without middleware: bind, call, serialise.
    Four shapes (and a fifth with a return check) so the common cases do no
    extra work."""
    if returner is not None:
        return _checked_call(fn, bind, status, returner)
    if inspect.iscoroutinefunction(fn):
        if bind is None:
            async def call(request):
                return to_wire(await fn(), status)
        else:
            async def call(request):
                return to_wire(await fn(**bind(request)), status)
    elif bind is None:
        def call(request):
            return to_wire(fn(), status)
    else:
        def call(request):
            return to_wire(fn(**bind(request)), status)
    return call


def _checked_call(fn, bind, status, returner):
    """`_make_call` for a handler whose return value is checked."""
    if bind is None:
        bind = _no_arguments
    if inspect.iscoroutinefunction(fn):
        async def call(request):
            return to_wire(returner(await fn(**bind(request))), status)
    else:
        def call(request):
            return to_wire(returner(fn(**bind(request))), status)
    return call


def _no_arguments(request) -> dict:
    return {}


class Covet:
    """A decorator app. Serve it with `kind: python, app: FILE.py:ATTR`;
    its routes match the full request path (the manifest route decides
    which requests reach it). `app.config` is the plugin's manifest
    `config` (a dict, empty when absent) once the host has loaded it.

    The keyword arguments are CovetPy's: `debug`, `title`, `description`
    and `version` are kept as attributes (covet's errors never carry
    tracebacks, debug or not); `middleware` is a list registered as with
    `app.middleware(m)`."""

    def __init__(self, debug: bool = False, middleware=None, title: "str | None" = None,
                 description: "str | None" = None, version: "str | None" = None) -> None:
        self.config: dict = {}
        self.debug = debug
        self.title, self.description, self.version = title, description, version
        self._routes: list = []
        self._endpoints: list = []
        self._middleware: list = []
        self._calls: "list | None" = None
        self._seen: dict = {}
        self._startup: list = []
        self._shutdown: list = []
        self._periodic: list = []
        for entry in middleware or ():
            self.middleware(entry)

    def route(self, path: str, methods=None, *, status_code: "int | None" = None, response_model=UNSET,
              blocking: bool = False):
        """Registers the decorated function for `path` and `methods`
        (default GET). `status_code` replaces the 200 (204 for None) of a
        plain return value; a returned `Response` keeps its own.
        `response_model` (default: the return annotation) is the type the
        return value is checked and filtered through; None checks nothing.
        `blocking=True` runs a sync (`def`) endpoint on the host's Python
        thread pool; without it a sync endpoint runs inline on the thread of
        the event loop, which is faster but holds the loop (and the other
        requests) while it runs: mark every endpoint that waits on I/O or
        sleeps."""

        def register(fn):
            where = f"covet route {path!r} (handler {getattr(fn, '__qualname__', repr(fn))})"
            pattern, names = _normalise_path(path, where)
            verbs = _normalise_methods(methods, where)
            bind = compile_binder(fn, names, where, verbs)
            returner = compile_returner(fn, response_model, where)
            self._claim(pattern, verbs, where)
            self._routes.append((verbs, pattern, len(self._endpoints)))
            self._endpoints.append(_Endpoint(fn, bind, returner, status_code, blocking))
            self._calls = None
            return fn

        return register

    def get(self, path: str, *, status_code: "int | None" = None, response_model=UNSET, blocking: bool = False):
        """`route(path, ["GET"])`."""
        return self.route(path, ["GET"], status_code=status_code, response_model=response_model, blocking=blocking)

    def post(self, path: str, *, status_code: "int | None" = None, response_model=UNSET, blocking: bool = False):
        """`route(path, ["POST"])`."""
        return self.route(path, ["POST"], status_code=status_code, response_model=response_model, blocking=blocking)

    def put(self, path: str, *, status_code: "int | None" = None, response_model=UNSET, blocking: bool = False):
        """`route(path, ["PUT"])`."""
        return self.route(path, ["PUT"], status_code=status_code, response_model=response_model, blocking=blocking)

    def patch(self, path: str, *, status_code: "int | None" = None, response_model=UNSET, blocking: bool = False):
        """`route(path, ["PATCH"])`."""
        return self.route(path, ["PATCH"], status_code=status_code, response_model=response_model, blocking=blocking)

    def delete(self, path: str, *, status_code: "int | None" = None, response_model=UNSET, blocking: bool = False):
        """`route(path, ["DELETE"])`."""
        return self.route(path, ["DELETE"], status_code=status_code, response_model=response_model, blocking=blocking)

    def middleware(self, middleware="http", **options):
        """Registers HTTP middleware around every endpoint of the app (the
        first registered is the outermost; see `covet._middleware`):

        - `@app.middleware("http")` decorates `async def mw(request, call_next)`
          (any string works: it only labels the middleware);
        - `app.middleware(MyMiddleware, **options)`: a class, instantiated as
          `MyMiddleware(app, **options)` (a `BaseHTTPMiddleware` subclass, or
          any class with `async def dispatch(self, request, call_next)`);
        - `app.middleware(instance)` or `app.middleware(async_function)`.

        Returns what it was given (the decorator form: a decorator)."""
        if isinstance(middleware, str):  # "http" (FastAPI), or a label ("performance" in CovetPy's docs)
            if options:
                raise TypeError("covet: @app.middleware(kind) takes no options")
            return self._add_middleware
        self._middleware.append(_middleware.handler_of(middleware, self, options))
        self._calls = None
        return middleware

    def add_middleware(self, middleware_class, **options):
        """`app.middleware(middleware_class, **options)` (Starlette's name)."""
        self.middleware(middleware_class, **options)

    def _add_middleware(self, fn):
        self._middleware.append(_middleware.handler_of(fn, self, {}))
        self._calls = None
        return fn

    def run(self, host: str = "127.0.0.1", port: int = 8000, **options):
        """Not available: covet serves the app from its manifest
        (`kind: python, app: FILE.py:ATTR`); no server runs inside Python."""
        raise RuntimeError("covet serves this app from its manifest (kind: python, app: FILE.py:ATTR); "
                           "app.run() has no server to start inside the covet host")

    def on_startup(self, fn):
        """Registers a (sync) function run once when the host loads the app,
        after `app.config` is set; an exception refuses the load."""
        return self._hook(self._startup, fn)

    def on_shutdown(self, fn):
        """Registers a (sync) function run once when the instance is retired
        (host shutdown, or after its last request following a swap)."""
        return self._hook(self._shutdown, fn)

    def every(self, seconds: float):
        """Registers the decorated function (async, or a quick sync one) to
        run once the app is loaded and then every `seconds`, as a background
        task of this plugin instance, cancelled when the instance shuts down
        (swap, reload, host stop). See `covet.every`."""
        seconds = _services._seconds(seconds, "app.every(seconds)")
        if seconds <= 0:
            raise ValueError("app.every(seconds) needs a positive interval")

        def register(fn):
            if not callable(fn):
                raise TypeError("app.every decorates a function")
            self._periodic.append((seconds, fn))
            return fn

        return register

    @staticmethod
    def _hook(hooks: list, fn):
        if inspect.iscoroutinefunction(fn):
            raise TypeError(f"covet: {fn.__qualname__} must be a plain function, not async")
        hooks.append(fn)
        return fn

    def _claim(self, pattern: str, methods: list, where: str) -> None:
        """Refuses a second handler for the same method and path."""
        for method in methods:
            earlier = self._seen.get((method, pattern))
            if earlier:
                raise ValueError(f"{where}: {method} {pattern} is already handled by {earlier}")
            self._seen[(method, pattern)] = where

    # --- the hooks the host calls (the Python plugin contract) ---

    def _covet_routes(self) -> list:
        """(methods, matchit path, endpoint index) per route, in order. A GET
        route also answers HEAD (the host drops the body) unless the app
        has its own HEAD handler for that path."""
        self._compile()
        return [(self._with_head(methods, pattern), pattern, index) for methods, pattern, index in self._routes]

    def _with_head(self, methods: list, pattern: str) -> list:
        if "GET" in methods and "HEAD" not in methods and ("HEAD", pattern) not in self._seen:
            return [*methods, "HEAD"]
        return list(methods)

    def _covet_init(self, config) -> None:
        """Once at load: sets `config`, runs the startup hooks."""
        self.config = config if config is not None else {}
        for hook in self._startup:
            hook()
        if _services._current.get() is not None:  # outside the host (unit tests) nothing runs them
            for seconds, fn in self._periodic:
                _services._schedule(fn, seconds)

    def _covet_shutdown(self) -> None:
        """Once when retired: runs every shutdown hook, then re-raises the
        first failure (so one failing hook does not skip the others)."""
        failure = None
        for hook in self._shutdown:
            try:
                hook()
            except Exception as err:  # noqa: BLE001 - reported after the other hooks ran
                failure = failure or err
        if failure is not None:
            raise failure

    def _compile(self) -> list:
        """The per-request function of every endpoint, with the middleware
        registered by now around each."""
        if self._middleware:
            handlers = list(self._middleware)
            self._calls = [_middleware.chain(handlers, _middleware.endpoint(e.fn, e.bind, e.returner, e.status,
                                                                             e.is_async))
                           for e in self._endpoints]
        else:
            self._calls = [_make_call(e.fn, e.bind, e.status, e.returner) for e in self._endpoints]
        return self._calls

    def _covet_is_async(self, index: int) -> bool:
        """Whether endpoint `index` returns a coroutine (→ the event loop):
        every endpoint does once the app has middleware."""
        return bool(self._middleware) or self._endpoints[index].is_async

    def _covet_is_blocking(self, index: int) -> bool:
        """Whether sync endpoint `index` goes to the thread pool (`blocking=True`)
        rather than inline on the event loop's thread."""
        return self._endpoints[index].blocking

    def _covet_call(self, index: int, request):
        """Runs endpoint `index`: a wire tuple, or a coroutine of one."""
        calls = self._calls
        if calls is None:
            calls = self._compile()
        return calls[index](request)


CovetPy = Covet
