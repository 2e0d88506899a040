"""Fixture apps for tests/integration/test_wsgi.py (SPEC.md 10-13).

Each attribute is one WSGI app, served as ``wsgiapps:NAME``.  The apps
in VALID follow PEP 3333 to the letter (Content-Type everywhere, bytes
only, read() with a size) so that tests/apps/validated.py can also serve
them wrapped in wsgiref.validate.validator; the others break a rule on
purpose to exercise the server's error paths.
"""
import gc
import io
import os
import sys
import tempfile
import threading
import time

TEXT = [("Content-Type", "text/plain")]


def _query(environ, default=""):
    return environ.get("QUERY_STRING") or default


def one_item(environ, start_response):
    """A one-item list: the server computes Content-Length."""
    start_response("200 OK", list(TEXT))
    return [b"ok"]


def app_length(environ, start_response):
    """The app gives its own Content-Length."""
    start_response("200 OK", TEXT + [("Content-Length", "2")])
    return [b"ok"]


def generator(environ, start_response):
    """No length: chunked + close on HTTP/1.1, close-delimited on 1.0."""
    start_response("200 OK", list(TEXT))

    def gen():
        yield b"abc"
        yield b"defgh"

    return gen()


def two_items(environ, start_response):
    """A list of two items never gets a computed length."""
    start_response("200 OK", list(TEXT))
    return [b"ab", b"cd"]


def empty_items(environ, start_response):
    """Empty items are skipped; only real data is framed."""
    start_response("200 OK", list(TEXT))
    return iter([b"", b"x", b"", b"yz", b""])


def empty_list(environ, start_response):
    start_response("200 OK", list(TEXT))
    return []


def short_cl(environ, start_response):
    """Content-Length 10 but 4 bytes: too few, the connection closes."""
    start_response("200 OK", TEXT + [("Content-Length", "10")])
    return iter([b"abcd"])


def empty_cl(environ, start_response):
    """Content-Length 5 and no body at all: too few before the head."""
    start_response("200 OK", TEXT + [("Content-Length", "5")])
    return []


def huge_cl(environ, start_response):
    """A Content-Length past 64 bits (given as ?VALUE): sent as written,
    too few bytes follow; negative, every byte is too many."""
    start_response("200 OK", TEXT + [("Content-Length", environ["QUERY_STRING"])])
    return iter([b"ab"])


class _HugeInt(str):
    """A Content-Length value whose int() has more digits than Python
    will turn back into a str (sys.int_info.str_digits_check_threshold)."""

    def __int__(self):
        return 10 ** 5000


def huge_int_cl(environ, start_response):
    """A Content-Length the server cannot even print: still a 200."""
    start_response("200 OK", TEXT + [("Content-Length", _HugeInt("huge"))])
    return iter([b"ab"])


def long_cl(environ, start_response):
    """Content-Length 3 but 6 bytes: cut at 3, the connection stays open."""
    start_response("200 OK", TEXT + [("Content-Length", "3")])
    return iter([b"abc", b"def"])


def write_callable(environ, start_response):
    """The legacy write() callable, then the iterable."""
    write = start_response("200 OK", TEXT + [("Content-Length", "11")])
    write(b"hello ")
    return [b"world"]


def input_methods(environ, start_response):
    """wsgi.input as PEP 3333 (and the validator) allow it; the body
    reports what each call returned, one per line."""
    inp = environ["wsgi.input"]
    out = [
        repr(inp.readline()),
        repr(inp.readline(3)),
        repr(inp.read(4)),
        repr(inp.readlines()),
        repr(inp.read(10)),
        repr(list(inp)),
    ]
    start_response("200 OK", list(TEXT))
    return ["\n".join(out).encode("latin-1")]


