"""Handler parameters: read once from the signature at decoration time and
turned into one small getter per parameter, so a call only runs the getters.

Where a parameter comes from (first rule that applies):

- annotated `covet.Request`, or named `request` without an annotation →
  the request;
- a `Header()` / `Cookie()` / `Query()` / `Path()` default → that source
  (`covet._markers`);
- named in the route's path (`/users/{user_id}`) → the path segment;
- annotated `bytes` → the raw body;
- annotated with a pydantic model (`User`, `List[User]`, `User | None`) →
  the JSON body validated into it (several model parameters: the body is an
  object with a key per parameter name);
- annotated `list[X]` of scalars on a route that only answers GET → every
  value of the query parameter (`?tags=a&tags=b`);
- annotated `dict` / `list` (also `dict[str, int]`, `Optional[dict]`, …) or
  named `body` → the JSON body (only its top-level type is checked);
- anything else → the query parameter of that name.

Scalars are converted by annotation (`covet._convert`): `int`, `float`,
`bool`, `str` (also no annotation or `Any`) and `Enum` subclasses, each
optionally `X | None`. A parameter without a default is required. Every
problem is collected into one `RequestValidationError` (→ 422) with an
entry per problem.
"""

import inspect
import types
import typing
from urllib.parse import unquote

from . import _models
from ._convert import Invalid, check_length, constrained, is_scalar, scalar_converter
from ._http import Request, RequestValidationError, parse_json_body
from ._markers import Cookie, Header, Param, Path, Query

__all__ = ["compile_binder"]

_EMPTY = inspect.Parameter.empty
_BODYLESS = {"GET", "HEAD"}


def _unwrap_optional(annotation):
    """`X` for `X | None` / `Optional[X]`; other annotations unchanged."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _decoded(raw: str) -> str:
    """A path segment as the handler gets it: percent-decoded (`%20` → space).
    The host matches and passes the raw segment."""
    return unquote(raw) if "%" in raw else raw


def _missing(loc: list) -> Invalid:
    return Invalid({"loc": loc, "msg": "Field required", "type": "missing"})


def _at(loc: list, invalid: Invalid) -> Invalid:
    return Invalid({"loc": loc, **invalid.error})


class _Spec:
    """One parameter as the getters need it."""

    __slots__ = ("name", "annotation", "marker", "required", "default")

    def __init__(self, param: inspect.Parameter):
        self.name = param.name
        self.annotation = _unwrap_optional(param.annotation)
        self.marker = param.default if isinstance(param.default, Param) else None
        raw_default = self.marker.default if self.marker else param.default
        self.required = raw_default is _EMPTY or raw_default is ...
        self.default = None if self.required else raw_default

    @property
    def scalar(self):
        """The scalar annotation (`str` when there is none), or None."""
        annotation = str if self.annotation in (_EMPTY, typing.Any) else self.annotation
        return annotation if is_scalar(annotation) else None

    @property
    def item(self):
        """The item type of a `list[X]` of scalars (`str` for a bare list), or None."""
        if self.annotation is list:
            return str
        if typing.get_origin(self.annotation) is list:
            args = typing.get_args(self.annotation)
            return args[0] if len(args) == 1 and is_scalar(args[0]) else None
        return None


def _value_getter(source: str, key: str, spec: _Spec, read_one):
    """A getter for one scalar read by `read_one(request, key)` (None: absent)."""
    convert = constrained(scalar_converter(spec.scalar), spec.marker)
    loc = [source, key]

    def get(request):
        raw = read_one(request, key)
        if raw is None:
            if spec.required:
                raise _missing(loc)
            return spec.default
        try:
            return convert(raw)
        except Invalid as invalid:
            raise _at(loc, invalid) from None

    return get


def _list_getter(source: str, key: str, spec: _Spec, read_all):
    """A getter for every value read by `read_all(request, key)`."""
    convert = constrained(scalar_converter(spec.item), spec.marker, lengths=False)

    def get(request):
        raws = read_all(request, key)
        if not raws:
            if spec.required:
                raise _missing([source, key])
            return spec.default
        values = []
        for i, raw in enumerate(raws):
            try:
                values.append(convert(raw))
            except Invalid as invalid:
                raise _at([source, key, i], invalid) from None
        if spec.marker is not None:
            try:
                check_length(values, spec.marker)
            except Invalid as invalid:
                raise _at([source, key], invalid) from None
        return values

    return get


def _query_one(request, key):
    return request.query._dict.get(key) if request.query_string else None


def _query_all(request, key):
    return request.query.getlist(key) if request.query_string else []


# source → (one value, every value)
_READERS = {
    "query": (_query_one, _query_all),
    "header": (lambda request, key: request.headers.get(key), lambda request, key: request.headers.getlist(key)),
    "cookie": (lambda request, key: request.cookies.get(key), lambda request, key: [request.cookies[key]]
               if key in request.cookies else []),
}


def _sourced_getter(source: str, spec: _Spec, where: str):
    """A query, header or cookie parameter, scalar or list."""
    key = spec.marker.key(spec.name) if spec.marker else spec.name
    one, every = _READERS[source]
    if spec.item is not None:
        return _list_getter(source, key, spec, every)
    if spec.scalar is None:
        raise TypeError(f"{where}: {source} parameter `{spec.name}` must be int, float, bool, str, an Enum "
                        f"or a list of those, not {spec.annotation!r}")
    return _value_getter(source, key, spec, one)


def _path_getter(spec: _Spec, where: str):
    if spec.scalar is None:
        raise TypeError(f"{where}: path parameter `{spec.name}` must be int, float, bool, str or an Enum, "
                        f"not {spec.annotation!r}")
    convert = constrained(scalar_converter(spec.scalar), spec.marker)
    loc = ["path", spec.name]

    def get(request):
        try:
            return convert(_decoded(request.path_params[spec.name]))
        except Invalid as invalid:
            raise _at(loc, invalid) from None

    return get


def _read_body(request, spec: _Spec, loc: list):
    """The parsed JSON body; `_NO_BODY` when it is empty and optional."""
    if not request.body:
        if spec.required:
            raise _missing(loc)
        return _NO_BODY
    try:
        return parse_json_body(request.body)
    except RequestValidationError as err:
        raise Invalid(err.errors[0]) from None


_NO_BODY = object()


def _body_getter(spec: _Spec, container):
    """A getter parsing the JSON body, checking its top-level type."""

    def from_body(request):
        value = _read_body(request, spec, ["body"])
        if value is _NO_BODY:
            return spec.default
        if container is not None and not isinstance(value, container):
            expected = "a valid dictionary" if container is dict else "a valid list"
            raise Invalid({"loc": ["body"], "msg": f"Input should be {expected}", "type": f"{container.__name__}_type"})
        return value

    return from_body


def _model_getter(spec: _Spec, embed: bool):
    """A getter validating the JSON body (or its `spec.name` key when several
    parameters share the body) into the parameter's model type."""
    validate = _models.body_validator(spec.annotation)
    prefix = ["body", spec.name] if embed else ["body"]

    def from_body(request):
        value = _read_body(request, spec, ["body"])
        if value is _NO_BODY:
            return spec.default
        if embed:
            if not isinstance(value, dict) or spec.name not in value:
                if not spec.required:
                    return spec.default
                raise _missing(prefix)
            value = value[spec.name]
        return validate(value, prefix)

    return from_body


