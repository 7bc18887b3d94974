"""The examples in python-plugins/ behave as documented (without the host):
the users CRUD app and the audit filter."""

import json
import unittest

from support import call, covet, load, request


class UsersApp(unittest.TestCase):
    def setUp(self):
        self.app = load("python-plugins/users/app.py", "users_example").app
        self.app._covet_init({"seed": [{"name": "ada", "email": "ada@example.com"}]})

    def test_crud_round_trip(self):
        status, headers, body = call(self.app, "POST", "/users", body=b'{"name": "bob", "email": "b@x.io"}')
        self.assertEqual((status, json.loads(body)), (201, {"id": 2, "active": True, "name": "bob", "email": "b@x.io"}))
        self.assertIn(("location", "/users/2"), headers)
        got = json.loads(call(self.app, "GET", "/users/2", metadata={"audit.tenant": "acme"})[2])
        self.assertEqual((got["name"], got["tenant"]), ("bob", "acme"))
        updated = json.loads(call(self.app, "PUT", "/users/2", body=b'{"active": false}')[2])
        self.assertFalse(updated["active"])
        listed = json.loads(call(self.app, "GET", "/users", "active=false")[2])
        self.assertEqual([u["id"] for u in listed["users"]], [2])
        self.assertEqual(call(self.app, "DELETE", "/users/2"), (204, [], b""))
        with self.assertRaises(covet.HTTPException) as caught:
            call(self.app, "GET", "/users/2")
        self.assertEqual((caught.exception.status_code, caught.exception.detail), (404, "user 2 not found"))

    def test_list_honours_limit_and_offset(self):
        for name in "cde":
            call(self.app, "POST", "/users", body=json.dumps({"name": name, "email": f"{name}@x.io"}).encode())
        page = json.loads(call(self.app, "GET", "/users", "limit=2&offset=1")[2])
        self.assertEqual(([u["name"] for u in page["users"]], page["total"]), (["c", "d"], 4))

    def test_invalid_bodies_are_422_naming_the_field(self):
        with self.assertRaises(covet.RequestValidationError) as caught:
            call(self.app, "POST", "/users", body=b'{"name": 5}')
        self.assertEqual([e["loc"] for e in caught.exception.errors], [["body", "name"], ["body", "email"]])


class AuditFilter(unittest.TestCase):
    def setUp(self):
        self.audit = load("python-plugins/filters/audit.py", "audit_example")
        self.audit.init({"tenants": ["acme"]})

    def test_a_request_without_the_header_is_refused_with_a_json_400(self):
        resp = self.audit.on_request(request())
        self.assertEqual(covet._to_wire(resp), (400, [("content-type", "application/json")],
                                                b'{"error":"missing_tenant","header":"x-tenant"}'))
        self.assertEqual(self.audit.on_request(request(headers=[("x-tenant", "evil")])).status_code, 403)

    def test_a_known_tenant_goes_into_metadata_headers_and_the_response(self):
        req = request(headers=[("x-tenant", "acme")], request_id="rid-1")
        self.assertIsNone(self.audit.on_request(req))
        self.assertEqual(req.metadata["audit.tenant"], "acme")
        self.assertTrue(req._headers_changed())
        self.assertEqual(req.headers["x-audit-id"], "rid-1")
        resp = covet.Response(b"{}", 200, [("content-type", "application/json")])
        self.assertIsNone(self.audit.on_response(req, resp))
        self.assertEqual(resp.headers["x-audit"], "acme 200")


if __name__ == "__main__":
    unittest.main()
