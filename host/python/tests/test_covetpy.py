"""Every CovetPy document example covet serves (python-plugins/covetpy/),
called the way the host calls them: the README's hello world, the alpha
example app, the architecture document's "Python-First API" and "Type
Safety", the API reference's route decorators with its validation models,
and the middleware demo."""

import contextlib
import io
import json
import unittest
import warnings

from support import call, covet, load


def body(wire) -> object:
    return json.loads(wire[2])


class HelloWorld(unittest.TestCase):
    def test_from_covet_import_covetpy_and_a_handler_taking_the_request(self):
        app = load("python-plugins/covetpy/hello.py", "covetpy_hello").app
        self.assertIsInstance(app, covet.CovetPy)
        self.assertIs(covet.CovetPy, covet.Covet)
        wire = call(app, "GET", "/")
        self.assertEqual(wire, (200, [("content-type", "application/json")], b'{"message":"Hello, World!"}'))

    def test_app_run_says_covet_serves_the_app_from_its_manifest(self):
        app = load("python-plugins/covetpy/hello.py", "covetpy_hello_run").app
        with self.assertRaisesRegex(RuntimeError, "manifest"):
            app.run()


class AlphaApp(unittest.TestCase):
    def setUp(self):
        self.app = load("python-plugins/covetpy/alpha.py", "covetpy_alpha").app

    def test_debug_is_accepted_and_kept(self):
        self.assertTrue(self.app.debug)

    def test_the_four_routes(self):
        self.assertEqual(body(call(self.app, "GET", "/"))["framework"], "CovetPy")
        self.assertEqual(body(call(self.app, "GET", "/health")), {"status": "healthy", "service": "covetpy-alpha"})
        user = body(call(self.app, "GET", "/api/users/42"))
        self.assertEqual(user, {"user_id": 42, "name": "User 42", "type": "example"})
        self.assertEqual(body(call(self.app, "POST", "/api/users"))["status"], "success")

    def test_a_bad_user_id_is_a_422_even_after_a_request_parameter(self):
        with self.assertRaises(covet.RequestValidationError) as caught:
            call(self.app, "GET", "/api/users/abc")
        self.assertEqual([(e["loc"], e["type"]) for e in caught.exception.errors], [(["path", "user_id"], "int_parsing")])


class PythonFirst(unittest.TestCase):
    def setUp(self):
        self.module = load("python-plugins/covetpy/python_first.py", "covetpy_python_first")
        self.app = self.module.app

    def create(self, **fields):
        return call(self.app, "POST", "/users", body=json.dumps(fields).encode())

    def test_response_of_a_dict_is_json_and_status_201_sets_the_status(self):
        status, headers, raw = self.create(name="ada", email="ada@x.io")
        self.assertEqual((status, headers), (201, [("content-type", "application/json")]))
        self.assertEqual(json.loads(raw)["name"], "ada")
        status, headers, raw = call(self.app, "GET", "/users/1")
        self.assertEqual((status, json.loads(raw)["email"]), (200, "ada@x.io"))
        self.assertEqual(headers, [("content-type", "application/json")])

    def test_list_users_returns_list_of_user_without_undeclared_fields(self):
        self.create(name="ada", email="ada@x.io")
        self.create(name="bob", email="bob@x.io", active=False)
        everyone = body(call(self.app, "GET", "/users"))
        self.assertEqual(everyone, [{"id": 1, "name": "ada", "email": "ada@x.io", "active": True},
                                    {"id": 2, "name": "bob", "email": "bob@x.io", "active": False}])
        self.assertEqual([u["id"] for u in body(call(self.app, "GET", "/users", "active=false"))], [2])
        self.assertEqual([u["id"] for u in body(call(self.app, "GET", "/users", "limit=1&offset=1"))], [2])


