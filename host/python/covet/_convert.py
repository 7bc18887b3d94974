"""Converting one raw string (a path segment, a query value, a header, a
cookie) to what the handler's annotation asks for, and checking a marker's
constraints on the result.

A converter is `raw -> value` or raises `Invalid` carrying one error entry
shaped like pydantic's (`loc`, `msg`, `type`, `input`, and `ctx` where
pydantic has one); `loc` is filled in by the caller. Supported targets:
`int`, `float`, `bool`, `str` and `Enum` subclasses.
"""

import enum

__all__ = ["Invalid", "is_scalar", "scalar_converter", "constrained", "check_length"]


class Invalid(Exception):
    """One parameter's error (collected by the binder)."""

    def __init__(self, error: dict):
        super().__init__(error)
        self.error = error


def _to_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on", "t", "y"):
        return True
    if value in ("false", "0", "no", "off", "f", "n"):
        return False
    raise ValueError(raw)


# annotation → (converter, error type, error message), as pydantic words them.
_SCALARS = {
    int: (int, "int_parsing", "Input should be a valid integer, unable to parse string as an integer"),
    float: (float, "float_parsing", "Input should be a valid number, unable to parse string as a number"),
    bool: (_to_bool, "bool_parsing", "Input should be a valid boolean, unable to interpret input"),
    str: (None, "", ""),
}


def is_scalar(annotation) -> bool:
    """Whether a raw string can be converted to `annotation`."""
    return annotation in _SCALARS or (isinstance(annotation, type) and issubclass(annotation, enum.Enum))


def _identity(raw: str) -> str:
    return raw


def scalar_converter(annotation):
    """`raw -> value` for `annotation` (see `is_scalar`)."""
    if annotation in _SCALARS:
        convert, kind, message = _SCALARS[annotation]
        if convert is None:
            return _identity

        def value_of(raw: str):
            try:
                return convert(raw)
            except ValueError:
                raise Invalid({"msg": message, "type": kind, "input": raw}) from None

        return value_of
    return _enum_converter(annotation)


def _expected(members) -> str:
    """pydantic's list of allowed values: `'a', 'b' or 'c'`."""
    shown = [repr(m.value) for m in members]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def _enum_converter(cls):
    """Members by value; a value is matched as the string sent, or as the
    int/float it spells when the members' values are numbers."""
    members = list(cls)
    by_text = {str(m.value): m for m in members}
    expected = _expected(members)

    def value_of(raw: str):
        member = by_text.get(raw)
        if member is None:
            member = _numeric_member(cls, raw)
        if member is None:
            raise Invalid({"msg": f"Input should be {expected}", "type": "enum", "input": raw,
                           "ctx": {"expected": expected}})
        return member

    return value_of


def _numeric_member(cls, raw: str):
    for number in (int, float):
        try:
            return cls(number(raw))
        except ValueError:
            continue
    return None


# (marker attribute, error type, message template): pydantic's words.
_BOUNDS = (
    ("ge", "greater_than_equal", "Input should be greater than or equal to {}", lambda v, b: v >= b),
    ("gt", "greater_than", "Input should be greater than {}", lambda v, b: v > b),
    ("le", "less_than_equal", "Input should be less than or equal to {}", lambda v, b: v <= b),
    ("lt", "less_than", "Input should be less than {}", lambda v, b: v < b),
)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def check_length(value, marker) -> None:
    """`min_length` / `max_length` of a str or a list."""
    if marker.min_length is None and marker.max_length is None:
        return
    is_str = isinstance(value, str)
    size = len(value)
    if marker.min_length is not None and size < marker.min_length:
        if is_str:
            raise Invalid({"msg": f"String should have at least {_plural(marker.min_length, 'character')}",
                           "type": "string_too_short", "input": value, "ctx": {"min_length": marker.min_length}})
        raise Invalid({"msg": f"List should have at least {_plural(marker.min_length, 'item')} after validation, "
                              f"not {size}", "type": "too_short", "input": value,
                       "ctx": {"field_type": "List", "min_length": marker.min_length, "actual_length": size}})
    if marker.max_length is not None and size > marker.max_length:
        if is_str:
            raise Invalid({"msg": f"String should have at most {_plural(marker.max_length, 'character')}",
                           "type": "string_too_long", "input": value, "ctx": {"max_length": marker.max_length}})
        raise Invalid({"msg": f"List should have at most {_plural(marker.max_length, 'item')} after validation, "
                              f"not {size}", "type": "too_long", "input": value,
                       "ctx": {"field_type": "List", "max_length": marker.max_length, "actual_length": size}})


def _check_scalar(value, marker, lengths: bool) -> None:
    for attr, kind, message, ok in _BOUNDS:
        bound = getattr(marker, attr)
        if bound is not None and not ok(value, bound):
            raise Invalid({"msg": message.format(bound), "type": kind, "input": value, "ctx": {attr: bound}})
    if isinstance(value, str):
        if lengths:
            check_length(value, marker)
        if marker.pattern is not None and not marker.pattern.search(value):
            raise Invalid({"msg": f"String should match pattern '{marker.pattern.pattern}'",
                           "type": "string_pattern_mismatch", "input": value,
                           "ctx": {"pattern": marker.pattern.pattern}})


def constrained(convert, marker, lengths: bool = True):
    """`convert` followed by the marker's scalar constraints (or `convert`
    itself when the marker has none). `lengths=False` for the items of a
    list, whose length constraints apply to the list."""
    names = ("ge", "gt", "le", "lt", "pattern") + (("min_length", "max_length") if lengths else ())
    if marker is None or all(getattr(marker, a) is None for a in names):
        return convert

    def checked(raw: str):
        value = convert(raw)
        _check_scalar(value, marker, lengths)
        return value

    return checked
