"""Fixture for test_balance.py and test_inline.py: responses name the
worker's pid.

  /hold?file=PATH -> waits until PATH exists (at most 30 s), then the pid:
                     keeps one application thread busy for as long as
                     the test wants, with no timing in the test; with
                     &entered=MARK, creates MARK once it waits (its frame
                     is then on a stack)
  /big?n=BYTES    -> BYTES of "b" in 64 KiB pieces (a slow reader fills
                     the output buffer: the app waits for the loop)
  /hog?n=N        -> the pid, and 0.2 s later a thread holds the GIL in
                     one C call (a sum of N ones, 100M by default: ~0.2 s;
                     no allocation per item, so as long under any
                     allocator, PYTHONMALLOC=malloc and ASan's included)
  /cpoll?file=PATH -> creates PATH, then waits 1 s in libc poll() through
                     ctypes; answers what poll returned (0: timed out,
                     -1: a signal cut it short, EINTR)
  /brief          -> sleeps 0.3 ms; answers how many requests were in
                     flight at its start or end (itself included)
  /kept?n=BYTES&file=PATH -> one body of BYTES "k" (a bytes subclass that
                     counts its live instances and creates PATH, if
                     given, when freed: to tell when the server let go)
  /kept-alive     -> how many /kept bodies are still referenced
  anything else   -> the pid
"""
import ctypes
import itertools
import os
import threading
import time
from urllib.parse import parse_qs


def big(n):
    piece = b"b" * 65536
    while n > 0:
        yield piece[:n]
        n -= len(piece)


_lock = threading.Lock()
_inflight = 0


def brief():
    global _inflight
    with _lock:
        _inflight += 1
        seen = _inflight
    time.sleep(0.0003)
    with _lock:
        seen = max(seen, _inflight)
        _inflight -= 1
    return str(seen).encode()


def hog(n):
    time.sleep(0.2)  # the /hog response goes out first
    sum(itertools.repeat(1, n))


class Body(bytes):
    alive = 0
    file = None

    def __del__(self):
        Body.alive -= 1
        if self.file:
            open(self.file, "w").close()


def text(start_response, body):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    path = environ.get("PATH_INFO")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/hog":
        n = int(query.get("n", ["100000000"])[0])
        threading.Thread(target=hog, args=(n,), daemon=True).start()
    if path == "/cpoll":
        open(query["file"][0], "w").close()
        rc = ctypes.CDLL(None).poll(None, 0, 1000)
        return text(start_response, str(rc).encode())
    if path == "/kept":
        body = Body(b"k" * int(query["n"][0]))
        body.file = query.get("file", [None])[0]
        Body.alive += 1
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/kept-alive":
        return text(start_response, str(Body.alive).encode())
    if path == "/brief":
        return text(start_response, brief())
    if path == "/big":
        n = int(query.get("n", ["0"])[0])
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(n))])
        return big(n)
    if path == "/hold":
        gate = query.get("file", [""])[0]
        entered = query.get("entered", [""])[0]
        if entered:
            open(entered, "w").close()
        deadline = time.monotonic() + 30
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)
    return text(start_response, str(os.getpid()).encode())