class ApiReference(unittest.TestCase):
    GOOD = {"username": "ada_l", "email": "ada@x.io", "password": "Secret123", "age": 36}

    def setUp(self):
        self.app = load("python-plugins/covetpy/api_reference.py", "covetpy_api_reference").app
        warnings.simplefilter("ignore")  # the documents' `user.dict()` is deprecated in pydantic 2
        self.addCleanup(warnings.resetwarnings)

    def post(self, fields):
        return call(self.app, "POST", "/users", body=json.dumps(fields).encode())

    def test_create_is_201_and_the_user_model_keeps_the_password_out(self):
        status, _, raw = self.post(self.GOOD)
        self.assertEqual(status, 201)
        self.assertEqual(json.loads(raw), {"id": 1, "username": "ada_l", "email": "ada@x.io", "age": 36, "tags": []})
        self.assertEqual(body(call(self.app, "GET", "/users")), [json.loads(raw)])

    def test_an_invalid_body_is_a_422_with_one_entry_per_field(self):
        with self.assertRaises(covet.RequestValidationError) as caught:
            self.post({"username": "a!", "password": "nodigitsX", "age": 7})
        got = {tuple(e["loc"]): e["type"] for e in caught.exception.errors}
        self.assertEqual(got, {("body", "username"): "string_too_short", ("body", "email"): "missing",
                               ("body", "password"): "value_error", ("body", "age"): "greater_than_equal"})
        password = next(e for e in caught.exception.errors if e["loc"] == ["body", "password"])
        self.assertIn("Password must contain digit", password["msg"])

    def test_a_missing_or_broken_body_is_a_422_on_the_body(self):
        for raw, kind in [(b"", "missing"), (b"{nope", "json_invalid"), (b"[1]", "model_type")]:
            with self.assertRaises(covet.RequestValidationError, msg=raw) as caught:
                call(self.app, "POST", "/users", body=raw)
            self.assertEqual((caught.exception.errors[0]["loc"][0], caught.exception.errors[0]["type"]), ("body", kind))

    def test_update_and_delete(self):
        self.post(self.GOOD)
        updated = body(call(self.app, "PUT", "/users/1", body=b'{"age": 37, "tags": ["x"]}'))
        self.assertEqual((updated["age"], updated["tags"], updated["email"]), (37, ["x"], "ada@x.io"))
        with self.assertRaises(covet.RequestValidationError) as caught:
            call(self.app, "PUT", "/users/1", body=b'{"age": 200}')
        self.assertEqual(caught.exception.errors[0]["loc"], ["body", "age"])
        with self.assertRaises(covet.HTTPException):
            call(self.app, "PUT", "/users/9", body=b"{}")
        self.assertEqual(call(self.app, "DELETE", "/users/1"), (204, [], b""))
        self.assertEqual(body(call(self.app, "GET", "/users")), [])


class MiddlewareDemo(unittest.TestCase):
    def setUp(self):
        self.app = load("python-plugins/covetpy/middleware_demo.py", "covetpy_middleware_demo").app
        self.printed = io.StringIO()  # the demo prints its log (under the host: to the host log)
        redirect = contextlib.redirect_stdout(self.printed)
        redirect.__enter__()
        self.addCleanup(redirect.__exit__, None, None, None)

    def test_every_middleware_adds_its_part(self):
        status, headers, raw = call(self.app, "GET", "/", headers=[("host", "api.test")])
        names = dict(headers)
        self.assertIn("[REQUEST] GET http://api.test/\n", self.printed.getvalue())
        self.assertIn("[RESPONSE] 200 (", self.printed.getvalue())
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(raw)["message"], "CovetPy Middleware Demo")
        self.assertEqual(names["access-control-allow-origin"], "*")
        self.assertGreaterEqual(float(names["x-process-time"]), 0.0)

    def test_the_error_middleware_turns_an_exception_into_its_json_500(self):
        status, headers, raw = call(self.app, "GET", "/error", headers=[("host", "api.test")])
        self.assertEqual(status, 500)
        self.assertEqual(json.loads(raw), {"error": True, "message": "This is a deliberate error for testing middleware",
                                           "type": "ValueError", "path": "http://api.test/error"})
        self.assertIn("x-process-time", dict(headers), "the outer logging middleware still ran")
        self.assertIn("[ERROR] ValueError: This is a deliberate error", self.printed.getvalue())

    def test_echo_sees_the_url_headers_and_json(self):
        wire = call(self.app, "POST", "/echo", "a=1", headers=[("host", "h"), ("x-k", "v")], body=b'{"test": "data"}')
        got = body(wire)
        self.assertEqual((got["url"], got["headers"]["x-k"], got["data"]), ("http://h/echo?a=1", "v", {"test": "data"}))


if __name__ == "__main__":
    unittest.main()
