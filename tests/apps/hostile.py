"""App for the hardening tests (tests/integration/test_hostile.py,
test_faults.py, test_netfuzz.py, scripts/soak, scripts/netfuzz).  Memory
use is kept flat on purpose: bodies are streamed in 64 KiB pieces, never
read whole, so the worker's RSS measures the server, not the app.
Dispatches on PATH_INFO:

  /pid              the worker's pid
  /upload           streams wsgi.input; answers "LENGTH CRC32"
  /download?N       N bytes as a generator of 64 KiB chunks (no length)
  /sized?N          N bytes with a Content-Length, as a generator
  /fresh?N[:L]      N bytes as one bytes object made for this response
                    (what the server keeps of it for a slow reader is what
                    that reader costs), with Content-Length L (default N:
                    a smaller L cuts the body)
  /progress?N&F     N chunks of 64 KiB (no length); after each yield the
                    count so far goes to file F (back-pressure tests)
  /sleep?S          sleep S seconds, then b"slept"
  /hold?s=S&f=F     write the worker's pid to file F, sleep S seconds
  /error            raises (500)
  /echo             the body back (small bodies only)
  anything else     b"ok"
"""
import os
import time
import urllib.parse
import zlib

CHUNK = 65536
BLOCK = b"z" * CHUNK


def _stream(n):
    left = n
    while left > 0:
        piece = BLOCK if left >= CHUNK else BLOCK[:left]
        left -= len(piece)
        yield piece


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    inp = environ["wsgi.input"]
    if path == "/upload":
        total = 0
        crc = 0
        while True:
            data = inp.read(CHUNK)
            if not data:
                break
            total += len(data)
            crc = zlib.crc32(data, crc)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d %d" % (total, crc)]
    if path == "/download":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _stream(int(query))
    if path == "/sized":
        n = int(query)
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))],
        )
        return _stream(n)
    if path == "/fresh":
        n, _, cl = query.partition(":")
        start_response("200 OK", [("Content-Length", cl or n)])
        return [b"f" * int(n)]
    if path == "/progress":
        args = urllib.parse.parse_qs(query)
        n = int(args["n"][0])
        progress = args["f"][0]
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def produce():
            for i in range(n):
                yield BLOCK
                with open(progress, "w") as f:
                    f.write(str(i + 1))

        return produce()
    body = inp.read()
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if path == "/sleep":
        time.sleep(float(query or "1"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]
    if path == "/hold":
        args = urllib.parse.parse_qs(query)
        with open(args["f"][0] + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(args["f"][0] + ".tmp", args["f"][0])
        time.sleep(float(args["s"][0]))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"held"]
    if path == "/error":
        raise RuntimeError("hostile.py: requested failure")
    if path == "/echo":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
