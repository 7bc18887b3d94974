"""The pure-Python half of `covet.trace`: argument checks (the same with
tracing on or off), no-ops outside a plugin call, and which code sees the
span the host's bridge puts in the context variable (the call's awaits and
the tasks it starts, not `covet.spawn` background tasks, not another
request). The host's `_covet_host.Span` and the spans reaching a collector
are exercised end to end (tests/e2e/python/tracing.rs); here a plain
recorder takes its place, since the package is tested without the host."""

import asyncio
import contextvars
import unittest

from support import covet, load, request

from covet import _services, trace


class Recorder:
    """Records what `covet.trace` hands to the host's span."""

    def __init__(self, name="span"):
        self.name = name
        self.attributes = {}
        self.events = []

    def is_recording(self):
        return True

    def set_attribute(self, key, value):
        self.attributes[key] = value

    def add_event(self, name, attributes):
        self.events.append((name, attributes))

    def traceparent(self):
        return f"00-{'1' * 32}-{'2' * 16}-01 {self.name}"


def in_call(span, fn, *args):
    """`fn(*args)` the way the bridge runs a sync call with `span`."""
    context = contextvars.copy_context()
    context.run(trace._span.set, span)
    return context.run(fn, *args)


class OutsideACall(unittest.TestCase):
    def test_every_function_is_a_no_op(self):
        self.assertFalse(covet.trace.is_recording())
        self.assertIsNone(covet.trace.traceparent())
        covet.trace.set_attribute("k", "v")
        covet.trace.add_event("e", {"k": 1})
        covet.trace.add_event("e")


class Arguments(unittest.TestCase):
    def check_refusals(self):
        with self.assertRaisesRegex(TypeError, "attribute key must be a str, got int"):
            covet.trace.set_attribute(1, "v")
        with self.assertRaisesRegex(ValueError, "must not be empty"):
            covet.trace.set_attribute("", "v")
        for bad in (None, [1], {"a": 1}, b"bytes", object()):
            with self.assertRaisesRegex(TypeError, "must be str, int, float or bool"):
                covet.trace.set_attribute("k", bad)
        with self.assertRaisesRegex(OverflowError, "64 bits"):
            covet.trace.set_attribute("k", 2**63)
        with self.assertRaisesRegex(TypeError, "event name must be a str"):
            covet.trace.add_event(None)
        with self.assertRaisesRegex(TypeError, "must be a dict"):
            covet.trace.add_event("e", [("k", 1)])
        with self.assertRaisesRegex(TypeError, "'k' must be str, int, float or bool, got NoneType"):
            covet.trace.add_event("e", {"k": None})
        with self.assertRaisesRegex(TypeError, "event attribute key must be a str"):
            covet.trace.add_event("e", {1: "v"})

    def test_wrong_types_are_refused_with_tracing_off(self):
        self.check_refusals()

    def test_wrong_types_are_refused_with_tracing_on_and_nothing_is_recorded(self):
        span = Recorder()
        in_call(span, self.check_refusals)
        self.assertEqual((span.attributes, span.events), ({}, []))


class InACall(unittest.TestCase):
    def test_values_of_each_kind_and_events_reach_the_span(self):
        span = Recorder()

        def plugin():
            covet.trace.set_attribute("s", "python")
            covet.trace.set_attribute("i", -(2**63))
            covet.trace.set_attribute("f", 0.5)
            covet.trace.set_attribute("b", True)
            covet.trace.add_event("hit", {"n": 2, "ok": False})
            covet.trace.add_event("plain")
            return covet.trace.is_recording(), covet.trace.traceparent()

        recording, parent = in_call(span, plugin)
        self.assertTrue(recording)
        self.assertEqual(parent, span.traceparent())
        self.assertEqual(span.attributes, {"s": "python", "i": -(2**63), "f": 0.5, "b": True})
        self.assertEqual(span.events, [("hit", [("n", 2), ("ok", False)]), ("plain", [])])
        self.assertIsNone(covet.trace.traceparent(), "the span stays in the call's context")

    def test_concurrent_requests_each_see_their_own_span_across_awaits(self):
        async def request(span, gate):
            trace._span.set(span)
            await gate.wait()
            covet.trace.set_attribute("who", span.name)
            child = asyncio.get_running_loop().create_task(asyncio.sleep(0, covet.trace.traceparent()))
            return await child

        async def main():
            gate = asyncio.Event()
            a, b = Recorder("a"), Recorder("b")
            tasks = [asyncio.get_running_loop().create_task(request(s, gate), context=contextvars.copy_context()) for s in (a, b)]
            await asyncio.sleep(0)
            gate.set()
            parents = await asyncio.gather(*tasks)
            return a, b, parents, covet.trace.traceparent()

        a, b, parents, outside = asyncio.run(main())
        self.assertEqual((a.attributes, b.attributes), ({"who": "a"}, {"who": "b"}))
        self.assertEqual(parents, [a.traceparent(), b.traceparent()], "a task the request starts inherits its span")
        self.assertIsNone(outside)

    def test_a_background_task_runs_without_the_request_span(self):
        instance = _services._Instance("p", host=None)
        span = Recorder()

        async def background():
            covet.trace.set_attribute("late", 1)
            return covet.trace.traceparent()

        async def request():
            trace._span.set(span)
            return await covet.spawn(background())

        async def main():
            return await asyncio.get_running_loop().create_task(request(), context=instance.context.copy())

        self.assertIsNone(asyncio.run(main()))
        self.assertEqual(span.attributes, {})


class TracedFilter(unittest.TestCase):
    """python-plugins/filters/traced.py, the fixture of the telemetry e2e tests."""

    def setUp(self):
        self.filter = load("python-plugins/filters/traced.py", "traced_example")

    def test_it_writes_each_kind_of_attribute_an_event_and_hands_on_its_traceparent(self):
        span, req = Recorder(), request()
        in_call(span, lambda: asyncio.run(self.filter.on_request(req)))
        self.assertEqual(span.attributes, {"fixture.kind": "python", "fixture.int": 42, "fixture.float": 0.5, "fixture.bool": True})
        self.assertEqual(span.events, [("fixture.event", [("fixture.step", "on_request")])])
        self.assertEqual(req.headers["x-python-traceparent"], span.traceparent())
        self.assertEqual(req.metadata, {"python.traceparent": span.traceparent(), "python.recording": "true"})
        response = covet.Response(b"ok")
        after = Recorder("after")
        in_call(after, self.filter.on_response, req, response)
        self.assertEqual(after.attributes, {"fixture.phase": "on_response"})
        self.assertEqual(response.headers["x-python-traceparent"], span.traceparent())

    def test_with_tracing_off_it_only_notes_that_there_was_no_span(self):
        req = request()
        asyncio.run(self.filter.on_request(req))
        self.assertNotIn("x-python-traceparent", req.headers)
        self.assertEqual(req.metadata, {"python.traceparent": "none", "python.recording": "false"})


if __name__ == "__main__":
    unittest.main()
