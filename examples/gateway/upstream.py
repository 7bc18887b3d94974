#!/usr/bin/env python3
"""A small demo service for examples/gateway.yaml (standard library only).

Every request is answered with a JSON echo of what reached the service: its
name, the method and path, the user the gateway forwarded (x-user-id) and the
forwarding headers the proxy set. `/healthz` answers 200 for the gateway's
active health checks. With `--jwks FILE` it also serves that JWK set at
`/.well-known/jwks.json`, playing the identity provider auth-jwt fetches
its keys from.

usage: upstream.py --name NAME --port PORT [--jwks FILE]
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FORWARDED = ["x-user-id", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "via", "host"]


def handler(name, jwks):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so the gateway's connection pool is used
        disable_nagle_algorithm = True  # head and body are two writes: no 40 ms delayed-ACK stall

        def reply(self, status, body, content_type="application/json", extra=()):
            data = body.encode()
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            for key, value in extra:
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def echo(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode(errors="replace") if length else ""
            seen = {h: self.headers[h] for h in FORWARDED if self.headers[h] is not None}
            answer = {"service": name, "method": self.command, "path": self.path, "headers": seen}
            if body:
                answer["body"] = body
            self.reply(200, json.dumps(answer, indent=2) + "\n")

        def do_GET(self):
            if self.path == "/healthz":
                self.reply(200, "ok\n", "text/plain")
            elif jwks and self.path == "/.well-known/jwks.json":
                self.reply(200, open(jwks).read(), extra=[("cache-control", "max-age=300")])
            else:
                self.echo()

        do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = echo

        def log_message(self, fmt, *args):
            if not self.path.startswith("/healthz"):
                super().log_message(f"[{name}] {fmt}", *args)

    return Handler


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jwks", help="a JWK set file to serve at /.well-known/jwks.json")
    a = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), handler(a.name, a.jwks))
    print(f"{a.name} listening on http://127.0.0.1:{a.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
