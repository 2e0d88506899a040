"""Process-model fixture for test_master.py: every response names the
worker that served it.

  /pid            -> the worker's pid
  /slow?delay=S   -> the pid, after sleeping S seconds (at most 10)
  /raise          -> an exception before start_response (a 500)
  /env?NAME       -> os.environ[NAME] in the worker, or "-"
  /chdir?DIR      -> the pid, after os.chdir(DIR) in the worker
  /close-stderr   -> the pid, after os.close(2) in the worker
  /fork-signal?SIG -> what became of an os.fork() child sent signal SIG
                    (a number): "killed N", "exited N" or "survived"
  /child-signals?HOW -> "SigBlk SigIgn" (hex) of a process the app starts:
                    HOW is run (subprocess from the request's thread),
                    thread (from a thread the request starts), boot (from
                    a thread started at import) or fork (os.fork)
  anything else   -> "masterapp " + the pid
"""
import os
import queue
import subprocess
import threading
import time
from urllib.parse import parse_qs


def _masks(text):
    fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
    return f"{fields['SigBlk'].strip()} {fields['SigIgn'].strip()}"


def _child_masks():
    out = subprocess.run(["cat", "/proc/self/status"], capture_output=True, timeout=10)
    return _masks(out.stdout.decode())


def _forked_masks():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            with open("/proc/self/status") as f:
                os.write(w, _masks(f.read()).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return data.decode()


def _fork_and_signal(sig):
    pid = os.fork()
    if pid == 0:
        try:
            time.sleep(10)
        finally:
            os._exit(0)
    time.sleep(0.2)
    os.kill(pid, sig)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if os.WIFSIGNALED(status):
                return f"killed {os.WTERMSIG(status)}"
            return f"exited {os.WEXITSTATUS(status)}"
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return "survived"


def _in_thread():
    box = []
    t = threading.Thread(target=lambda: box.append(_child_masks()))
    t.start()
    t.join(10)
    return box[0]


# a thread started while the app is imported, as schedulers and metrics
# exporters do; it starts a process whenever asked
_asks, _answers = queue.Queue(), queue.Queue()


def _boot_thread():
    while True:
        _asks.get()
        _answers.put(_child_masks())


threading.Thread(target=_boot_thread, daemon=True).start()


def _from_boot_thread():
    _asks.put(True)
    return _answers.get(timeout=10)


CHILD_SIGNALS = {"run": _child_masks, "thread": _in_thread, "boot": _from_boot_thread,
                 "fork": _forked_masks}


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/raise":
        raise RuntimeError("masterapp was asked to fail")
    if path == "/slow":
        delay = parse_qs(environ.get("QUERY_STRING", "")).get("delay", ["0"])[0]
        time.sleep(min(float(delay), 10.0))
    body = str(os.getpid()).encode()
    if path == "/chdir":
        os.chdir(environ.get("QUERY_STRING", ""))
    if path == "/close-stderr":
        os.close(2)
    if path == "/fork-signal":
        body = _fork_and_signal(int(environ.get("QUERY_STRING", ""))).encode()
    elif path == "/child-signals":
        body = CHILD_SIGNALS[environ.get("QUERY_STRING", "")]().encode()
    elif path == "/env":
        body = os.environ.get(environ.get("QUERY_STRING", ""), "-").encode()
    elif path not in ("/pid", "/slow", "/chdir", "/close-stderr"):
        body = b"masterapp " + body
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
