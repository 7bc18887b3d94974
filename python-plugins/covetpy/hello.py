"""CovetPy's "Hello World" (README, "Hello World (Educational Example)"),
unchanged: served by covet from a manifest, so the `__main__` block never
runs (`app.run()` has no server to start inside the host)."""

from covet import CovetPy

# Create application
app = CovetPy()

# Define a route
@app.route("/")
async def hello(request):
    return {"message": "Hello, World!"}

# Run the application
if __name__ == "__main__":
    app.run()
