"""An unmodified Django app in one module (settings, views and URLs), served
through Django's own ASGI handler. tests/e2e/python/asgi_diff.rs serves it
with covet and with uvicorn and compares the answers.
"""

import hashlib
import json

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="covet-test-only",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    USE_TZ=True,
    APPEND_SLASH=True,
)

import django  # noqa: E402

django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import (  # noqa: E402
    HttpResponse,
    HttpResponseNotAllowed,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

NOTES = []


def hello(request):
    return HttpResponse("hello " + request.GET.get("name", "world"), content_type="text/plain")


def item(request, item_id):
    if item_id > 100:
        return JsonResponse({"error": "no such item"}, status=404)
    return JsonResponse({"id": item_id, "tags": request.GET.getlist("tag")})


@csrf_exempt
def notes(request):
    if request.method == "POST":
        payload = json.loads(request.body or b"{}")
        NOTES.append(payload.get("text", ""))
        return JsonResponse({"count": len(NOTES)}, status=201)
    if request.method == "GET":
        return JsonResponse({"notes": NOTES})
    return HttpResponseNotAllowed(["GET", "POST"])


@csrf_exempt
def upload(request):
    files = {name: {"name": f.name, "size": f.size, "sha256": hashlib.sha256(f.read()).hexdigest()}
             for name, f in request.FILES.items()}
    return JsonResponse({"fields": {k: request.POST.getlist(k) for k in request.POST}, "files": files})


async def stream(request):
    count = int(request.GET.get("count", "3"))

    async def lines():
        for i in range(count):
            yield "line %d\n" % i

    return StreamingHttpResponse(lines(), content_type="text/plain")


def headers(request):
    response = HttpResponse("ok", content_type="text/plain")
    response["X-Seen-Agent"] = request.headers.get("user-agent", "")
    response.set_cookie("django_cookie", "v1", httponly=True, samesite="Lax")
    return response


urlpatterns = [
    path("hello", hello),
    path("items/<int:item_id>", item),
    path("notes/", notes),
    path("upload", upload),
    path("stream", stream),
    path("headers", headers),
]

application = get_asgi_application()