def input_extra(environ, start_response):
    """Methods outside what validator allows (read() without a size)."""
    inp = environ["wsgi.input"]
    out = [
        repr(inp.read()),
        repr(inp.read()),
        repr(inp.seek(-3, 2)),
        repr(inp.read(-1)),
        repr(inp.seek(1)),
        repr(inp.readlines(2)),
        repr((inp.readable(), inp.seekable(), inp.tell())),
        repr(type(inp.read(0)).__name__),
        repr((inp.seek(0), list(inp))),
    ]
    start_response("200 OK", list(TEXT))
    return ["\n".join(out).encode("latin-1")]


def input_readlines_hint(environ, start_response):
    """readlines(3) on a body of lines of 3, 5, 4... bytes."""
    lines = environ["wsgi.input"].readlines(3)
    start_response("200 OK", list(TEXT))
    return [repr(lines).encode()]


def input_spilled_file(environ, start_response):
    """What a spilled body's wsgi.input is: a real file (fileno, io)."""
    f = environ["wsgi.input"]
    data = f.read()
    f.seek(0)
    again = f.read(5)
    os.fstat(f.fileno())
    start_response("200 OK", list(TEXT))
    return [b"%d %d %s %d" % (isinstance(f, io.IOBase), len(data),
                               again, f.tell())]


def _tempfile(data):
    f = tempfile.TemporaryFile()
    f.write(data)
    f.seek(0)
    return f


FILE_DATA = bytes(range(256)) * 400  # 102400 bytes


def file_wrapper(environ, start_response):
    """A real file: sendfile path, Content-Length from the file size."""
    f = _tempfile(FILE_DATA)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](f, 8192)


def file_wrapper_offset(environ, start_response):
    """A real file positioned at 100: only the rest is sent."""
    f = _tempfile(FILE_DATA)
    f.seek(100)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](f)


def file_wrapper_short_cl(environ, start_response):
    """App Content-Length 10 < file size: exactly 10 bytes, keep-alive."""
    f = _tempfile(FILE_DATA)
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", "10")],
    )
    return environ["wsgi.file_wrapper"](f)


def file_wrapper_long_cl(environ, start_response):
    """App Content-Length larger than the file: corrected to the size."""
    f = _tempfile(b"0123456789")
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", "99")],
    )
    return environ["wsgi.file_wrapper"](f)


def file_wrapper_after_write(environ, start_response):
    """write() first, then a file: one head, the file continues the body
    (?cl=N sets Content-Length N; without it 1.1 is chunked)."""
    f = _tempfile(b"abc")
    headers = [("Content-Type", "text/plain")]
    cl = environ["QUERY_STRING"].partition("cl=")[2]
    if cl:
        headers.append(("Content-Length", cl))
    write = start_response("200 OK", headers)
    write(b"xy")
    return environ["wsgi.file_wrapper"](f)


def file_wrapper_no_body(environ, start_response):
    """A 204 with a file: the data is dropped, with the warning (12.6)."""
    f = _tempfile(b"abc")
    start_response("204 No Content", [])
    return environ["wsgi.file_wrapper"](f)


def file_wrapper_bytesio(environ, start_response):
    """Seekable but no fileno(): read in blocks."""
    f = io.BytesIO(FILE_DATA)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](f, 1000)


class _Endless:
    """Seekable, no fileno(): 100 MiB of b"x" made as they are read;
    close() reports on stderr (the error log)."""

    SIZE = 100 << 20

    def __init__(self, path):
        self.path = path
        self.pos = 0

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, off, whence=0):
        self.pos = off if whence == 0 else self.SIZE + off
        return self.pos

    def read(self, n=-1):
        n = min(self.SIZE - self.pos, n if n >= 0 else self.SIZE)
        self.pos += n
        return b"x" * n

    def close(self):
        sys.stderr.write("CLOSED %s\n" % self.path)
        sys.stderr.flush()


def file_wrapper_endless(environ, start_response):
    """100 MiB through the file wrapper's read-in-blocks path."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](_Endless(environ["PATH_INFO"]), 1 << 20)


class _Unseekable:
    def __init__(self, data):
        self._f = io.BytesIO(data)
        self.closed_marker = False

    def read(self, n=-1):
        return self._f.read(n)

    def close(self):
        sys.stderr.write("UNSEEKABLE CLOSED\n")
        sys.stderr.flush()


def file_wrapper_unseekable(environ, start_response):
    """Not seekable: plain iteration (chunked on 1.1), close() called."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](_Unseekable(b"x" * 5000), 1024)


