"""Return annotations (`-> User`, `-> List[User]`, `-> dict`) and a route's
`response_model=`: what a handler returns is checked against them before it
is serialised.

- an annotation naming a pydantic model anywhere: the value is validated
  and dumped through it (pydantic `TypeAdapter`), so undeclared fields are
  dropped, as FastAPI's `response_model` does;
- a plain class (`dict`, `list`, `str`, `int`, a dataclass, `list[int]` by
  its origin): an `isinstance` check;
- none, `None`, `Any`, a `Response` class, or anything else (a TypeVar, a
  Literal, ...): nothing is checked.

A `Response` returned is always sent as is. A value that does not fit
raises `ResponseValidationError`: the host answers 500 and logs the
traceback, which names the route and what did not fit.
"""

import inspect
import types
import typing

from . import _models
from ._http import Response

__all__ = ["ResponseValidationError", "compile_returner", "UNSET"]

UNSET = object()  # `response_model=` not given: the return annotation decides


class ResponseValidationError(Exception):
    """A handler's return value does not fit its return annotation or
    `response_model` (→ 500, logged). `errors` lists what does not fit."""

    def __init__(self, where: str, annotation, errors: list):
        self.errors = errors
        shown = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        super().__init__(f"{where}: the return value does not fit {_name(annotation)}: {shown}")


def _name(annotation) -> str:
    return getattr(annotation, "__name__", None) if isinstance(annotation, type) else repr(annotation)


def _declared(fn, response_model):
    if response_model is not UNSET:
        return response_model
    try:
        return inspect.signature(fn, eval_str=True).return_annotation
    except (NameError, TypeError, ValueError):  # a forward reference covet cannot resolve: not checked
        return None


def _unchecked(annotation) -> bool:
    if annotation in (inspect.Signature.empty, None, type(None), typing.Any):
        return True
    if isinstance(annotation, type) and issubclass(annotation, Response):
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(_unchecked(arg) and arg is not type(None) for arg in typing.get_args(annotation))
    return False


def _class_of(annotation):
    """The class an `isinstance` check uses, `(cls, allows_none)`, or None."""
    allows_none = False
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        allows_none = len(args) < len(typing.get_args(annotation))
        if len(args) != 1:
            return None
        annotation = args[0]
    base = typing.get_origin(annotation) or annotation
    return (base, allows_none) if isinstance(base, type) else None


def compile_returner(fn, response_model, where: str):
    """`value -> value to serialise` for `fn`, or None when nothing is checked."""
    annotation = _declared(fn, response_model)
    if _unchecked(annotation):
        return None
    if _models.involves_model(annotation):
        return _model_returner(_models.response_adapter(annotation), annotation, where)
    checked = _class_of(annotation)
    if checked is None:
        return None
    return _instance_returner(*checked, annotation, where)


def _model_returner(adapt, annotation, where: str):
    def returner(value):
        if isinstance(value, Response):
            return value
        try:
            return adapt(value)
        except _models.ModelInvalid as invalid:
            raise ResponseValidationError(where, annotation, invalid.errors) from None

    return returner


def _instance_returner(cls, allows_none: bool, annotation, where: str):
    if cls is float:
        cls = (float, int)

    def returner(value):
        if isinstance(value, Response) or isinstance(value, cls) or (allows_none and value is None):
            return value
        error = {"loc": ["response"], "msg": f"Input should be {_name(annotation)}, got {type(value).__name__}",
                 "type": "return_type"}
        raise ResponseValidationError(where, annotation, [error])

    return returner
