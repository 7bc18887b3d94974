"""A Python filter that writes to its span with `covet.trace` (docs/python.md,
"Tracing"); the telemetry end-to-end tests use it as the Python link of a
traced chain.

- `on_request` (async, so the span is read back after an await): sets one
  attribute of each kind on the span of its call — `fixture.kind = "python"`,
  `fixture.int = 42`, `fixture.float = 0.5`, `fixture.bool = True` — and
  adds the event `fixture.event` with the attribute `fixture.step =
  "on_request"`. It copies `covet.trace.traceparent()` (the span of this
  call) into the request header `x-python-traceparent` (later plugins and
  an upstream see it; not set with tracing off) and into the metadata
  `python.traceparent` (`"none"` with tracing off), and whether the span
  records into the metadata `python.recording` (`"true"` / `"false"`).
- `on_response` (sync, on the thread pool): sets `fixture.phase =
  "on_response"` on the span of that call and copies the two metadata
  values into the response headers `x-python-traceparent` and
  `x-python-recording`, so a client sees what the request phase saw.

With tracing off every `covet.trace` call is a no-op and requests pass
unchanged apart from the metadata and the two response headers.

```yaml
plugins:
  traced:
    kind: python
    filter: ../python-plugins/filters/traced.py
```
"""

import asyncio

import covet


async def on_request(request):
    await asyncio.sleep(0)
    covet.trace.set_attribute("fixture.kind", "python")
    covet.trace.set_attribute("fixture.int", 42)
    covet.trace.set_attribute("fixture.float", 0.5)
    covet.trace.set_attribute("fixture.bool", True)
    covet.trace.add_event("fixture.event", {"fixture.step": "on_request"})
    parent = covet.trace.traceparent()
    if parent is not None:
        request.headers["x-python-traceparent"] = parent
    request.metadata["python.traceparent"] = parent or "none"
    request.metadata["python.recording"] = "true" if covet.trace.is_recording() else "false"


def on_response(request, response):
    covet.trace.set_attribute("fixture.phase", "on_response")
    response.headers["x-python-traceparent"] = request.metadata.get("python.traceparent", "none")
    response.headers["x-python-recording"] = request.metadata.get("python.recording", "false")
