"""`Covet`, the decorator app, and the hooks the host calls on it.

```python
from covet import Covet
app = Covet()

@app.get("/users/{user_id}")
async def get_user(user_id: int, q: str | None = None):
    return {"id": user_id, "q": q}
```

Routing happens in the host (a `matchit` router built from
`_covet_routes()` at load); Python only binds parameters, calls the
handler and serialises the result. All signature work is done here, at
decoration time.
"""

import inspect
import re

from . import _services
from ._params import compile_binder
from ._wire import to_wire

__all__ = ["Covet"]

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


def _make_call(fn, bind, status):
    """The per-request function: bind, call, serialise. Four shapes so the
    common cases do no extra work."""
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


class Covet:
    """A decorator app. Serve it with `kind: python, app: FILE.py:ATTR`;
    its routes match the full request path (the manifest route decides
    which requests reach it). `app.config` is the plugin's manifest
    `config` (a dict, empty when absent) once the host has loaded it."""

    def __init__(self) -> None:
        self.config: dict = {}
        self._routes: list = []
        self._calls: list = []
        self._is_async: list = []
        self._seen: dict = {}
        self._startup: list = []
        self._shutdown: list = []
        self._periodic: list = []

    def route(self, path: str, methods=None, *, status_code: "int | None" = None):
        """Registers the decorated function for `path` and `methods`
        (default GET). `status_code` replaces the 200 (204 for None) of a
        plain return value; a returned `Response` keeps its own."""

        def register(fn):
            where = f"covet route {path!r} (handler {getattr(fn, '__qualname__', repr(fn))})"
            pattern, names = _normalise_path(path, where)
            verbs = _normalise_methods(methods, where)
            bind = compile_binder(fn, names, where)
            self._claim(pattern, verbs, where)
            self._routes.append((verbs, pattern, len(self._calls)))
            self._calls.append(_make_call(fn, bind, status_code))
            self._is_async.append(inspect.iscoroutinefunction(fn))
            return fn

        return register

    def get(self, path: str, *, status_code: "int | None" = None):
        """`route(path, ["GET"])`."""
        return self.route(path, ["GET"], status_code=status_code)

    def post(self, path: str, *, status_code: "int | None" = None):
        """`route(path, ["POST"])`."""
        return self.route(path, ["POST"], status_code=status_code)

    def put(self, path: str, *, status_code: "int | None" = None):
        """`route(path, ["PUT"])`."""
        return self.route(path, ["PUT"], status_code=status_code)

    def patch(self, path: str, *, status_code: "int | None" = None):
        """`route(path, ["PATCH"])`."""
        return self.route(path, ["PATCH"], status_code=status_code)

    def delete(self, path: str, *, status_code: "int | None" = None):
        """`route(path, ["DELETE"])`."""
        return self.route(path, ["DELETE"], status_code=status_code)

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

    def _covet_is_async(self, index: int) -> bool:
        """Whether endpoint `index` returns a coroutine (→ the event loop)."""
        return self._is_async[index]

    def _covet_call(self, index: int, request):
        """Runs endpoint `index`: a wire tuple, or a coroutine of one."""
        return self._calls[index](request)
