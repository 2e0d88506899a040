"""Signal fixture for test_master.py: which thread runs a request, and
what Python's signal machinery does for an app in a worker.

  /main-thread   -> "main" if the request runs on Python's main thread
  /set-handler   -> the exception signal.signal() raises in a request,
                    or "set"
  /usr2          -> how many SIGUSR2 the handler set at import has seen
"""
import signal
import threading

seen = []
signal.signal(signal.SIGUSR2, lambda signum, frame: seen.append(signum))


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/main-thread":
        main = threading.current_thread() is threading.main_thread()
        body = b"main" if main else b"not main"
    elif path == "/set-handler":
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            body = b"set"
        except ValueError as exc:
            body = type(exc).__name__.encode()
    elif path == "/usr2":
        body = str(len(seen)).encode()
    else:
        body = b"sigapp"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