class _ShoutingFile(io.FileIO):
    """A real file whose read() the app overrides: what it returns is the
    body, so its descriptor must not be sendfile'd past it."""

    def read(self, size=-1):
        return super().read(size).upper()


def file_wrapper_subclass(environ, start_response):
    f = _tempfile(b"abcdef")
    g = _ShoutingFile(os.dup(f.fileno()))
    f.close()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](g)


def file_wrapper_empty(environ, start_response):
    f = _tempfile(b"")
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](f)


def large(environ, start_response):
    """A large body with Content-Length, in 64 KiB pieces."""
    size = int(_query(environ, "1048576"))
    block = b"x" * 65536
    start_response("200 OK", TEXT + [("Content-Length", str(size))])

    def gen():
        left = size
        while left > 0:
            n = min(left, len(block))
            yield block[:n]
            left -= n

    return gen()


def sleepy(environ, start_response):
    time.sleep(float(_query(environ, "0.5")))
    start_response("200 OK", list(TEXT))
    return [b"slept"]


def no_content(environ, start_response):
    start_response("204 No Content", [])
    return []


def not_modified(environ, start_response):
    start_response("304 Not Modified", [])
    return []


def head_body(environ, start_response):
    """Sends a body whatever the method (waitress does not strip it)."""
    start_response("200 OK", list(TEXT))
    return [b"body"]


