"""The request and response types, the exceptions a plugin raises, and
`_to_wire`, which turns anything a handler may return into the host's
`(status, headers, body)` tuple.

The host builds a `Request` per call with exactly the positional arguments
of `Request.__init__`; everything else is computed lazily so an unused
feature costs nothing per request.
"""

import json
from http import HTTPStatus

from ._datastructures import URL, Headers, QueryParams, RequestState, parse_cookies
from ._json import dumps

__all__ = [
    "Request", "Response", "JSONResponse", "PlainTextResponse", "HTMLResponse",
    "RedirectResponse", "HTTPException", "RequestValidationError",
]


class HTTPException(Exception):
    """Raise to answer `status_code` with covet's structured error body
    `{"error": {"code", "message", "details", "request_id", "timestamp"}}`:
    the code comes from the status (404 → `NOT_FOUND`), the message is
    `detail` (default: the status's reason phrase); `headers` are added to
    the response (e.g. `WWW-Authenticate`)."""

    def __init__(self, status_code: int, detail: "str | None" = None, headers=None):
        if not isinstance(status_code, int) or not 400 <= status_code <= 599:
            raise ValueError(f"HTTPException needs an error status (400-599), got {status_code!r}")
        if detail is None:
            detail = _phrase(status_code)
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = str(detail)
        self.headers = dict(headers) if headers else None

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"


class RequestValidationError(Exception):
    """The request did not fit the handler's parameters: the host answers 422
    `VALIDATION_ERROR` with `details` = `errors`, a list of
    `{"loc": ["path"|"query"|"body", name], "msg": str, "type": str}`."""

    def __init__(self, errors: list):
        super().__init__(errors)
        self.errors = errors

    def __str__(self) -> str:
        return "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}" for e in self.errors)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


class Request:
    """One HTTP request as a plugin sees it.

    `method`, `path` (no query string), `query_string`, `query` (parsed,
    `query["limit"]`, `query.getlist("tag")`), `headers` (case-insensitive;
    filters may edit them), `path_params` (raw strings from the route
    pattern), `body` (bytes, at most the manifest's `limits.max_body`),
    `metadata` (the str → str bag plugins share along the chain; filters may
    set keys), `id` (the request id, also sent as `x-request-id`), `client`
    (`"ip:port"` or None); `await request.json()` parses the body.
    `state` (an attribute bag for this request: middleware sets, the endpoint
    reads), `cookies` (name → value) and `url` are made on first use.
    """

    __slots__ = ("method", "path", "query_string", "_headers_raw", "_headers", "_query",
                 "path_params", "body", "metadata", "id", "client", "_json", "_state", "_cookies")

    def __init__(self, method: str, path: str, query_string: str, headers, path_params: dict,
                 body: bytes, metadata: dict, request_id: str, client: "str | None"):
        self.method = method
        self.path = path
        self.query_string = query_string
        self._headers_raw = headers
        self._headers = None
        self._query = None
        self.path_params = path_params
        self.body = body
        self.metadata = metadata
        self.id = request_id
        self.client = client
        self._json = _UNSET

    @property
    def headers(self) -> Headers:
        """The request headers (names lower-case; lookups case-insensitive)."""
        if self._headers is None:
            self._headers = Headers._trusted(list(self._headers_raw))
        return self._headers

    @property
    def query(self) -> QueryParams:
        """The parsed query string."""
        if self._query is None:
            self._query = QueryParams(self.query_string)
        return self._query

    @property
    def query_params(self) -> QueryParams:
        """Same as `query` (the Starlette name)."""
        return self.query

    @property
    def state(self) -> RequestState:
        """This request's attribute bag (`request.state.user = ...`), shared by
        the app's middleware and the endpoint; made on first use."""
        try:
            return self._state
        except AttributeError:
            self._state = RequestState()
            return self._state

    @property
    def cookies(self) -> dict:
        """The `Cookie` header's pairs (name → value)."""
        try:
            return self._cookies
        except AttributeError:
            self._cookies = parse_cookies(self.headers.getlist("cookie"))
            return self._cookies

    @property
    def url(self) -> URL:
        """The request URL (`str(request.url)`, `.path`, `.query`), from the
        `Host` header; the scheme is always `http` (TLS ends in the host)."""
        return URL.build(self.headers.get("host", ""), self.path, self.query_string)

    async def json(self):
        """The body parsed as JSON (parsed once). Invalid JSON raises
        `RequestValidationError` (422, loc `["body"]`)."""
        if self._json is _UNSET:
            self._json = parse_json_body(self.body)
        return self._json

    def _headers_changed(self) -> bool:
        """Whether a filter edited the headers (the host then reads them back)."""
        return self._headers is not None and self._headers._changed

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}{'?' + self.query_string if self.query_string else ''}>"


class _Unset:
    __slots__ = ()


_UNSET = _Unset()


def parse_json_body(body: bytes):
    """Parses a JSON body or raises a 422 naming what is wrong."""
    if not body:
        raise RequestValidationError([{"loc": ["body"], "msg": "Field required", "type": "missing"}])
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        error = {"loc": ["body"], "msg": f"JSON decode error: {err}", "type": "json_invalid"}
        raise RequestValidationError([error]) from None


_RAW = (bytes, str, bytearray, memoryview, type(None))


class Response:
    """A response returned as is: `content` (bytes, or str encoded as UTF-8;
    anything else — a dict, a list, a pydantic model, a dataclass — is
    serialised as JSON and typed `application/json`), `status_code` (or
    `status`, CovetPy's spelling), `headers` (a mapping or a list of pairs)
    and `media_type` (sets `content-type` unless the headers already have
    one; `text/*` types get `; charset=utf-8`). Filters and middleware may
    edit `status_code`, `headers` and `body`."""

    media_type: "str | None" = None

    def __init__(self, content=b"", status_code: int = 200, headers=None, media_type: "str | None" = None,
                 *, status: "int | None" = None):
        self.status_code = status_code if status is None else status
        self.body = self.render(content)
        self.headers = Headers(headers)
        media_type = media_type or self.media_type
        if media_type is None and not isinstance(content, _RAW):
            media_type = "application/json"
        if media_type and "content-type" not in self.headers:
            if media_type.startswith("text/") and "charset=" not in media_type:
                media_type += "; charset=utf-8"
            self.headers._list.append(("content-type", media_type))

    def render(self, content) -> bytes:
        """The body bytes for `content`."""
        if content is None:
            return b""
        if isinstance(content, bytes):
            return content
        if isinstance(content, str):
            return content.encode("utf-8")
        if isinstance(content, (bytearray, memoryview)):
            return bytes(content)
        return dumps(content)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status_code}, {len(self.body)} bytes>"


class JSONResponse(Response):
    """`content` serialised as compact UTF-8 JSON, `application/json`."""

    media_type = "application/json"

    def render(self, content) -> bytes:
        return dumps(content)


class PlainTextResponse(Response):
    """Text, `text/plain; charset=utf-8`."""

    media_type = "text/plain"


class HTMLResponse(Response):
    """HTML, `text/html; charset=utf-8`."""

    media_type = "text/html"


class RedirectResponse(Response):
    """A redirect to `url` (default 307, which keeps the method and body)."""

    def __init__(self, url: str, status_code: int = 307, headers=None):
        super().__init__(b"", status_code, headers)
        self.headers["location"] = url
