"""Type stubs for `covet`, the Python API the covet host provides inside its
embedded interpreter. There is nothing to install at run time; point your
editor or type checker at this directory (python-plugins/covet-stubs/README.md).
Reference: docs/python.md."""

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, MutableMapping
from typing import Any, TypeVar, overload

from . import http as http
from . import trace as trace

_F = TypeVar("_F", bound=Callable[..., Any])
_HeadersInit = Mapping[str, str] | Iterable[tuple[str, str]] | None

__version__: str

class Headers(MutableMapping[str, str]):
    """Case-insensitive, multi-valued headers; `items()` keeps repeats."""
    def __init__(self, raw: _HeadersInit = None) -> None: ...
    def __getitem__(self, name: str) -> str: ...
    def __setitem__(self, name: str, value: str) -> None: ...
    def __delitem__(self, name: str) -> None: ...
    def __iter__(self) -> Iterator[str]: ...
    def __len__(self) -> int: ...
    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    def getlist(self, name: str) -> list[str]: ...
    def append(self, name: str, value: str) -> None: ...
    def items(self) -> list[tuple[str, str]]: ...  # type: ignore[override]
    def raw(self) -> list[tuple[str, str]]: ...

class QueryParams(Mapping[str, str]):
    """The parsed query string: `query[k]` is the last value, `getlist(k)` all."""
    def __init__(self, query_string: str = "") -> None: ...
    def __getitem__(self, key: str) -> str: ...
    def __iter__(self) -> Iterator[str]: ...
    def __len__(self) -> int: ...
    def getlist(self, key: str) -> list[str]: ...
    def multi_items(self) -> list[tuple[str, str]]: ...

class RequestState:
    """`request.state`: an attribute bag for one request."""
    def __getattr__(self, name: str) -> Any: ...
    def __setattr__(self, name: str, value: Any) -> None: ...

class URL(str):
    """`request.url`: the URL as a str, with its parts."""
    scheme: str
    netloc: str
    path: str
    query: str

class Request:
    """One request: built by the host, read by handlers and filters."""
    method: str
    path: str
    query_string: str
    path_params: dict[str, str]
    body: bytes
    metadata: dict[str, str]
    id: str
    client: str | None
    def __init__(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: list[tuple[str, str]],
        path_params: dict[str, str],
        body: bytes,
        metadata: dict[str, str],
        request_id: str,
        client: str | None,
    ) -> None: ...
    @property
    def headers(self) -> Headers: ...
    @property
    def query(self) -> QueryParams: ...
    @property
    def query_params(self) -> QueryParams: ...
    @property
    def state(self) -> RequestState: ...
    @property
    def cookies(self) -> dict[str, str]: ...
    @property
    def url(self) -> URL: ...
    async def json(self) -> Any: ...

class Response:
    """A response returned as is (filters may edit it in `on_response`)."""
    media_type: str | None
    status_code: int
    body: bytes
    headers: Headers
    def __init__(
        self,
        content: Any = b"",
        status_code: int = 200,
        headers: _HeadersInit = None,
        media_type: str | None = None,
        *,
        status: int | None = None,
    ) -> None: ...
    def render(self, content: Any) -> bytes: ...

class JSONResponse(Response):
    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: _HeadersInit = None,
        media_type: str | None = None,
        *,
        status: int | None = None,
    ) -> None: ...

class PlainTextResponse(Response): ...
class HTMLResponse(Response): ...

class RedirectResponse(Response):
    def __init__(self, url: str, status_code: int = 307, headers: _HeadersInit = None) -> None: ...

class HTTPException(Exception):
    """Raise to answer `status_code` (400-599) with covet's structured error body."""
    status_code: int
    detail: str
    headers: dict[str, str] | None
    def __init__(self, status_code: int, detail: str | None = None, headers: Mapping[str, str] | None = None) -> None: ...

class RequestValidationError(Exception):
    """Raise (or let covet raise) to answer 422 `VALIDATION_ERROR`."""
    errors: list[dict[str, Any]]
    def __init__(self, errors: list[dict[str, Any]]) -> None: ...

class ResponseValidationError(Exception):
    """A return value that does not fit its annotation or `response_model` (→ 500, logged)."""
    errors: list[dict[str, Any]]
    def __init__(self, where: str, annotation: Any, errors: list[dict[str, Any]]) -> None: ...

# ---- parameter markers: the default of a handler parameter ----

class Param:
    """Where a parameter comes from and what it must satisfy; `...` as the default: required."""
    default: Any
    alias: str | None
    def __init__(
        self,
        default: Any = ...,
        *,
        alias: str | None = None,
        ge: float | None = None,
        gt: float | None = None,
        le: float | None = None,
        lt: float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        pattern: str | None = None,
        description: str | None = None,
    ) -> None: ...
    def key(self, name: str) -> str: ...

class Query(Param):
    """A query-string value; a list parameter takes every repeat."""

class Path(Param):
    """A path segment, for its constraints."""

class Cookie(Param):
    """A cookie of the `Cookie` header."""

class Header(Param):
    """A request header; `user_agent` reads `user-agent` unless `convert_underscores=False`."""
    def __init__(
        self,
        default: Any = ...,
        *,
        alias: str | None = None,
        convert_underscores: bool = True,
        ge: float | None = None,
        gt: float | None = None,
        le: float | None = None,
        lt: float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        pattern: str | None = None,
        description: str | None = None,
    ) -> None: ...

