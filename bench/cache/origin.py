#!/usr/bin/env python3
"""The origin of bench/cache.sh: a small asyncio HTTP/1.1 server (keep-alive)
that counts the requests per path and answers

- `/obj`: a 1 KiB JSON object, `Cache-Control: max-age=3600` (the hit bench);
- `/slow`: the same object after DELAY_MS milliseconds (the miss storm);
- `/_count`: `{"path": count, ...}` of everything else so far (not counted).

Usage: `origin.py [DELAY_MS]`; prints `listening on http://ADDR`."""
import asyncio
import json
import sys

DELAY = int(sys.argv[1]) / 1000 if len(sys.argv) > 1 else 0.2
_SHELL = {"id": 42, "name": "cached object", "pad": ""}
OBJECT = json.dumps(dict(_SHELL, pad="x" * (1024 - len(json.dumps(_SHELL))))).encode()  # exactly 1 KiB
COUNTS = {}


def response(status, body, extra=b""):
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


async def answer(path):
    if path == "/_count":
        return response(b"200 OK", json.dumps(COUNTS).encode())
    COUNTS[path] = COUNTS.get(path, 0) + 1
    if path == "/slow":
        await asyncio.sleep(DELAY)
    elif path != "/obj":
        return response(b"404 Not Found", b"{}")
    return response(b"200 OK", OBJECT, b"cache-control: max-age=3600\r\n")


async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            writer.write(await answer(target.split("?", 1)[0]))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, IndexError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
