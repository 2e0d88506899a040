"""The bench app's workloads, byte for byte, on one keep-alive connection.

These are the shapes scripts/bench measures; they also guard the output
fast paths of the WSGI bridge (head and body coalesced into one write up
to 16 KiB, separate writes beyond, per-request value caches), so every
size class around that limit is checked here.  No timing is asserted."""
import pytest

from conftest import read_response


@pytest.fixture
def bench_srv(server_factory):
    return server_factory("benchapp:app", threads=2)


def get(s, path, extra=b""):
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
    return read_response(s)


def test_hello_has_length_and_body(bench_srv):
    with bench_srv.connect() as s:
        for _ in range(3):  # repeated: the environ template and caches
            status, headers, body = get(s, b"/hello")
            assert status == "HTTP/1.1 200 OK"
            assert ("Content-Length", "13") in headers
            assert body == b"Hello, World!"


def test_one_mib_body_is_intact(bench_srv):
    with bench_srv.connect() as s:
        status, headers, body = get(s, b"/mib")
        assert status == "HTTP/1.1 200 OK"
        assert ("Content-Length", str(1 << 20)) in headers
        assert body == b"x" * (1 << 20)
        # the connection is still usable afterwards
        assert get(s, b"/hello")[2] == b"Hello, World!"


@pytest.mark.parametrize("size", [1, 16000, 16200, 16384, 70000, 300000])
def test_echo_sizes_around_the_coalescing_limits(bench_srv, size):
    data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    with bench_srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: "
                  + str(size).encode() + b"\r\n\r\n" + data)
        status, headers, body = read_response(s)
        assert status == "HTTP/1.1 200 OK"
        assert body == data


def test_generator_is_chunked(bench_srv):
    with bench_srv.connect() as s:
        status, headers, body = get(s, b"/gen")
        assert ("Transfer-Encoding", "chunked") in headers
        assert body == b"y" * (100 * 1024)


def test_head_request_gets_no_body(bench_srv):
    with bench_srv.connect() as s:
        s.sendall(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, rest = read_response(s, head_only=True)
        assert status == "HTTP/1.1 200 OK"
        assert ("Content-Length", "13") in headers
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        # the next response follows directly: no stray body bytes
        assert read_response(s)[2] == b"Hello, World!"
