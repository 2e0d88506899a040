"""App for tests/integration/test_connection.py: connection handling,
pipelining, back-pressure and graceful stop.  Dispatches on PATH_INFO:

  /echo          the request body back, with a computed Content-Length
  /slow?S        sleep S seconds, then b"slept"
  /big?N         N bytes as a generator of 64 KiB chunks (no length)
  /produce?N&F   N chunks of 64 KiB; after each yield the count of chunks
                 produced so far is written to the file F
  /pid           the worker's pid
  anything else  b"ok"
"""
import os
import time
import urllib.parse

CHUNK = 65536


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    body = environ["wsgi.input"].read()
    if path == "/echo":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path == "/slow":
        time.sleep(float(query or "1"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]
    if path == "/big":
        n = int(query)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def big():
            left = n
            block = b"x" * CHUNK
            while left > 0:
                piece = block[: min(left, CHUNK)]
                left -= len(piece)
                yield piece

        return big()
    if path == "/produce":
        args = urllib.parse.parse_qs(query)
        n = int(args["n"][0])
        progress = args["f"][0]
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(n * CHUNK))],
        )

        def produce():
            block = b"y" * CHUNK
            for i in range(n):
                yield block
                with open(progress, "w") as f:
                    f.write(str(i + 1))

        return produce()
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