def server_header(environ, start_response):
    """The app's own Server and Date: the server adds Via, no Date."""
    start_response(
        "200 OK",
        TEXT
        + [
            ("Server", "app/1.0"),
            ("Date", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ("x-lower", "1"),
            ("ETag", '"e"'),
            ("WWW-Authenticate", "Basic"),
            ("A", "1"),
            ("a", "2"),
        ],
    )
    return [b"ok"]


def remote_user(environ, start_response):
    environ["REMOTE_USER"] = "alice"
    start_response("200 OK", list(TEXT))
    return [b"ok"]


def remote_user_odd(environ, start_response):
    """Set after the response started; a NUL and a quote in it."""
    start_response("200 OK", list(TEXT))
    environ["REMOTE_USER"] = 'a\x00b"c'
    return [b"ok"]


class _Closing:
    """An iterable that reports close() on stderr (the error log)."""

    def __init__(self, environ, items, fail=False):
        self.path = environ["PATH_INFO"]
        self.items = items
        self.fail = fail

    def __iter__(self):
        for item in self.items:
            yield item
        if self.fail:
            raise ValueError("iteration failed")

    def close(self):
        sys.stderr.write("CLOSED %s\n" % self.path)
        sys.stderr.flush()
        if self.fail == "close too":
            raise RuntimeError("close failed")


def closing(environ, start_response):
    start_response("200 OK", list(TEXT))
    return _Closing(environ, [b"a", b"b"])


def closing_error(environ, start_response):
    start_response("200 OK", list(TEXT))
    return _Closing(environ, [b"a"], fail=True)


def closing_errors(environ, start_response):
    """Iteration fails, then close() fails too."""
    start_response("200 OK", list(TEXT))
    return _Closing(environ, [b"a"], fail="close too")


def exc_info_before_headers(environ, start_response):
    """An error caught by the app and reported with exc_info."""
    start_response("200 OK", TEXT + [("X-Old", "1")])
    try:
        raise KeyError("handled")
    except KeyError:
        start_response("500 Oops", list(TEXT), sys.exc_info())
    return [b"sorry"]


# ---------------------------------------------------------------------
# Apps that break PEP 3333 on purpose (not run under the validator).


def raise_before(environ, start_response):
    raise ValueError("boom before start_response")


def raise_nul(environ, start_response):
    raise ValueError("before\x00after")


def raise_after(environ, start_response):
    start_response("200 OK", list(TEXT))

    def gen():
        yield b"first"
        raise ValueError("boom inside the body")

    return gen()


def system_exit(environ, start_response):
    raise SystemExit(3)


def keyboard_interrupt_after(environ, start_response):
    start_response("200 OK", list(TEXT))

    def gen():
        yield b"first"
        raise KeyboardInterrupt

    return gen()


def exc_info_after_headers(environ, start_response):
    """exc_info once the headers are out: re-raised, connection cut."""
    start_response("200 OK", list(TEXT))

    def gen():
        yield b"partial"
        try:
            raise KeyError("late")
        except KeyError:
            start_response("500 Oops", list(TEXT), sys.exc_info())
        yield b"never"

    return gen()


def exc_info_cl_quirk(environ, start_response):
    """SPEC.md 12.1 step 2: the first Content-Length (10) survives."""
    start_response("200 OK", TEXT + [("Content-Length", "10")])
    try:
        raise KeyError("x")
    except KeyError:
        start_response("500 Internal Server Error", list(TEXT), sys.exc_info())
    return [b"oops"]


def start_twice(environ, start_response):
    start_response("200 OK", list(TEXT))
    start_response("200 OK", list(TEXT))
    return [b"never"]


def write_before_start(environ, start_response):
    return [b"no start_response"]


def status_crlf(environ, start_response):
    start_response("200 OK\r\nX-Evil: 1", list(TEXT))
    return [b"never"]


def status_not_str(environ, start_response):
    start_response(200, list(TEXT))
    return [b"never"]


def status_not_str_caught(environ, start_response):
    """The app catches the status error and answers anyway: the status
    stays waitress's default, 200 OK."""
    try:
        start_response(b"201 Created", [("X-Lost", "1")])
    except AssertionError:
        pass
    return [b"hello"]


def status_crlf_caught(environ, start_response):
    try:
        start_response("201 Cre\r\nated", [("X-Lost", "1")])
    except ValueError:
        pass
    return [b"hello"]


def status_caught_then_start(environ, start_response):
    """After the failed call the response counts as started."""
    try:
        start_response(b"201 Created", [])
    except AssertionError:
        pass
    try:
        start_response("202 Accepted", [])
    except AssertionError as e:
        return [str(e).encode()]
    return [b"second call accepted"]


def status_odd(environ, start_response):
    """No status validation beyond CR/LF: sent verbatim."""
    start_response("200OK", TEXT + [("Content-Length", "2")])
    return [b"ok"]


def header_value_crlf(environ, start_response):
    start_response("200 OK", [("X-Evil", "a\r\nX-Injected: 1")])
    return [b"never"]


def header_name_crlf(environ, start_response):
    start_response("200 OK", [("X-Evil\r\nX-Injected", "1")])
    return [b"never"]


def header_name_not_str(environ, start_response):
    start_response("200 OK", [(b"X-Bytes", "1")])
    return [b"never"]


def header_value_not_str(environ, start_response):
    start_response("200 OK", [("X-Int", 1)])
    return [b"never"]


def hop_by_hop(environ, start_response):
    start_response("200 OK", TEXT + [("Connection", "keep-alive")])
    return [b"never"]


def bad_content_length(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "ten")])
    return [b"never"]


def non_latin1_header(environ, start_response):
    start_response("200 OK", TEXT + [("X-Snow", "\u2603")])
    return [b"never"]


def str_item(environ, start_response):
    """A str item: computed Content-Length 4, headers sent, then cut."""
    start_response("200 OK", list(TEXT))
    return ["abcd"]


def bytearray_item(environ, start_response):
    start_response("200 OK", list(TEXT))
    return [bytearray(b"ba")]


def none_result(environ, start_response):
    start_response("200 OK", list(TEXT))
    return None


def no_content_odd_length(environ, start_response):
    """int() reads U+0662 as 2; a 204 drops the header before encoding."""
    start_response("204 No Content", [("Content-Length", "\u0662")])
    return []


