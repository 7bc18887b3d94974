"""`Response(obj)` / `Response(obj, status=201)`, return annotations and
`response_model=` (values filtered through pydantic models, mismatches
raising for a 500), pydantic body parameters, and the package without
pydantic."""

import dataclasses
import json
import subprocess
import sys
import unittest
from typing import Dict, List, Optional

from pydantic import BaseModel

from support import ROOT, call, covet

JSON = [("content-type", "application/json")]


class User(BaseModel):
    id: int
    name: str


class UserInDB(User):
    password: str


@dataclasses.dataclass
class Point:
    x: int
    y: int


class ResponseOfAnObject(unittest.TestCase):
    def test_dicts_lists_models_and_dataclasses_become_json(self):
        cases = [({"a": 1}, b'{"a":1}'), ([1, "b"], b'[1,"b"]'), (User(id=1, name="ada"), b'{"id":1,"name":"ada"}'),
                 (Point(1, 2), b'{"x":1,"y":2}')]
        for content, raw in cases:
            self.assertEqual(covet._to_wire(covet.Response(content)), (200, JSON, raw), content)

    def test_status_sets_the_status_and_text_and_bytes_stay_as_they_were(self):
        self.assertEqual(covet._to_wire(covet.Response({"ok": True}, status=201))[:2], (201, JSON))
        self.assertEqual(covet._to_wire(covet.Response("Success", status_code=201)), (201, [], b"Success"))
        self.assertEqual(covet._to_wire(covet.Response(b"\x00", 202, media_type="x/y")), (202, [("content-type", "x/y")], b"\x00"))
        self.assertEqual(covet._to_wire(covet.Response(status_code=204)), (204, [], b""))
        self.assertEqual(covet._to_wire(covet.JSONResponse([1], status=201)), (201, JSON, b"[1]"))
        explicit = covet.Response({"a": 1}, headers={"Content-Type": "application/vnd.x+json"})
        self.assertEqual(explicit.headers.getlist("content-type"), ["application/vnd.x+json"])


class ReturnAnnotations(unittest.TestCase):
    def setUp(self):
        self.app = covet.CovetPy()
        rows = [{"id": 1, "name": "ada", "password": "p1"}, UserInDB(id=2, name="bob", password="p2")]

        @self.app.get("/users")
        async def users() -> List[User]:
            return rows

        @self.app.get("/users/{n}")
        def one(n: int) -> User:
            return rows[n]

        @self.app.get("/by-name", response_model=Dict[str, User])
        def by_name():
            return {"ada": rows[0]}

        @self.app.get("/raw", response_model=None)
        def raw() -> User:
            return rows[0]

        @self.app.get("/maybe")
        def maybe() -> Optional[User]:
            return None

        @self.app.get("/response")
        def response() -> covet.Response:
            return covet.Response({"any": "thing"}, status=202)

        @self.app.get("/bad")
        def bad() -> List[User]:
            return [{"id": "x", "name": "ada"}]

        @self.app.get("/plain")
        def plain(kind: str) -> dict:
            return {"a": 1} if kind == "dict" else [1]

    def get(self, path, query=""):
        return call(self.app, "GET", path, query)

    def test_undeclared_fields_are_dropped_from_dicts_and_subclass_models(self):
        self.assertEqual(json.loads(self.get("/users")[2]), [{"id": 1, "name": "ada"}, {"id": 2, "name": "bob"}])
        self.assertEqual(json.loads(self.get("/users/1")[2]), {"id": 2, "name": "bob"})
        self.assertEqual(json.loads(self.get("/by-name")[2]), {"ada": {"id": 1, "name": "ada"}})

    def test_response_model_none_a_response_annotation_and_none_are_not_filtered(self):
        self.assertEqual(json.loads(self.get("/raw")[2])["password"], "p1")
        self.assertEqual(self.get("/maybe"), (204, [], b""))
        self.assertEqual(self.get("/response"), (202, JSON, b'{"any":"thing"}'))

    def test_a_value_that_does_not_fit_raises_naming_the_route_and_the_field(self):
        with self.assertRaisesRegex(covet.ResponseValidationError, r"'/bad'.*response\.0\.id: Input should be a valid integer") as caught:
            self.get("/bad")
        self.assertEqual(caught.exception.errors[0]["loc"], ["response", 0, "id"])

    def test_a_plain_class_annotation_is_an_isinstance_check(self):
        self.assertEqual(self.get("/plain", "kind=dict")[2], b'{"a":1}')
        with self.assertRaisesRegex(covet.ResponseValidationError, "Input should be dict, got list"):
            self.get("/plain", "kind=list")


class ModelParameters(unittest.TestCase):
    def test_a_list_of_models_and_several_models_embedded_by_name(self):
        app = covet.Covet()

        @app.post("/many")
        def many(users: List[User]):
            return {"names": [u.name for u in users]}

        @app.post("/two")
        def two(user: User, other: Optional[User] = None, note: str = "-"):
            return {"user": user, "other": other, "note": note}

        self.assertEqual(json.loads(call(app, "POST", "/many", body=b'[{"id": 1, "name": "a"}]')[2]), {"names": ["a"]})
        with self.assertRaises(covet.RequestValidationError) as caught:
            call(app, "POST", "/many", body=b'[{"id": 1, "name": "a"}, {"id": "x"}]')
        self.assertEqual([e["loc"] for e in caught.exception.errors], [["body", 1, "id"], ["body", 1, "name"]])
        got = json.loads(call(app, "POST", "/two", "note=n", body=b'{"user": {"id": 1, "name": "a"}}')[2])
        self.assertEqual(got, {"user": {"id": 1, "name": "a"}, "other": None, "note": "n"})
        with self.assertRaises(covet.RequestValidationError) as caught:
            call(app, "POST", "/two", body=b'{"other": {"id": 1}}')
        self.assertEqual([e["loc"] for e in caught.exception.errors], [["body", "user"], ["body", "other", "name"]])


class WithoutPydantic(unittest.TestCase):
    def test_the_package_imports_and_serves_without_pydantic(self):
        script = f"""
import sys
sys.modules["pydantic"] = None          # any import of pydantic fails
sys.path.insert(0, {str(ROOT / "host" / "python")!r})
import covet
app = covet.CovetPy()

@app.get("/t/{{n}}")
def t(n: int, tags: list[str] = []) -> dict:
    return covet.Response({{"n": n, "tags": tags}}, status=201)

app._covet_routes()
req = covet.Request("GET", "/t/2", "tags=a&tags=b", [], {{"n": "2"}}, b"", {{}}, "r", None)
print(app._covet_call(0, req))
"""
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
        self.assertEqual(out.strip(), str((201, JSON, b'{"n":2,"tags":["a","b"]}')))


if __name__ == "__main__":
    unittest.main()
