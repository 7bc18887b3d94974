"""The pure-Python half of the host services (`covet._services`,
`covet.http`): error mapping, argument checks, and the rule that a call
needs a plugin instance on the host's loop. The Rust half and the real
services are exercised end to end (tests/e2e/python/services.rs)."""

import asyncio
import unittest

from support import covet

from covet import _services


class Errors(unittest.TestCase):
    def test_host_failures_become_the_matching_exception(self):
        denied = _services._error("denied", "plugin 'p' may not use outbound HTTP to host 'x:80'", "outbound_http")
        self.assertIsInstance(denied, covet.OutboundDenied)
        self.assertIsInstance(denied, PermissionError)
        self.assertEqual((denied.kind, denied.grant), ("denied", "outbound_http"))
        self.assertIsInstance(_services._error("denied", "m", "state"), covet.StateDenied)
        timeout = _services._error("timeout", "HTTP request to x:80 timed out after 1s")
        self.assertIsInstance(timeout, covet.ServiceTimeout)
        self.assertIsInstance(timeout, TimeoutError)
        self.assertIsInstance(_services._error("tls", "m"), covet.ServiceUnavailable)
        self.assertEqual(_services._error("tls", "m").kind, "tls")
        self.assertIsInstance(_services._error("unsupported", "m"), covet.ServiceBackendError)
        self.assertIsInstance(_services._error("shut_down", "m"), covet.ServiceShutDown)
        self.assertIs(type(_services._error("config", "m")), covet.HostServiceError)


class Usage(unittest.TestCase):
    def test_a_call_outside_a_plugin_instance_says_where_to_use_it(self):
        with self.assertRaises(covet.HostServiceError) as caught:
            asyncio.run(covet.sleep(0.01))
        self.assertEqual(caught.exception.kind, "usage")
        self.assertIn("plugin instance", str(caught.exception))

    def test_a_call_off_the_event_loop_is_refused_as_async_only(self):
        instance = _services._Instance("p", host=None)
        with self.assertRaises(covet.HostServiceError) as caught:
            instance.context.run(_services._instance, "covet.sleep")
        self.assertIn("async-only", str(caught.exception))

    def test_arguments_are_checked_before_the_host_is_asked(self):
        with self.assertRaises(ValueError):
            asyncio.run(covet.sleep(-1))
        with self.assertRaises(TypeError):
            asyncio.run(covet.state("ns").set("k", 5))
        with self.assertRaises(TypeError):
            asyncio.run(covet.http.request("GET", "http://x/", body=object()))
        with self.assertRaises(ValueError):
            covet.state("")

    def test_every_registers_with_the_instance_loading_the_module(self):
        instance = _services._Instance("p", host=None)
        instance.context.run(lambda: covet.every(5)(print))
        self.assertEqual(instance.periodic, [(5.0, print)])
        with self.assertRaises(ValueError):
            covet.every(0)
        app = covet.Covet()
        app.every(2)(print)
        self.assertEqual(app._periodic, [(2.0, print)])


if __name__ == "__main__":
    unittest.main()