def no_content_with_body(environ, start_response):
    start_response("204 No Content", [])
    return [b"ignored"]


def traceback_marker(environ, start_response):
    raise RuntimeError("marker-%s" % os.getpid())


def non_ascii_names(environ, start_response):
    """Header names outside ASCII get Python's str.capitalize()."""
    start_response(
        "200 OK",
        TEXT + [("x-\u00fcN\u00ef", "1"), ("\u00df-x", "2"), ("X-Val", "caf\u00e9")],
    )
    return [b"ok"]


def syspath(environ, start_response):
    """sys.path as JSON (boot rules of SPEC.md 1)."""
    import json

    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"path": sys.path, "cwd": os.getcwd()}).encode()]


def applog(environ, start_response):
    """logging.basicConfig() ran at boot: a warning reaches stderr."""
    import logging

    logging.getLogger("fixture").warning("app-logged-%s", environ["QUERY_STRING"])
    start_response("200 OK", list(TEXT))
    return [b"logged"]


def make_app():
    """An app factory for --call."""
    return one_item


def broken_factory():
    """An app factory for --call that fails, as one missing its settings."""
    raise RuntimeError("missing SECRET_KEY")


VALID = [
    "one_item",
    "app_length",
    "generator",
    "two_items",
    "empty_items",
    "empty_list",
    "short_cl",
    "long_cl",
    "write_callable",
    "input_methods",
    "file_wrapper",
    "file_wrapper_offset",
    "file_wrapper_short_cl",
    "file_wrapper_long_cl",
    "file_wrapper_bytesio",
    "file_wrapper_unseekable",
    "file_wrapper_empty",
    "large",
    "sleepy",
    "no_content",
    "not_modified",
    "head_body",
    "server_header",
    "remote_user",
    "closing",
    "exc_info_before_headers",
]


# --- apps that abuse the API from other threads or from dunder methods ---


def _late_write(write, data):
    try:
        write(data)
    except Exception:
        pass


def thread_write_at_end(environ, start_response):
    """A thread's write() still waits for room when the app returns: the
    request must outlive it (it used to free the task under it)."""
    w = start_response("200 OK", [("Content-Length", str(21_000_000))])
    w(b"a" * 20_000_000)
    threading.Thread(target=_late_write, args=(w, b"b" * 1_000_000)).start()
    time.sleep(0.3)
    return []


def thread_write_after_end(environ, start_response):
    """A thread that writes once the response is over gets RuntimeError."""
    w = start_response("200 OK", list(TEXT))
    box = {}
    done = threading.Event()

    def later():
        time.sleep(0.3)
        try:
            w(b"late")
        except Exception as e:
            box["late"] = f"{type(e).__name__}: {e}"
        done.set()

    threading.Thread(target=later).start()
    _THREAD_RESULTS["after_end"] = (box, done)
    return [b"early"]


_THREAD_RESULTS = {}


def thread_write_result(environ, start_response):
    box, done = _THREAD_RESULTS.pop("after_end")
    done.wait(5)
    start_response("200 OK", list(TEXT))
    return [box.get("late", "no error").encode()]


class _WritesWhenTested(bytes):
    W = None

    def __bool__(self):
        _WritesWhenTested.W(b"zz")
        return True


def reentrant_write(environ, start_response):
    """write() from the data's __bool__: the head still goes first."""
    _WritesWhenTested.W = start_response("200 OK", list(TEXT))
    _WritesWhenTested.W(_WritesWhenTested(b"abc"))
    return []


class _LowerIsBytes(str):
    def lower(self):
        return b"\x00" * 64


def file_wrapper_odd_cl_name(environ, start_response):
    """The fast path drops the app's Content-Length by name.lower(), as
    waitress does; a lower() that is not a str must not crash it."""
    start_response("200 OK", [(_LowerIsBytes("Content-Length"), "100")])
    return environ["wsgi.file_wrapper"](io.BytesIO(b"0123456789"))