def _container(annotation):
    """`dict` or `list` when the annotation is one of them (generic or not)."""
    base = typing.get_origin(annotation) or annotation
    return base if base in (dict, list) else None


def _is_request(spec: _Spec) -> bool:
    if isinstance(spec.annotation, type) and issubclass(spec.annotation, Request):
        return True
    return spec.name == "request" and spec.marker is None and spec.annotation in (_EMPTY, typing.Any)


def _getter(spec: _Spec, path_names: set, bodyless: bool, embed: bool, where: str):
    if _is_request(spec):
        return lambda request: request
    marker = spec.marker
    if isinstance(marker, (Header, Cookie)):
        return _sourced_getter(marker.source, spec, where)
    if spec.name in path_names:
        return _path_getter(spec, where)
    if isinstance(marker, Path):
        raise TypeError(f"{where}: `{spec.name}` is declared Path() but the route has no {{{spec.name}}}")
    if isinstance(marker, Query) or (bodyless and spec.item is not None):
        return _sourced_getter("query", spec, where)
    if spec.annotation is bytes:
        return lambda request: request.body
    if _models.involves_model(spec.annotation):
        return _model_getter(spec, embed)
    container = _container(spec.annotation)
    if container is not None or spec.name == "body":
        return _body_getter(spec, container)
    if spec.scalar is None:
        raise TypeError(
            f"{where}: parameter `{spec.name}` has an unsupported annotation {spec.annotation!r}; "
            "use int, float, bool, str or an Enum (optionally `| None`) for a query value, a pydantic "
            "model, dict or list for the JSON body, bytes for the raw body, or covet.Request"
        )
    return _sourced_getter("query", spec, where)


def compile_binder(fn, path_names: set, where: str, methods=("GET",)):
    """A function `request -> kwargs` for `fn`, or None when `fn` takes no
    parameters. Raises TypeError (at decoration time) for a signature covet
    cannot fill."""
    signature = inspect.signature(fn, eval_str=True)
    specs = []
    for param in signature.parameters.values():
        if param.kind in (param.POSITIONAL_ONLY, param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{where}: parameter `{param.name}` must be a plain named parameter (no /, *args or **kwargs)")
        specs.append(_Spec(param))
    if not specs:
        return None
    models = [s for s in specs if s.marker is None and s.name not in path_names and _models.involves_model(s.annotation)]
    bodyless = set(methods) <= _BODYLESS
    steps = tuple((s.name, _getter(s, path_names, bodyless, len(models) > 1, where)) for s in specs)
    return _binder(steps)


def _binder(steps: tuple):
    def bind(request) -> dict:
        kwargs = {}
        errors = None
        for name, get in steps:
            try:
                kwargs[name] = get(request)
            except Invalid as invalid:
                errors = errors or []
                errors.append(invalid.error)
            except _models.ModelInvalid as invalid:
                errors = errors or []
                errors.extend(invalid.errors)
        if errors:
            raise RequestValidationError(errors)
        return kwargs

    return bind
