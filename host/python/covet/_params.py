"""Handler parameters: read once from the signature at decoration time and
turned into one small getter per parameter, so a call only runs the getters.

Where a parameter comes from:

- annotated `covet.Request` → the request;
- named in the route's path (`/users/{user_id}`) → the path segment;
- annotated `dict` / `list` (also `dict[str, int]`, `Optional[dict]`, …) or
  named `body` → the JSON body (only its top-level type is checked);
- annotated `bytes` → the raw body;
- anything else → the query parameter of that name.

Path and query values are converted by annotation: `int`, `float`, `bool`
(`true/false/1/0/yes/no/on/off`), `str` (also no annotation or `Any`),
each optionally `X | None` / `Optional[X]`. A parameter without a default
is required. Every problem is collected into one `RequestValidationError`
(→ 422) with an entry per parameter.
"""

import inspect
import types
import typing
from urllib.parse import unquote

from ._http import Request, RequestValidationError, parse_json_body

__all__ = ["compile_binder"]

_EMPTY = inspect.Parameter.empty


class _Invalid(Exception):
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


def _unwrap_optional(annotation):
    """`X` for `X | None` / `Optional[X]`; other annotations unchanged."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _identity(raw: str) -> str:
    return raw


def _decoded(raw: str) -> str:
    """A path segment as the handler gets it: percent-decoded (`%20` → space).
    The host matches and passes the raw segment."""
    return unquote(raw) if "%" in raw else raw


def _missing(source: str, name: str) -> _Invalid:
    return _Invalid({"loc": [source, name], "msg": "Field required", "type": "missing"})


def _scalar_getter(source: str, name: str, annotation, required: bool, default):
    """A getter reading `name` from the path or the query, converted."""
    convert, kind, message = _SCALARS[annotation]

    def value_of(raw: str):
        try:
            return convert(raw)
        except ValueError:
            raise _Invalid({"loc": [source, name], "msg": message, "type": kind, "input": raw}) from None

    if convert is None:
        value_of = _identity
    if source == "path":
        return lambda request: value_of(_decoded(request.path_params[name]))

    def from_query(request):
        raw = request.query._dict.get(name) if request.query_string else None
        if raw is None:
            if required:
                raise _missing("query", name)
            return default
        return value_of(raw)

    return from_query


def _body_getter(name: str, container, required: bool, default):
    """A getter parsing the JSON body, checking its top-level type."""

    def from_body(request):
        if not request.body:
            if required:
                raise _missing("body", name)
            return default
        try:
            value = parse_json_body(request.body)
        except RequestValidationError as err:
            raise _Invalid(err.errors[0]) from None
        if container is not None and not isinstance(value, container):
            expected = "a valid dictionary" if container is dict else "a valid list"
            error = {"loc": ["body"], "msg": f"Input should be {expected}", "type": f"{container.__name__}_type"}
            raise _Invalid(error)
        return value

    return from_body


def _container(annotation):
    """`dict` or `list` when the annotation is one of them (generic or not)."""
    base = typing.get_origin(annotation) or annotation
    return base if base in (dict, list) else None


def _getter(param: inspect.Parameter, path_names: set, where: str):
    annotation = _unwrap_optional(param.annotation)
    required = param.default is _EMPTY
    default = None if required else param.default
    if isinstance(annotation, type) and issubclass(annotation, Request):
        return lambda request: request
    if param.name in path_names:
        scalar = str if annotation in (_EMPTY, typing.Any) else annotation
        if scalar not in _SCALARS:
            raise TypeError(f"{where}: path parameter `{param.name}` must be int, float, bool or str, not {annotation!r}")
        return _scalar_getter("path", param.name, scalar, True, None)
    if annotation is bytes:
        return lambda request: request.body
    container = _container(annotation)
    if container is not None or param.name == "body":
        return _body_getter(param.name, container, required, default)
    scalar = str if annotation in (_EMPTY, typing.Any) else annotation
    if scalar not in _SCALARS:
        raise TypeError(
            f"{where}: parameter `{param.name}` has an unsupported annotation {param.annotation!r}; "
            "use int, float, bool or str (optionally `| None`) for a query value, dict or list for "
            "the JSON body, bytes for the raw body, or covet.Request"
        )
    return _scalar_getter("query", param.name, scalar, required, default)


def compile_binder(fn, path_names: set, where: str):
    """A function `request -> kwargs` for `fn`, or None when `fn` takes no
    parameters. Raises TypeError (at decoration time) for a signature covet
    cannot fill."""
    signature = inspect.signature(fn, eval_str=True)
    steps = []
    for param in signature.parameters.values():
        if param.kind in (param.POSITIONAL_ONLY, param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{where}: parameter `{param.name}` must be a plain named parameter (no /, *args or **kwargs)")
        steps.append((param.name, _getter(param, path_names, where)))
    if not steps:
        return None
    return _binder(tuple(steps))


def _binder(steps: tuple):
    def bind(request) -> dict:
        kwargs = {}
        errors = None
        for name, get in steps:
            try:
                kwargs[name] = get(request)
            except _Invalid as invalid:
                errors = errors or []
                errors.append(invalid.error)
        if errors:
            raise RequestValidationError(errors)
        return kwargs

    return bind
