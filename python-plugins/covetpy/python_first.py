"""CovetPy's architecture document, "Development Experience": the
"Python-First API" and "Type Safety" examples, unchanged. The documents
leave `db` undefined (it stands for the app's database, a module covet does
not provide); `db` below is a small in-memory stand-in so the examples run.
Its rows carry a `password_hash` the API must never show."""

import itertools


class _MemoryDB:
    """The stand-in for the documents' `db`: async calls on a dict."""

    def __init__(self):
        self.rows = {}
        self.ids = itertools.count(1)

    async def get_user(self, user_id: int) -> dict:
        return self.rows.get(user_id, {"id": user_id, "error": "no such user"})

    async def create_user(self, data: dict) -> dict:
        row = {"id": next(self.ids), "active": True, "password_hash": "x9!", **data}
        self.rows[row["id"]] = row
        return row

    async def list_users(self, limit: int, offset: int, active) -> list:
        rows = [r for r in self.rows.values() if active is None or r["active"] == active]
        return rows[offset:offset + limit]


db = _MemoryDB()

# --- "Python-First API" ---

from covet import CovetPy, Request, Response

app = CovetPy()

@app.get("/users/{user_id}")
async def get_user(user_id: int) -> Response:
    user = await db.get_user(user_id)
    return Response(user)

@app.post("/users")
async def create_user(request: Request) -> Response:
    data = await request.json()
    user = await db.create_user(data)
    return Response(user, status=201)

if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8000)

# --- "Type Safety" ---

from typing import List, Optional
from pydantic import BaseModel

class User(BaseModel):
    id: int
    name: str
    email: str
    active: bool = True

@app.get("/users")
async def list_users(
    limit: int = 10,
    offset: int = 0,
    active: Optional[bool] = None
) -> List[User]:
    users = await db.list_users(limit, offset, active)
    return [User(**user) for user in users]
