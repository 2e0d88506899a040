"""The bench app's workloads, byte for byte, on one keep-alive connection.

These are the shapes scripts/bench measures; they also guard the output
fast paths of the WSGI bridge (head and body coalesced into one write up
to 16 KiB, separate writes beyond, per-request value caches), so every
size class around that limit is checked here.  No timing is asserted."""
import os
import subprocess
import sys
import time
from pathlib import Path

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


BENCH = Path(__file__).resolve().parent.parent.parent / "scripts" / "bench"


@pytest.mark.parametrize("args, names", [
    (["--workloads=hello,nope"], ["--workloads", "nope", "hello-close"]),
    (["--servers=waitressd,bogus"], ["--servers", "bogus", "gunicorn-sync"]),
    (["--servers=waitressd-base"], ["--servers", "waitressd-base", "--baseline"]),
    (["--duration=0"], ["--duration", "0", "more than 0"]),
    (["--duration=-1"], ["--duration", "-1", "more than 0"]),
    (["--repeat=0"], ["--repeat", "0", "at least 1"]),
    (["--wrk-threads=0"], ["--wrk-threads", "0", "at least 1"]),
])
def test_bench_refuses_a_bad_argument_in_one_line(args, names):
    # before anything is installed, built or started (no --no-install:
    # a bad argument must not get as far as apt-get)
    r = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in names:
        assert n in lines[0], (n, lines[0])
    assert r.stdout == ""


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def test_bench_stopped_by_term_stops_its_server():
    # A timeout or a CI job ends the bench with TERM: the server it started
    # (in a session of its own) must not be left running.
    from conftest import WAITRESSD
    bench = subprocess.Popen(
        [sys.executable, str(BENCH), "--no-install", f"--waitressd={WAITRESSD}",
         "--servers=waitressd", "--workloads=sleep-10ms", "--duration=60",
         "--out=/dev/null"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        server = []
        while not server and time.monotonic() < deadline:
            server = [p for p in _children(bench.pid)
                      if os.path.exists(f"/proc/{p}")
                      and b"waitressd" in open(f"/proc/{p}/cmdline", "rb").read()]
            time.sleep(0.1)
        assert server, "the bench started no server"
        time.sleep(1.0)  # serving, or about to be
        bench.terminate()
        bench.wait(timeout=30)
        deadline = time.monotonic() + 15
        while os.path.exists(f"/proc/{server[0]}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{server[0]}"), "server left running"
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
