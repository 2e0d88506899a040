"""Shared fixtures: start the real waitressd on a free loopback port with a
fixture app from tests/apps/, talk to it over raw sockets, stop it, and
fail the test if its log shows a sanitizer report or a crash."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import weakref

import pytest

HERE = pathlib.Path(__file__).resolve().parent
APPS = HERE.parent / "apps"
WAITRESSD = os.environ.get("WAITRESSD") or str(HERE.parent.parent / "_build" / "waitressd")
PYTHON = os.environ.get("PYTHON", "/usr/bin/python3")

def _sanitized(path):
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# Under AddressSanitizer every waitressd started here (workers, and the
# master's Python for -t) allocates Python objects with malloc: pymalloc's
# arenas are memory LeakSanitizer neither scans nor tracks, so a Python
# object lost per request went unseen, and objects reachable only from
# the arenas were reported as leaks.
SANITIZED = _sanitized(WAITRESSD)
if SANITIZED:
    os.environ.setdefault("PYTHONMALLOC", "malloc")

BAD_LOG_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "[CRITICAL]", "Segmentation fault")


_handed_out = set()


def free_port():
    """A loopback port nobody listens on, never one handed out before in
    this run: the kernel gives a just-closed port again readily, and two
    ports asked for one server (listen and stats) must differ."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def run(*args, timeout=20, **kw):
    """Run waitressd to completion (for --help, -t, bad flags)."""
    return subprocess.run([WAITRESSD, *args], capture_output=True, text=True, timeout=timeout, **kw)


class Server:
    """One running waitressd.  Use as a context manager or via the fixture."""

    def __init__(self, tmp_path, app="echo:app", args=(), config=None, workers=1, threads=4, unix=False):
        self.tmp = pathlib.Path(tmp_path)
        self.log_path = self.tmp / "error.log"
        self.port = None if unix else free_port()
        self.unix_path = str(self.tmp / "wd.sock") if unix else None
        argv = [WAITRESSD]
        if config is not None:
            cfg = self.tmp / "waitressd.conf"
            cfg.write_text(config)
            argv += ["-c", str(cfg)]
        if unix:
            argv += [f"--unix-socket={self.unix_path}"]
        elif not any(a.startswith(("--listen", "--port", "--host", "--sockets")) for a in args):
            argv += [f"--listen=127.0.0.1:{self.port}"]
        argv += [f"--workers={workers}", f"--threads={threads}", f"--pythonpath={APPS}"]
        argv += list(args)
        if app:
            argv.append(app)
        self.argv = argv
        self.proc = None

    def start(self, wait=True):
        self.logf = open(self.log_path, "wb")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1")
        self.proc = subprocess.Popen(self.argv, stdout=self.logf, stderr=subprocess.STDOUT, cwd=self.tmp, env=env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"waitressd exited {self.proc.returncode}:\n{self.log()}")
            try:
                with self.connect(timeout=0.5) as s:
                    # once connected, one probe only: a slow first answer
                    # on a loaded machine is waited for, not sent again
                    # (tests count the requests a worker served)
                    s.settimeout(max(deadline - time.monotonic(), 0.5))
                    s.sendall(b"GET /__ready__ HTTP/1.0\r\n\r\n")
                    if s.recv(1):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"waitressd not ready after {timeout}s:\n{self.log()}")

    def connect(self, timeout=10):
        if self.unix_path:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(self.unix_path)
        else:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return s

    def request(self, raw, timeout=10):
        """Send RAW bytes, read until the server closes, return everything."""
        with self.connect(timeout) as s:
            s.sendall(raw)
            return read_all(s)

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=None, timeout=15):
        # The default cannot name signal.SIGTERM: in the class body the
        # method signal() above shadows the module.
        if sig is None:
            sig = signal.SIGTERM
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"waitressd did not stop on {sig!r}:\n{self.log()}")
        self.logf.close()
        return self.proc.returncode

    def check_log(self):
        text = self.log()
        for mark in BAD_LOG_MARKS:
            assert mark not in text, f"{mark!r} in server log:\n{text}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if exc[0] is None:
            self.check_log()


def stop_process(pid, timeout=5.0):
    """SIGSTOP PID and return once every one of its threads has stopped:
    the stop reaches a thread asleep in epoll_wait only after the thread
    that took the signal woke it, and meanwhile it may still accept."""
    os.kill(pid, signal.SIGSTOP)

    def stopped():
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
            states = [pathlib.Path(f"/proc/{pid}/task/{t}/stat").read_text().rsplit(")", 1)[1].split()[0]
                      for t in tasks]
        except OSError:
            return False
        return all(s in "tT" for s in states)

    assert wait_for(stopped, timeout, 0.001), f"pid {pid} did not stop"


def wait_for(cond, timeout=15.0, step=0.02):
    """Poll COND until it returns something true (returned) or TIMEOUT
    seconds pass (then its last value)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(step)
    return cond()


def stats(port):
    """The master's JSON stats document, from the --stats TCP port."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        status, _, body = read_response(s)
    assert status == "HTTP/1.0 200 OK"
    return json.loads(body)


def rss_kib(pid):
    """Resident memory of process PID, in KiB."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def read_all(s):
    chunks = []
    while True:
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


# Bytes received past the end of one response (pipelining), per socket.
_pending = weakref.WeakKeyDictionary()


def read_response(s, head_only=False):
    """Read exactly one HTTP response from S; return (status_line, headers
    as a list of (name, value), body bytes).  Handles Content-Length,
    chunked and close-delimited bodies.  Bytes that belong to the next
    response are kept for the next call on the same socket."""
    buf = _pending.pop(s, b"")

    def more():
        data = s.recv(65536)
        if not data:
            raise AssertionError(f"connection closed early: {buf!r}")
        return data

    while b"\r\n\r\n" not in buf:
        buf += more()
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0]
    headers = [tuple(h.split(": ", 1)) for h in lines[1:]]
    hmap = {k.lower(): v for k, v in headers}
    if head_only:
        return status, headers, rest
    if "content-length" in hmap:
        n = int(hmap["content-length"])
        while len(rest) < n:
            buf = rest
            rest += more()
        _pending[s] = rest[n:]
        return status, headers, rest[:n]
    if hmap.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                buf = rest
                rest += more()
            line, _, rest = rest.partition(b"\r\n")
            size = int(line, 16)
            while len(rest) < size + 2:
                buf = rest
                rest += more()
            body += rest[:size]
            rest = rest[size + 2:]
            if size == 0:
                _pending[s] = rest
                return status, headers, body
    return status, headers, rest + read_all(s)


@pytest.fixture
def server_factory(tmp_path):
    started = []

    def make(app="echo:app", args=(), **kw):
        srv = Server(tmp_path / f"srv{len(started)}", app=app, args=args, **kw)
        srv.tmp.mkdir(parents=True, exist_ok=True)
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.stop()
    for srv in started:
        srv.check_log()


@pytest.fixture
def server(server_factory):
    return server_factory()
