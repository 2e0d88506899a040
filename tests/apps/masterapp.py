"""Process-model fixture for test_master.py: every response names the
worker that served it.

  /pid            -> the worker's pid
  /slow?delay=S   -> the pid, after sleeping S seconds (at most 10)
  /raise          -> an exception before start_response (a 500)
  /env?NAME       -> os.environ[NAME] in the worker, or "-"
  anything else   -> "masterapp " + the pid
"""
import os
import time
from urllib.parse import parse_qs


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/raise":
        raise RuntimeError("masterapp was asked to fail")
    if path == "/slow":
        delay = parse_qs(environ.get("QUERY_STRING", "")).get("delay", ["0"])[0]
        time.sleep(min(float(delay), 10.0))
    body = str(os.getpid()).encode()
    if path == "/env":
        body = os.environ.get(environ.get("QUERY_STRING", ""), "-").encode()
    elif path not in ("/pid", "/slow"):
        body = b"masterapp " + body
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
