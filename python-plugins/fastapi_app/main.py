"""An unmodified FastAPI app: a small shop catalogue.

covet serves it as an ASGI plugin (`kind: python, asgi: .../main.py:app`), and
the differential test (tests/e2e/python/fastapi_diff.rs) serves the very same
file with uvicorn and compares the answers. Nothing in it knows about covet.

Endpoints: path and query parameters, a pydantic body, 404/422 from FastAPI,
a custom response header, a sync endpoint (FastAPI runs it in its thread
pool), a streaming response, and lifespan state.
"""
import asyncio
import os
from contextlib import asynccontextmanager
from typing import Optional

from fastapi import FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field


def _lifespan_log(event: str) -> None:
    """Appends `event` to $SHOP_LIFESPAN_LOG when set (the tests read it)."""
    path = os.environ.get("SHOP_LIFESPAN_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(event + "\n")


@asynccontextmanager
async def lifespan(app: FastAPI):
    _lifespan_log("startup")
    yield {"started": True, "catalogue": "default"}
    _lifespan_log("shutdown")


app = FastAPI(title="shop", lifespan=lifespan)


class Item(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    price: float = Field(gt=0)
    tags: list[str] = []


ITEMS: dict[int, dict] = {
    1: {"id": 1, "name": "kettle", "price": 24.5, "tags": ["kitchen"]},
    2: {"id": 2, "name": "lamp", "price": 12.0, "tags": ["home", "light"]},
}


@app.get("/")
async def root():
    return {"service": "shop", "items": len(ITEMS)}


@app.get("/health")
async def health(request: Request):
    return {"ok": True, "started": request.state.started}


@app.get("/items")
async def list_items(limit: int = Query(10, ge=1, le=100), tag: Optional[str] = None):
    items = [i for i in ITEMS.values() if tag is None or tag in i["tags"]]
    return {"items": items[:limit], "count": len(items)}


@app.get("/items/{item_id}")
async def get_item(item_id: int, q: Optional[str] = None):
    item = ITEMS.get(item_id)
    if item is None:
        raise HTTPException(status_code=404, detail=f"item {item_id} not found")
    return {**item, "q": q}


@app.post("/items", status_code=201)
async def create_item(item: Item, response: Response):
    item_id = max(ITEMS, default=0) + 1
    ITEMS[item_id] = {"id": item_id, **item.model_dump()}
    response.headers["location"] = f"/items/{item_id}"
    return ITEMS[item_id]


@app.delete("/items/{item_id}", status_code=204)
async def delete_item(item_id: int):
    if ITEMS.pop(item_id, None) is None:
        raise HTTPException(status_code=404, detail=f"item {item_id} not found")
    return Response(status_code=204)


@app.get("/echo-header")
async def echo_header(x_token: str = Header(...)):
    return PlainTextResponse(f"token={x_token}", headers={"x-shop": "echo"})


@app.get("/sync")
def sync_endpoint(n: int = 3):
    return {"squares": [i * i for i in range(n)]}


async def _chunks(count: int):
    for i in range(count):
        yield f"chunk {i}\n".encode()
        await asyncio.sleep(0)


@app.get("/stream")
async def stream(count: int = 5):
    return StreamingResponse(_chunks(count), media_type="text/plain")


@app.get("/hello")
async def hello():
    return {"message": "hello"}
