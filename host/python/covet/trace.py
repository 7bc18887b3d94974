"""`covet.trace`: attributes and events on the span of the plugin call in
progress, and its W3C `traceparent` (docs/python.md, "Tracing").

```python
import covet

async def on_request(request):
    covet.trace.set_attribute("tenant.id", request.headers.get("x-tenant", ""))
    if covet.trace.is_recording():
        covet.trace.add_event("cache.miss", {"key": request.path})
```

With tracing on (the manifest's `telemetry: { tracing: ... }`) the host
makes one span per plugin call and hands it to the call: the host's bridge
sets it in a context variable for that call only, so these functions act
on it from a filter hook, a decorator-app endpoint, or anywhere inside an
ASGI app (a FastAPI endpoint, a dependency, middleware), across awaits and
in the tasks the request starts with `asyncio.create_task`. Tasks started
with `covet.spawn` / `covet.every` run without it (they outlive the
request). Outbound calls through `covet.http` made during the call are
children of that span and carry its trace context.

With tracing off, or outside a plugin call (module level, init, a
background task), every function is a no-op: `is_recording()` is False
and `traceparent()` is None. Arguments are checked either way: a wrong
type raises `TypeError`.

Attribute values are str, int (64-bit), float or bool.

Nothing here imports `_covet_host`, so the package stays importable (and
unit-testable) outside the host.
"""

import contextvars
from collections.abc import Mapping

__all__ = ["is_recording", "set_attribute", "add_event", "traceparent"]

#: The span of the plugin call in progress (a `_covet_host.Span`), set by the host's bridge.
_span = contextvars.ContextVar("covet_span", default=None)

_VALUE_TYPES = (str, int, float, bool)


def _check_key(key, what: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"{what} must be a str, got {type(key).__name__}")
    if not key:
        raise ValueError(f"{what} must not be empty")
    return key


def _check_value(key: str, value):
    if not isinstance(value, _VALUE_TYPES):
        raise TypeError(f"span attribute {key!r} must be str, int, float or bool, got {type(value).__name__}")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise OverflowError(f"span attribute {key!r}: int {value} does not fit in 64 bits")
    return value


def is_recording() -> bool:
    """Whether attributes and events set now are kept (the trace is sampled
    and exported). Check it before computing a costly attribute."""
    span = _span.get()
    return span is not None and span.is_recording()


def set_attribute(key: str, value: "str | int | float | bool") -> None:
    """Sets attribute `key` on the span of the plugin call in progress
    (replacing an earlier value of `key`)."""
    _check_value(_check_key(key, "the attribute key"), value)
    span = _span.get()
    if span is not None:
        span.set_attribute(key, value)


def add_event(name: str, attributes: "Mapping[str, str | int | float | bool] | None" = None) -> None:
    """Adds an event named `name`, timestamped now, with `attributes`, to
    the span of the plugin call in progress."""
    _check_key(name, "the event name")
    pairs = []
    if attributes is not None:
        if not isinstance(attributes, Mapping):
            raise TypeError(f"event attributes must be a dict (or None), got {type(attributes).__name__}")
        for key, value in attributes.items():
            pairs.append((key, _check_value(_check_key(key, "an event attribute key"), value)))
    span = _span.get()
    if span is not None:
        span.add_event(name, pairs)


def traceparent() -> "str | None":
    """The W3C `traceparent` of the span of the plugin call in progress
    (`00-<trace id>-<span id>-<flags>`, also when the trace is not sampled),
    to hand on to a system covet does not call for you; None with tracing
    off or outside a plugin call."""
    span = _span.get()
    return None if span is None else span.traceparent()
