"""An app whose import takes as many seconds as the file "slowboot" in
the current directory says (no file: no wait), for the tests of signals
that reach a worker still importing its app.  Answers its pid."""
import os
import time

try:
    with open("slowboot") as f:
        time.sleep(float(f.read()))
except FileNotFoundError:
    pass


def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
