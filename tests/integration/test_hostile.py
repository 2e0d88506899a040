"""Hostile clients (issue 7, SPEC.md 5.5, 8, 15, 19 item 9): slowloris,
connect-and-reset floods, a reader that stalls on a huge response, fd
exhaustion (EMFILE), and very large uploads and downloads.  Everything is
on loopback and bounded in time; the worker is watched through /proc
(CPU time, RSS, open fds).

The big-transfer size defaults to 256 MiB so that the suite stays fast on
a small CI machine (it runs twice, the second time under ASan); set
WD_HOSTILE_BIG_MIB=1024 to run the 1 GiB case of the issue by hand."""
import os
import pathlib
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import pytest

from conftest import rss_kib, WAITRESSD, Server, read_all, read_response, wait_for

APP = "hostile:app"
MIB = 1024 * 1024
BIG_MIB = int(os.environ.get("WD_HOSTILE_BIG_MIB", "256"))
TICK = os.sysconf("SC_CLK_TCK")


def _sanitized():
    """True when waitressd carries a sanitizer runtime: its allocator keeps
    freed memory in quarantine and is several times slower, so memory and
    latency bounds get more room (they stay meaningful)."""
    try:
        with open(WAITRESSD, "rb") as f:
            data = f.read()
    except OSError:
        return False
    if b"__asan_init" in data or b"__tsan_init" in data:
        return True
    try:
        out = subprocess.run(["ldd", WAITRESSD], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "libasan" in out or "libtsan" in out


SANITIZED = _sanitized()
SLOW = 3 if SANITIZED else 1


@pytest.fixture
def lean_asan(monkeypatch):
    """Under ASan, a small quarantine: by default it keeps up to 256 MiB of
    freed blocks resident, which would hide the server's own figures."""
    if SANITIZED:
        opts = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1")
        monkeypatch.setenv("ASAN_OPTIONS", opts + ":quarantine_size_mb=4:thread_local_quarantine_size_kb=64")


# --- /proc helpers (shared with test_faults.py and test_netfuzz.py) ------


def children(pid):
    try:
        text = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return sorted(int(p) for p in text.split())


def worker_pids(srv, n=1, timeout=10):
    """The pids of SRV's N workers once all of them serve."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = children(srv.proc.pid)
        if len(pids) == n:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"expected {n} workers, have {children(srv.proc.pid)}")


def cpu_ticks(pid):
    """utime + stime of PID, in clock ticks."""
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def alive(pid):
    """False for a missing or zombie process."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def get(srv, path, timeout=10):
    with srv.connect(timeout) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        return read_response(s)


def settle_fds(pid, idle, timeout=5, slack=0):
    """Wait until PID's fd count is back to IDLE (+SLACK); return it."""
    wait_for(lambda: fd_count(pid) <= idle + slack, timeout)
    return fd_count(pid)


def rst_close(s):
    """Close S with an RST instead of a FIN (SO_LINGER 0)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


class RssSampler(threading.Thread):
    """Samples PID's RSS every 20 ms until stopped; .peak in KiB."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = rss_kib(pid)
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except (OSError, AssertionError):
                return
            time.sleep(0.02)

    def stop(self):
        self.halt.set()
        self.join()
        return self.peak


def warm_up(srv):
    """Touch every code path once so that idle figures are steady."""
    for path in ("/", "/pid", "/download?300000", "/sized?300000"):
        assert get(srv, path)[0].endswith("200 OK")
    with srv.connect() as s:
        body = b"w" * (700 * 1024)
        s.sendall(b"POST /upload HTTP/1.0\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        assert read_response(s)[0].endswith("200 OK")
    time.sleep(0.3)  # let the worker close the warm-up connections


# --- slowloris -------------------------------------------------------------


def test_slowloris_does_not_delay_others_and_is_timed_out(server_factory):
    srv = server_factory(APP, args=["--channel-timeout=2", "--cleanup-interval=1"])
    (pid,) = worker_pids(srv)
    warm_up(srv)
    idle_fds = fd_count(pid)

    lorises = []
    for _ in range(50):
        s = srv.connect(timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        lorises.append(s)
    latencies = []
    for round_ in range(12):
        for s in lorises:
            s.sendall(b"a")
        t0 = time.monotonic()
        status, _, body = get(srv, "/")
        latencies.append(time.monotonic() - t0)
        assert status.endswith("200 OK") and body == b"ok"
        time.sleep(0.15)
    assert max(latencies) < 0.3 * SLOW, latencies
    assert fd_count(pid) >= idle_fds + 50

    # they stop dribbling: closed between 2 and 2 + 1 s later, silently
    t0 = time.monotonic()
    for s in lorises:
        s.settimeout(6)
        assert s.recv(100) == b""
        s.close()
    assert time.monotonic() - t0 < 4.5
    assert settle_fds(pid, idle_fds) == idle_fds
    assert get(srv, "/")[0].endswith("200 OK")


# --- connect-and-reset floods (SPEC.md 19 item 9) ---------------------------


def test_connect_reset_flood_leaves_cpu_idle_and_fds_flat(server_factory):
    srv = server_factory(APP)
    (pid,) = worker_pids(srv)
    warm_up(srv)
    time.sleep(0.2)
    idle_fds = fd_count(pid)

    start_ticks = cpu_ticks(pid)
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < 2.0:
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", srv.port))
            if n % 3 == 1:
                s.sendall(b"GET / HTTP/1.1\r\nHost")  # mid-request
            elif n % 3 == 2:
                s.sendall(b"GET /sleep?0.2 HTTP/1.1\r\n\r\n")  # app running
        except OSError:
            pass
        rst_close(s)
        n += 1
    flood_wall = time.monotonic() - t0
    assert n > 200
    # the loop keeps up with the flood; afterwards it goes back to sleep
    time.sleep(0.5)
    flood_cpu = (cpu_ticks(pid) - start_ticks) / TICK
    assert flood_cpu < flood_wall, (n, flood_cpu)
    quiet_start = cpu_ticks(pid)
    time.sleep(1.0)
    assert cpu_ticks(pid) - quiet_start <= 0.05 * TICK * SLOW
    assert settle_fds(pid, idle_fds) == idle_fds
    assert get(srv, "/")[0].endswith("200 OK")
    assert children(srv.proc.pid) == [pid]


# --- a reader that stops reading --------------------------------------------


def test_stalled_reader_bounds_memory_and_blocks_app_thread(server_factory, tmp_path, lean_asan):
    hwm = 4 * MIB
    srv = server_factory(APP, args=[f"--outbuf-high-watermark={hwm}"])
    (pid,) = worker_pids(srv)
    warm_up(srv)
    idle_rss = rss_kib(pid)
    progress = tmp_path / "progress"

    s = srv.connect(timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    n_chunks = 100 * MIB // 65536  # a 100 MiB response
    s.sendall(f"GET /progress?n={n_chunks}&f={progress} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert s.recv(4096).startswith(b"HTTP/1.1 200 OK")

    def produced():
        try:
            return int(progress.read_text() or 0)
        except (OSError, ValueError):
            return 0

    # wait until the app thread stops producing: blocked on back-pressure
    last, stable_since = -1, time.monotonic()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = produced()
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since > 0.6:
            break
        time.sleep(0.05)
    assert 0 < last < n_chunks
    # at most the watermark plus what socket buffers hold was produced
    assert last * 65536 < hwm + 16 * MIB

    ticks = cpu_ticks(pid)
    time.sleep(1.0)
    assert cpu_ticks(pid) - ticks <= 0.05 * TICK * SLOW, "worker spins while stalled"
    assert produced() == last, "app thread not blocked"
    growth = rss_kib(pid) - idle_rss
    assert growth * 1024 < hwm + 8 * MIB * SLOW, f"RSS grew by {growth} KiB"

    # the client goes away: the task is aborted, the worker serves on
    rst_close(s)
    assert wait_for(lambda: "Client disconnected" in srv.log(), 5), srv.log()
    assert get(srv, "/")[0].endswith("200 OK")
    assert children(srv.proc.pid) == [pid]


def stalled_fresh_readers(srv, n, query, length):
    """RSS growth of SRV's worker (KiB) while N clients that asked for
    /fresh?QUERY (a body of LENGTH bytes) read nothing; then one reads its
    whole body, all are reset, and the worker serves on."""
    (pid,) = worker_pids(srv)
    warm_up(srv)
    status, _, body = get(srv, f"/fresh?{query}")
    assert status.endswith("200 OK") and body == b"f" * length
    time.sleep(0.3)
    idle_rss = rss_kib(pid)
    held = []
    try:
        for _ in range(n):
            s = srv.connect(timeout=10)
            s.sendall(f"GET /fresh?{query} HTTP/1.1\r\n\r\n".encode())
            held.append(s)
        time.sleep(2)
        growth = rss_kib(pid) - idle_rss
        status, _, body = read_response(held[0])
        assert status.endswith("200 OK") and body == b"f" * length
    finally:
        for s in held:
            rst_close(s)
    assert get(srv, "/")[0].endswith("200 OK")
    return growth


def test_stalled_readers_of_one_piece_bodies_hold_at_most_outbuf_overflow(
        server_factory, lean_asan):
    # A body returned as one bytes object is sent from the app's own
    # buffer, and what the socket does not take is borrowed rather than
    # copied -- but the borrow holds the whole object, the part already
    # sent too.  It used to be allowed when the *rest* fitted within
    # outbuf_overflow: 20 stalled readers of a fresh 4 MiB body (of
    # which the socket takes over 3 MiB) held 4 MiB each, 53 MiB in all.
    # SPEC.md 15: past outbuf_overflow pending output moves to a file.
    n, size, overflow = 20, 4 * MIB, MIB
    srv = server_factory(APP, args=["--channel-timeout=600"])
    growth = stalled_fresh_readers(srv, n, str(size), size)
    # not scaled for ASan (lean_asan): 53 MiB would pass at 3 times
    assert growth * 1024 < n * (overflow + 256 * 1024) + 8 * MIB, \
        f"RSS grew by {growth} KiB for {n} stalled readers"


def test_stalled_readers_of_a_body_cut_to_its_length_do_not_hold_the_rest(
        server_factory, lean_asan):
    # An app's bytes object longer than its Content-Length is cut (SPEC.md
    # 12.3); borrowing what the socket did not take of the sent part kept
    # the whole object alive: 3 stalled readers of a 48 MiB object cut to
    # 4 MiB held 49-150 MiB.  The rest of the sent part is copied instead.
    n, size, cl = 3, 48 * MIB, 4 * MIB
    srv = server_factory(APP, args=["--channel-timeout=600",
                                    f"--outbuf-overflow={8 * MIB}"])
    growth = stalled_fresh_readers(srv, n, f"{size}:{cl}", cl)
    assert growth * 1024 < n * cl + 8 * MIB, \
        f"RSS grew by {growth} KiB for {n} stalled readers"


# --- fd exhaustion -----------------------------------------------------------


def test_emfile_pauses_accepting_without_spinning_and_recovers(tmp_path):
    srv = Server(tmp_path, app=APP, args=["--connection-limit=1000"], threads=2)
    nofile = 96
    srv.argv = ["prlimit", f"--nofile={nofile}:{nofile}", "--"] + srv.argv
    held = []
    with srv:
        (pid,) = worker_pids(srv)
        warm_up(srv)
        idle_fds = fd_count(pid)
        assert idle_fds < nofile - 10
        # fill the worker's table and then some (those wait in the backlog)
        for _ in range(nofile - idle_fds + 10):
            held.append(srv.connect(timeout=10))
        assert wait_for(lambda: fd_count(pid) >= nofile - 1, 5), fd_count(pid)
        assert wait_for(lambda: "Too many open files" in srv.log(), 5), srv.log()
        time.sleep(0.3)
        ticks = cpu_ticks(pid)
        time.sleep(1.0)
        assert cpu_ticks(pid) - ticks <= 0.1 * TICK * SLOW, "busy loop on EMFILE"

        # a client queued in the backlog is served once fds come back
        with srv.connect(timeout=10) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            time.sleep(0.2)
            for h in held:
                h.close()
            held.clear()
            t0 = time.monotonic()
            status, _, body = read_response(s)
            assert status.endswith("200 OK") and body == b"ok"
            assert time.monotonic() - t0 < 2 * SLOW
        assert settle_fds(pid, idle_fds) == idle_fds
        assert get(srv, "/")[0].endswith("200 OK")
    for h in held:
        h.close()


# --- very large bodies: temp-file spill keeps memory flat ---------------------


def test_big_upload_spills_to_disk(server_factory, tmp_path, monkeypatch, lean_asan):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    # the default limit (1 GiB) refuses a body of exactly 1 GiB with a 413
    srv = server_factory(APP, args=["--max-request-body-size=4294967296"])
    (pid,) = worker_pids(srv)
    warm_up(srv)
    idle_rss = rss_kib(pid)
    size = BIG_MIB * MIB
    block = bytes(range(256)) * 4096  # 1 MiB
    sampler = RssSampler(pid)
    sampler.start()
    with srv.connect(timeout=60 * SLOW) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        total_crc = 0
        for _ in range(BIG_MIB):
            s.sendall(block)
            total_crc = zlib.crc32(block, total_crc)
        status, _, body = read_response(s)
    peak = sampler.stop()
    assert status.endswith("200 OK")
    assert body == b"%d %d" % (size, total_crc)
    growth = peak - idle_rss
    assert growth < 16 * 1024 * SLOW, f"RSS grew by {growth} KiB for a {BIG_MIB} MiB upload"


def test_big_download_keeps_memory_flat(server_factory, lean_asan):
    srv = server_factory(APP)
    (pid,) = worker_pids(srv)
    warm_up(srv)
    idle_rss = rss_kib(pid)
    size = BIG_MIB * MIB
    sampler = RssSampler(pid)
    sampler.start()
    got = 0
    buf = bytearray(1 << 20)
    with srv.connect(timeout=60 * SLOW) as s:
        s.sendall(f"GET /sized?{size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        head, _, rest = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert b"Content-Length: %d" % size in head
        got = len(rest)
        while got < size:
            n = s.recv_into(buf)
            assert n > 0
            got += n
    peak = sampler.stop()
    assert got == size
    growth = peak - idle_rss
    assert growth < 16 * 1024 * SLOW, f"RSS grew by {growth} KiB for a {BIG_MIB} MiB download"


# --- network fuzzing (scripts/netfuzz, short run) ------------------------------


def test_netfuzz_short_run(server_factory, lean_asan):
    srv = server_factory(APP, workers=2)
    worker_pids(srv, 2)
    script = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "netfuzz"
    res = subprocess.run(
        [sys.executable, str(script), "10", f"--port={srv.port}", f"--master-pid={srv.proc.pid}",
         f"--rss-slack-mib={16 * SLOW}"],
        capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stdout + res.stderr + srv.log()
    assert "netfuzz: OK" in res.stdout


@pytest.mark.parametrize("lookahead, n", [(0, 8_000_000), (2, 8_000_000), (0, 3_000_000)])
def test_a_closing_response_is_not_cut_by_what_the_client_sent_after(server_factory, lookahead, n):
    # A response the server closes (HTTP/1.0 keep-alive without a length,
    # SPEC.md 12.5), bigger than the socket buffers, and a pipelined
    # request behind it (discarded, SPEC.md 5.2): closing with those bytes
    # unread made the kernel send RST and drop the response's unsent tail
    # (4.5 of 8 MB arrived; waitress does the same).  The connection is
    # now half-closed after the response and drained before it is closed
    # (a lingering close, as nginx does).  At 3 MB the whole response is
    # in the kernel's send buffer when the server is done with it, and the
    # next request arrives only after that.
    srv = server_factory(APP, args=[f"--channel-request-lookahead={lookahead}"])
    for _ in range(3):
        s = srv.connect(timeout=20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET /download?%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % n)
        time.sleep(0.2)
        s.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        data = b""
        while True:
            chunk = s.recv(1 << 20)  # a reset raises here
            if not chunk:
                break
            data += chunk
            time.sleep(0.001)
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200 OK") and len(body) == n


def test_an_early_413_with_the_body_still_coming_is_read_in_full(server_factory):
    # 413 goes out before the body is read (SPEC.md 6.5); a client still
    # sending it must see the answer, and then EOF, not a reset
    srv = server_factory(APP, args=["--max-request-body-size=1000"])
    s = srv.connect(timeout=20)
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n")
    sent = 0
    try:
        for _ in range(40):
            s.sendall(b"x" * 65536)
            sent += 65536
    except OSError:
        pass
    data = read_all(s)
    assert data.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
    # the server drained what was sent and then let the client finish
    assert sent == 40 * 65536


def test_a_lingering_connection_is_closed_when_the_client_keeps_quiet(server_factory):
    # the drain is bounded: a client that sent pipelined bytes and then
    # neither sends more nor closes is closed after a short wait
    srv = server_factory(APP)
    (pid,) = worker_pids(srv)
    warm_up(srv)
    idle = fd_count(pid)
    s = srv.connect(timeout=20)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
              b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = read_all(s)  # EOF (the half-close) right after the answer
    assert data.startswith(b"HTTP/1.1 200 OK") and data.count(b"HTTP/1.1") == 1
    assert wait_for(lambda: fd_count(pid) == idle, 15), "still lingering"
    s.close()
