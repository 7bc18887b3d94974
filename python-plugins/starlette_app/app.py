"""An unmodified Starlette app exercising what ASGI servers differ on:
HEAD, file responses with Range, GZip, multipart uploads and forms,
background tasks, cookies, redirects, streaming with back-pressure and
client disconnects. tests/e2e/python/asgi_diff.rs serves it with covet and
with uvicorn and compares the answers.
"""

import asyncio
import hashlib
import os
import tempfile

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    StreamingResponse,
)
from starlette.routing import Route

# A file with fixed content, the same for every server started from this module.
DATA = os.path.join(tempfile.gettempdir(), "covet-starlette-data-%d.bin" % os.getpid())
with open(DATA, "wb") as f:
    f.write(bytes(range(256)) * 400)
os.utime(DATA, (1_700_000_000, 1_700_000_000))

STATS = {"produced": 0, "background": [], "disconnects": 0}


async def hello(request: Request):
    return PlainTextResponse("hello " + request.query_params.get("name", "world"))


async def text(request: Request):
    return PlainTextResponse("t" * int(request.query_params.get("n", "10")))


async def file(request: Request):
    return FileResponse(DATA, filename="data.bin")


async def form(request: Request):
    async with request.form() as data:
        out = {}
        for key, value in data.multi_items():
            if hasattr(value, "read"):
                content = await value.read()
                out[key] = {"filename": value.filename, "type": value.content_type,
                            "size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
            else:
                out.setdefault(key, []).append(value)
    return JSONResponse(out)


def remember(what):
    STATS["background"].append(what)


async def background(request: Request):
    what = request.query_params.get("what", "x")
    return JSONResponse({"queued": what}, background=BackgroundTask(remember, what))


async def stats(request: Request):
    return JSONResponse(STATS)


async def cookies(request: Request):
    response = JSONResponse({"seen": dict(request.cookies)})
    response.set_cookie("session", "abc", httponly=True)
    response.set_cookie("theme", "dark", path="/", samesite="strict")
    return response


async def redirect(request: Request):
    return RedirectResponse("/hello?name=moved", status_code=int(request.query_params.get("status", "307")))


async def produce(request: Request):
    """`chunks` chunks of 64 KiB, counted in STATS as they are produced."""
    count = int(request.query_params.get("chunks", "16"))

    async def chunks():
        for i in range(count):
            STATS["produced"] += 1
            yield bytes([65 + i % 26]) * 65536

    STATS["produced"] = 0
    return StreamingResponse(chunks(), media_type="application/octet-stream")


async def wait_for_disconnect(request: Request):
    for _ in range(200):
        if await request.is_disconnected():
            STATS["disconnects"] += 1
            return PlainTextResponse("gone")
        await asyncio.sleep(0.01)
    return PlainTextResponse("still here")


async def echo(request: Request):
    body = await request.body()
    return JSONResponse({"method": request.method, "length": len(body),
                         "type": request.headers.get("content-type"),
                         "path": request.url.path, "query": str(request.query_params)})


app = Starlette(
    routes=[
        Route("/hello", hello),
        Route("/text", text),
        Route("/file", file),
        Route("/form", form, methods=["POST"]),
        Route("/background", background, methods=["POST"]),
        Route("/stats", stats),
        Route("/cookies", cookies),
        Route("/redirect", redirect),
        Route("/produce", produce),
        Route("/wait", wait_for_disconnect),
        Route("/echo/{rest:path}", echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ],
    middleware=[Middleware(GZipMiddleware, minimum_size=500)],
)
