import io
import json

from django.http import (
    FileResponse,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.views.decorators.csrf import csrf_exempt


def index(request):
    return HttpResponse("Hello from Django", content_type="text/plain")


@csrf_exempt
def echo(request):
    return JsonResponse(
        {
            "method": request.method,
            "body": request.body.decode("latin-1"),
            "post": request.POST.dict(),
            "get": request.GET.dict(),
            "path": request.path,
            "path_info": request.path_info,
            "host": request.get_host(),
            "secure": request.is_secure(),
            "meta_port": request.META.get("SERVER_PORT"),
        }
    )


def stream(request):
    return StreamingHttpResponse(
        (("chunk %d\n" % i).encode() for i in range(4)), content_type="text/plain"
    )


def file(request):
    return FileResponse(io.BytesIO(b"abcdefghij" * 500), filename="data.bin")


def fail(request):
    raise RuntimeError("django view failed")


def as_json(request):
    return HttpResponse(json.dumps({"ok": True}), content_type="application/json")
