"""Requests, headers, responses and `_to_wire`, as the host and filters use them."""

import dataclasses
import datetime
import unittest

from support import covet, request

JSON = [("content-type", "application/json")]


class Requests(unittest.TestCase):
    def test_fields_come_from_the_positional_arguments_the_host_passes(self):
        req = covet.Request("POST", "/u/1", "a=1&a=2&b=", [("x-tenant", "acme"), ("accept", "*/*")],
                            {"id": "1"}, b"{}", {"jwt.sub": "alice"}, "rid-9", "10.0.0.1:4000")
        self.assertEqual((req.method, req.path, req.path_params, req.body, req.id, req.client),
                         ("POST", "/u/1", {"id": "1"}, b"{}", "rid-9", "10.0.0.1:4000"))
        self.assertEqual(req.headers["X-Tenant"], "acme")
        self.assertEqual((req.query["a"], req.query.getlist("a"), req.query["b"]), ("2", ["1", "2"], ""))
        self.assertEqual(req.metadata, {"jwt.sub": "alice"})

    def test_header_edits_are_reported_back_to_the_host(self):
        req = request(headers=[("a", "1"), ("b", "2"), ("b", "3")])
        self.assertFalse(req._headers_changed())
        self.assertEqual(req.headers.getlist("B"), ["2", "3"])
        self.assertFalse(req._headers_changed(), "reading is not editing")
        req.headers["X-New"] = "v"
        del req.headers["a"]
        self.assertTrue(req._headers_changed())
        self.assertEqual(req.headers.items(), [("b", "2"), ("b", "3"), ("x-new", "v")])

    def test_headers_mapping_semantics(self):
        headers = covet.Headers({"Content-Type": "text/plain"})
        headers.append("set-cookie", "a=1")
        headers.append("Set-Cookie", "b=2")
        self.assertIn("CONTENT-TYPE", headers)
        self.assertEqual(list(headers), ["content-type", "set-cookie"])
        self.assertEqual(len(headers), 2)
        headers["set-cookie"] = "c=3"
        self.assertEqual(headers.getlist("set-cookie"), ["c=3"])
        self.assertIsNone(headers.get("nope"))
        with self.assertRaises(KeyError):
            del headers["nope"]


class Responses(unittest.TestCase):
    def test_media_types_and_charset(self):
        self.assertEqual(covet.PlainTextResponse("hé").headers.items(), [("content-type", "text/plain; charset=utf-8")])
        self.assertEqual(covet.PlainTextResponse("hé").body, "hé".encode())
        explicit = covet.Response("x", headers={"Content-Type": "text/csv"}, media_type="text/plain")
        self.assertEqual(explicit.headers.items(), [("content-type", "text/csv")])
        self.assertEqual(covet.Response().headers.items(), [])
        self.assertEqual(covet.RedirectResponse("/there").headers["location"], "/there")

    def test_the_host_builds_a_response_positionally_for_on_response(self):
        resp = covet.Response(b"body", 201, [("content-type", "text/plain"), ("x-a", "1")])
        resp.headers["x-audit"] = "yes"
        resp.status_code = 202
        self.assertEqual(covet._to_wire(resp),
                         (202, [("content-type", "text/plain"), ("x-a", "1"), ("x-audit", "yes")], b"body"))

    def test_json_response_is_compact_utf8_and_converts_common_types(self):
        @dataclasses.dataclass
        class Point:
            x: int
            when: datetime.date

        resp = covet.JSONResponse({"p": Point(1, datetime.date(2026, 11, 23)), "s": {"ü"}}, status_code=201,
                                  headers=[("location", "/p/1")])
        self.assertEqual(covet._to_wire(resp), (201, [("location", "/p/1"), ("content-type", "application/json")],
                                                '{"p":{"x":1,"when":"2026-11-23"},"s":["ü"]}'.encode()))
        with self.assertRaisesRegex(TypeError, "not JSON serializable"):
            covet.JSONResponse(object())


class FastPaths(unittest.TestCase):
    """The hand-rolled fast paths agree with the standard library."""

    def test_query_parsing_matches_parse_qsl(self):
        from urllib.parse import parse_qsl

        from covet._datastructures import parse_query
        for qs in ["", "a=1", "a=1&b=2&a=3", "a", "a=", "&&a=1&", "q=hello%20world", "q=a+b", "k%3D=v%26",
                   "=x", "a=b=c", "%zz=1", "x=%C3%A9", "x=%E9"]:
            self.assertEqual(parse_query(qs), parse_qsl(qs, keep_blank_values=True), qs)

    def test_the_reused_c_encoder_matches_the_portable_one(self):
        from covet import _json
        self.assertIsNotNone(_json._C_ENCODE, "CPython's C encoder is used")
        for value in [{"a": [1, 2.5, None, True, "é\n\"", {1: "int key"}]}, [], "s", 3, datetime.date(2020, 1, 2)]:
            self.assertEqual(_json.dumps(value), _json._ENCODE(value).encode(), value)

    def test_a_cycle_raises_instead_of_crashing(self):
        from covet import _json
        cycle = []
        cycle.append(cycle)
        with self.assertRaises((RecursionError, ValueError)):
            _json.dumps(cycle)


class Wire(unittest.TestCase):
    def test_every_allowed_return_value(self):
        self.assertEqual(covet._to_wire({"a": [1, None]}), (200, JSON, b'{"a":[1,null]}'))
        self.assertEqual(covet._to_wire([1, 2]), (200, JSON, b"[1,2]"))
        self.assertEqual(covet._to_wire("hé"), (200, [("content-type", "text/plain; charset=utf-8")], "hé".encode()))
        self.assertEqual(covet._to_wire(b"\x00"), (200, [("content-type", "application/octet-stream")], b"\x00"))
        self.assertEqual(covet._to_wire(None), (204, [], b""))
        self.assertEqual(covet._to_wire(3.5), (200, JSON, b"3.5"))

    def test_a_route_status_replaces_the_default_but_not_a_responses_own(self):
        app = covet.Covet()
        app.post("/a", status_code=201)(lambda: {"ok": True})
        app.post("/b", status_code=201)(lambda: covet.Response("x", 200))
        app.post("/c", status_code=202)(lambda: None)
        self.assertEqual([app._covet_call(i, request())[0] for i in range(3)], [201, 200, 202])

    def test_unserialisable_results_raise_so_the_host_answers_500(self):
        with self.assertRaises(TypeError):
            covet._to_wire(object())


if __name__ == "__main__":
    unittest.main()
