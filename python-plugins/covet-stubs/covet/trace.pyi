"""`covet.trace`: attributes and events on the span of the plugin call in
progress, and its W3C `traceparent`. No-ops with tracing off or outside a
plugin call; wrong argument types raise `TypeError` either way."""

from collections.abc import Mapping

_AttributeValue = str | int | float | bool

def is_recording() -> bool:
    """Whether attributes and events set now are kept (sampled and exported)."""

def set_attribute(key: str, value: _AttributeValue) -> None:
    """Sets attribute `key` on the span of the plugin call in progress."""

def add_event(name: str, attributes: Mapping[str, _AttributeValue] | None = None) -> None:
    """Adds an event, timestamped now, to the span of the plugin call in progress."""

def traceparent() -> str | None:
    """The span's `traceparent` (`00-<trace id>-<span id>-<flags>`); None with tracing off."""

__all__ = ["is_recording", "set_attribute", "add_event", "traceparent"]
