"""covet's Python API: the `covet` package the host provides inside its
embedded interpreter (there is nothing to install; `python-plugins/covet-stubs`
holds type stubs for editors).

- Decorator apps: `Covet`, also spelled `CovetPy` (`@app.get("/users/{user_id}")`
  with typed parameters, `Query`/`Path`/`Header`/`Cookie` markers, pydantic
  models, return annotations, `@app.middleware("http")` and
  `BaseHTTPMiddleware`), served with `kind: python, app: FILE.py:ATTR`.
- Filters: a module with `on_request(request)` / `on_response(request,
  response)`, served with `kind: python, filter: FILE.py`.
- Host services (async-only, granted per plugin in the manifest):
  `covet.http.request/get/post`, `sleep`, `spawn`, `every`, `state(ns)`,
  failing with `HostServiceError` subclasses (docs/python.md, "Host services").
- Tracing: `covet.trace.set_attribute/add_event/is_recording/traceparent`
  on the span of the plugin call in progress (docs/python.md, "Tracing").
- Types: `Request`, `Response` (and `JSONResponse`, `PlainTextResponse`,
  `HTMLResponse`, `RedirectResponse`), `HTTPException`,
  `RequestValidationError`, `ResponseValidationError`, `Headers`, `QueryParams`.

The names starting with `_covet` / `_to_wire` are the hooks the host calls
(docs/python.md, "The contract with the host").
"""

from ._app import Covet, CovetPy
from ._markers import Cookie, Header, Param, Path, Query
from ._middleware import BaseHTTPMiddleware
from ._returns import ResponseValidationError
from ._datastructures import URL, Headers, QueryParams, RequestState
from ._http import (
    HTMLResponse,
    HTTPException,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Request,
    RequestValidationError,
    Response,
)
from ._services import (
    HostServiceError,
    OutboundDenied,
    ServiceBackendError,
    ServiceDenied,
    ServiceProtocolError,
    ServiceShutDown,
    ServiceTimeout,
    ServiceUnavailable,
    State,
    StateDenied,
    every,
    sleep,
    spawn,
    state,
)
from ._wire import to_wire as _to_wire
from . import http, trace

__all__ = [
    "Covet", "CovetPy", "BaseHTTPMiddleware", "Query", "Path", "Header", "Cookie",
    "ResponseValidationError", "Request", "Response", "JSONResponse", "PlainTextResponse", "HTMLResponse",
    "RedirectResponse", "HTTPException", "RequestValidationError", "Headers", "QueryParams",
    "HostServiceError", "ServiceDenied", "OutboundDenied", "StateDenied", "ServiceTimeout",
    "ServiceUnavailable", "ServiceProtocolError", "ServiceBackendError", "ServiceShutDown",
    "State", "http", "sleep", "spawn", "every", "state", "trace",
]

__version__ = "0.1.0"
