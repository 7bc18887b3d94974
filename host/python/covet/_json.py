"""Compact JSON encoding for responses.

One C encoder is built at import and reused (`json.dumps` and
`JSONEncoder.encode` build one per call, which triples the cost of a small
response). Values JSON
has no type for are converted by `_default`: dataclasses, pydantic models
(`model_dump`), datetimes and dates (ISO 8601), UUIDs and Decimals (str),
sets and frozensets (lists), Enums (their value).
"""

import dataclasses
import datetime
import decimal
import enum
import json
import uuid

__all__ = ["dumps"]


def _default(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _c_encoder():
    """CPython's C encoder, built once: `JSONEncoder.encode` builds a new one
    on every call, which costs more than encoding a small object. No
    circular-reference markers: a cycle ends in RecursionError (→ 500)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        encoder = make(None, _default, json.encoder.encode_basestring, None, ":", ",", False, False, True)
        return encoder if encoder({"ok": [1]}, 0) else None
    except TypeError:  # another signature: use the portable path
        return None


_C_ENCODE = _c_encoder()
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_default).encode


def dumps(value) -> bytes:
    """`value` as compact UTF-8 JSON bytes."""
    if _C_ENCODE is not None:
        return "".join(_C_ENCODE(value, 0)).encode("utf-8")
    return _ENCODE(value).encode("utf-8")
