"""`@app.middleware(...)`, `app.middleware(cls)` and `BaseHTTPMiddleware`:
order, short-circuits, `request.state`, errors through `call_next`, sync
endpoints behind middleware."""

import json
import threading
import unittest

from support import call, covet, run, request


def app_with_trail():
    """Two function middlewares and a class one, each recording where it ran."""
    app = covet.CovetPy()

    @app.middleware("http")
    async def first(request, call_next):
        request.state.trail = ["first"]
        response = await call_next(request)
        response.headers["x-trail"] = ",".join(request.state.trail + ["first-out"])
        return response

    @app.middleware("performance")  # CovetPy's documents label middleware freely
    async def second(request, call_next):
        request.state.trail.append("second")
        if request.headers.get("x-stop"):
            return {"stopped": True, "trail": request.state.trail}
        response = await call_next(request)
        request.state.trail.append("second-out")
        return response

    class Third(covet.BaseHTTPMiddleware):
        def __init__(self, app, label="third"):
            super().__init__(app)
            self.label = label

        async def dispatch(self, request, call_next):
            request.state.trail.append(self.label)
            return await call_next(request)

    app.middleware(Third, label="3rd")
    return app


class Order(unittest.TestCase):
    def test_first_registered_is_outermost_and_state_is_shared(self):
        app = app_with_trail()

        @app.get("/t")
        async def t(request):
            request.state.trail.append("endpoint")
            return {"trail": request.state.trail}

        status, headers, raw = call(app, "GET", "/t")
        self.assertEqual((status, json.loads(raw)), (200, {"trail": ["first", "second", "3rd", "endpoint"]}))
        self.assertIn(("x-trail", "first,second,3rd,endpoint,second-out,first-out"), headers)
        self.assertTrue(app._covet_is_async(0), "behind middleware every endpoint is async")

    def test_a_middleware_may_answer_without_calling_the_endpoint(self):
        app = app_with_trail()
        ran = []
        app.get("/t")(lambda: ran.append(1))
        status, headers, raw = call(app, "GET", "/t", headers=[("x-stop", "1")])
        self.assertEqual((status, json.loads(raw)), (200, {"stopped": True, "trail": ["first", "second"]}))
        self.assertIn(("x-trail", "first,second,first-out"), headers)
        self.assertEqual(ran, [])

    def test_middleware_given_to_the_constructor_and_add_middleware(self):
        seen = []

        async def mw(request, call_next):
            seen.append("ctor")
            return await call_next(request)

        class Added(covet.BaseHTTPMiddleware):
            async def dispatch(self, request, call_next):
                seen.append(("added", self.app is app))
                return await call_next(request)

        app = covet.CovetPy(middleware=[mw])
        app.add_middleware(Added)
        app.get("/")(lambda: "ok")
        self.assertEqual(call(app, "GET", "/")[2], b"ok")
        self.assertEqual(seen, ["ctor", ("added", True)])

    def test_middleware_added_after_the_routes_still_wraps_them(self):
        app = covet.Covet()
        app.get("/")(lambda: {"a": 1})
        self.assertEqual(call(app, "GET", "/")[1], [("content-type", "application/json")])

        @app.middleware("http")
        async def tag(request, call_next):
            response = await call_next(request)
            response.headers["x-tag"] = "1"
            return response

        self.assertIn(("x-tag", "1"), call(app, "GET", "/")[1])

    def test_sync_middleware_and_unknown_things_are_refused(self):
        app = covet.Covet()
        with self.assertRaisesRegex(TypeError, "async def"):
            app.middleware("http")(lambda request, call_next: None)
        with self.assertRaisesRegex(TypeError, "async def"):
            app.middleware(object())
        with self.assertRaisesRegex(TypeError, "options are for a middleware class"):
            app.middleware(lambda: None, x=1)


class Errors(unittest.TestCase):
    def setUp(self):
        self.app = covet.Covet()
        self.seen = []

        @self.app.middleware("http")
        async def header(request, call_next):
            response = await call_next(request)
            self.seen.append((response.status_code, json.loads(response.body)["error"]["code"]
                              if response.status_code >= 400 else None))
            response.headers["x-seen"] = "yes"
            return response

        @self.app.get("/missing")
        async def missing():
            raise covet.HTTPException(404, "gone", headers={"x-why": "deleted"})

        @self.app.get("/n/{n}")
        def n(n: int):
            return {"n": n, "thread": threading.current_thread() is threading.main_thread()}

        @self.app.get("/boom")
        async def boom():
            raise RuntimeError("boom")

    def test_an_http_exception_is_a_response_to_middleware_then_the_hosts_error_again(self):
        with self.assertRaises(covet.HTTPException) as caught:
            call(self.app, "GET", "/missing")
        self.assertEqual(self.seen, [(404, "NOT_FOUND")])
        self.assertEqual((caught.exception.status_code, caught.exception.detail), (404, "gone"))
        self.assertEqual(caught.exception.headers, {"x-why": "deleted", "x-seen": "yes"})

    def test_a_422_with_added_headers_keeps_covets_error_body(self):
        status, headers, raw = call(self.app, "GET", "/n/abc")
        error = json.loads(raw)["error"]
        self.assertEqual((status, error["code"], error["message"]), (422, "VALIDATION_ERROR", "the request is invalid"))
        self.assertEqual(error["details"][0]["loc"], ["path", "n"])
        self.assertEqual(error["request_id"], "req-1")
        self.assertIn(("x-seen", "yes"), headers)

    def test_other_exceptions_propagate_for_the_host_500(self):
        with self.assertRaisesRegex(RuntimeError, "boom"):
            call(self.app, "GET", "/boom")
        self.assertEqual(self.seen, [])

    def test_a_sync_endpoint_runs_off_the_event_loop_thread(self):
        self.assertEqual(json.loads(call(self.app, "GET", "/n/4")[2]), {"n": 4, "thread": False})

    def test_an_untouched_422_is_raised_again_for_the_host(self):
        app = covet.Covet()

        @app.middleware("http")
        async def passthrough(request, call_next):
            return await call_next(request)

        app.get("/q")(lambda limit: limit)
        with self.assertRaises(covet.RequestValidationError):
            run(app._covet_call(0, request(path="/q")))


if __name__ == "__main__":
    unittest.main()
