#!/usr/bin/env python3
"""The malformed-HTTP/1.1 matrix (issue 19): sends each case on a fresh raw
TCP connection and prints the status each server answered, or `closed` when
it closed the connection without a response (`open` when it neither answered
nor closed within the wait).

Usage:
  malformed.py NAME=HOST:PORT [NAME=HOST:PORT ...]   one column per server
  malformed.py --markdown NAME=HOST:PORT ...         the same as a Markdown table

bench/malformed.sh starts covet (before/after builds), bare hyper
(bench/hello-hyper) and nginx, and calls this. The same cases, with the
statuses covet must answer, are in tests/e2e/malformed.rs."""
import socket
import sys

LIMIT_HEAD = 16 * 1024  # covet's default limits.max_header_bytes


def req(head, body=b""):
    return head.encode("latin-1") + body


def big_header(size):
    return req(f"GET / HTTP/1.1\r\nhost: a\r\nx-big: {'a' * size}\r\n\r\n")


def long_uri(size):
    return req(f"GET /{'a' * size} HTTP/1.1\r\nhost: a\r\n\r\n")


def many_headers(count):
    lines = "".join(f"x-h{i}: 1\r\n" for i in range(count))
    return req(f"GET / HTTP/1.1\r\nhost: a\r\n{lines}\r\n")


# (name, bytes, the status RFC 9110/9112 calls for)
CASES = [
    ("no-host-http11", req("GET / HTTP/1.1\r\n\r\n"), 400),
    ("two-hosts", req("GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n"), 400),
    ("host-with-space", req("GET / HTTP/1.1\r\nhost: a b\r\n\r\n"), 400),
    ("cl-and-te", req("POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"), 400),
    ("two-cl-differ", req("POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!"), 400),
    ("cl-list-differ", req("POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5, 6\r\n\r\nhello!"), 400),
    ("cl-not-number", req("POST / HTTP/1.1\r\nhost: a\r\ncontent-length: abc\r\n\r\n"), 400),
    ("cl-negative", req("POST / HTTP/1.1\r\nhost: a\r\ncontent-length: -1\r\n\r\n"), 400),
    ("cl-plus-sign", req("POST / HTTP/1.1\r\nhost: a\r\ncontent-length: +5\r\n\r\nhello"), 400),
    ("te-chunked-not-last", req("POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked, gzip\r\n\r\n0\r\n\r\n"), 400),
    ("te-unknown-only", req("POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: foo\r\n\r\n"), 400),
    ("te-unknown-coding", req("POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 501),
    ("te-in-http10", req("POST / HTTP/1.0\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"), 400),
    ("chunk-size-not-hex", req("POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk-size-overflow", req("POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), 400),
    ("method-bad-token", req("G(T / HTTP/1.1\r\nhost: a\r\n\r\n"), 400),
    ("space-in-target", req("GET /a b HTTP/1.1\r\nhost: a\r\n\r\n"), 400),
    ("ctl-in-target", req("GET /\x01 HTTP/1.1\r\nhost: a\r\n\r\n"), 400),
    ("asterisk-form-get", req("GET * HTTP/1.1\r\nhost: a\r\n\r\n"), 400),
    ("http09-no-version", req("GET /\r\n\r\n"), 400),
    ("version-lowercase", req("GET / http/1.1\r\nhost: a\r\n\r\n"), 400),
    ("version-garbage", req("GET / FOO/1.1\r\nhost: a\r\n\r\n"), 400),
    ("version-http2-over-h1", req("GET / HTTP/2.0\r\nhost: a\r\n\r\n"), 505),
    ("version-http3", req("GET / HTTP/3.0\r\nhost: a\r\n\r\n"), 505),
    ("header-name-space", req("GET / HTTP/1.1\r\nhost: a\r\nbad name: x\r\n\r\n"), 400),
    ("space-before-colon", req("GET / HTTP/1.1\r\nhost : a\r\n\r\n"), 400),
    ("header-no-colon", req("GET / HTTP/1.1\r\nhost: a\r\nnocolon\r\n\r\n"), 400),
    ("header-name-bad-char", req("GET / HTTP/1.1\r\nhost: a\r\nx(a): 1\r\n\r\n"), 400),
    ("nul-in-value", req("GET / HTTP/1.1\r\nhost: a\r\nx-a: a\x00b\r\n\r\n"), 400),
    ("obs-fold", req("GET / HTTP/1.1\r\nhost: a\r\nx-a: 1\r\n  folded\r\n\r\n"), 400),
    ("leading-ws-first-header", req("GET / HTTP/1.1\r\n x-a: 1\r\nhost: a\r\n\r\n"), 400),
    ("uri-over-limit", long_uri(LIMIT_HEAD + 4096), 414),
    ("uri-over-buffer", long_uri(3 * LIMIT_HEAD), 414),
    ("header-over-limit", big_header(LIMIT_HEAD + 4096), 431),
    ("header-over-buffer", big_header(3 * LIMIT_HEAD), 431),
    ("too-many-headers", many_headers(150), 431),
    ("body-over-max-body", req("POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 2000000000\r\n\r\n"), 413),
]


def probe(addr, data, wait=3.0):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server may close before taking it all; read what it said
        got = b""
        try:
            while b"\r\n" not in got:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            return "open" if not got else status_of(got)
        except OSError:
            pass  # reset: whatever arrived before it counts
        return status_of(got) if got else "closed"


def status_of(got):
    parts = got.split(b" ", 2)
    return parts[1].decode("latin-1") if len(parts) > 1 and got.startswith(b"HTTP/") else "garbage"


def main(argv):
    markdown = "--markdown" in argv
    servers = [a.split("=", 1) for a in argv if not a.startswith("--")]
    rows = [[name, str(want)] + [probe(addr, data) for _, addr in servers] for name, data, want in CASES]
    header = ["case", "RFC"] + [name for name, _ in servers]
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
        for row in [header] + rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    main(sys.argv[1:])
