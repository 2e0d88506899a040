"""Signal fixture for test_master.py: which thread runs a request, and
what Python's signal machinery does for an app in a worker.

  /main-thread   -> "main" if the request runs on Python's main thread
  /set-handler   -> the exception signal.signal() raises in a request,
                    or "set"
  /usr2          -> how many SIGUSR2 the handler set at import has seen
  /fork-usr2     -> "exited 0" when an os.fork() child that sends itself
                    SIGUSR2 survives it (the app's handler runs there)

At import it also takes SIGTERM and SIGUSR1, as monitoring agents do: the
worker keeps those two its own (SPEC.md 4.4).
"""
import os
import signal
import threading
import time

seen = []
signal.signal(signal.SIGUSR2, lambda signum, frame: seen.append(signum))
signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
signal.signal(signal.SIGUSR1, lambda signum, frame: seen.append(signum))


def fork_usr2():
    pid = os.fork()
    if pid == 0:
        try:
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(0.2)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"killed {os.WTERMSIG(status)}"
    return f"exited {os.WEXITSTATUS(status)}"


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
    elif path == "/fork-usr2":
        body = fork_usr2().encode()
    elif path == "/usr2":
        body = str(len(seen)).encode()
    else:
        body = b"sigapp"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
