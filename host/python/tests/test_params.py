"""Decorator apps: routes, typed parameters, validation errors and results,
called through the same hooks the host uses (`_covet_routes`,
`_covet_call`, `_covet_is_async`)."""

import json
import unittest
from typing import Optional

from support import call, covet, request, run


def app_with_users():
    app = covet.Covet()

    @app.get("/users/{user_id}")
    async def get_user(user_id: int, q: str | None = None):
        return {"id": user_id, "q": q}

    @app.get("/calc")
    def calc(x: float, flag: bool = False, label: Optional[str] = "none"):
        return {"x": x, "flag": flag, "label": label}

    @app.post("/items", status_code=201)
    def create(body: dict):
        return body

    return app


class Routes(unittest.TestCase):
    def test_routes_list_methods_matchit_paths_and_indexes(self):
        app = covet.Covet()

        @app.route("/a/{id}", methods=["get", "post"])
        def a(id: str):
            return id

        @app.delete("/files/{path:path}")
        def b(path: str):
            return path

        self.assertEqual(app._covet_routes(), [(["GET", "POST", "HEAD"], "/a/{id}", 0), (["DELETE"], "/files/{*path}", 1)])

    def test_get_routes_answer_head_unless_the_app_has_its_own_head_handler(self):
        app = covet.Covet()
        app.get("/a")(lambda: 1)
        app.get("/b")(lambda: 2)
        app.route("/b", methods=["HEAD"])(lambda: 3)
        self.assertEqual([r[0] for r in app._covet_routes()], [["GET", "HEAD"], ["GET"], ["HEAD"]])

    def test_is_async_tells_coroutine_endpoints_apart(self):
        app = app_with_users()
        self.assertEqual([app._covet_is_async(i) for i in range(3)], [True, False, False])
        pending = app._covet_call(0, request(path_params={"user_id": "1"}))
        self.assertTrue(hasattr(pending, "__await__"), "an async endpoint's call is a coroutine")
        self.assertEqual(run(pending)[0], 200)
        self.assertIsInstance(app._covet_call(1, request(query="x=1")), tuple, "a sync one answers at once")

    def test_the_same_method_and_path_twice_is_refused_at_decoration(self):
        app = covet.Covet()
        app.get("/x")(lambda: 1)
        with self.assertRaisesRegex(ValueError, "GET /x is already handled"):
            app.route("/x", methods=["GET", "PUT"])(lambda: 2)
        app.put("/x")(lambda: 3)

    def test_bad_paths_and_signatures_fail_at_decoration_with_the_route_named(self):
        app = covet.Covet()
        with self.assertRaisesRegex(ValueError, "must start with '/'"):
            app.get("users")(lambda: 1)
        with self.assertRaisesRegex(TypeError, r"'/o/\{n\}'.*path parameter `n` must be int"):
            def f(n: dict): return n  # noqa: E704
            app.get("/o/{n}")(f)
        with self.assertRaisesRegex(TypeError, "unsupported annotation"):
            def g(when: complex): return when  # noqa: E704
            app.get("/g")(g)
        with self.assertRaisesRegex(TypeError, r"no /, \*args or \*\*kwargs"):
            def h(**kw): return kw  # noqa: E704
            app.get("/h")(h)


class Conversion(unittest.TestCase):
    def test_an_int_path_parameter_becomes_a_json_number(self):
        self.assertEqual(call(app_with_users(), "GET", "/users/7"),
                         (200, [("content-type", "application/json")], b'{"id":7,"q":null}'))

    def test_optional_and_defaulted_query_parameters(self):
        app = app_with_users()
        self.assertEqual(json.loads(call(app, "GET", "/users/7", "q=hello%20world")[2])["q"], "hello world")
        body = json.loads(call(app, "GET", "/calc", "x=2.5&flag=on")[2])
        self.assertEqual(body, {"x": 2.5, "flag": True, "label": "none"})
        for raw, expected in [("true", True), ("1", True), ("yes", True), ("false", False), ("0", False), ("off", False)]:
            self.assertIs(json.loads(call(app, "GET", "/calc", f"x=1&flag={raw}")[2])["flag"], expected, raw)

    def test_the_last_repeated_query_value_wins(self):
        self.assertEqual(json.loads(call(app_with_users(), "GET", "/calc", "x=1&x=3")[2])["x"], 3.0)

    def test_bad_values_are_a_422_naming_each_field_and_where_it_came_from(self):
        app = app_with_users()
        with self.assertRaises(covet.RequestValidationError) as caught:
            call(app, "GET", "/users/abc")
        self.assertEqual(caught.exception.errors, [{
            "loc": ["path", "user_id"], "type": "int_parsing", "input": "abc",
            "msg": "Input should be a valid integer, unable to parse string as an integer"}])
        with self.assertRaises(covet.RequestValidationError) as caught:
            call(app, "GET", "/calc", "flag=maybe")
        self.assertEqual([(e["loc"], e["type"]) for e in caught.exception.errors],
                         [(["query", "x"], "missing"), (["query", "flag"], "bool_parsing")])
        with self.assertRaises(covet.RequestValidationError) as caught:
            call(app, "GET", "/calc", "x=abc")
        self.assertEqual(caught.exception.errors[0]["type"], "float_parsing")

    def test_path_segments_are_percent_decoded_before_conversion(self):
        app = covet.Covet()

        @app.get("/n/{n}/{name}")
        def n(n: int, name: str):
            return {"n": n, "name": name}

        self.assertEqual(call(app, "GET", "/n/%31%32/a%20b")[2], b'{"n":12,"name":"a b"}')

    def test_optional_without_default_is_still_required(self):
        app = covet.Covet()

        @app.get("/r")
        def r(q: int | None):
            return {"q": q}

        with self.assertRaises(covet.RequestValidationError):
            call(app, "GET", "/r")
        self.assertEqual(call(app, "GET", "/r", "q=4")[2], b'{"q":4}')

    def test_a_request_annotation_gets_the_request_and_raw_bodies_are_bytes(self):
        app = covet.Covet()

        @app.post("/echo/{*rest}")
        def echo(rest: str, req: covet.Request, raw: bytes):
            return {"rest": rest, "method": req.method, "tenant": req.metadata["t"], "raw": raw.decode()}

        wire = call(app, "POST", "/echo/a/b", body=b"hi", metadata={"t": "acme"})
        self.assertEqual(json.loads(wire[2]), {"rest": "a/b", "method": "POST", "tenant": "acme", "raw": "hi"})


