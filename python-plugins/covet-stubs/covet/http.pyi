"""`covet.http`: outbound HTTP through the host's client, to the hosts the
plugin's manifest grants (`capabilities: { outbound_http: [...] }`)."""

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from typing import Any

from . import Headers

_HeadersArg = Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]] | None
_Body = bytes | bytearray | memoryview | str | AsyncIterable[bytes] | None

class ClientResponse:
    """A response: read the body once, whole or streamed."""
    url: str
    status: int
    headers: Headers
    http_version: str
    def __init__(self, url: str, status: int, headers: list[tuple[str, str]], http_version: str, reader: Any) -> None: ...
    @property
    def ok(self) -> bool: ...
    async def read(self, limit: int | None = None) -> bytes: ...
    async def text(self, encoding: str = "utf-8") -> str: ...
    async def json(self) -> Any: ...
    def stream(self) -> AsyncIterator[bytes]: ...
    def close(self) -> None: ...
    async def __aenter__(self) -> ClientResponse: ...
    async def __aexit__(self, *exc: object) -> None: ...

async def request(
    method: str,
    url: str,
    *,
    headers: _HeadersArg = None,
    body: _Body = None,
    json: Any = None,
    timeout: float | None = None,
) -> ClientResponse: ...
async def get(url: str, *, headers: _HeadersArg = None, timeout: float | None = None) -> ClientResponse: ...
async def post(
    url: str, body: _Body = None, *, headers: _HeadersArg = None, json: Any = None, timeout: float | None = None
) -> ClientResponse: ...

__all__ = ["request", "get", "post", "ClientResponse"]
