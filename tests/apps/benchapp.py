"""Benchmark app for scripts/bench: one WSGI callable, one route per workload.

    /hello   13-byte body with Content-Length
    /mib     1 MiB body with Content-Length (one bytes object)
    /echo    the request body sent back (the bench POSTs 64 KiB)
    /sleep   sleeps 10 ms, then answers like /hello
    /gen     a generator of 100 x 1 KiB chunks, no Content-Length (chunked)

Every server in the bench loads this same file, so the app's own cost is
equal for all of them."""
import time

HELLO = b"Hello, World!"
MIB = b"x" * (1 << 20)
KIB = b"y" * 1024
_TEXT = "text/plain"


def _gen():
    for _ in range(100):
        yield KIB


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/hello" or path == "/":
        start_response("200 OK", [("Content-Type", _TEXT), ("Content-Length", "13")])
        return [HELLO]
    if path == "/mib":
        start_response(
            "200 OK", [("Content-Type", _TEXT), ("Content-Length", str(len(MIB)))]
        )
        return [MIB]
    if path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]
    if path == "/sleep":
        time.sleep(0.01)
        start_response("200 OK", [("Content-Type", _TEXT), ("Content-Length", "13")])
        return [HELLO]
    if path == "/gen":
        start_response("200 OK", [("Content-Type", _TEXT)])
        return _gen()
    start_response("404 Not Found", [("Content-Type", _TEXT), ("Content-Length", "9")])
    return [b"Not Found"]


application = app
