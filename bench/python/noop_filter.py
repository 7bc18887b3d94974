"""A Python filter that lets every request through (bench/python/instructions.sh)."""


def on_request(request):
    return None
