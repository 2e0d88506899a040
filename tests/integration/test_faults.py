"""Faults (issue 7): a full temp directory while a large body arrives, a
worker killed mid-request, and a master killed outright.

Full disk: the request body spills to an unlinked file in $TMPDIR past
inbuf_overflow (SPEC.md 8).  When that file cannot grow, the request is
answered "500 Internal Server Error" (detail "The request body could not
be stored."), the connection closes, and the worker serves on.  waitress
itself only logs and drops the connection there; an answer is kinder to
clients and proxies."""
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import read_response
from test_hostile import (APP, MIB, SLOW, alive, children, fd_count, get, wait_for,
                          worker_pids)


# --- full disk for the temp directory ----------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs to serve as $TMPDIR (needs root and mount(2))."""
    mnt = tmp_path / "small-tmp"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=1777", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def upload(srv, size, timeout=15):
    """POST SIZE bytes from a thread while reading the response; returns
    (status line, body) or (None, b"") when the connection just closed."""
    s = srv.connect(timeout=timeout)
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size

    def send():
        try:
            s.sendall(head)
            block = b"u" * 65536
            left = size
            while left > 0:
                s.sendall(block[:left])
                left -= len(block)
        except OSError:
            pass

    t = threading.Thread(target=send, daemon=True)
    t.start()
    try:
        status, _, body = read_response(s)
    except (AssertionError, ConnectionResetError):
        status, body = None, b""
    t.join(timeout)
    s.close()
    return status, body


def test_full_tmpdir_answers_500_and_worker_keeps_serving(server_factory, small_tmpfs, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(small_tmpfs))
    srv = server_factory(APP, args=["--inbuf-overflow=65536"])
    (pid,) = worker_pids(srv)
    # fits: spills to the tmpfs and works
    status, body = upload(srv, 512 * 1024)
    assert status.endswith("200 OK"), srv.log()
    assert body.startswith(b"524288 ")
    # does not fit
    status, body = upload(srv, 4 * MIB)
    assert status == "HTTP/1.1 500 Internal Server Error", srv.log()
    assert b"The request could not be stored." in body
    assert "No space left on device" in srv.log()
    # the worker is unharmed, its temp file is gone, the disk is free again
    assert children(srv.proc.pid) == [pid]
    assert get(srv, "/")[0].endswith("200 OK")
    assert wait_for(lambda: os.statvfs(small_tmpfs).f_bfree == os.statvfs(small_tmpfs).f_blocks, 5)
    status, body = upload(srv, 512 * 1024)
    assert status.endswith("200 OK")


# --- a worker killed mid-request ------------------------------------------------


def test_worker_sigkill_costs_only_its_inflight_requests(server_factory, tmp_path):
    srv = server_factory(APP, workers=2)
    pids = worker_pids(srv, 2)
    pidfile = tmp_path / "holder"
    victim_conn = srv.connect(timeout=15)
    victim_conn.sendall(f"GET /hold?s=30&f={pidfile} HTTP/1.0\r\n\r\n".encode())
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text(), 5)
    victim = int(pidfile.read_text())
    assert victim in pids
    (survivor,) = [p for p in pids if p != victim]

    os.kill(victim, signal.SIGKILL)
    # its in-flight request is lost: the connection ends without a response
    assert victim_conn.recv(100) == b""
    victim_conn.close()
    # everyone else is served without a single failure meanwhile
    served = set()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:
        status, _, body = get(srv, "/pid")
        assert status.endswith("200 OK")
        served.add(int(body))
    assert victim not in served
    # the master noticed and replaced it
    assert wait_for(lambda: len(children(srv.proc.pid)) == 2 and victim not in children(srv.proc.pid), 5)
    assert survivor in children(srv.proc.pid)
    assert f"Worker (pid:{victim}) was sent SIGKILL!" in srv.log()
    assert srv.proc.poll() is None


# --- the master killed outright -------------------------------------------------


def test_master_sigkill_takes_workers_down(server_factory, tmp_path):
    srv = server_factory(APP, workers=2)
    pids = worker_pids(srv, 2)
    port = srv.port
    srv.proc.kill()
    srv.proc.wait(5)
    # no orphan keeps serving or holding the port
    try:
        assert wait_for(lambda: not any(alive(p) for p in pids), 5 * SLOW), [p for p in pids if alive(p)]
    finally:
        for p in pids:  # never leave orphans behind, even on failure
            if alive(p):
                os.kill(p, signal.SIGKILL)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
