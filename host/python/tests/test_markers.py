"""Header, cookie, Enum and list parameters, `Query()`/`Path()`
constraints, the `request` parameter by name, and `request.state`,
`request.url`, `request.cookies`."""

import enum
import json
import unittest
from typing import List, Optional

from support import call, covet, request
from covet import Cookie, Header, Path, Query


class Color(str, enum.Enum):
    red = "red"
    green = "green"
    blue = "blue"


class Level(enum.IntEnum):
    low = 1
    high = 2


def errors_of(app, *args, **kwargs) -> list:
    with unittest.TestCase().assertRaises(covet.RequestValidationError) as caught:
        call(app, *args, **kwargs)
    return caught.exception.errors


class Headers_(unittest.TestCase):
    def setUp(self):
        self.app = covet.CovetPy()

        @self.app.get("/h")
        def h(user_agent: Optional[str] = Header(None), x_token: str = Header(), x_n: int = Header(0, ge=0),
              raw_name: Optional[str] = Header(None, convert_underscores=False),
              accept: List[str] = Header([]), tid: Optional[str] = Header(None, alias="X-Tenant-Id")):
            return {"ua": user_agent, "token": x_token, "n": x_n, "raw": raw_name, "accept": accept, "tid": tid}

    def test_underscores_become_hyphens_and_lookups_ignore_case(self):
        got = json.loads(call(self.app, "GET", "/h", headers=[
            ("user-agent", "curl/8"), ("x-token", "t"), ("x-n", "3"), ("raw_name", "r"), ("accept", "a"),
            ("accept", "b"), ("x-tenant-id", "acme")])[2])
        self.assertEqual(got, {"ua": "curl/8", "token": "t", "n": 3, "raw": "r", "accept": ["a", "b"], "tid": "acme"})

    def test_a_missing_or_bad_header_is_a_422_naming_the_header(self):
        errors = errors_of(self.app, "GET", "/h", headers=[("x-n", "-1")])
        self.assertEqual([(e["loc"], e["type"]) for e in errors],
                         [(["header", "x-token"], "missing"), (["header", "x-n"], "greater_than_equal")])
        self.assertEqual(errors[1]["msg"], "Input should be greater than or equal to 0")


class Cookies(unittest.TestCase):
    def test_cookie_parameters_and_request_cookies(self):
        app = covet.Covet()

        @app.get("/c")
        def c(request: covet.Request, session: str = Cookie(), theme: str = Cookie("light"), n: int = Cookie(0)):
            return {"session": session, "theme": theme, "n": n, "all": request.cookies}

        got = json.loads(call(app, "GET", "/c", headers=[("cookie", 'session=abc; n=4'), ("cookie", 'x="q"')])[2])
        self.assertEqual(got, {"session": "abc", "theme": "light", "n": 4, "all": {"session": "abc", "n": "4", "x": "q"}})
        self.assertEqual([e["loc"] for e in errors_of(app, "GET", "/c", headers=[("cookie", "n=x")])],
                         [["cookie", "session"], ["cookie", "n"]])


class Enums(unittest.TestCase):
    def setUp(self):
        self.app = covet.Covet()

        @self.app.get("/e/{color}")
        async def e(color: Color, level: Level = Level.low, maybe: Optional[Color] = None):
            return {"color": color, "is_enum": isinstance(color, Color), "level": level, "maybe": maybe}

    def test_members_by_value_in_the_path_and_the_query(self):
        got = json.loads(call(self.app, "GET", "/e/green", "level=2")[2])
        self.assertEqual(got, {"color": "green", "is_enum": True, "level": 2, "maybe": None})

    def test_a_value_that_is_no_member_is_a_422_listing_the_members(self):
        errors = errors_of(self.app, "GET", "/e/pink", "level=3&maybe=red")
        self.assertEqual([(e["loc"], e["type"]) for e in errors], [(["path", "color"], "enum"), (["query", "level"], "enum")])
        self.assertEqual(errors[0]["msg"], "Input should be 'red', 'green' or 'blue'")
        self.assertEqual(errors[1]["msg"], "Input should be 1 or 2")


