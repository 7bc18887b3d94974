"""CovetPy's API reference, "Route Registration Decorators", with the
models of its "Validation Framework" section, unchanged apart from what
covet does not provide:

- the models are pydantic's (`from pydantic import BaseModel, Field,
  field_validator`) instead of `covet.validation`, whose `Field(email=True)`
  and `@validator` have no pydantic spelling here; the password rule is the
  documents' own;
- `User.all/create/update/delete` stand in for the documents' ORM (covet has
  no database module): a dict of rows, which also hold a `password` that the
  `-> User` / `-> List[User]` annotations keep out of every response;
- the `@app.websocket` route is left out (covet serves no WebSockets).
"""

import itertools
from typing import List, Optional

from pydantic import BaseModel, Field, field_validator

from covet import CovetPy, HTTPException

app = CovetPy(debug=False, middleware=None)

_ROWS: dict = {}
_IDS = itertools.count(1)


class UserCreate(BaseModel):
    """High-performance data validation model"""
    username: str = Field(min_length=3, max_length=50, pattern=r"^[a-zA-Z0-9_]+$",
                          description="Alphanumeric username")
    email: str = Field(description="Valid email address")
    password: str = Field(min_length=8, description="Strong password")
    age: int = Field(ge=13, le=120, description="Age between 13 and 120")
    tags: List[str] = Field(default_factory=list, max_length=10)

    @field_validator("password")
    @classmethod
    def validate_password_strength(cls, value: str) -> str:
        if not any(c.isupper() for c in value):
            raise ValueError("Password must contain uppercase letter")
        if not any(c.isdigit() for c in value):
            raise ValueError("Password must contain digit")
        return value


class UserUpdate(BaseModel):
    email: Optional[str] = None
    age: Optional[int] = Field(default=None, ge=13, le=120)
    tags: Optional[List[str]] = None


class User(BaseModel):
    id: int
    username: str
    email: str
    age: int
    tags: List[str] = []

    # --- the stand-in for the documents' ORM ---

    @classmethod
    async def all(cls) -> list:
        return list(_ROWS.values())

    @classmethod
    async def create(cls, **fields) -> dict:
        row = {"id": next(_IDS), **fields}
        _ROWS[row["id"]] = row
        return row

    @classmethod
    async def update(cls, user_id: int, **fields) -> dict:
        if user_id not in _ROWS:
            raise HTTPException(404, f"user {user_id} not found")
        _ROWS[user_id].update({k: v for k, v in fields.items() if v is not None})
        return _ROWS[user_id]

    @classmethod
    async def delete(cls, user_id: int) -> None:
        _ROWS.pop(user_id, None)


# --- the documented routes ---

@app.get("/users")
async def list_users() -> List[User]:
    """GET route with automatic response serialization"""
    return await User.all()

@app.post("/users", status_code=201)
async def create_user(user: UserCreate) -> User:
    """POST route with automatic validation"""
    return await User.create(**user.dict())

@app.put("/users/{user_id}")
async def update_user(user_id: int, user: UserUpdate) -> User:
    """PUT route with path parameters"""
    return await User.update(user_id, **user.dict())

@app.delete("/users/{user_id}", status_code=204)
async def delete_user(user_id: int) -> None:
    """DELETE route with automatic validation"""
    await User.delete(user_id)
