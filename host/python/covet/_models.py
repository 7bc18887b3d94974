"""pydantic, when the app uses it: request bodies validated into models and
return values filtered through their declared type.

covet never imports pydantic itself: a model class in an annotation means
the app's module already did, so `sys.modules["pydantic"]` is there. The
package works unchanged without pydantic installed.

Errors keep pydantic's entries (`loc`, `msg`, `type`, `input`, `ctx`) with
`loc` prefixed by where the value came from (`["body", "email"]`), the
shape covet uses for every 422.
"""

import sys
import typing

__all__ = ["is_model", "involves_model", "body_validator", "response_adapter", "errors_of"]

_BASIC = (str, int, float, bool, type(None))


def _pydantic():
    return sys.modules.get("pydantic")


def is_model(annotation) -> bool:
    """Whether `annotation` is a pydantic `BaseModel` subclass."""
    pydantic = _pydantic()
    return pydantic is not None and isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)


def involves_model(annotation) -> bool:
    """Whether a model appears anywhere in `annotation` (`User`,
    `List[User]`, `Optional[Dict[str, User]]`, ...)."""
    if _pydantic() is None:
        return False
    if is_model(annotation):
        return True
    return any(involves_model(arg) for arg in typing.get_args(annotation))


def _json_safe(value):
    return value if isinstance(value, _BASIC) else str(value)


def errors_of(err, prefix: list) -> list:
    """A pydantic `ValidationError`'s entries in covet's shape, each `loc`
    starting with `prefix`."""
    entries = []
    for raw in err.errors(include_url=False):
        entry = {"loc": [*prefix, *raw["loc"]], "msg": raw["msg"], "type": raw["type"]}
        if "input" in raw:
            entry["input"] = raw["input"]
        if raw.get("ctx"):
            entry["ctx"] = {k: _json_safe(v) for k, v in raw["ctx"].items()}
        entries.append(entry)
    return entries


def body_validator(annotation):
    """`(data, loc prefix) -> value` validating parsed JSON into
    `annotation` (a model, `List[Model]`, ...); raises `ModelInvalid`."""
    pydantic = _pydantic()
    validate = annotation.model_validate if is_model(annotation) else pydantic.TypeAdapter(annotation).validate_python

    def run(data, prefix: list):
        try:
            return validate(data)
        except pydantic.ValidationError as err:
            raise ModelInvalid(errors_of(err, prefix)) from None

    return run


class ModelInvalid(Exception):
    """A body that does not fit its model: the entries for the 422."""

    def __init__(self, errors: list):
        super().__init__(errors)
        self.errors = errors


def response_adapter(annotation):
    """`value -> JSON-ready value`: validated as `annotation` (objects read
    by attribute too) and dumped by it, so fields the annotation does not
    declare are dropped. Raises `ModelInvalid` when the value does not fit."""
    pydantic = _pydantic()
    adapter = pydantic.TypeAdapter(annotation)

    def adapt(value):
        try:
            validated = adapter.validate_python(value, from_attributes=True)
        except pydantic.ValidationError as err:
            raise ModelInvalid(errors_of(err, ["response"])) from None
        return adapter.dump_python(validated, mode="json")

    return adapt
