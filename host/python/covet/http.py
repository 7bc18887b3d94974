"""`covet.http`: outbound HTTP through the host's client (HTTP/1.1 and
HTTP/2, TLS with the host's roots, pooled connections, the host's
timeouts), allowed only to the hosts the plugin's manifest grants
(`capabilities: { outbound_http: ["api.example.com", "127.0.0.1:8080"] }`).

```python
resp = await covet.http.get("https://api.example.com/v1/items", timeout=2)
items = await resp.json()
```

The call resolves when the response head arrives; the body then streams
from the host, one chunk per `await` (`async for chunk in resp.stream()`),
so a large body is never held whole unless `read()` asks for it. A request
body is bytes, str (UTF-8), or an async iterable of bytes (sent as it is
produced, each chunk waiting until the host has taken the previous one).
"""

import asyncio
import json as _json

from ._datastructures import Headers
from ._services import HostServiceError, _instance, _wait
from .trace import _span

__all__ = ["request", "get", "post", "ClientResponse"]


class ClientResponse:
    """An outbound call's response: `status`, `headers`, `http_version`, and
    the body read with `await read()`, `await text()`, `await json()` or
    chunk by chunk with `async for chunk in resp.stream()` (one of them:
    the body streams once). `read()` caches, so `json()` after `read()` works."""

    __slots__ = ("status", "headers", "http_version", "url", "_reader", "_body")

    def __init__(self, url: str, status: int, headers: list, http_version: str, reader):
        self.url = url
        self.status = status
        self.headers = Headers._trusted(headers)
        self.http_version = http_version
        self._reader = reader
        self._body = None

    def __repr__(self) -> str:
        return f"<ClientResponse {self.status} from {self.url}>"

    @property
    def ok(self) -> bool:
        """Whether the status is below 400."""
        return self.status < 400

    async def read(self, limit: "int | None" = None) -> bytes:
        """The whole body (collected by the host). `limit`: most bytes
        accepted; a longer body raises `ServiceProtocolError`."""
        if self._body is None:
            reader = self._take("read()")
            self._body = await _wait(reader.read_all, limit)
        return self._body

    async def text(self, encoding: str = "utf-8") -> str:
        """The body decoded (invalid bytes replaced)."""
        return (await self.read()).decode(encoding, "replace")

    async def json(self):
        """The body parsed as JSON."""
        return _json.loads(await self.read())

    async def stream(self):
        """The body chunk by chunk as it arrives (each chunk is read from the
        server only when asked for: back-pressure)."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        reader = self._take("stream()")
        try:
            while True:
                chunk = await _wait(reader.next)
                if chunk is None:
                    return
                yield chunk
        finally:
            reader.close()

    def close(self) -> None:
        """Drops the unread body (the connection is closed or reused)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def __aenter__(self) -> "ClientResponse":
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()

    def _take(self, what: str):
        reader, self._reader = self._reader, None
        if reader is None:
            raise HostServiceError(f"ClientResponse.{what}: the body was already read or closed", "usage")
        return reader


def _headers(headers) -> list:
    if headers is None:
        return []
    items = headers.items() if hasattr(headers, "items") else headers
    out = []
    for name, value in items:
        value = value.encode("latin-1") if isinstance(value, str) else bytes(value)
        out.append((str(name), value))
    return out


def _body(body):
    """(bytes or None, async iterator or None)."""
    if body is None:
        return None, None
    if isinstance(body, str):
        return body.encode("utf-8"), None
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body), None
    if hasattr(body, "__aiter__"):
        return None, body.__aiter__()
    raise TypeError(f"a request body is bytes, str or an async iterable of bytes, got {type(body).__name__}")


async def _feed(chunks, writer) -> None:
    """Sends a streamed request body, one chunk at a time."""
    try:
        async for chunk in chunks:
            if isinstance(chunk, str):
                chunk = chunk.encode("utf-8")
            if chunk:
                await _wait(writer.send, bytes(chunk))
    except asyncio.CancelledError:
        writer.fail("the request body's producer was cancelled")
        raise
    except Exception as exc:  # noqa: BLE001 - ends the body with the error, the caller sees it
        writer.fail(f"the request body's producer raised {type(exc).__name__}: {exc}")
        return
    writer.close()


async def request(method: str, url: str, *, headers=None, body=None, json=None, timeout: "float | None" = None) -> ClientResponse:
    """Sends a request through the host's client and returns its response
    once the head arrives. `headers`: a mapping or (name, value) pairs;
    `body`: bytes, str or an async iterable of bytes; `json`: a value sent
    as JSON (sets `content-type`); `timeout`: seconds until the response
    head (shortens, never lengthens, the manifest's `services.http` limit).
    Made during a plugin call with tracing on, the call gets a client span,
    a child of the plugin call's span, whose trace context it carries
    (`traceparent`). Raises `OutboundDenied` for a host the manifest does not grant,
    `ServiceTimeout`, `ServiceUnavailable` (connect, TLS) or `ServiceProtocolError`."""
    if not isinstance(method, str) or not method:
        raise TypeError("method must be a non-empty str")
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    pairs = _headers(headers)
    if json is not None:
        if body is not None:
            raise TypeError("pass body= or json=, not both")
        body = _json.dumps(json).encode("utf-8")
        if not any(name.lower() == "content-type" for name, _ in pairs):
            pairs.append(("content-type", b"application/json"))
    data, chunks = _body(body)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < 1e9):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    host = _instance("covet.http.request").host
    feeder = None
    writer = host.body_writer() if chunks is not None else None
    if writer is not None:
        feeder = asyncio.get_running_loop().create_task(_feed(chunks, writer))
    try:
        status, head, version, reader = await _wait(host.http, method.upper(), url, pairs, data, writer, timeout, _span.get())
    except BaseException:
        if feeder is not None:
            feeder.cancel()
        raise
    return ClientResponse(url, status, head, version, reader)


async def get(url: str, *, headers=None, timeout: "float | None" = None) -> ClientResponse:
    """`request("GET", url, ...)`."""
    return await request("GET", url, headers=headers, timeout=timeout)


async def post(url: str, body=None, *, headers=None, json=None, timeout: "float | None" = None) -> ClientResponse:
    """`request("POST", url, ...)`."""
    return await request("POST", url, headers=headers, body=body, json=json, timeout=timeout)