class Bodies(unittest.TestCase):
    def test_a_dict_parameter_gets_the_json_body(self):
        wire = call(app_with_users(), "POST", "/items", body='{"name": "ünï"}'.encode())
        self.assertEqual(wire, (201, [("content-type", "application/json")], '{"name":"ünï"}'.encode()))

    def test_bad_json_missing_body_and_wrong_container_are_422(self):
        app = app_with_users()
        for body, kind in [(b"{not json", "json_invalid"), (b"", "missing"), (b"[1, 2]", "dict_type")]:
            with self.assertRaises(covet.RequestValidationError, msg=body) as caught:
                call(app, "POST", "/items", body=body)
            self.assertEqual(caught.exception.errors[0]["type"], kind)
            self.assertEqual(caught.exception.errors[0]["loc"][0], "body")

    def test_a_parameter_named_body_or_annotated_list_is_the_body(self):
        app = covet.Covet()

        @app.post("/a")
        def a(body=None):
            return {"got": body}

        @app.post("/b")
        def b(items: list[int]):
            return {"n": len(items)}

        self.assertEqual(call(app, "POST", "/a")[2], b'{"got":null}')
        self.assertEqual(call(app, "POST", "/a", body=b"[1]")[2], b'{"got":[1]}')
        self.assertEqual(call(app, "POST", "/b", body=b"[1,2,3]")[2], b'{"n":3}')

    def test_await_request_json_parses_once_and_refuses_bad_json_with_a_422(self):
        req = request(body=b'{"a": 1}')
        self.assertEqual(run(req.json()), {"a": 1})
        self.assertIs(run(req.json()), run(req.json()))
        with self.assertRaises(covet.RequestValidationError):
            run(request(body=b"nope").json())


class Errors(unittest.TestCase):
    def test_http_exceptions_and_other_errors_propagate_to_the_host(self):
        app = covet.Covet()

        @app.get("/missing")
        async def missing():
            raise covet.HTTPException(404, "no such thing", headers={"x-why": "gone"})

        @app.get("/boom")
        def boom():
            raise RuntimeError("secret internals")

        with self.assertRaises(covet.HTTPException) as caught:
            call(app, "GET", "/missing")
        self.assertEqual((caught.exception.status_code, caught.exception.detail, caught.exception.headers),
                         (404, "no such thing", {"x-why": "gone"}))
        with self.assertRaisesRegex(RuntimeError, "secret internals"):
            call(app, "GET", "/boom")

    def test_http_exception_defaults_to_the_reason_phrase_and_needs_an_error_status(self):
        self.assertEqual(covet.HTTPException(403).detail, "Forbidden")
        with self.assertRaises(ValueError):
            covet.HTTPException(200)


class Lifecycle(unittest.TestCase):
    def test_init_sets_config_and_runs_startup_hooks_shutdown_runs_its_hooks(self):
        app = covet.Covet()
        seen = []
        app.on_startup(lambda: seen.append(("start", app.config["greeting"])))
        app.on_shutdown(lambda: seen.append("stop"))
        app._covet_init({"greeting": "hi"})
        app._covet_shutdown()
        self.assertEqual(seen, [("start", "hi"), "stop"])
        bare = covet.Covet()
        bare._covet_init(None)
        self.assertEqual(bare.config, {})

    def test_a_failing_shutdown_hook_does_not_skip_the_others(self):
        app = covet.Covet()
        ran = []
        app.on_shutdown(lambda: ran.append(1) or 1 / 0)
        app.on_shutdown(lambda: ran.append(2))
        with self.assertRaises(ZeroDivisionError):
            app._covet_shutdown()
        self.assertEqual(ran, [1, 2])

    def test_async_hooks_are_refused(self):
        async def hook():
            pass

        with self.assertRaisesRegex(TypeError, "plain function"):
            covet.Covet().on_startup(hook)


if __name__ == "__main__":
    unittest.main()
