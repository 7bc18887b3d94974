"""The same hello through covet's decorator API (bench/python.sh)."""
from covet import Covet

app = Covet()


@app.get("/deco")
async def hello():
    return {"message": "Hello, world!"}


@app.get("/deco-sync")
def hello_sync():
    return {"message": "Hello, world!"}