# ---- middleware ----

_CallNext = Callable[[Request], Coroutine[Any, Any, Response]]

class BaseHTTPMiddleware:
    """Subclass it and implement `dispatch`; register with `app.middleware(MyMiddleware)`."""
    app: Any
    def __init__(self, app: Any = None, dispatch: Callable[[Request, _CallNext], Coroutine[Any, Any, Any]] | None = None) -> None: ...
    async def dispatch(self, request: Request, call_next: _CallNext) -> Response: ...

class Covet:
    """A decorator app, served with `kind: python, app: FILE.py:ATTR` (also spelled `CovetPy`)."""
    config: dict[str, Any]
    debug: bool
    title: str | None
    description: str | None
    version: str | None
    def __init__(
        self,
        debug: bool = False,
        middleware: list[Any] | None = None,
        title: str | None = None,
        description: str | None = None,
        version: str | None = None,
    ) -> None: ...
    def route(
        self,
        path: str,
        methods: list[str] | None = None,
        *,
        status_code: int | None = None,
        response_model: Any = ...,
        blocking: bool = False,
    ) -> Callable[[_F], _F]: ...
    def get(
        self, path: str, *, status_code: int | None = None, response_model: Any = ..., blocking: bool = False
    ) -> Callable[[_F], _F]: ...
    def post(
        self, path: str, *, status_code: int | None = None, response_model: Any = ..., blocking: bool = False
    ) -> Callable[[_F], _F]: ...
    def put(
        self, path: str, *, status_code: int | None = None, response_model: Any = ..., blocking: bool = False
    ) -> Callable[[_F], _F]: ...
    def patch(
        self, path: str, *, status_code: int | None = None, response_model: Any = ..., blocking: bool = False
    ) -> Callable[[_F], _F]: ...
    def delete(
        self, path: str, *, status_code: int | None = None, response_model: Any = ..., blocking: bool = False
    ) -> Callable[[_F], _F]: ...
    def middleware(self, middleware: Any = "http", **options: Any) -> Any:
        """`@app.middleware("http")` (a decorator), or `app.middleware(cls_or_instance_or_fn, **options)`."""
    def add_middleware(self, middleware_class: type, **options: Any) -> None: ...
    def run(self, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
        """Raises: covet serves the app from its manifest."""
    def on_startup(self, fn: _F) -> _F: ...
    def on_shutdown(self, fn: _F) -> _F: ...
    def every(self, seconds: float) -> Callable[[_F], _F]: ...

CovetPy = Covet

# ---- host services (async-only; granted per plugin in the manifest) ----

class HostServiceError(Exception):
    """A host service call failed; `kind` is the host's name for the failure."""
    kind: str
    message: str
    def __init__(self, message: str, kind: str | None = None) -> None: ...

class ServiceDenied(HostServiceError, PermissionError):
    """No manifest grant; `grant` is the `capabilities:` key that would allow it."""
    grant: str

class OutboundDenied(ServiceDenied):
    """A host missing from `capabilities: { outbound_http: [...] }`."""

class StateDenied(ServiceDenied):
    """A namespace missing from `capabilities: { state: [...] }`."""

class ServiceTimeout(HostServiceError, TimeoutError):
    """The call did not finish within its limit."""

class ServiceUnavailable(HostServiceError, ConnectionError):
    """A connection could not be made (refused, unreachable, TLS)."""

class ServiceProtocolError(HostServiceError):
    """A bad request (URL, header) or an HTTP protocol error."""

class ServiceBackendError(HostServiceError):
    """The shared-state backend failed or lacks the operation."""

class ServiceShutDown(HostServiceError):
    """The plugin instance is shutting down."""

class State:
    """One shared-state namespace; values are bytes (str is stored as UTF-8)."""
    namespace: str
    def __init__(self, namespace: str) -> None: ...
    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes | str, ttl: float | None = None) -> None: ...
    async def incr(self, key: str, delta: int = 1, ttl: float | None = None) -> int: ...
    async def compare_and_set(self, key: str, expected: bytes | str | None, new: bytes | str | None, ttl: float | None = None) -> bool: ...
    async def delete(self, key: str) -> bool: ...

def state(namespace: str) -> State:
    """The shared-state namespace `namespace` (granted with `capabilities: { state: [namespace] }`)."""

async def sleep(seconds: float) -> None:
    """Waits on the host's timer; raises `ServiceShutDown` if the instance shuts down meanwhile."""

def spawn(coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
    """Runs `coro` as a background task of the plugin instance, cancelled at its shutdown."""

def every(seconds: float) -> Callable[[_F], _F]:
    """Runs the decorated function now and every `seconds` while the instance lives."""

__all__ = [
    "Covet", "CovetPy", "BaseHTTPMiddleware", "Query", "Path", "Header", "Cookie",
    "ResponseValidationError", "Request", "Response", "JSONResponse", "PlainTextResponse", "HTMLResponse",
    "RedirectResponse", "HTTPException", "RequestValidationError", "Headers", "QueryParams",
    "HostServiceError", "ServiceDenied", "OutboundDenied", "StateDenied", "ServiceTimeout",
    "ServiceUnavailable", "ServiceProtocolError", "ServiceBackendError", "ServiceShutDown",
    "State", "http", "sleep", "spawn", "every", "state", "trace",
]
