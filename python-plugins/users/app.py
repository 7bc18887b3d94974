"""A users CRUD service written with covet's decorator API (docs/python.md).

Served by the demo (examples/plugins.yaml) behind a native rate limiter,
the Python audit filter (python-plugins/filters/audit.py) and a native
headers filter:

    GET    /users?limit=10&offset=0&active=true   list (query params, typed)
    GET    /users/{user_id}                       one user; 404 when unknown
    POST   /users          {"name": …, "email": …} create → 201 + location
    PUT    /users/{user_id} {"name": …, …}         update (partial)
    DELETE /users/{user_id}                       → 204

The store is in memory, per instance: a hot swap starts from the seed data.
"""

from covet import Covet, HTTPException, JSONResponse, Request, RequestValidationError

app = Covet()

FIELDS = {"name": str, "email": str, "active": bool}
USERS: dict = {}


@app.on_startup
def seed() -> None:
    """Fills the store with the manifest's `config.seed` users (if any)."""
    USERS.clear()
    for user in app.config.get("seed", []):
        _insert(dict(user))


def _insert(fields: dict) -> dict:
    user_id = max(USERS, default=0) + 1
    USERS[user_id] = {"id": user_id, "active": True, **fields}
    return USERS[user_id]


def _checked(body: dict, required: bool) -> dict:
    """The known fields of `body`, type-checked; 422 naming the field when wrong."""
    errors = [
        {"loc": ["body", key], "msg": f"Input should be a valid {kind.__name__}", "type": f"{kind.__name__}_type"}
        for key, kind in FIELDS.items()
        if key in body and not isinstance(body[key], kind)
    ]
    if required:
        errors += [{"loc": ["body", key], "msg": "Field required", "type": "missing"}
                   for key in ("name", "email") if key not in body]
    if errors:
        raise RequestValidationError(errors)
    return {key: body[key] for key in FIELDS if key in body}


def _find(user_id: int) -> dict:
    user = USERS.get(user_id)
    if user is None:
        raise HTTPException(404, f"user {user_id} not found")
    return user


@app.get("/users")
async def list_users(limit: int = 10, offset: int = 0, active: bool | None = None):
    users = [u for u in USERS.values() if active is None or u["active"] == active]
    return {"users": users[offset:offset + limit], "total": len(users)}


@app.get("/users/{user_id}")
async def get_user(user_id: int, request: Request):
    return {**_find(user_id), "tenant": request.metadata.get("audit.tenant")}


@app.post("/users")
async def create_user(body: dict):
    user = _insert(_checked(body, required=True))
    return JSONResponse(user, status_code=201, headers={"location": f"/users/{user['id']}"})


@app.put("/users/{user_id}")
def update_user(user_id: int, body: dict):
    user = _find(user_id)
    user.update(_checked(body, required=False))
    return user


@app.delete("/users/{user_id}")
def delete_user(user_id: int):
    _find(user_id)
    del USERS[user_id]
