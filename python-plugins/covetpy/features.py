"""The rest of the CovetPy API covet serves, in one app (not a CovetPy
document: the documents show no example of these): header, cookie, Enum
and list parameters, `Query()` constraints, `request.state` set by
`@app.middleware("http")` functions (run in order, one short-circuiting),
a sync endpoint behind middleware, and a return value that does not fit its
annotation (→ 500, logged)."""

from enum import Enum
from typing import List, Optional

from pydantic import BaseModel

from covet import Cookie, CovetPy, Header, HTTPException, JSONResponse, Query, Request

app = CovetPy()


class Color(str, Enum):
    red = "red"
    green = "green"


class Size(int, Enum):
    small = 1
    large = 2


class Item(BaseModel):
    id: int
    name: str


@app.middleware("http")
async def outer(request: Request, call_next):
    if request.headers.get("x-block") == "yes":      # short-circuit: the endpoint never runs
        return JSONResponse({"blocked": True}, status_code=403)
    request.state.trail = ["outer"]
    response = await call_next(request)
    response.headers["x-trail"] = ",".join(request.state.trail + ["outer-out"])
    return response


@app.middleware("http")
async def inner(request: Request, call_next):
    request.state.trail.append("inner")
    request.state.user = request.headers.get("x-user", "anonymous")
    response = await call_next(request)
    request.state.trail.append("inner-out")
    return response


@app.get("/items")
async def items(
    request: Request,
    color: Color,
    tags: List[str] = [],
    size: Size = Size.small,
    limit: int = Query(10, ge=1, le=100),
    user_agent: Optional[str] = Header(None),
    session: str = Cookie(),
):
    request.state.trail.append("endpoint")
    return {"color": color, "tags": tags, "size": size, "limit": limit, "user_agent": user_agent,
            "session": session, "user": request.state.user, "trail": request.state.trail}


@app.get("/items/{item_id}")
def sync_item(item_id: int, x_token: str = Header()) -> Item:
    if item_id == 0:
        raise HTTPException(404, "no item 0")
    return {"id": item_id, "name": x_token, "secret": "dropped by -> Item"}


@app.get("/broken")
async def broken() -> List[Item]:
    return [{"id": "not a number", "name": "x"}]
