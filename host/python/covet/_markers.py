"""Parameter markers: a handler parameter's default saying where its value
comes from and what it must satisfy, in FastAPI's spelling.

```python
@app.get("/items")
async def items(
    q: str | None = Query(None, max_length=50),
    limit: int = Query(10, ge=1, le=100),
    tags: list[str] = Query([]),             # ?tags=a&tags=b
    user_agent: str | None = Header(None),   # the `user-agent` header
    session: str = Cookie(),                 # required cookie
):
    ...
```

The first argument is the default; `...` (or nothing) makes the parameter
required. `alias` replaces the name looked up; `Header` turns `_` into `-`
unless `convert_underscores=False`. The constraints are checked after
conversion: `ge`/`gt`/`le`/`lt` on numbers, `min_length`/`max_length` on
strings and lists, `pattern` (a regular expression searched in the string).
"""

import re

__all__ = ["Param", "Query", "Path", "Header", "Cookie"]


class Param:
    """What the markers share; `source` names where the value is read."""

    source = ""
    __slots__ = ("default", "alias", "ge", "gt", "le", "lt", "min_length", "max_length", "pattern",
                 "description")

    def __init__(self, default=..., *, alias: "str | None" = None, ge=None, gt=None, le=None, lt=None,
                 min_length: "int | None" = None, max_length: "int | None" = None,
                 pattern: "str | None" = None, description: "str | None" = None):
        self.default = default
        self.alias = alias
        self.ge, self.gt, self.le, self.lt = ge, gt, le, lt
        self.min_length, self.max_length = min_length, max_length
        self.pattern = re.compile(pattern) if pattern is not None else None
        self.description = description

    @property
    def required(self) -> bool:
        """Whether the parameter has no default."""
        return self.default is ...

    def key(self, name: str) -> str:
        """The name looked up in the request for parameter `name`."""
        return self.alias or name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({'...' if self.required else repr(self.default)})"


class Query(Param):
    """A query-string value (a list parameter takes every repeat)."""

    source = "query"
    __slots__ = ()


class Path(Param):
    """A path segment, for its constraints (path parameters are required)."""

    source = "path"
    __slots__ = ()


class Header(Param):
    """A request header; `user_agent` reads `user-agent` unless
    `convert_underscores=False`. A list parameter takes every value."""

    source = "header"
    __slots__ = ("convert_underscores",)

    def __init__(self, default=..., *, alias: "str | None" = None, convert_underscores: bool = True, ge=None,
                 gt=None, le=None, lt=None, min_length: "int | None" = None, max_length: "int | None" = None,
                 pattern: "str | None" = None, description: "str | None" = None):
        super().__init__(default, alias=alias, ge=ge, gt=gt, le=le, lt=lt, min_length=min_length,
                         max_length=max_length, pattern=pattern, description=description)
        self.convert_underscores = convert_underscores

    def key(self, name: str) -> str:
        if self.alias:
            return self.alias.lower()
        return name.replace("_", "-") if self.convert_underscores else name


class Cookie(Param):
    """A cookie from the `Cookie` header."""

    source = "cookie"
    __slots__ = ()