class _LowerOnce(str):
    """A header name whose lower() first runs HOOK, once (set per request)."""
    HOOK = None

    def lower(self):
        hook, _LowerOnce.HOOK = _LowerOnce.HOOK, None
        if hook is not None:
            hook()
        return str.lower(self)


def file_wrapper_cl_name_lower_writes(environ, start_response):
    """The Content-Length removal calls a name's lower(), which here
    sends the head: the file then follows as plain body (as waitress)."""
    write = start_response(
        "200 OK", [("Content-Length", "100"), (_LowerOnce("X-Evil"), "1")])
    _LowerOnce.HOOK = lambda: write(b"early")
    return environ["wsgi.file_wrapper"](io.BytesIO(b"0123456789"))


def _restart(start_response):
    try:
        raise KeyError("x")
    except KeyError:
        start_response("500 Oops", [("X-New", "n")], sys.exc_info())


def file_wrapper_cl_name_lower_restarts(environ, start_response):
    start_response("200 OK", [("Content-Length", "100"), ("X-Old", "o"),
                              (_LowerOnce("X-Evil"), "1")])
    _LowerOnce.HOOK = lambda: _restart(start_response)
    return environ["wsgi.file_wrapper"](io.BytesIO(b"0123456789"))


class _TellWrites(io.BytesIO):
    W = None

    def tell(self):
        if _TellWrites.W is not None:
            w, _TellWrites.W = _TellWrites.W, None
            w(b"")
        return super().tell()


def file_wrapper_prepare_writes(environ, start_response):
    """_prepare runs the file's tell(), which here sends the head."""
    _TellWrites.W = start_response("200 OK", [("Content-Length", "10")])
    return environ["wsgi.file_wrapper"](_TellWrites(b"0123456789"))


class _ReadsBytearray(io.BytesIO):
    def read(self, size=-1):
        return bytearray(super().read(size))


def file_wrapper_bytearray_read(environ, start_response):
    start_response("200 OK", list(TEXT))
    return environ["wsgi.file_wrapper"](_ReadsBytearray(b"0123456789"))


def cl_most_negative(environ, start_response):
    start_response("200 OK", [("Content-Length", "-9223372036854775808")])
    return [b"hello"]


def input_seek_limits(environ, start_response):
    """wsgi.input.seek past 64 bits and with a huge whence: BytesIO's
    OverflowError, not a wrapped position."""
    f = environ["wsgi.input"]
    out = []
    for args in [(2**63 - 1,), (1, 1)], [(2**63 - 1, 2)], [(0, 2**32 + 2)]:
        try:
            for a in args:
                f.seek(*a)
            out.append("ok %d" % f.tell())
        except Exception as e:
            out.append(f"{type(e).__name__}: {e}")
        f.seek(0)
    start_response("200 OK", list(TEXT))
    return ["\n".join(out).encode()]


_KEPT_INPUT = []


def input_keep(environ, start_response):
    """Keeps wsgi.input past the request (a thread could be reading it:
    a spilled body's file must not be closed under its reader)."""
    _KEPT_INPUT.append(environ["wsgi.input"])
    start_response("200 OK", list(TEXT))
    return [b"kept"]


def input_kept_read(environ, start_response):
    f = _KEPT_INPUT.pop()
    try:
        f.seek(0)
        body = f.read()
        out = b"%d %s" % (len(body), body[:10])
    except Exception as e:
        out = f"{type(e).__name__}: {e}".encode()
    start_response("200 OK", list(TEXT))
    return [out]


class _RestartsWhenCollected:
    """Its __del__, run by the collector inside an allocation, calls
    start_response(exc_info) while the head is being built."""

    def __init__(self, sr):
        self.sr = sr
        self.cycle = self

    def __del__(self):
        gc.set_threshold(*_GC_THRESHOLD)
        try:
            raise KeyError("x")
        except KeyError:
            try:
                self.sr("500 Replaced", [("X-New", "n")], sys.exc_info())
            except Exception:
                pass


_GC_THRESHOLD = gc.get_threshold()


