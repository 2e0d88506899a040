"""The WSGI bridge over raw sockets: environ (SPEC.md 10), wsgi.input,
start_response / iteration / framing (12), exceptions (13), the 500 (14)
and wsgi.file_wrapper (12.8).

Most tests share one server per module running ``wsgiapps:dispatch``
(the path picks the fixture app); tests that need other options start
their own."""
import json
import re
import socket
import time

import pytest

from conftest import APPS, Server, read_all, read_response, wait_for

DATE_RE = rb"Date: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("wsgi"), app="wsgiapps:dispatch")
    s.start()
    yield s
    s.stop()
    s.check_log()


@pytest.fixture(scope="module")
def echo_srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("echo"), app="echo:app")
    s.start()
    yield s
    s.stop()
    s.check_log()


def split(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(l.split(": ", 1)) for l in lines[1:]]
    return lines[0], headers, body


def hmap(headers):
    return {k.lower(): v for k, v in headers}


def complete(data):
    """True when DATA holds one whole response (by its own framing)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    h = hmap(split(head + b"\r\n\r\n")[1])
    if "content-length" in h:
        return len(body) >= int(h["content-length"])
    if h.get("transfer-encoding") == "chunked":
        return body.endswith(b"0\r\n\r\n")
    status = head.split(b" ", 2)[1] if b" " in head else b""
    return status in (b"204", b"304")


def fetch(srv, raw, timeout=10):
    """Send RAW; read until one response is complete or the server closes."""
    with srv.connect(timeout) as s:
        s.sendall(raw)
        data = b""
        while not complete(data):
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
        return data


def until_close(srv, raw):
    """Send RAW and split all the server sends until it closes."""
    with srv.connect() as s:
        s.sendall(raw)
        return split(read_all(s))


def get(srv, path, version="1.1", extra=b"", method="GET"):
    raw = f"{method} {path} HTTP/{version}\r\n".encode() + extra + b"\r\n"
    return fetch(srv, raw)


def echo(srv, raw):
    status, headers, body = split(fetch(srv, raw))
    assert status.endswith("200 OK"), (status, body)
    return json.loads(body)


def wait_log(srv, text, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in srv.log():
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------
# environ (SPEC.md 10)

FIXED_STR_KEYS = {
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REQUEST_URI",
    "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE",
    "REMOTE_ADDR", "REMOTE_HOST", "REMOTE_PORT", "wsgi.url_scheme",
}
OTHER_KEYS = {
    "wsgi.version": "tuple", "wsgi.input": "Input", "wsgi.input_terminated": "bool",
    "wsgi.errors": "TextIOWrapper", "wsgi.multithread": "bool",
    "wsgi.multiprocess": "bool", "wsgi.run_once": "bool", "wsgi.file_wrapper": "type",
    "waitress.client_disconnected": "ClientDisconnectedCheck",
}


def test_environ_has_exactly_the_spec_keys(echo_srv):
    d = echo(echo_srv, b"POST /a/b?x=1&y=%41 HTTP/1.1\r\nHost: example.com\r\n"
             b"X-Custom: v\r\nContent-Type: text/plain\r\nContent-Length: 00005\r\n"
             b"\r\nhello")
    env = d["environ"]
    assert set(env) == FIXED_STR_KEYS | {
        "HTTP_HOST", "HTTP_X_CUSTOM", "CONTENT_TYPE", "CONTENT_LENGTH"}
    assert d["types"] == OTHER_KEYS
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/a/b"
    assert env["QUERY_STRING"] == "x=1&y=%41"
    assert env["REQUEST_URI"] == "/a/b?x=1&y=%41"
    assert env["SERVER_NAME"] == "waitress.invalid"
    assert env["SERVER_PORT"] == str(echo_srv.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_SOFTWARE"] == "waitressd"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_HOST"] == "127.0.0.1"
    assert env["REMOTE_PORT"].isdigit()
    assert env["HTTP_HOST"] == "example.com"
    assert env["HTTP_X_CUSTOM"] == "v"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "00005"
    assert env["wsgi.url_scheme"] == "http"
    assert d["body"] == "hello"
    assert d["reprs"] == {
        "wsgi.version": "(1, 0)", "wsgi.input_terminated": "True",
        "wsgi.multithread": "True", "wsgi.multiprocess": "False",
        "wsgi.run_once": "False",
    }


def test_header_names_of_every_length_near_the_key_cache_size(echo_srv):
    # The worker caches the environ keys of header names up to 48 bytes
    # with their "HTTP_" prefix; names of 44 to 48 bytes overran the
    # entry and crashed the worker at their second use (SIGSEGV).
    for n in range(38, 56):
        name = "X-" + "A" * (n - 2)
        key = "HTTP_X_" + "A" * (n - 2)
        for _ in range(3):
            d = echo(echo_srv, f"GET / HTTP/1.1\r\nHost: x\r\n{name}: {n}\r\n\r\n".encode())
            assert d["environ"][key] == str(n)


def test_environ_values_that_change_between_requests(echo_srv):
    # The worker reuses the str of a value equal to the last one in the
    # same place (path, query, target, each header); values of the same
    # length, either side of the 64 bytes it keeps, must still come out
    # as sent, request after request.
    for n in (1, 63, 64, 65):
        for c in "abab":
            host = c * n
            path = "/" + c * (n - 1) if n > 1 else "/"
            d = echo(echo_srv, f"GET {path}?{c * n} HTTP/1.1\r\nHost: {host}\r\n"
                               f"X-V: {c * n}\r\nX-W: \xe9{c}\r\n\r\n".encode("latin-1"))
            env = d["environ"]
            assert env["HTTP_HOST"] == host
            assert env["PATH_INFO"] == path
            assert env["QUERY_STRING"] == c * n
            assert env["REQUEST_URI"] == f"{path}?{c * n}"
            assert env["HTTP_X_V"] == c * n
            assert env["HTTP_X_W"] == "\xe9" + c


def test_environ_without_body_headers(echo_srv):
    d = echo(echo_srv, b"GET / HTTP/1.0\r\n\r\n")
    env = d["environ"]
    assert set(env) == FIXED_STR_KEYS
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert env["QUERY_STRING"] == ""
    assert d["body"] == ""


def test_environ_latin1_values(echo_srv):
    d = echo(echo_srv, b"GET /caf%E9/%C3%A9?q=%E9 HTTP/1.1\r\nX-Bin: \xa0v\x85\r\n\r\n")
    env = d["environ"]
    assert env["PATH_INFO"] == "/caf\xe9/\xc3\xa9"
    assert env["QUERY_STRING"] == "q=%E9"
    assert env["HTTP_X_BIN"] == "\xa0v\x85"


def test_path_info_collapses_leading_slashes(echo_srv):
    d = echo(echo_srv, b"GET //testing/whatever HTTP/1.1\r\n\r\n")
    assert d["environ"]["PATH_INFO"] == "/testing/whatever"
    assert d["environ"]["REQUEST_URI"] == "//testing/whatever"
    d = echo(echo_srv, b"GET ///abc//d HTTP/1.1\r\n\r\n")
    assert d["environ"]["PATH_INFO"] == "/abc//d"


def test_header_cannot_overwrite_fixed_keys(echo_srv):
    d = echo(echo_srv, b"GET / HTTP/1.1\r\nRequest-Method: PUT\r\nRemote-Addr: 1.2.3.4\r\n\r\n")
    env = d["environ"]
    assert env["REQUEST_METHOD"] == "GET"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["HTTP_REQUEST_METHOD"] == "PUT"


def test_chunked_request_body_and_decoded_length(echo_srv):
    d = echo(echo_srv, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert d["body"] == "hello world"
    assert d["environ"]["CONTENT_LENGTH"] == "11"
    assert "HTTP_TRANSFER_ENCODING" not in d["environ"]


def test_url_prefix(server_factory):
    s = server_factory("echo:app", args=["--url-prefix=/app"])
    cases = [("/app", "", "/app"), ("/app/x", "/x", "/app"), ("/app/", "/", "/app"),
             ("/apple", "/apple", "/app")]
    for path, info, script in cases:
        env = echo(s, f"GET {path} HTTP/1.1\r\n\r\n".encode())["environ"]
        assert (env["PATH_INFO"], env["SCRIPT_NAME"]) == (info, script), path


def test_text_options_reach_the_wire_as_latin1(server_factory):
    # waitress holds these as text: the environ sees "é", the Server
    # header carries \xe9, the prefix matches the path byte \xe9, and
    # the error page's footer is UTF-8 like the rest of its body
    s = server_factory("echo:app", args=[
        "--ident=w\u00e9", "--server-name=s\u00e9rv", "--url-scheme=http\u00e9",
        "--url-prefix=/app\u00e9"])
    # (a raw byte >= 0x80 is a Bad URI, except in a path that starts "//")
    raw = fetch(s, b"GET //app\xe9/x HTTP/1.1\r\n\r\n")
    status, headers, body = split(raw)
    assert b"\r\nServer: w\xe9\r\n" in raw
    env = json.loads(body)["environ"]
    assert env["SERVER_SOFTWARE"] == "w\u00e9"
    assert env["SERVER_NAME"] == "s\u00e9rv"
    assert env["wsgi.url_scheme"] == "http\u00e9"
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app\u00e9", "/x")
    env = echo(s, b"GET /app%C3%A9/x HTTP/1.1\r\n\r\n")["environ"]
    assert env["PATH_INFO"] == "/app\u00c3\u00a9/x"
    raw = fetch(s, b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n")
    assert b"\r\nServer: w\xe9\r\n" in raw
    assert raw.endswith(b"(generated by w\xc3\xa9)")


def test_text_options_beyond_latin1_stay_text(server_factory):
    # waitress keeps them as str: the environ shows the text, and the
    # prefix cannot match a path, whose str is latin-1
    s = server_factory("echo:app", args=[
        "--server-name=\u65e5", "--url-scheme=\u65e5", "--url-prefix=/\u65e5"])
    env = echo(s, b"GET /%E6%97%A5/x HTTP/1.1\r\n\r\n")["environ"]
    assert env["SERVER_NAME"] == "\u65e5"
    assert env["wsgi.url_scheme"] == "\u65e5"
    assert env["SCRIPT_NAME"] == "/\u65e5"
    assert env["PATH_INFO"] == "/\u00e6\u0097\u00a5/x"


def test_unix_socket_quirks(server_factory):
    s = server_factory("echo:app", unix=True)
    env = echo(s, b"GET / HTTP/1.1\r\n\r\n")["environ"]
    assert env["SERVER_PORT"] == s.unix_path
    assert env["REMOTE_ADDR"] == "localhost"
    assert env["REMOTE_HOST"] == "localhost"
    assert env["REMOTE_PORT"] == "None"


def test_multiprocess_true_with_two_workers(server_factory):
    s = server_factory("echo:app", workers=2)
    d = echo(s, b"GET / HTTP/1.1\r\n\r\n")
    assert d["reprs"]["wsgi.multiprocess"] == "True"


def test_server_name_and_scheme_options(server_factory):
    s = server_factory("echo:app", args=["--server-name=example.org", "--url-scheme=https"])
    env = echo(s, b"GET / HTTP/1.1\r\nHost: other\r\n\r\n")["environ"]
    assert env["SERVER_NAME"] == "example.org"
    assert env["wsgi.url_scheme"] == "https"


def test_untrusted_proxy_headers_removed(echo_srv):
    env = echo(echo_srv, b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\n"
               b"Forwarded: for=1.2.3.4\r\n\r\n")["environ"]
    assert "HTTP_X_FORWARDED_FOR" not in env
    assert "HTTP_FORWARDED" not in env
    assert env["REMOTE_ADDR"] == "127.0.0.1"


def test_trusted_proxy_rewrites_environ(server_factory):
    s = server_factory("echo:app", args=[
        "--trusted-proxy=127.0.0.1",
        "--trusted-proxy-headers=x-forwarded-for x-forwarded-host x-forwarded-proto"])
    env = echo(s, b"GET / HTTP/1.1\r\nHost: internal\r\nX-Forwarded-For: 192.0.2.1, 198.51.100.7\r\n"
               b"X-Forwarded-Host: example.com\r\nX-Forwarded-Proto: https\r\n\r\n")["environ"]
    assert env["REMOTE_ADDR"] == "198.51.100.7"
    assert env["REMOTE_HOST"] == "198.51.100.7"
    assert env["wsgi.url_scheme"] == "https"
    assert env["SERVER_NAME"] == "example.com"
    assert env["HTTP_HOST"] == "example.com"
    assert env["SERVER_PORT"] == "443"
    assert env["HTTP_X_FORWARDED_FOR"] == "198.51.100.7"


def test_proxied_and_direct_requests_alternate_on_one_worker(server_factory):
    # The worker keeps the last request's fixed values in its environ
    # template; a rewritten request must not leave its values behind.
    s = server_factory("echo:app", args=[
        "--trusted-proxy=127.0.0.1",
        "--trusted-proxy-headers=x-forwarded-for x-forwarded-host x-forwarded-proto"])
    port = str(s.port)
    for _ in range(3):
        env = echo(s, b"GET /p HTTP/1.1\r\nHost: internal\r\nX-Forwarded-For: 198.51.100.7\r\n"
                   b"X-Forwarded-Host: example.com\r\nX-Forwarded-Proto: https\r\n\r\n")["environ"]
        assert (env["REMOTE_ADDR"], env["REMOTE_HOST"]) == ("198.51.100.7",) * 2
        assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "443")
        assert env["wsgi.url_scheme"] == "https"
        env = echo(s, b"GET /d HTTP/1.0\r\nHost: internal\r\n\r\n")["environ"]
        assert (env["REMOTE_ADDR"], env["REMOTE_HOST"]) == ("127.0.0.1",) * 2
        assert env["REMOTE_PORT"] != "443"
        assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("waitress.invalid", port)
        assert (env["wsgi.url_scheme"], env["SERVER_PROTOCOL"]) == ("http", "HTTP/1.0")
        assert env["PATH_INFO"] == "/d"


def test_a_request_keeps_its_own_environ_values_while_stderr_is_freed(server_factory):
    # The worker keeps a request's fixed values in its environ template
    # until it copies it.  wsgi.errors went there too: a request that
    # replaced it there dropped the last reference to an app's swapped-out
    # sys.stderr, whose finalizer let go of the GIL, and a concurrent
    # request's values got into the first one's copy.
    s = server_factory("wsgiapps:stderr_swapper", threads=4)
    for i in range(3):
        get(s, "/swap")
        get(s, "/settle")  # the template now holds this stderr
        get(s, "/swap")    # ... and nothing else: the next request frees it
        socks = [s.connect(10) for _ in range(2)]
        for n, c in enumerate(socks):
            c.sendall(f"GET /r{i}-{n} HTTP/1.0\r\n\r\n".encode())
        bodies = [split(read_all(c))[2] for c in socks]
        for c in socks:
            c.close()
        assert bodies == [f"/r{i}-0".encode(), f"/r{i}-1".encode()]


def test_wsgi_errors_stays_alive_while_the_app_swaps_sys_stderr(server_factory):
    # The worker looked sys.stderr up (a borrowed reference), then opened
    # the spilled body's file, which lets go of the GIL; an app thread
    # replacing sys.stderr meanwhile freed the object the environ then
    # got: the app touched freed memory and the worker crashed (about 1
    # request in 60 here).
    s = server_factory("wsgiapps:stderr_churn", args=["--inbuf-overflow=1024"])
    body = b"x" * 16384
    raw = b"POST / HTTP/1.0\r\nContent-Length: 16384\r\n\r\n" + body
    for _ in range(600):
        status, _, answer = split(fetch(s, raw))
        assert (status, answer) == ("HTTP/1.0 200 OK", b"_Sink"), s.log()
    assert "was sent SIG" not in s.log()


def test_malformed_proxy_header_gives_generator_400(server_factory):
    s = server_factory("echo:app", args=[
        "--trusted-proxy=127.0.0.1", "--trusted-proxy-headers=x-forwarded-proto"])
    resp = s.request(b"GET / HTTP/1.1\r\nX-Forwarded-Proto: ftp\r\n\r\n")
    assert re.fullmatch(
        rb"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
        rb"Content-Type: text/plain; charset=utf-8\r\n" + DATE_RE +
        rb"Server: waitressd\r\nTransfer-Encoding: chunked\r\n\r\n"
        rb"4D\r\nBad Request\r\n\r\nHeader \"X-Forwarded-Proto\" malformed.\r\n\r\n"
        rb"\(generated by server\)\r\n0\r\n\r\n", resp), resp
    resp = s.request(b"GET / HTTP/1.0\r\nX-Forwarded-Proto: ftp\r\n\r\n")
    status, headers, body = split(resp)
    assert status == "HTTP/1.0 400 Bad Request"
    assert "content-length" not in hmap(headers)
    assert hmap(headers)["connection"] == "close"
    assert body.endswith(b"(generated by server)")
    assert 'Malformed proxy header "X-Forwarded-Proto"' in s.log()


def test_proxy_warnings_write_header_bytes_as_utf8(server_factory):
    # waitress logs the latin-1 str it decoded, so its log file holds
    # UTF-8; control bytes stay escaped (no forged lines)
    s = server_factory("echo:app", args=[
        "--trusted-proxy=127.0.0.1", "--trusted-proxy-headers=x-forwarded-port"])
    resp = s.request(b"GET / HTTP/1.1\r\nX-Forwarded-Port: \xe9\t1,2\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    f = server_factory("echo:app", args=[
        "--trusted-proxy=127.0.0.1", "--trusted-proxy-headers=forwarded"])
    resp = f.request(b"GET / HTTP/1.1\r\nForwarded: f\xfco=1\r\n"
                     b"Connection: close\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 200 OK\r\n")
    wait_for(lambda: "Malformed proxy header" in s.log())
    wait_for(lambda: "Unknown Forwarded token" in f.log())
    raw = s.log_path.read_bytes()
    assert b'Malformed proxy header "X-Forwarded-Port" from "127.0.0.1": ' in raw
    assert b"value: \xc3\xa9\\x091,2\n" in raw, raw
    assert b"Unknown Forwarded token: f\xc3\xbco\n" in f.log_path.read_bytes()


# ---------------------------------------------------------------------
# wsgi.input

def test_input_methods(srv):
    body = b"line1\nline2\nline3\nrest"
    raw = b"POST /input_methods HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    with srv.connect() as s:
        s.sendall(raw)
        status, headers, out = read_response(s)
    assert out.decode().split("\n") == [
        "b'line1\\n'", "b'lin'", "b'e2\\nl'", "[b'ine3\\n', b'rest']", "b''", "[]"]


def test_input_extra_methods(srv):
    body = b"ab\ncd\nef"
    raw = b"POST /input_extra HTTP/1.1\r\nConnection: close\r\nContent-Length: 8\r\n\r\n" + body
    status, headers, out = split(srv.request(raw))
    assert out.decode().split("\n") == [
        "b'ab\\ncd\\nef'", "b''", "5", "b'\\nef'", "1", "[b'b\\n']",
        "(True, True, 3)", "'bytes'", "(0, [b'ab\\n', b'cd\\n', b'ef'])"]


def test_input_empty_without_body(srv):
    status, headers, out = split(get(srv, "/input_extra", extra=b"Connection: close\r\n"))
    assert out.decode().split("\n")[:2] == ["b''", "b''"]


def test_input_readlines_hint_in_memory_and_spilled(server_factory):
    # in memory the body is BytesIO-like (readlines stops once the total
    # reaches the hint); spilled, waitress gives a real file (it stops
    # only past it), SPEC.md 10.1
    s = server_factory("wsgiapps:dispatch", args=["--inbuf-overflow=1000"])
    for body, want in ((b"ab\ncdef\nghi\n", b"[b'ab\\n']"),
                       (b"ab\ncdef\n" + b"x" * 9000, b"[b'ab\\n', b'cdef\\n']")):
        raw = (b"POST /input_readlines_hint HTTP/1.1\r\nConnection: close\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body) + body)
        status, headers, out = split(s.request(raw))
        assert (status, out) == ("HTTP/1.1 200 OK", want)


def test_spilled_input_is_a_file_object(server_factory):
    # SPEC.md 10.1: "a file object for spilled bodies" (waitress hands over
    # its temp file): fileno() works and it is an io object
    s = server_factory("wsgiapps:dispatch", args=["--inbuf-overflow=1000"])
    for body in (b"abcdefgh" * 2000,
                 b"2000\r\n" + b"abcdefgh" * 1024 + b"\r\n0\r\n\r\n"):
        framing = (b"Content-Length: %d" % len(body) if body[:1] == b"a"
                   else b"Transfer-Encoding: chunked")
        raw = (b"POST /input_spilled_file HTTP/1.1\r\nConnection: close\r\n"
               + framing + b"\r\n\r\n" + body)
        status, headers, out = split(s.request(raw))
        assert status == "HTTP/1.1 200 OK", out
        assert out == b"1 %d abcde 5" % (16000 if body[:1] == b"a" else 8192)


@pytest.mark.parametrize("overflow", ["0", "-1"])
def test_inbuf_overflow_at_or_below_zero_spills_from_strbuf_limit(
        server_factory, overflow):
    # SPEC.md 8: a body moves to its file "once the buffered size reaches
    # inbuf_overflow", which 0 and -1 always are; under 8192 bytes it
    # stays in memory, as SPEC.md 8 says (waitress would move it too)
    s = server_factory("wsgiapps:dispatch", args=["--inbuf-overflow=" + overflow])
    for size, spilled in ((8192, 1), (100, 0)):
        body = b"abcdefgh" * (size // 8) + b"abcd" * (size % 8 // 4)
        raw = (b"POST /input_spilled_file HTTP/1.1\r\nConnection: close\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body) + body)
        status, headers, out = split(s.request(raw))
        if spilled:
            assert out == b"1 %d abcde 5" % size
        else:  # no fileno(): a 500
            assert status == "HTTP/1.1 500 Internal Server Error"


def test_large_input_spilled_to_file(server_factory):
    s = server_factory("echo:app", args=["--inbuf-overflow=1000"])
    body = bytes(range(256)) * 64
    d = echo(s, b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert d["body"].encode("latin-1") == body


# ---------------------------------------------------------------------
# framing (SPEC.md 12)

def test_spec_example_one_item(srv):
    resp = get(srv, "/one_item")
    assert re.fullmatch(rb"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n"
                        + DATE_RE + rb"Server: waitressd\r\n\r\nok", resp.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\nok")
    with srv.connect() as s:
        for _ in range(3):  # keep-alive
            s.sendall(b"GET /app_length HTTP/1.1\r\n\r\n")
            status, headers, body = read_response(s)
            assert status == "HTTP/1.1 200 OK"
            assert [k for k, v in headers] == ["Content-Length", "Content-Type", "Date", "Server"]
            assert body == b"ok"


def test_spec_example_generator_chunked(srv):
    resp = get(srv, "/generator")
    assert re.fullmatch(rb"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n"
                        + DATE_RE + rb"Server: waitressd\r\nTransfer-Encoding: chunked\r\n\r\n"
                        rb"3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n", resp), resp


def test_http10_keepalive_table(srv):
    status, headers, body = split(get(srv, "/generator", "1.0", b"Connection: keep-alive\r\n"))
    h = hmap(headers)
    assert h["connection"] == "close" and "content-length" not in h
    assert "transfer-encoding" not in h and body == b"abcdefgh"
    status, headers, body = split(get(srv, "/one_item", "1.0"))
    assert status == "HTTP/1.0 200 OK" and hmap(headers)["connection"] == "close"
    with srv.connect() as s:
        s.sendall(b"GET /one_item HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        status, headers, body = read_response(s)
        assert ("Connection", "Keep-Alive") in headers and body == b"ok"
        s.sendall(b"GET /one_item HTTP/1.0\r\n\r\n")
        status, headers, body = read_response(s)
        assert hmap(headers)["connection"] == "close"
        assert read_all(s) == b""


def test_http11_connection_close_with_length(srv):
    status, headers, body = split(get(srv, "/one_item", extra=b"Connection: close\r\n"))
    assert hmap(headers)["connection"] == "close"
    assert hmap(headers)["content-length"] == "2"
    assert "transfer-encoding" not in hmap(headers)


def test_two_items_and_empty_items_chunked(srv):
    assert get(srv, "/two_items").endswith(b"\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n")
    assert get(srv, "/empty_items").endswith(b"\r\n\r\n1\r\nx\r\n2\r\nyz\r\n0\r\n\r\n")


def test_empty_list_chunked_terminator_only(srv):
    status, headers, body = split(get(srv, "/empty_list"))
    assert hmap(headers)["transfer-encoding"] == "chunked"
    assert body == b"0\r\n\r\n"


def test_head_gets_the_body_waitress_sends(srv):
    status, headers, body = split(get(srv, "/head_body", method="HEAD",
                                      extra=b"Connection: close\r\n"))
    assert hmap(headers)["content-length"] == "4"
    assert body == b"body"


def test_204_and_304_close_without_framing(srv):
    for path, status_line in (("/no_content", "HTTP/1.1 204 No Content"),
                              ("/not_modified", "HTTP/1.1 304 Not Modified")):
        status, headers, body = split(get(srv, path))
        assert status == status_line
        h = hmap(headers)
        assert h["connection"] == "close"
        assert "content-length" not in h and "transfer-encoding" not in h
        assert body == b""


def test_204_drops_a_non_latin1_content_length_before_encoding(srv):
    # SPEC.md 12.4: step 2 removes it, so it is never latin-1 encoded
    status, headers, body = split(get(srv, "/no_content_odd_length"))
    assert status == "HTTP/1.1 204 No Content"
    assert "content-length" not in hmap(headers)
    assert body == b""


def test_204_body_dropped_with_warning(srv):
    status, headers, body = split(get(srv, "/no_content_with_body"))
    assert body == b""
    assert wait_log(srv, "application-written content was ignored due to HTTP response "
                         "that may not contain a message-body: (204 No Content)")


def test_short_content_length_closes(srv):
    status, headers, body = until_close(srv, b"GET /short_cl HTTP/1.1\r\n\r\n")
    assert hmap(headers)["content-length"] == "10"
    assert body == b"abcd"  # and the server closed
    assert wait_log(srv, "application returned too few bytes (4) for specified "
                         "Content-Length (10) via app_iter")


def test_a_content_length_past_64_bits_is_logged_as_given(srv):
    # Python's int() has no bound (SPEC.md 12.1); the warnings printed the
    # number clamped to 64 bits, where waitress prints the app's
    big = "99999999999999999999999"
    status, headers, body = until_close(srv, f"GET /huge_cl?{big} HTTP/1.1\r\n\r\n".encode())
    assert hmap(headers)["content-length"] == big and body == b"ab"
    assert wait_log(srv, f"application returned too few bytes (2) for specified "
                         f"Content-Length ({big}) via app_iter")
    status, headers, body = until_close(srv, f"GET /huge_cl?-{big} HTTP/1.1\r\n\r\n".encode())
    assert wait_log(srv, "application-written content exceeded the number of bytes "
                         f"specified by Content-Length header (-{big})")
    # one whose str() Python refuses (over 4300 digits) is logged clamped;
    # the failed str() was left pending and start_response raised it (500)
    status, headers, body = until_close(srv, b"GET /huge_int_cl HTTP/1.1\r\n\r\n")
    assert status == "HTTP/1.1 200 OK" and body == b"ab"
    assert wait_log(srv, "application returned too few bytes (2) for specified "
                         "Content-Length (9223372036854775807) via app_iter")
    # and a 64-bit one after it on the same worker is its own number again
    until_close(srv, b"GET /short_cl HTTP/1.1\r\n\r\n")
    assert wait_log(srv, "for specified Content-Length (10) via app_iter")


def test_too_few_before_the_head_on_http10_keepalive_sends_both_headers(srv):
    # SPEC 12.2 step 3 adds Connection: close while the head is unsent,
    # and 12.5's HTTP/1.0 keep-alive row still adds Keep-Alive: waitress
    # sends both, close first (its set_close_on_finish ran first)
    status, headers, body = until_close(  # and the server closed
        srv, b"GET /empty_cl HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert status == "HTTP/1.0 200 OK"
    assert [v for k, v in headers if k == "Connection"] == ["close", "Keep-Alive"]
    assert [k for k, v in headers] == ["Connection", "Connection", "Content-Length",
                                       "Content-Type", "Date", "Server"]
    assert body == b""


def test_long_content_length_cut_and_kept_open(srv):
    with srv.connect() as s:
        s.sendall(b"GET /long_cl HTTP/1.1\r\n\r\n")
        status, headers, body = read_response(s)
        assert body == b"abc"
        s.sendall(b"GET /one_item HTTP/1.1\r\n\r\n")
        status, headers, body = read_response(s)
        assert body == b"ok"
    assert wait_log(srv, "application-written content exceeded the number of bytes "
                         "specified by Content-Length header (3)")


def test_write_callable(srv):
    status, headers, body = split(get(srv, "/write_callable", extra=b"Connection: close\r\n"))
    assert hmap(headers)["content-length"] == "11"
    assert body == b"hello world"


def test_bytearray_item(srv):
    status, headers, body = split(get(srv, "/bytearray_item", extra=b"Connection: close\r\n"))
    assert body == b"ba" and hmap(headers)["content-length"] == "2"


def test_str_item_sends_headers_then_cuts(srv):
    resp = get(srv, "/str_item")
    status, headers, body = split(resp)
    assert status == "HTTP/1.1 200 OK"
    assert hmap(headers)["content-length"] == "4"
    assert body == b""


def test_app_server_and_date_and_sorting(srv):
    status, headers, body = split(get(srv, "/server_header", extra=b"Connection: close\r\n"))
    assert headers == [
        ("A", "1"), ("A", "2"), ("Connection", "close"), ("Content-Length", "2"),
        ("Content-Type", "text/plain"), ("Date", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ("Etag", '"e"'), ("Server", "app/1.0"), ("Via", "waitressd"),
        ("Www-Authenticate", "Basic"), ("X-Lower", "1")]


def test_non_ascii_header_names_capitalized_like_python(srv):
    resp = get(srv, "/non_ascii_names", extra=b"Connection: close\r\n")
    head = resp.split(b"\r\n\r\n")[0] + b"\r\n"
    assert b"\r\nSs-X: 2\r\n" in head
    assert b"\r\nX-\xdcn\xef: 1\r\n" in head
    assert b"\r\nX-Val: caf\xe9\r\n" in head


def test_status_sent_verbatim(srv):
    assert get(srv, "/status_odd").startswith(b"HTTP/1.1 200OK\r\n")


def test_close_called_after_iteration(srv):
    get(srv, "/closing")
    assert wait_log(srv, "CLOSED /closing\n")
    get(srv, "/closing_error")
    assert wait_log(srv, "CLOSED /closing_error\n")


def test_close_failing_after_iteration_failed_logs_both(srv):
    # SPEC.md 13: the traceback is traceback.format_exc() in waitress's
    # try/finally, where an error of close() has the iteration's error as
    # its context; the iteration's error was lost.
    get(srv, "/closing_errors")
    assert wait_log(srv, "RuntimeError: close failed")
    log = srv.log()
    tail = log[log.rindex("Exception while serving /closing_errors"):]
    assert "ValueError: iteration failed" in tail, tail
    assert "During handling of the above exception, another exception occurred:" in tail, tail
    assert tail.index("ValueError") < tail.index("RuntimeError: close failed"), tail


def test_client_leaving_a_file_wrapper_response_is_no_app_disconnect(srv):
    # SPEC.md 5.3 logs "Client disconnected while serving" when the app's
    # own writes meet a gone client.  A file handed over by file_wrapper
    # is the server's to send (waitress's loop reads it): a client
    # leaving mid-file ends it quietly, the file closed.
    with srv.connect() as c:
        c.sendall(b"GET /file_wrapper_endless HTTP/1.1\r\n\r\n")
        got = 0
        while got < 200000:
            got += len(c.recv(65536))
    assert wait_log(srv, "CLOSED /file_wrapper_endless\n")
    get(srv, "/closing")  # a later request's line follows any of this one
    assert wait_log(srv, "CLOSED /closing\n")
    assert "Client disconnected while serving /file_wrapper_endless" not in srv.log()


def test_large_body_with_backpressure(server_factory):
    s = server_factory("wsgiapps:dispatch", args=["--outbuf-high-watermark=65536"])
    size = 8 * 1024 * 1024
    with s.connect() as c:
        c.sendall(b"GET /large?%d HTTP/1.1\r\n\r\n" % size)
        status, headers, body = read_response(c)
    assert len(body) == size and body == b"x" * size


def test_client_disconnect_mid_response(server_factory):
    s = server_factory("wsgiapps:dispatch", args=["--outbuf-high-watermark=65536"])
    c = s.connect()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.sendall(b"GET /large?%d HTTP/1.1\r\n\r\n" % (64 * 1024 * 1024))
    c.recv(100)
    c.close()
    assert wait_log(s, "Client disconnected while serving /large", timeout=10), s.log()
    status, headers, body = split(get(s, "/one_item"))
    assert status == "HTTP/1.1 200 OK"


# ---------------------------------------------------------------------
# exceptions (SPEC.md 13, 14)

def test_exception_before_headers_is_500(srv):
    resp = get(srv, "/raise_before")
    status, headers, body = split(resp)
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert sorted(k.lower() for k, v in headers) == [
        "connection", "content-length", "content-type", "date", "server"]
    assert hmap(headers)["connection"] == "close"
    assert body == (b"Internal Server Error\r\n\r\nThe server encountered an unexpected "
                    b"internal server error\r\n\r\n(generated by waitressd)")
    assert int(hmap(headers)["content-length"]) == len(body)
    assert wait_log(srv, "Exception while serving /raise_before")
    assert "ValueError: boom before start_response" in srv.log()


def test_exception_after_headers_cuts_chunked_body(srv):
    resp = get(srv, "/raise_after")
    status, headers, body = split(resp)
    assert status == "HTTP/1.1 200 OK"
    assert hmap(headers)["transfer-encoding"] == "chunked"
    assert body == b"5\r\nfirst\r\n"  # no terminator
    assert wait_log(srv, "ValueError: boom inside the body")


def test_http10_500_uses_request_version(srv):
    status, headers, body = split(get(srv, "/raise_before", "1.0",
                                      b"Connection: keep-alive\r\n"))
    assert status == "HTTP/1.0 500 Internal Server Error"
    assert [v for k, v in headers if k == "Connection"] == ["close"]


@pytest.mark.parametrize("name,text", [
    ("status_crlf", "ValueError: carriage return/line feed character present in status"),
    ("header_value_crlf", "ValueError: carriage return/line feed character present in header value"),
    ("header_name_crlf", "ValueError: carriage return/line feed character present in header name"),
    ("status_not_str", "AssertionError: status 200 is not a string"),
    ("header_name_not_str", "AssertionError: Header name b'X-Bytes' is not a string in (b'X-Bytes', '1')"),
    ("header_value_not_str", "AssertionError: Header value 1 is not a string in ('X-Int', 1)"),
    ("hop_by_hop", 'AssertionError: Connection is a "hop-by-hop" header; it cannot be used by a WSGI application (see PEP 3333)'),
    ("start_twice", "AssertionError: start_response called a second time without providing exc_info."),
    ("write_before_start", "RuntimeError: start_response was not called before body written"),
    ("none_result", "TypeError: 'NoneType' object is not iterable"),
    ("bad_content_length", "ValueError: invalid literal for int() with base 10: 'ten'"),
    ("non_latin1_header", "UnicodeEncodeError"),
    ("system_exit", "SystemExit: 3"),
])
def test_app_errors_become_500(srv, name, text):
    resp = get(srv, "/" + name)
    status, headers, body = split(resp)
    assert status == "HTTP/1.1 500 Internal Server Error", resp
    assert b"X-Injected" not in resp and b"X-Evil" not in resp
    assert wait_log(srv, "Exception while serving /" + name)
    assert wait_log(srv, text), srv.log()[-3000:]


@pytest.mark.parametrize("name", ["status_not_str_caught", "status_crlf_caught"])
def test_caught_status_error_keeps_default_status(srv, name):
    # waitress's status is "200 OK" until start_response stores a valid
    # one; the failed call's headers are not kept.  This used to crash
    # the worker (SIGSEGV on the missing status).
    status, headers, body = split(get(srv, "/" + name))
    assert status == "HTTP/1.1 200 OK"
    assert "x-lost" not in hmap(headers)
    assert hmap(headers)["content-length"] == "5" and body == b"hello"
    assert "SIG" not in srv.log()


def test_caught_status_error_still_counts_as_started(srv):
    status, headers, body = split(get(srv, "/status_caught_then_start"))
    assert status == "HTTP/1.1 200 OK"
    assert body == (b"start_response called a second time without "
                    b"providing exc_info.")


def _chunks(body):
    out = b""
    while True:
        size, _, rest = body.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            return out
        out += rest[:n]
        body = rest[n + 2:]


def test_write_from_a_thread_outlives_the_app_return(server_factory):
    # A thread's write() was still waiting for room when the app returned
    # []; the task was freed under it (SIGSEGV).  The request now waits
    # for writes in progress, so the client gets every byte.
    srv = server_factory("wsgiapps:dispatch",
                         args=["--threads=4", "--outbuf-high-watermark=65536"])
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.settimeout(20)
    s.connect(("127.0.0.1", srv.port))
    s.sendall(b"GET /thread_write_at_end HTTP/1.1\r\nConnection: close\r\n\r\n")
    time.sleep(1)
    data = read_all(s)
    s.close()
    status, headers, body = split(data)
    assert status == "HTTP/1.1 200 OK"
    assert len(body) == 21_000_000
    assert body == b"a" * 20_000_000 + b"b" * 1_000_000
    assert "exited with code" not in srv.log() and "was sent SIG" not in srv.log()


def test_write_from_a_thread_after_the_end_raises(srv):
    status, headers, body = split(get(srv, "/thread_write_after_end"))
    assert status == "HTTP/1.1 200 OK" and body == b"early"
    status, headers, body = split(get(srv, "/thread_write_result"))
    assert body == b"RuntimeError: write() called after the response ended"


def test_write_from_bool_of_data_keeps_the_head_first(srv):
    # waitress queues the head before it tests the data; a write() from
    # the data's __bool__ used to go out before the status line
    resp = get(srv, "/reentrant_write")
    assert resp.startswith(b"HTTP/1.1 200 OK\r\n")
    status, headers, body = split(resp)
    assert hmap(headers)["transfer-encoding"] == "chunked"
    assert _chunks(body) == b"zzabc"


def test_file_wrapper_with_an_odd_content_length_name(srv):
    # name.lower() returning bytes crashed the worker (SIGSEGV)
    status, headers, body = split(get(srv, "/file_wrapper_odd_cl_name"))
    assert status == "HTTP/1.1 200 OK"
    assert body.endswith(b"0123456789")
    assert "was sent SIG" not in srv.log()


def test_file_wrapper_cl_name_lower_that_writes_sends_one_head(srv):
    with srv.connect() as s:
        s.sendall(b"GET /file_wrapper_cl_name_lower_writes HTTP/1.1\r\n\r\n")
        resp = read_all(s)  # 15 of 100 bytes: the server closes
    assert resp.count(b"HTTP/1.1 200 OK") == 1
    status, headers, body = split(resp)
    assert hmap(headers)["content-length"] == "100"
    assert body == b"early0123456789"


def test_file_wrapper_cl_name_lower_that_restarts(srv):
    # start_response(exc_info) from inside the walk: a new header list,
    # as waitress's "response_headers = []"; the walk's result stands
    resp = get(srv, "/file_wrapper_cl_name_lower_restarts")
    assert resp.count(b"HTTP/1.1") == 1
    status, headers, body = split(resp)
    assert status == "HTTP/1.1 500 Oops"
    assert hmap(headers)["x-old"] == "o" and hmap(headers)["content-length"] == "10"
    assert body == b"0123456789"


def test_file_wrapper_prepare_that_writes_sends_one_head(srv):
    resp = get(srv, "/file_wrapper_prepare_writes")
    assert resp.count(b"HTTP/1.1 200 OK") == 1
    status, headers, body = split(resp)
    assert hmap(headers)["content-length"] == "10" and body == b"0123456789"


def test_file_wrapper_read_may_return_bytearray(srv):
    status, headers, body = split(get(srv, "/file_wrapper_bytearray_read"))
    assert status == "HTTP/1.1 200 OK"
    assert hmap(headers)["content-length"] == "10" and body == b"0123456789"


def test_most_negative_content_length(srv):
    # as waitress: the header as given, no body, then close (the worker
    # used to negate INT64_MIN)
    status, headers, body = until_close(srv, b"GET /cl_most_negative HTTP/1.1\r\n\r\n")
    assert status == "HTTP/1.1 200 OK"
    assert hmap(headers)["content-length"] == "-9223372036854775808"
    assert body == b""
    assert "exited with code" not in srv.log()


def test_input_seek_limits(srv):
    raw = b"POST /input_seek_limits HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
    status, headers, body = split(fetch(srv, raw))
    assert body.decode().split("\n") == [
        "OverflowError: new position too large",
        "OverflowError: new position too large",
        "OverflowError: Python int too large to convert to C int",
    ]


def test_access_log_remote_user_keeps_every_byte(server_factory, tmp_path):
    # SPEC.md 16.3: REMOTE_USER from the environ after the app; bytes
    # below 0x20 as \xHH.  A NUL used to end the field.
    log = tmp_path / "access.log"
    srv = server_factory("wsgiapps:dispatch", args=[f"--access-log={log}"])
    get(srv, "/remote_user")
    get(srv, "/remote_user_odd")
    assert wait_for(lambda: log.exists() and "remote_user_odd" in log.read_text(), 5)
    lines = log.read_text().splitlines()
    assert [l.split(" [")[0] for l in lines if "/remote_user" in l] == [
        "127.0.0.1 - alice", '127.0.0.1 - a\\x00b\\"c']


def test_kept_spilled_input_is_not_closed_under_its_holder(server_factory):
    # a spilled body's file held by the app past the request (as a thread
    # reading it would: closing it then was a use-after-free inside io's
    # readline) closes when the app lets go, not at the task's end
    srv = server_factory("wsgiapps:dispatch", args=["--inbuf-overflow=1000"])
    body = b"line of text\n" * 1600
    raw = b"POST /input_keep HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    assert split(fetch(srv, raw))[2] == b"kept"
    assert split(get(srv, "/input_kept_read"))[2] == b"20800 line of te"


def test_head_built_while_a_finalizer_restarts_the_response(srv):
    # the collector runs __del__ inside the head's allocations; its
    # start_response(exc_info) used to free the headers under build_head
    resp = get(srv, "/head_while_collecting")
    assert resp.count(b"HTTP/1.1 ") == 1
    assert "was sent SIG" not in srv.log() and "exited with code" not in srv.log()
    assert get(srv, "/one_item").startswith(b"HTTP/1.1 200 OK")


def test_file_wrapper_read_that_writes_stays_in_the_length(srv):
    status, headers, body = split(get(srv, "/file_wrapper_read_writes"))
    assert hmap(headers)["content-length"] == "3000"
    assert body == b"B" * 3000
    assert wait_log(srv, "application-written content exceeded the number of bytes")


def test_kept_client_disconnected_tells_whether_its_connection_closed(srv):
    # kept past its request, it answered False forever
    with srv.connect() as s:
        s.sendall(b"GET /discon_keep HTTP/1.1\r\n\r\n")
        assert read_response(s)[2] == b"kept"
        s.sendall(b"GET /discon_kept HTTP/1.1\r\n\r\n")  # same, still open
        assert read_response(s)[2] == b"False"
    # the server closed that one before the client saw its EOF
    data = srv.request(b"GET /discon_keep HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert split(data)[2] == b"kept"
    assert split(get(srv, "/discon_kept"))[2] == b"True"


def test_sys_executable_is_the_python_interpreter(srv):
    # it was "" (or waitressd itself when on PATH)
    exe, out = split(get(srv, "/python_executable"))[2].split(b" ")
    assert out == b"42"
    assert re.search(rb"/python3\.\d+$", exe), exe


def test_keyboard_interrupt_after_headers_cuts(srv):
    status, headers, body = split(get(srv, "/keyboard_interrupt_after"))
    assert status == "HTTP/1.1 200 OK" and body == b"5\r\nfirst\r\n"
    status, headers, body = split(get(srv, "/one_item"))
    assert status == "HTTP/1.1 200 OK"


def test_exc_info_before_headers_replaces_them(srv):
    status, headers, body = split(get(srv, "/exc_info_before_headers", extra=b"Connection: close\r\n"))
    assert status == "HTTP/1.1 500 Oops"
    assert "x-old" not in hmap(headers)
    assert body == b"sorry"


def test_exc_info_after_headers_reraises(srv):
    status, headers, body = split(get(srv, "/exc_info_after_headers"))
    assert status == "HTTP/1.1 200 OK"
    assert body == b"7\r\npartial\r\n"
    assert wait_log(srv, "KeyError: 'late'")


def test_exc_info_keeps_first_content_length(srv):
    status, headers, body = until_close(srv, b"GET /exc_info_cl_quirk HTTP/1.1\r\n\r\n")
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert hmap(headers)["content-length"] == "10"
    assert "connection" not in hmap(headers)  # decided after the head went out
    assert body == b"oops"  # then the server closed (read_all returned)


def test_expose_tracebacks(server_factory):
    s = server_factory("wsgiapps:dispatch", args=["--expose-tracebacks"])
    status, headers, body = split(get(s, "/raise_before"))
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert body.startswith(b"Internal Server Error\r\n\r\nTraceback (most recent call last):\n")
    assert b"ValueError: boom before start_response\n\r\n\r\n(generated by waitressd)" in body
    assert int(hmap(headers)["content-length"]) == len(body)


def test_exposed_traceback_keeps_a_nul_byte(server_factory):
    # the detail is bytes with a length, not a C string (SPEC.md 13, 14)
    s = server_factory("wsgiapps:dispatch", args=["--expose-tracebacks"])
    status, headers, body = split(get(s, "/raise_nul"))
    assert status == "HTTP/1.1 500 Internal Server Error"
    assert b"ValueError: before\x00after\n\r\n\r\n(generated by waitressd)" in body
    assert int(hmap(headers)["content-length"]) == len(body)


def test_logged_path_of_an_exception_is_not_cut(server_factory):
    # waitress logs the whole path; a 1 KiB buffer used to cut it
    s = server_factory("wsgiapps:dispatch")
    path = "/raise_before/" + "p" * 3000 + "/end"
    status, _, _ = split(get(s, path))
    assert status == "HTTP/1.1 500 Internal Server Error"
    wait_for(lambda: "Traceback" in s.log())
    assert f"Exception while serving {path}\nTraceback" in s.log()


def test_logged_traceback_keeps_a_nul_byte(server_factory):
    # the error log gets the whole traceback, as Python's logging writes
    # it: the record is not cut at the NUL (SPEC.md 13)
    s = server_factory("wsgiapps:dispatch")
    status, _, _ = split(get(s, "/raise_nul"))
    assert status == "HTTP/1.1 500 Internal Server Error"
    wait_for(lambda: b"ValueError: before" in s.log_path.read_bytes())
    text = s.log_path.read_bytes()
    assert b"Exception while serving /raise_nul\nTraceback" in text
    assert b"ValueError: before\x00after\n" in text


# ---------------------------------------------------------------------
# wsgi.file_wrapper (SPEC.md 12.8)

FILE_DATA = bytes(range(256)) * 400


def test_file_wrapper_real_file_keepalive(srv):
    with srv.connect() as s:
        for _ in range(2):
            s.sendall(b"GET /file_wrapper HTTP/1.1\r\n\r\n")
            status, headers, body = read_response(s)
            assert hmap(headers)["content-length"] == str(len(FILE_DATA))
            assert "connection" not in hmap(headers)
            assert body == FILE_DATA


def test_file_wrapper_after_write_continues_the_body(srv):
    # the head went out with write(): no second head; the file's bytes are
    # framed as the rest of the body (12.3), and the connection stays usable
    with srv.connect() as s:
        s.sendall(b"GET /file_wrapper_after_write?cl=5 HTTP/1.1\r\n\r\n"
                  b"GET /file_wrapper_after_write?cl=5 HTTP/1.1\r\n\r\n"
                  b"GET /file_wrapper_after_write HTTP/1.1\r\n\r\n")
        for _ in range(2):
            status, headers, body = read_response(s)
            assert (status, hmap(headers)["content-length"], body) == (
                "HTTP/1.1 200 OK", "5", b"xyabc")
            assert "connection" not in hmap(headers)
        status, headers, body = read_response(s)
        assert status == "HTTP/1.1 200 OK"
        assert hmap(headers)["transfer-encoding"] == "chunked"
        assert body == b"xyabc"  # read_response took the chunks apart


def test_file_wrapper_on_204_is_dropped_with_the_warning(srv):
    mark = len(srv.log())
    status, headers, body = split(get(srv, "/file_wrapper_no_body", extra=b"Connection: close\r\n"))
    assert (status, body) == ("HTTP/1.1 204 No Content", b"")
    assert wait_for(lambda: "application-written content was ignored due to HTTP response "
                            "that may not contain a message-body: (204 No Content)"
                            in srv.log()[mark:], 5), srv.log()[mark:]


def test_file_wrapper_from_current_position(srv):
    status, headers, body = split(get(srv, "/file_wrapper_offset", extra=b"Connection: close\r\n"))
    assert body == FILE_DATA[100:]
    assert hmap(headers)["content-length"] == str(len(FILE_DATA) - 100)


def test_file_wrapper_short_and_long_content_length(srv):
    with srv.connect() as s:
        s.sendall(b"GET /file_wrapper_short_cl HTTP/1.1\r\n\r\n")
        status, headers, body = read_response(s)
        assert [v for k, v in headers if k == "Content-Length"] == ["10"]
        assert body == FILE_DATA[:10]
        s.sendall(b"GET /file_wrapper_long_cl HTTP/1.1\r\n\r\n")
        status, headers, body = read_response(s)
        assert [v for k, v in headers if k == "Content-Length"] == ["10"]
        assert body == b"0123456789"
        s.sendall(b"GET /one_item HTTP/1.1\r\n\r\n")
        assert read_response(s)[2] == b"ok"


def test_file_wrapper_bytesio(srv):
    status, headers, body = split(get(srv, "/file_wrapper_bytesio", extra=b"Connection: close\r\n"))
    assert hmap(headers)["content-length"] == str(len(FILE_DATA))
    assert body == FILE_DATA


def test_file_wrapper_unseekable_iterates(srv):
    status, headers, body = split(get(srv, "/file_wrapper_unseekable"))
    assert hmap(headers)["transfer-encoding"] == "chunked"
    assert body == (b"400\r\n" + b"x" * 1024 + b"\r\n") * 4 + b"388\r\n" + b"x" * 904 + b"\r\n0\r\n\r\n"
    assert wait_log(srv, "UNSEEKABLE CLOSED")


def test_file_wrapper_subclass_is_read_through_its_read(srv):
    # SPEC.md 12.8: instances are read with filelike.read(); sendfile is for
    # real files, and a subclass overriding read() is not one
    status, headers, body = split(get(srv, "/file_wrapper_subclass",
                                      extra=b"Connection: close\r\n"))
    assert hmap(headers)["content-length"] == "6"
    assert body == b"ABCDEF"


def test_file_wrapper_empty_file_falls_back(srv):
    status, headers, body = split(get(srv, "/file_wrapper_empty"))
    assert hmap(headers)["transfer-encoding"] == "chunked"
    assert body == b"0\r\n\r\n"


# ---------------------------------------------------------------------
# wsgiref.validate: every conforming fixture app, wrapped, is clean

def _valid_names():
    import sys
    sys.path.insert(0, str(APPS))
    try:
        import wsgiapps
        return list(wsgiapps.VALID)
    finally:
        sys.path.remove(str(APPS))


@pytest.fixture(scope="module")
def validated_srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("validated"), app="validated:dispatch")
    s.start()
    yield s
    s.stop()
    s.check_log()


@pytest.mark.parametrize("name", _valid_names())
@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_validator_is_happy(validated_srv, name, version):
    body = b"line1\nline2\nline3\nrest"
    raw = (f"POST /{name}?0.01 HTTP/{version}\r\nContent-Type: text/plain\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    if name in ("large",):
        raw = f"GET /{name}?100000 HTTP/{version}\r\n\r\n".encode()
    before = validated_srv.log()
    resp = fetch(validated_srv, raw)
    status, headers, out = split(resp)
    expected_500 = name in ("exc_info_before_headers",)
    assert expected_500 or "500" not in status, resp[:2000]
    time.sleep(0.05)
    new = validated_srv.log()[len(before):]
    assert "Exception while serving" not in new, new
    assert "WSGIWarning" not in new and "AssertionError" not in new, new


def test_validator_echo(server_factory):
    s = server_factory("validated:echo")
    d = echo(s, b"POST /x HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc")
    assert d["body"] == "abc"
    assert "Exception while serving" not in s.log()


def test_validator_harness_detects_a_bad_app(validated_srv):
    """Meta-test: the validated variant does report a non-bytes item."""
    fetch(validated_srv, b"GET /str_item HTTP/1.1\r\n\r\n")
    assert wait_log(validated_srv, "AssertionError")
    # let the module fixture's teardown log check pass: AssertionError is
    # not one of its bad marks, and the server is still serving
    assert split(fetch(validated_srv, b"GET /one_item HTTP/1.1\r\n\r\n"))[0].endswith("200 OK")


# ---------------------------------------------------------------------
# boot (SPEC.md 1, 4.1)

def test_sys_path_order(server_factory, monkeypatch, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    monkeypatch.setenv("PYTHONPATH", "/nonexistent-pythonpath-entry")
    s = server_factory("wsgiapps:dispatch", args=[f"--pythonpath={extra}"])
    d = json.loads(split(get(s, "/syspath"))[2])
    path = d["path"]
    assert path[0] == str(APPS)
    assert path[1] == str(extra)
    assert path[-1] == d["cwd"] == str(s.tmp)
    assert "/nonexistent-pythonpath-entry" in path
    assert any(p.endswith("dist-packages") for p in path)


def test_logging_basic_config(srv):
    get(srv, "/applog?xyz")
    assert wait_log(srv, "WARNING:fixture:app-logged-xyz")


def test_dotted_name_and_call(server_factory):
    s = server_factory("wsgiapps.one_item")
    assert split(get(s, "/"))[2] == b"ok"
    s = server_factory("wsgiapps:make_app", args=["--call"])
    assert split(get(s, "/"))[2] == b"ok"


@pytest.mark.parametrize("app,reason", [
    ("nosuchmodule:app", "No module named 'nosuchmodule'"),
    ("wsgiapps:nope", "module 'wsgiapps' has no attribute 'nope'"),
])
def test_unresolvable_app_fails_startup(app, reason):
    from conftest import free_port, run
    r = run(f"--listen=127.0.0.1:{free_port()}", f"--pythonpath={APPS}", app)
    assert r.returncode == 1
    out = r.stdout + r.stderr
    assert f"Error: Cannot import WSGI application '{app}': {reason}" in out, out
    assert "Traceback (most recent call last)" in out


def test_check_mode_resolves_app():
    from conftest import run
    r = run("-t", f"--pythonpath={APPS}", "wsgiapps:one_item")
    assert r.returncode == 0, r.stderr
    r = run("-t", f"--pythonpath={APPS}", "wsgiapps:nope")
    assert r.returncode == 1
    assert "Cannot import WSGI application 'wsgiapps:nope'" in r.stderr


def test_check_mode_resolves_a_factory_without_calling_it():
    # -t does not run a --call factory: it would run as root where the
    # workers run it as `user` (a sqlite file it creates would be root's),
    # and a thread it starts would keep the check from ending.  A failing
    # factory is found at start, with the reason.
    from conftest import free_port, run
    r = run("-t", "--call", f"--pythonpath={APPS}", "wsgiapps:broken_factory")
    assert r.returncode == 0, r.stderr
    r = run("-t", "--call", f"--pythonpath={APPS}", "wsgiapps:no_such_factory")
    assert r.returncode == 1
    assert "Cannot import WSGI application 'wsgiapps:no_such_factory'" in r.stderr
    r = run(f"--listen=127.0.0.1:{free_port()}", "--call", f"--pythonpath={APPS}",
            "wsgiapps:broken_factory")
    assert r.returncode == 1
    assert ("Error: Cannot import WSGI application 'wsgiapps:broken_factory': "
            "missing SECRET_KEY") in r.stderr


def test_empty_forwarded_client_is_an_app_error_not_memory(server_factory):
    # waitress's middleware raises IndexError on an empty client address
    # from a trusted Forwarded header: a 500, logged as that error.
    srv = server_factory("echo:app", args=["--trusted-proxy=127.0.0.1",
                                           "--trusted-proxy-headers=forwarded"])
    resp = srv.request(b'GET / HTTP/1.1\r\nForwarded: for=":80"\r\n\r\n')
    assert resp.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    log = srv.log()
    assert "Exception while serving /" in log
    assert "IndexError" in log and "MemoryError" not in log
