"""Header and query-string containers of `covet.Request` and `covet.Response`,
and the smaller values a request makes on demand (`URL`, `RequestState`,
its cookies).

Both containers keep the pairs as they came (order and repeats preserved)
and build a lookup table only when first asked, so a handler that never
reads them costs nothing. Header names are case-insensitive (stored
lower-case); query keys are case-sensitive.
"""

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from urllib.parse import unquote_plus

__all__ = ["Headers", "QueryParams", "RequestState", "URL", "parse_cookies"]


def _pairs(raw) -> list:
    """Header pairs from a list of pairs, a mapping, or None; names lower-cased."""
    if raw is None:
        return []
    items = raw.items() if isinstance(raw, Mapping) else raw
    return [(str(name).lower(), str(value)) for name, value in items]


class Headers(MutableMapping):
    """Case-insensitive, multi-valued HTTP headers.

    `headers["X-Tenant"]` is the first value, `getlist(name)` all of them,
    `items()` every pair in order (repeats included). Assigning a name
    replaces all its values; `append` adds one more.
    """

    __slots__ = ("_list", "_changed")

    def __init__(self, raw: "Iterable[tuple[str, str]] | Mapping[str, str] | None" = None):
        self._list = _pairs(raw)
        self._changed = False

    @classmethod
    def _trusted(cls, pairs: list) -> "Headers":
        """Wraps pairs the host already lower-cased (no copy)."""
        headers = cls.__new__(cls)
        headers._list = pairs
        headers._changed = False
        return headers

    def __getitem__(self, name: str) -> str:
        key = name.lower()
        for k, v in self._list:
            if k == key:
                return v
        raise KeyError(name)

    def __setitem__(self, name: str, value: str) -> None:
        key = name.lower()
        self._list = [(k, v) for k, v in self._list if k != key]
        self._list.append((key, str(value)))
        self._changed = True

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        kept = [(k, v) for k, v in self._list if k != key]
        if len(kept) == len(self._list):
            raise KeyError(name)
        self._list = kept
        self._changed = True

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return any(k == key for k, _ in self._list)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k for k, _ in self._list))

    def __len__(self) -> int:
        return len(dict.fromkeys(k for k, _ in self._list))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted(self._list) == sorted(other._list)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Headers({self._list!r})"

    def get(self, name: str, default=None):
        """The first value of `name`, or `default`."""
        key = name.lower()
        for k, v in self._list:
            if k == key:
                return v
        return default

    def getlist(self, name: str) -> list:
        """Every value of `name`, in order."""
        key = name.lower()
        return [v for k, v in self._list if k == key]

    def append(self, name: str, value: str) -> None:
        """Adds one more value for `name` (e.g. a second `set-cookie`)."""
        self._list.append((name.lower(), str(value)))
        self._changed = True

    def items(self) -> list:
        """Every (name, value) pair in order, repeats included."""
        return list(self._list)

    def raw(self) -> list:
        """The pairs themselves (what the host reads back)."""
        return self._list


def parse_query(query_string: str) -> list:
    """`urllib.parse.parse_qsl(qs, keep_blank_values=True)`, several times
    faster: only pairs holding `%` or `+` go through `unquote_plus`."""
    pairs = []
    for part in query_string.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        if "%" in part or "+" in part:
            key, value = unquote_plus(key), unquote_plus(value)
        pairs.append((key, value))
    return pairs


class QueryParams(Mapping):
    """The parsed query string: `query["q"]` is the last value of `q` (as in
    FastAPI), `getlist("tag")` every value; blank values are kept."""

    __slots__ = ("_list", "_dict")

    def __init__(self, query_string: str = ""):
        self._list = parse_query(query_string)
        self._dict = dict(self._list)

    def __getitem__(self, key: str) -> str:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __repr__(self) -> str:
        return f"QueryParams({self._list!r})"

    def getlist(self, key: str) -> list:
        """Every value of `key`, in order."""
        return [v for k, v in self._list if k == key]

    def multi_items(self) -> list:
        """Every (key, value) pair in order, repeats included."""
        return list(self._list)


class RequestState:
    """`request.state`: a plain attribute bag for one request (middleware
    sets `request.state.user`, the endpoint reads it). A missing attribute
    is an AttributeError naming it."""

    def __getattr__(self, name: str):
        raise AttributeError(f"request.state has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"RequestState({vars(self)!r})"


class URL(str):
    """`request.url`: the URL as a str (`str(request.url)`), with `scheme`,
    `netloc`, `path` and `query` (the raw query string)."""

    scheme: str
    netloc: str
    path: str
    query: str

    @classmethod
    def build(cls, netloc: str, path: str, query: str) -> "URL":
        """The URL of a request to `netloc` (empty: a relative URL)."""
        text = (f"http://{netloc}" if netloc else "") + path + (f"?{query}" if query else "")
        url = cls(text)
        url.scheme, url.netloc, url.path, url.query = "http", netloc, path, query
        return url


def parse_cookies(values: list) -> dict:
    """The pairs of one or more `Cookie` header values (`a=1; b=2`); a name
    seen twice keeps its first value, as browsers send the most specific
    first. Values keep their bytes, surrounding double quotes removed."""
    cookies: dict = {}
    for value in values:
        for part in value.split(";"):
            name, eq, text = part.strip().partition("=")
            if not eq or not name:
                continue
            text = text.strip()
            if len(text) >= 2 and text[0] == text[-1] == '"':
                text = text[1:-1]
            cookies.setdefault(name.strip(), text)
    return cookies