class _CollectsOnNext:
    def __init__(self, sr):
        self.sr, self.done = sr, False

    def __iter__(self):
        return self

    def __next__(self):
        if self.done:
            raise StopIteration
        self.done = True
        _RestartsWhenCollected(self.sr)
        gc.set_threshold(1)
        return b"data"


def head_while_collecting(environ, start_response):
    v = "v" * 60
    start_response("200 OK", [("X-A", v), ("X-\u00c4rger", v), ("X-C", v),
                              ("Content-Length", "4")])
    return _CollectsOnNext(start_response)


class _ReadWrites(io.BytesIO):
    W = None

    def read(self, size=-1):
        if _ReadWrites.W is not None:
            w, _ReadWrites.W = _ReadWrites.W, None
            w(b"EXTRA")
        return super().read(size)


def file_wrapper_read_writes(environ, start_response):
    """write() from the file's read(): the file is the whole body."""
    _ReadWrites.W = start_response("200 OK", list(TEXT))
    return environ["wsgi.file_wrapper"](_ReadWrites(b"B" * 3000), 1024)


_KEPT_CHECK = []


def discon_keep(environ, start_response):
    _KEPT_CHECK.append(environ["waitress.client_disconnected"])
    start_response("200 OK", list(TEXT))
    return [b"kept"]


def discon_kept(environ, start_response):
    """The check kept from an earlier request: whether its connection
    has closed since (waitress: not channel.connected)."""
    start_response("200 OK", list(TEXT))
    return [str(_KEPT_CHECK.pop()()).encode()]


def python_executable(environ, start_response):
    """sys.executable runs Python (multiprocessing's spawn needs it)."""
    import subprocess

    r = subprocess.run([sys.executable, "-c", "print(6 * 7)"],
                       capture_output=True, timeout=20)
    start_response("200 OK", list(TEXT))
    return [b"%s %s" % (sys.executable.encode(), r.stdout.strip())]


def dispatch(environ, start_response):
    """Serve every app above from one server: /NAME[/...] runs NAME."""
    name = environ["PATH_INFO"].lstrip("/").split("/", 1)[0]
    target = globals().get(name)
    if name.startswith("_") or name == "dispatch" or not callable(target):
        start_response("404 Not Found", list(TEXT))
        return [b"no such app"]
    return target(environ, start_response)


class _SlowToFree:
    """A stand-in sys.stderr whose release sleeps (and so lets go of the
    GIL): the server must not release one between taking a request's
    values and copying them into its environ."""

    def __init__(self, real):
        self.real = real

    def write(self, s):
        return self.real.write(s)

    def flush(self):
        self.real.flush()

    def __del__(self):
        time.sleep(0.3)


def stderr_swapper(environ, start_response):
    """/swap puts a new _SlowToFree in sys.stderr; every path is echoed."""
    path = environ["PATH_INFO"]
    if path == "/swap":
        sys.stderr = _SlowToFree(sys.__stderr__)
    body = path.encode("latin-1")
    start_response("200 OK", TEXT + [("Content-Length", str(len(body)))])
    return [body]


class _Sink:
    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n

    def write(self, s):
        return len(s)

    def flush(self):
        pass


_churn_started = []
_churn_lock = threading.Lock()


def _churn():
    import collections
    ring = collections.deque(maxlen=1000)
    n = 0
    while True:
        n += 1
        sys.stderr = _Sink(n)  # drops the last reference to the previous one
        ring.append(bytes(15))  # the same allocation size: reuses its block


def stderr_churn(environ, start_response):
    """A thread of the app replaces sys.stderr without pause; answers the
    type of wsgi.errors after reading the body."""
    with _churn_lock:
        if not _churn_started:
            _churn_started.append(1)
            threading.Thread(target=_churn, daemon=True).start()
    environ["wsgi.input"].read()
    body = type(environ["wsgi.errors"]).__name__.encode()
    start_response("200 OK", TEXT + [("Content-Length", str(len(body)))])
    return [body]
