"""`to_wire`: any value a handler or filter may return → the host's wire
tuple `(status: int, headers: list[tuple[str, str]], body: bytes)`.

| returned | status | content-type | body |
|---|---|---|---|
| `dict`, `list` (and any other JSON-able value) | 200 | `application/json` | compact UTF-8 JSON |
| `str` | 200 | `text/plain; charset=utf-8` | UTF-8 |
| `bytes` | 200 | `application/octet-stream` | as is |
| `None` | 204 | — | empty |
| `Response` / `JSONResponse` / … | its own | its own | its own |

A route's `status_code=` replaces the 200/204 defaults; a `Response`
always keeps its own status.
"""

from ._http import Response
from ._json import dumps

__all__ = ["to_wire"]

# Shared, never mutated: the host copies them.
_JSON = [("content-type", "application/json")]
_TEXT = [("content-type", "text/plain; charset=utf-8")]
_BYTES = [("content-type", "application/octet-stream")]
_NONE: list = []


def to_wire(value, status: "int | None" = None) -> tuple:
    """The wire tuple for `value`; `status` overrides the default status of
    plain values (not of a `Response`)."""
    kind = type(value)
    if kind is dict or kind is list:
        return (status or 200, _JSON, dumps(value))
    if isinstance(value, Response):
        return (value.status_code, value.headers.raw(), value.body)
    if kind is str:
        return (status or 200, _TEXT, value.encode("utf-8"))
    if value is None:
        return (status or 204, _NONE, b"")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return (status or 200, _BYTES, bytes(value))
    return (status or 200, _JSON, dumps(value))
