"""The raw ASGI hello app every server in bench/python.sh runs."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
    })
    await send({"type": "http.response.body", "body": b"Hello, world!"})
