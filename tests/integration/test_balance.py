"""Fair accept across workers (SPEC.md 4.1, issue 8): a burst of new
connections is split between the workers, and a worker whose threads are
all held by a slow request leaves new connections to its siblings.
Real binary, loopback only; responses name the worker that served them;
no assertion depends on timing."""
import collections
import os
import select
import signal
import socket
import time

import pytest

from conftest import Server, free_port, read_response, stats, stop_process, wait_for


@pytest.fixture
def server(tmp_path):
    started = []

    def make(workers, threads=4):
        sport = free_port()
        srv = Server(tmp_path / f"s{len(started)}", app="balanceapp:app", workers=workers,
                     threads=threads, args=[f"--stats=127.0.0.1:{sport}"])
        srv.tmp.mkdir(parents=True, exist_ok=True)
        started.append(srv)
        srv.start()
        # every worker booted and listening, not only the first one
        def idle():
            found = [w["pid"] for w in stats(sport)["workers"] if w["status"] == "idle"]
            return found if len(found) == workers else None

        pids = wait_for(idle)
        assert pids, stats(sport)
        return srv, sport, sorted(pids)

    yield make
    for srv in started:
        srv.stop()
    for srv in started:
        srv.check_log()


def ask_pid(sock, path="/pid", keepalive=True):
    version = "HTTP/1.1\r\nHost: x" if keepalive else "HTTP/1.0"
    sock.sendall(f"GET {path} {version}\r\n\r\n".encode())
    status, _, body = read_response(sock)
    assert " 200 " in status, status
    return int(body)


@pytest.mark.parametrize("workers", [2, 3])
def test_burst_of_keepalive_connections_is_split_evenly(server, workers):
    # wrk opens its keep-alive connections in one burst and keeps them for
    # the whole run: before the fix the first worker awake took them all.
    srv, sport, pids = server(workers)
    conns = [socket.create_connection(("127.0.0.1", srv.port), timeout=20) for _ in range(40)]
    try:
        served = collections.Counter(ask_pid(c) for c in conns)
        # the connection stays with the worker that accepted it
        assert all(ask_pid(c) == pid for c, pid in zip(conns, [ask_pid(c) for c in conns]))
        doc = stats(sport)
    finally:
        for c in conns:
            c.close()
    even = 40 / workers
    assert set(served) <= set(pids), (served, pids)
    for pid in pids:
        assert 0.6 * even <= served[pid] <= 1.4 * even, (served, pids)
    by_stats = {w["pid"]: w["connections"] for w in doc["workers"]}
    assert sum(by_stats.values()) == 40 and by_stats == {p: served[p] for p in pids}, (by_stats, served)


def test_as_many_connections_as_threads_are_split_exactly(server):
    # The bench's sleep-10ms: 8 keep-alive connections on 2 workers x 4
    # threads.  A 5/3 split leaves one request waiting behind a thread on
    # one worker while a thread idles on the other (p99 doubled, 1/8 less
    # throughput); 4/4 is the only good one.  Several bursts, as the split
    # depends on which worker wakes first.
    srv, sport, pids = server(2)
    for _ in range(8):
        conns = [socket.create_connection(("127.0.0.1", srv.port), timeout=20) for _ in range(8)]
        try:
            served = collections.Counter(ask_pid(c) for c in conns)
        finally:
            for c in conns:
                c.close()
        assert sorted(served.values()) == [4, 4], served
        assert wait_for(lambda: sum(w["connections"] for w in stats(sport)["workers"]) == 0)


def test_worker_busy_with_a_slow_request_leaves_new_connections_to_another(server, tmp_path):
    # One thread per worker.  A held request keeps one worker's only thread
    # busy; connections opened meanwhile, in a burst and one after another,
    # must all be served by the other worker while the hold lasts (before
    # the fix the busy worker could accept one and keep it waiting).  The
    # other worker's own thread is taken now and then, and its count of
    # connections may lag a closed one: neither may tip the choice.
    srv, sport, pids = server(2, threads=1)
    gate = tmp_path / "release"
    slow = socket.create_connection(("127.0.0.1", srv.port), timeout=40)
    try:
        slow.sendall(f"GET /hold?file={gate} HTTP/1.0\r\n\r\n".encode())
        busy = wait_for(lambda: [w["pid"] for w in stats(sport)["workers"]
                                 if w["busy_threads"] == 1])
        assert busy and len(busy) == 1, stats(sport)
        other = [p for p in pids if p != busy[0]][0]
        # a worker full for a moment is not avoided (every worker is, under
        # a fast load); one full for 50 ms (loop.c FAIR_FULL_MS) is
        time.sleep(0.2)

        burst = [socket.create_connection(("127.0.0.1", srv.port), timeout=20) for _ in range(3)]
        try:
            assert [ask_pid(c) for c in burst] == [other] * 3
        finally:
            for c in burst:
                c.close()
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as c:
                assert ask_pid(c, keepalive=False) == other
        # all that while the held request was still held
        assert select.select([slow], [], [], 0)[0] == []
    finally:
        gate.touch()
    try:
        status, _, body = read_response(slow)
        assert " 200 " in status and int(body) == busy[0]
    finally:
        slow.close()


def test_stopped_worker_does_not_keep_connections_waiting(server):
    # A worker that stops running (SIGSTOP here; a hung loop looks the
    # same) still looks like the better home for a while: its slot says it
    # listens and has fewer connections.  The other worker must take the
    # connections it leaves waiting in the accept queue.
    srv, sport, pids = server(2)
    first = [socket.create_connection(("127.0.0.1", srv.port), timeout=20) for _ in range(4)]
    held = []
    try:
        owners = collections.Counter(ask_pid(c) for c in first)
        assert set(owners) == set(pids), owners
        stopped = pids[0]
        stop_process(stopped)
        try:
            # kept open, so the live worker gets further and further ahead
            for _ in range(10):
                c = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
                held.append(c)
                assert ask_pid(c) == pids[1]
        finally:
            os.kill(stopped, signal.SIGCONT)
    finally:
        for c in first + held:
            c.close()
