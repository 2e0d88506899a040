"""Real frameworks behind waitressd: Debian's Flask and Django, served from
tests/apps/flask_app.py and tests/apps/djangoproj/."""
import json

import pytest

from conftest import Server, read_response

from test_wsgi import fetch, hmap, split


@pytest.fixture(scope="module")
def flask_srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("flask"), app="flask_app:app")
    s.start()
    yield s
    s.stop()
    s.check_log()


@pytest.fixture(scope="module")
def django_srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("django"), app="djangoproj.wsgi:application")
    s.start()
    yield s
    s.stop()
    s.check_log()


def test_flask_index_keepalive(flask_srv):
    with flask_srv.connect() as s:
        for _ in range(3):
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, headers, body = read_response(s)
            assert status == "HTTP/1.1 200 OK"
            assert body == b"Hello from Flask"
            assert hmap(headers)["content-length"] == "16"
            assert hmap(headers)["server"] == "waitressd"


def test_flask_form_post(flask_srv):
    body = b"a=1&b=caf%C3%A9"
    raw = (b"POST /echo?q=x HTTP/1.1\r\nHost: example.com:8080\r\nConnection: close\r\n"
           b"Content-Type: application/x-www-form-urlencoded\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body)) + body
    status, headers, out = split(fetch(flask_srv, raw))
    assert status == "HTTP/1.1 200 OK"
    d = json.loads(out)
    assert d["form"] == {"a": "1", "b": "caf\u00e9"}
    assert d["args"] == {"q": "x"}
    assert d["path"] == "/echo"
    assert d["host"] == "example.com:8080"
    assert d["scheme"] == "http"
    assert d["remote_addr"] == "127.0.0.1"


def test_flask_chunked_upload(flask_srv):
    payload = bytes(range(256)) * 40
    boundary = b"XyZ"
    form = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + payload + b"\r\n--XyZ--\r\n")
    chunks = b"".join(b"%X\r\n%s\r\n" % (len(form[i:i + 1000]), form[i:i + 1000])
                      for i in range(0, len(form), 1000))
    raw = (b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
    status, headers, out = split(fetch(flask_srv, raw))
    assert status == "HTTP/1.1 200 OK", out
    assert json.loads(out) == {"name": "f.bin", "size": len(payload), "sum": sum(payload)}


def test_flask_streaming_is_chunked(flask_srv):
    status, headers, body = split(fetch(flask_srv, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert hmap(headers)["transfer-encoding"] == "chunked"
    assert hmap(headers)["connection"] == "close"
    decoded = b""
    rest = body
    while True:
        line, _, rest = rest.partition(b"\r\n")
        n = int(line, 16)
        if n == 0:
            break
        decoded += rest[:n]
        rest = rest[n + 2:]
    assert decoded == b"".join(b"line %d\n" % i for i in range(5))


def test_flask_send_file_uses_file_wrapper(flask_srv):
    with flask_srv.connect() as s:
        s.sendall(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(s)
        assert status == "HTTP/1.1 200 OK"
        assert hmap(headers)["content-length"] == "10000"
        assert body == b"0123456789" * 1000
        s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(s, head_only=True)
        assert status == "HTTP/1.1 200 OK"


def test_flask_error_is_flasks_500(flask_srv):
    status, headers, body = split(fetch(flask_srv, b"GET /error HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status == "HTTP/1.1 500 INTERNAL SERVER ERROR"
    assert b"Internal Server Error" in body


def test_flask_404(flask_srv):
    status, headers, body = split(fetch(flask_srv, b"GET /nope HTTP/1.0\r\n\r\n"))
    assert status == "HTTP/1.0 404 NOT FOUND"
    assert hmap(headers)["connection"] == "close"


def test_django_index(django_srv):
    with django_srv.connect() as s:
        for _ in range(2):
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, headers, body = read_response(s)
            assert status == "HTTP/1.1 200 OK"
            assert body == b"Hello from Django"
            assert hmap(headers)["content-type"] == "text/plain"


def test_django_post_form(django_srv):
    body = b"name=b%C3%B8b&x=1"
    raw = (b"POST /echo?page=2 HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n"
           b"Content-Type: application/x-www-form-urlencoded\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body)) + body
    status, headers, out = split(fetch(django_srv, raw))
    assert status == "HTTP/1.1 200 OK", out
    d = json.loads(out)
    assert d["method"] == "POST"
    assert d["post"] == {"name": "b\u00f8b", "x": "1"}
    assert d["get"] == {"page": "2"}
    assert d["path"] == "/echo"
    assert d["host"] == "example.org"
    assert d["secure"] is False
    assert d["meta_port"] == str(django_srv.port)


def test_django_streaming(django_srv):
    status, headers, body = split(fetch(django_srv, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status == "HTTP/1.1 200 OK"
    assert hmap(headers)["transfer-encoding"] == "chunked"
    assert body.endswith(b"0\r\n\r\n")
    assert b"chunk 3\n" in body


def test_django_file_response(django_srv):
    with django_srv.connect() as s:
        s.sendall(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(s)
        assert status == "HTTP/1.1 200 OK"
        assert body == b"abcdefghij" * 500
        s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(s)
        assert json.loads(body) == {"ok": True}


def test_django_error_and_404(django_srv):
    status, headers, body = split(fetch(django_srv, b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status == "HTTP/1.1 500 Internal Server Error"
    status, headers, body = split(fetch(django_srv, b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status == "HTTP/1.1 404 Not Found"


@pytest.mark.parametrize("name,path,text", [
    ("flask", "/", b"Hello from Flask"),
    ("flask", "/stream", b"line 4"),
    ("flask", "/file", b"0123456789"),
    ("django", "/", b"Hello from Django"),
    ("django", "/stream", b"chunk 3"),
    ("django", "/file", b"abcdefghij"),
])
def test_validated_frameworks(server_factory, name, path, text):
    """The frameworks behind wsgiref.validate: no complaint about us."""
    s = server_factory("validated:" + name)
    raw = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    status, headers, body = split(fetch(s, raw))
    assert status == "HTTP/1.1 200 OK", body
    assert text in body
    log = s.log()
    assert "Exception" not in log and "Warning" not in log and "Error" not in log, log
