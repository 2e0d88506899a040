"""Fixture for test_balance.py: every response names the worker's pid.

  /hold?file=PATH -> waits until PATH exists (at most 30 s), then the pid:
                     keeps one application thread busy for as long as
                     the test wants, with no timing in the test
  /big?n=BYTES    -> BYTES of "b" in 64 KiB pieces (a slow reader fills
                     the output buffer: the app waits for the loop)
  anything else   -> the pid
"""
import os
import time
from urllib.parse import parse_qs


def big(n):
    piece = b"b" * 65536
    while n > 0:
        yield piece[:n]
        n -= len(piece)


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/big":
        n = int(parse_qs(environ.get("QUERY_STRING", "")).get("n", ["0"])[0])
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(n))])
        return big(n)
    if environ.get("PATH_INFO") == "/hold":
        path = parse_qs(environ.get("QUERY_STRING", "")).get("file", [""])[0]
        deadline = time.monotonic() + 30
        while path and not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.01)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