class Lists(unittest.TestCase):
    def setUp(self):
        self.app = covet.Covet()

        @self.app.get("/l")
        def listed(tags: List[str] = [], ids: list[int] = Query([], max_length=3), colors: List[Color] = []):
            return {"tags": tags, "ids": ids, "colors": colors}

        @self.app.post("/l")
        def posted(items: list[int], tags: List[str] = Query([])):
            return {"items": items, "tags": tags}

    def test_repeated_query_values_on_a_get_route(self):
        got = json.loads(call(self.app, "GET", "/l", "tags=a&tags=b&ids=1&ids=2&colors=red")[2])
        self.assertEqual(got, {"tags": ["a", "b"], "ids": [1, 2], "colors": ["red"]})
        self.assertEqual(json.loads(call(self.app, "GET", "/l")[2]), {"tags": [], "ids": [], "colors": []})

    def test_a_bad_item_is_located_by_index_and_the_length_is_checked(self):
        errors = errors_of(self.app, "GET", "/l", "ids=1&ids=x&colors=pink")
        self.assertEqual([(e["loc"], e["type"]) for e in errors], [(["query", "ids", 1], "int_parsing"),
                                                                   (["query", "colors", 0], "enum")])
        errors = errors_of(self.app, "GET", "/l", "ids=1&ids=2&ids=3&ids=4")
        self.assertEqual((errors[0]["loc"], errors[0]["type"]), (["query", "ids"], "too_long"))

    def test_on_other_methods_a_list_is_still_the_body_unless_query_says_so(self):
        got = json.loads(call(self.app, "POST", "/l", "tags=x&tags=y", body=b"[1, 2]")[2])
        self.assertEqual(got, {"items": [1, 2], "tags": ["x", "y"]})


class Constraints(unittest.TestCase):
    def test_query_and_path_constraints_in_pydantic_words(self):
        app = covet.Covet()

        @app.get("/p/{n}")
        def p(n: int = Path(gt=0, lt=10), q: str = Query(min_length=2, max_length=3, pattern="^[a-z]+$"),
              f: float = Query(1.0, le=2.5), alias_: Optional[str] = Query(None, alias="item-query")):
            return {"n": n, "q": q, "f": f, "alias": alias_}

        got = json.loads(call(app, "GET", "/p/5", "q=ab&f=2.5&item-query=z")[2])
        self.assertEqual(got, {"n": 5, "q": "ab", "f": 2.5, "alias": "z"})
        errors = errors_of(app, "GET", "/p/10", "q=a&f=3")
        self.assertEqual([(e["loc"], e["type"], e["msg"]) for e in errors], [
            (["path", "n"], "less_than", "Input should be less than 10"),
            (["query", "q"], "string_too_short", "String should have at least 2 characters"),
            (["query", "f"], "less_than_equal", "Input should be less than or equal to 2.5")])
        self.assertEqual(errors_of(app, "GET", "/p/1", "q=abcd")[0]["type"], "string_too_long")
        self.assertEqual(errors_of(app, "GET", "/p/1", "q=A1")[0]["msg"], "String should match pattern '^[a-z]+$'")

    def test_signatures_covet_cannot_fill_are_refused_at_decoration(self):
        app = covet.Covet()
        with self.assertRaisesRegex(TypeError, "declared Path.. but the route has no"):
            app.get("/x")(lambda n=Path(): None)

        def z(h: dict = Header()):
            return h

        with self.assertRaisesRegex(TypeError, "header parameter `h` must be int, float, bool, str, an Enum"):
            app.get("/z")(z)


class TheRequest(unittest.TestCase):
    def test_a_parameter_named_request_without_annotation_is_the_request(self):
        app = covet.CovetPy()

        @app.get("/r/{n}")
        async def r(request, n: int):
            request.state.seen = n
            return {"path": request.path, "state": request.state.seen, "url": request.url}

        got = json.loads(call(app, "GET", "/r/3", "x=1", headers=[("host", "example.test:8080")])[2])
        self.assertEqual(got, {"path": "/r/3", "state": 3, "url": "http://example.test:8080/r/3?x=1"})

    def test_state_url_and_cookies_are_made_once_per_request(self):
        req = request(path="/a", query="b=1", headers=[("host", "h")])
        self.assertIs(req.state, req.state)
        req.state.user = "ada"
        self.assertEqual(vars(req.state), {"user": "ada"})
        with self.assertRaisesRegex(AttributeError, "request.state has no attribute 'nope'"):
            req.state.nope  # noqa: B018
        self.assertEqual((req.url, req.url.path, req.url.query, req.url.netloc), ("http://h/a?b=1", "/a", "b=1", "h"))
        self.assertEqual(request(path="/a").url, "/a")
        self.assertEqual(req.cookies, {})


if __name__ == "__main__":
    unittest.main()
