"""HTTP middleware of a decorator app: `async (request, call_next) ->
response` functions wrapped around every endpoint of the app.

```python
@app.middleware("http")
async def timing(request, call_next):
    start = time.perf_counter()
    response = await call_next(request)          # the next middleware, then the endpoint
    response.headers["x-time"] = f"{time.perf_counter() - start:.4f}"
    return response

class Auth(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        if "authorization" not in request.headers:
            return JSONResponse({"detail": "no"}, status_code=401)   # short-circuit
        return await call_next(request)

app.middleware(Auth)                              # or app.middleware(Auth(app)), app.add_middleware(Auth)
```

The first middleware registered is the outermost (CovetPy's order).
`call_next` returns a `Response` whatever the endpoint returned. An
`HTTPException` or a 422 raised inside becomes a `Response` carrying covet's
structured error body, so middleware sees (and may edit) it like any other;
when it comes back unchanged apart from added headers, the host renders it
exactly as without middleware. Any other exception propagates out of
`call_next` (catch it, or let the host answer 500). Requests the host
answers itself (404, 405 inside the mount) never reach the app.
"""

import asyncio
import datetime
import inspect
import json

from ._http import HTTPException, RequestValidationError, Response, _phrase
from ._wire import to_wire

__all__ = ["BaseHTTPMiddleware", "handler_of", "chain", "endpoint"]


class BaseHTTPMiddleware:
    """Subclass it and implement `async def dispatch(self, request,
    call_next)`. `app.middleware(MyMiddleware, **options)` makes the
    instance as `MyMiddleware(app, **options)`; `dispatch=` wraps a plain
    async function instead."""

    def __init__(self, app=None, dispatch=None):
        self.app = app
        if dispatch is not None:
            self.dispatch = dispatch

    async def dispatch(self, request, call_next):
        """Passes the request on; override it."""
        return await call_next(request)


def handler_of(middleware, app, options: dict):
    """The `async (request, call_next)` function of a middleware given as a
    class (instantiated with `app` and `options`), an instance with
    `dispatch` or `__call__`, or a function. TypeError for anything else."""
    if isinstance(middleware, type):
        middleware = middleware(app, **options)
    elif options:
        raise TypeError("covet: middleware options are for a middleware class, not an instance or a function")
    if inspect.isfunction(middleware) or inspect.ismethod(middleware):
        handler = middleware
    else:
        handler = getattr(middleware, "dispatch", None) or getattr(middleware, "__call__", None)
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(f"covet: middleware {middleware!r} must be `async def (request, call_next)` "
                        "(or a class with `async def dispatch(self, request, call_next)`)")
    return handler


def as_response(value, status: "int | None" = None) -> Response:
    """`value` (anything a handler may return) as a `Response`."""
    if isinstance(value, Response):
        return value
    code, headers, body = to_wire(value, status)
    return Response(body, code, headers)


def endpoint(fn, bind, returner, status, is_async: bool):
    """The innermost step: bind, call (a sync `fn` on a worker thread),
    check the return value, make a `Response`."""

    async def call(request):
        kwargs = bind(request) if bind is not None else {}
        value = await fn(**kwargs) if is_async else await asyncio.to_thread(fn, **kwargs)
        return as_response(returner(value) if returner is not None else value, status)

    return call


def chain(handlers: list, inner):
    """`request -> wire tuple` running `handlers` (outermost first) around `inner`."""
    for handler in reversed(handlers):
        inner = _link(handler, inner)

    async def run(request):
        return _finish(await inner(request))

    return run


def _link(handler, inner):
    async def call_next(request):
        try:
            return await inner(request)
        except (HTTPException, RequestValidationError) as exc:
            return _ErrorResponse(exc, request)

    async def step(request):
        return as_response(await handler(request, call_next))

    return step


def _finish(response: Response) -> tuple:
    """The wire tuple; an error response middleware left as it was (apart
    from added headers on an `HTTPException`) is raised again so the host
    renders it."""
    if isinstance(response, _ErrorResponse) and response.unchanged():
        exc = response.exc
        if isinstance(exc, HTTPException):
            added = {k: v for k, v in response.headers.items() if k != "content-type"}
            exc.headers = added or None
            raise exc
        if response.headers.raw() == response.snapshot:
            raise exc
    return to_wire(response)


def _code(status: int) -> str:
    if status == 422:
        return "VALIDATION_ERROR"
    return _phrase(status).upper().replace(" ", "_").replace("-", "_").replace("'", "")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _ErrorResponse(Response):
    """What `call_next` returns for an `HTTPException` or a 422: covet's
    structured error body, and the exception to raise again."""

    def __init__(self, exc: Exception, request):
        if isinstance(exc, HTTPException):
            status, message, details, headers = exc.status_code, exc.detail, None, exc.headers
        else:
            status, message, details, headers = 422, "the request is invalid", exc.errors, None
        error = {"code": _code(status), "message": message, "details": details,
                 "request_id": request.id, "timestamp": _now()}
        body = json.dumps({"error": error}, default=str, separators=(",", ":")).encode()
        super().__init__(body, status, headers, "application/json")
        self.exc = exc
        self.rendered = self.body
        self.status = status
        self.snapshot = list(self.headers.raw())

    def unchanged(self) -> bool:
        """Whether the body and status are still the ones rendered here."""
        return self.body is self.rendered and self.status_code == self.status
