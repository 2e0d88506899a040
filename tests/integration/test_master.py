"""The master process (SPEC.md 2.3, 3, 4, 16.1, 17): scoreboard and
heartbeats, signals and the transactional HUP reload, daemon duties and
the stats endpoint.  Real binary, loopback only, bounded loops."""
import concurrent.futures
import itertools
import json
import os
import pathlib
import re
import resource
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import APPS, WAITRESSD, Server, free_port, read_all, read_response, stop_process, wait_for
from test_hostile import TICK, alive, children, cpu_ticks, fd_count


def http_get(port, path="/", timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        return read_response(s)


def stats(port, path="/"):
    status, headers, body = http_get(port, path)
    assert status == "HTTP/1.0 200 OK"
    if path == "/metrics":
        return body.decode()
    return json.loads(body)


def worker_pids(stats_port, generation=None):
    return sorted(w["pid"] for w in stats(stats_port)["workers"]
                  if generation is None or w["generation"] == generation)


class Load:
    """Client threads sending requests until stop(): half of them reuse a
    keep-alive connection (honouring Connection: close), half open a fresh
    connection per request.  Every response body names the worker."""

    def __init__(self, port, threads=6, path="/"):
        self.port, self.path = port, path
        self.ok = 0
        self.failures = []  # (error, pid of the connection's last response)
        self.bodies = []
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i % 2 == 0,), daemon=True)
                        for i in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.halt.set()
        for t in self.threads:
            t.join(15)

    def run(self, keepalive):
        sock, last_pid = None, None
        deadline = time.monotonic() + 60
        while not self.halt.is_set() and time.monotonic() < deadline:
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                    last_pid = None
                if keepalive:
                    sock.sendall(f"GET {self.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                else:
                    sock.sendall(f"GET {self.path} HTTP/1.0\r\n\r\n".encode())
                status, headers, body = read_response(sock)
                assert status.startswith("HTTP/1.") and " 200 " in status, status
                last_pid = int(body.split()[-1])
                with self.lock:
                    self.ok += 1
                    self.bodies.append(body)
                close = any(k.lower() == "connection" and v.lower() == "close" for k, v in headers)
                if not keepalive or close:
                    sock.close()
                    sock = None
            except Exception as exc:  # a failed request
                with self.lock:
                    self.failures.append((repr(exc), last_pid))
                if sock is not None:
                    sock.close()
                sock = None
        if sock is not None:
            sock.close()


def start(tmp_path, app="masterapp:app", args=(), config=None, workers=2, threads=4, unix=False):
    pathlib.Path(tmp_path).mkdir(parents=True, exist_ok=True)
    srv = Server(tmp_path, app=app, args=args, config=config, workers=workers,
                 threads=threads, unix=unix)
    return srv.start()


def configured(tmp_path, config, workers=1, app="masterapp:app", drop=("--listen",), args=()):
    """A server whose listen address comes from its config file (the
    address group of the command line would override the file's)."""
    pathlib.Path(tmp_path).mkdir(parents=True, exist_ok=True)
    srv = Server(tmp_path, app=app, config=config, workers=workers, args=args)
    srv.argv = [a for a in srv.argv if not a.startswith(drop)]
    return srv


@pytest.fixture
def master(tmp_path):
    started = []

    def make(*a, check=True, **kw):
        srv = start(tmp_path / f"m{len(started)}", *a, **kw)
        started.append((srv, check))
        return srv

    yield make
    for srv, _ in started:
        srv.stop()
    for srv, check in started:
        if check:
            srv.check_log()


# ---------------------------------------------------------------- stats


def test_stats_json_has_every_key(master):
    sport = free_port()
    srv = master(args=[f"--stats=127.0.0.1:{sport}"], workers=2)
    http_get(srv.port, "/pid")
    doc = wait_for(lambda: (d := stats(sport)) and len(d["workers"]) == 2
                   and all(w["status"] == "idle" for w in d["workers"]) and d, 5)
    for key in ("version", "pid", "start_time", "uptime", "reloads", "generation",
                "workers_target", "listen", "listen_queue", "workers_spawned",
                "workers_timed_out", "requests", "workers"):
        assert key in doc, key
    assert doc["pid"] == srv.proc.pid
    assert doc["workers_target"] == 2 and doc["generation"] == 1 and doc["reloads"] == 0
    assert doc["listen"] == [f"127.0.0.1:{srv.port}"]
    assert doc["listen_queue"] == [0]
    assert doc["requests"] >= 1
    for w in doc["workers"]:
        assert set(w) == {"id", "pid", "generation", "status", "started_at", "requests",
                          "active_requests", "queued_requests", "connections", "threads",
                          "busy_threads", "bytes_sent", "exceptions", "last_heartbeat",
                          "respawns"}
        assert w["status"] in ("idle", "busy", "booting", "stopping")
        assert w["threads"] == 4
        assert abs(w["last_heartbeat"] - time.time()) < 3
    assert sum(w["bytes_sent"] for w in doc["workers"]) > 0


def test_stats_counts_busy_worker_and_requests_of_dead_workers(master):
    sport = free_port()
    srv = master(args=[f"--stats=127.0.0.1:{sport}"], workers=1)
    for _ in range(3):
        http_get(srv.port, "/pid")
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"GET /slow?delay=1.5 HTTP/1.0\r\n\r\n")
    busy = wait_for(lambda: [w for w in stats(sport)["workers"] if w["status"] == "busy"], 3)
    assert busy and busy[0]["active_requests"] == 1 and busy[0]["busy_threads"] == 1
    read_all(s)
    s.close()
    pid = worker_pids(sport)[0]
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: worker_pids(sport) not in ([], [pid]), 5)
    doc = stats(sport)
    assert doc["requests"] >= 4  # the dead worker's count is kept
    assert doc["workers"][0]["respawns"] == 1


def test_stats_counts_application_exceptions(master):
    sport = free_port()
    srv = master(args=[f"--stats=127.0.0.1:{sport}"], workers=1)
    assert stats(sport)["workers"][0]["exceptions"] == 0
    assert http_get(srv.port, "/raise")[0] == "HTTP/1.0 500 Internal Server Error"
    assert http_get(srv.port, "/raise")[0] == "HTTP/1.0 500 Internal Server Error"
    http_get(srv.port, "/pid")
    assert wait_for(lambda: stats(sport)["workers"][0]["exceptions"] == 2, 3)


def test_one_worker_queues_every_connection_like_waitress(master):
    # With no sibling to take a connection, pausing the accept would only
    # leave it in the kernel's queue: one worker accepts and queues them
    # all, and "Task queue depth is N" counts as waitress does (SPEC.md
    # 5.2, 5.6: only connection_limit stops the accepting).
    sport = free_port()
    srv = master(args=[f"--stats=127.0.0.1:{sport}"], workers=1, threads=1)
    conns = []
    for delay in ("1.5", "0", "0", "0", "0"):
        c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        c.sendall(f"GET /slow?delay={delay} HTTP/1.0\r\n\r\n".encode())
        conns.append(c)
        time.sleep(0.2)
    assert stats(sport)["workers"][0]["connections"] == 5
    for c in conns:
        assert read_response(c)[0] == "HTTP/1.0 200 OK"
        c.close()
    depths = re.findall(r"Task queue depth is (\d+)", srv.log())
    assert depths[:4] == ["1", "2", "3", "4"], depths


def keepalive_conns_by_worker(port, n):
    """N keep-alive connections, grouped by the pid of the worker that
    holds each (asked with /pid on it)."""
    by_pid = {}
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(b"GET /pid HTTP/1.1\r\n\r\n")
        status, _, body = read_response(c)
        assert status == "HTTP/1.1 200 OK"
        by_pid.setdefault(int(body), []).append(c)
    return by_pid


def test_worker_with_a_deep_queue_leaves_new_connections_to_a_sibling(master):
    # issue 5: a worker whose task queue is deeper than its threads stops
    # accepting until it drains, so new connections go to other workers,
    # even to one holding many more connections (which fair accept alone
    # would not prefer).  Two workers, one thread each: worker A keeps
    # three connections and gets a slow request on each (one running, two
    # queued); worker B keeps about fifteen idle ones.
    sport = free_port()
    srv = master(args=[f"--stats=127.0.0.1:{sport}"], workers=2, threads=1)
    wait_for(lambda: [w["status"] for w in stats(sport)["workers"]] == ["idle"] * 2, 5)
    by_pid = keepalive_conns_by_worker(srv.port, 30)
    assert len(by_pid) == 2, {p: len(c) for p, c in by_pid.items()}
    a, b = sorted(by_pid, key=lambda p: len(by_pid[p]))
    slow, rest = by_pid[a][:3], by_pid[a][3:]
    assert len(slow) == 3, {p: len(c) for p, c in by_pid.items()}
    for c in rest:
        c.close()
    for c in slow:
        c.sendall(b"GET /slow?delay=2 HTTP/1.1\r\n\r\n")
    time.sleep(0.3)
    for _ in range(6):
        status, _, body = http_get(srv.port, "/pid")
        assert status == "HTTP/1.0 200 OK"
        assert int(body) == b
    for c in slow:
        assert read_response(c)[0] == "HTTP/1.1 200 OK"
        c.close()
    for c in by_pid[b]:
        c.close()


def test_stats_metrics_prometheus(master):
    sport = free_port()
    srv = master(args=[f"--stats=127.0.0.1:{sport}"], workers=2)
    http_get(srv.port, "/pid")
    status, headers, body = http_get(sport, "/metrics")
    assert dict(headers)["Content-Type"] == "text/plain; version=0.0.4"
    text = body.decode()
    assert "waitressd_requests_total " in text
    assert "# TYPE waitressd_requests_total counter" in text
    ids = {w["id"] for w in stats(sport)["workers"]}
    for i in ids:
        assert f'waitressd_worker_requests_total{{worker="{i}"}}' in text
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert line.startswith("waitressd_"), line
            float(line.rsplit(" ", 1)[1])


def test_stats_answers_a_silent_client_after_two_seconds(master):
    sport = free_port()
    master(args=[f"--stats=127.0.0.1:{sport}"], workers=1)
    with socket.create_connection(("127.0.0.1", sport), timeout=5) as s:
        t0 = time.monotonic()
        data = read_all(s)
        elapsed = time.monotonic() - t0
    assert data.startswith(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n")
    assert b"Connection: close\r\n" in data
    assert 1.5 < elapsed < 4
    json.loads(data.partition(b"\r\n\r\n")[2])


def test_stats_metrics_path_forms(master):
    # the path is what SPEC.md 6.4 makes of the target: the query and the
    # fragment are not part of it, and an absolute-form target has one
    sport = free_port()
    master(args=[f"--stats=127.0.0.1:{sport}"], workers=1)

    def content_type(target):
        status, headers, _ = http_get(sport, target)
        assert status == "HTTP/1.0 200 OK"
        return dict(headers)["Content-Type"]

    for target in ("/metrics", "/metrics?x=1", "/metrics#top", "/%6Detrics",
                   "http://127.0.0.1/metrics", "HTTP://h:1/metrics?a"):
        assert content_type(target) == "text/plain; version=0.0.4", target
    for target in ("/metricsx", "/metrics/", "http://h/metrics/x", "http://metrics",
                   "/x/metrics", "a/b://h/metrics"):
        assert content_type(target) == "application/json", target


def test_stats_answers_a_head_with_a_nul_byte_at_once(master):
    # the end of the head is looked for in bytes, not in a C string
    sport = free_port()
    master(args=[f"--stats=127.0.0.1:{sport}"], workers=1)
    with socket.create_connection(("127.0.0.1", sport), timeout=5) as s:
        t0 = time.monotonic()
        s.sendall(b"GET /\x00 HTTP/1.0\r\n\r\n")
        data = read_all(s)
        assert time.monotonic() - t0 < 1.5
    assert data.startswith(b"HTTP/1.0 200 OK\r\n")


def silent_stats_clients(sport, n):
    """N connections to the stats endpoint that send one byte and wait."""
    held = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", sport), timeout=5)
        c.sendall(b"G")
        held.append(c)
    return held


def test_stats_holds_a_bounded_number_of_connections(master):
    # a flood of silent clients: the master keeps a few dozen open and
    # leaves the rest in the listen queue, so its descriptors stay free
    # for the workers it must respawn; each is answered in turn
    sport = free_port()
    srv = master(args=[f"--stats=127.0.0.1:{sport}"], workers=1)
    base = fd_count(srv.proc.pid)
    held = silent_stats_clients(sport, 60)
    try:
        time.sleep(0.5)
        opened = fd_count(srv.proc.pid) - base
        assert 0 < opened <= 32, opened
        for c in held:  # the queued ones too, after their 2 s turn
            assert read_all(c).startswith(b"HTTP/1.0 200 OK\r\n")
    finally:
        for c in held:
            c.close()


def test_stats_out_of_descriptors_does_not_spin_the_master(master):
    # accept() failing with EMFILE left the listener armed: the master
    # looped on it at 100 % CPU (and respawned workers late)
    sport = free_port()
    srv = master(args=[f"--stats=127.0.0.1:{sport}"], workers=1)
    pid = srv.proc.pid
    fds = fd_count(pid)
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (fds + 4, hard))
    held = silent_stats_clients(sport, 12)
    try:
        time.sleep(0.3)
        c0 = cpu_ticks(pid)
        time.sleep(1.0)
        assert cpu_ticks(pid) - c0 < 0.3 * TICK
    finally:
        for c in held:
            c.close()
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    assert wait_for(lambda: http_get(sport, "/")[0] == "HTTP/1.0 200 OK", 5)
    assert http_get(srv.port, "/pid")[0] == "HTTP/1.0 200 OK"


def test_stats_on_unix_path_and_not_on_app_listener(master, tmp_path):
    path = tmp_path / "stats.sock"
    srv = master(args=[f"--stats=unix:{path}"], workers=1)
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = read_all(s)
    assert json.loads(data.partition(b"\r\n\r\n")[2])["workers_target"] == 1
    # the application's listener still serves the app, not the stats
    assert http_get(srv.port, "/")[2].startswith(b"masterapp ")
    srv.stop()
    assert not path.exists()


# ---------------------------------------------------------------- signals


def test_ttin_ttou_change_worker_count(master):
    sport = free_port()
    srv = master(args=[f"--stats=127.0.0.1:{sport}"], workers=2)
    assert wait_for(lambda: len(worker_pids(sport)) == 2)
    srv.signal(signal.SIGTTIN)
    assert wait_for(lambda: stats(sport)["workers_target"] == 3
                    and len([w for w in stats(sport)["workers"] if w["status"] == "idle"]) == 3)
    before = worker_pids(sport)
    srv.signal(signal.SIGTTOU)
    # one at a time: a second pending signal of the same kind merges
    assert wait_for(lambda: stats(sport)["workers_target"] == 2)
    srv.signal(signal.SIGTTOU)
    assert wait_for(lambda: len(worker_pids(sport)) == 1 and stats(sport)["workers_target"] == 1)
    srv.signal(signal.SIGTTOU)  # at 1: ignored
    time.sleep(0.5)
    assert stats(sport)["workers_target"] == 1 and len(worker_pids(sport)) == 1
    assert worker_pids(sport)[0] in before
    log = srv.log()
    assert "Handling signal: ttin" in log and "Handling signal: ttou" in log


def test_usr2_is_logged_and_ignored(master):
    srv = master(workers=1)
    srv.signal(signal.SIGUSR2)
    assert wait_for(lambda: "USR2 not supported, ignored" in srv.log(), 3)
    assert http_get(srv.port, "/pid")[0].endswith("200 OK")


def test_usr1_reopens_access_log(master, tmp_path):
    access = tmp_path / "access.log"
    srv = master(args=[f"--access-log={access}"], workers=2)
    http_get(srv.port, "/before")
    assert wait_for(lambda: access.exists() and "/before" in access.read_text(), 3)
    access.rename(tmp_path / "access.log.1")
    srv.signal(signal.SIGUSR1)
    assert wait_for(lambda: access.exists(), 3)
    time.sleep(0.3)  # the workers reopen after the master
    for _ in range(4):
        http_get(srv.port, "/after")
    assert wait_for(lambda: access.read_text().count("/after") == 4, 3)
    assert "/after" not in (tmp_path / "access.log.1").read_text()
    assert "Handling signal: usr1" in srv.log()


def test_usr1_reopens_relative_logs_where_they_were_opened(master, tmp_path):
    # A relative log path names a file in the directory waitressd started
    # in.  The app may change the worker's directory (os.chdir is one
    # call away); a USR1 reopen went to a new file there.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    srv = master(args=["--access-log=access.log"], workers=1)
    access = srv.tmp / "access.log"
    http_get(srv.port, f"/chdir?{elsewhere}")
    assert wait_for(lambda: access.exists() and "/chdir" in access.read_text(), 3)
    access.rename(srv.tmp / "access.log.1")
    srv.signal(signal.SIGUSR1)
    assert wait_for(lambda: access.exists(), 3)
    time.sleep(0.3)  # the worker reopens after the master
    for _ in range(3):
        http_get(srv.port, "/after")
    assert wait_for(lambda: access.exists() and access.read_text().count("/after") == 3, 3)
    assert not (elsewhere / "access.log").exists()


@pytest.mark.parametrize("error_log", ["-", "error.log"])
def test_usr1_leaves_fd_2_alone_once_the_app_closed_it(master, error_log):
    # If the app closed fd 2, the next connection accepted takes that
    # number.  The reopen then took the client's socket for the log:
    # "-" was reopened as a copy of fd 2, and a file was dup2()ed over
    # fd 2 (meant for the app's print() and logging).  Either way the
    # next error record went to a client, or its socket was lost.
    srv = master(workers=1, threads=2, args=[f"--error-log={error_log}"])
    log = srv.log_path if error_log == "-" else srv.tmp / error_log
    pid = int(http_get(srv.port, "/close-stderr")[2])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s)[2] == str(pid).encode()
        assert os.readlink(f"/proc/{pid}/fd/2").startswith("socket:")  # the client
        os.kill(pid, signal.SIGUSR1)
        time.sleep(0.3)
        assert http_get(srv.port, "/raise")[0].endswith("500 Internal Server Error")
        assert wait_for(lambda: "masterapp was asked to fail" in log.read_text(), 3)
        s.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_response(s)
        assert status.endswith("200 OK") and body == str(pid).encode()


def test_term_waits_for_slow_request_then_cleans_up(tmp_path):
    pidfile = tmp_path / "wd.pid"
    srv = start(tmp_path / "srv", args=[f"--pidfile={pidfile}"], workers=2, unix=True)
    try:
        assert int(pidfile.read_text()) == srv.proc.pid
        assert pidfile.read_text().endswith("\n")
        s = srv.connect()
        s.sendall(b"GET /slow?delay=2 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)
        srv.signal(signal.SIGTERM)
        status, headers, body = read_response(s)
        s.close()
        assert status == "HTTP/1.1 200 OK"
        assert ("Connection", "close") in headers
        assert srv.proc.wait(10) == 0
        assert not pidfile.exists()
        assert not os.path.exists(srv.unix_path)
        log = srv.log()
        assert "Handling signal: term" in log and "Shutting down: Master" in log
    finally:
        srv.stop()
    srv.check_log()


def test_int_during_graceful_stop_is_fast(tmp_path):
    srv = start(tmp_path / "srv", workers=1, args=["--graceful-timeout=30"])
    try:
        s = srv.connect()
        s.sendall(b"GET /slow?delay=8 HTTP/1.0\r\n\r\n")
        time.sleep(0.5)
        srv.signal(signal.SIGTERM)
        time.sleep(0.3)
        assert srv.proc.poll() is None  # still draining
        t0 = time.monotonic()
        srv.signal(signal.SIGINT)
        assert srv.proc.wait(5) == 0
        assert time.monotonic() - t0 < 3
        s.close()
    finally:
        srv.stop()


def test_kill9_worker_under_load(master):
    sport = free_port()
    srv = master(args=[f"--stats=127.0.0.1:{sport}"], workers=3, threads=2)
    assert wait_for(lambda: len(worker_pids(sport)) == 3)
    before = worker_pids(sport)
    load = Load(srv.port, threads=8, path="/pid").start()
    try:
        time.sleep(1.0)
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()
        new = wait_for(lambda: set(worker_pids(sport)) - set(before), 2, step=0.02)
        assert new, "no replacement worker"
        # the replacement serves within a second
        seen = wait_for(lambda: any(int(b) in new for b in list(load.bodies)[-200:]), 2, step=0.02)
        assert seen and time.monotonic() - t0 < 1.5
        time.sleep(0.5)
    finally:
        load.stop()
    assert wait_for(lambda: f"Worker (pid:{victim}) was sent SIGKILL!" in srv.log(), 3)
    # only connections that were on the killed worker may have failed
    others = [f for f in load.failures if f[1] is not None and f[1] != victim]
    assert others == [], load.failures
    assert load.ok > 100


def frozen_past_its_heartbeat(tmp_path):
    """A one-worker server (2 s worker_timeout) whose worker is stopped
    until the master has logged its WORKER TIMEOUT: (srv, stats port,
    worker pid).  The caller stops the server."""
    sport = free_port()
    srv = start(tmp_path / "srv", workers=1,
                args=["--worker-timeout=2", f"--stats=127.0.0.1:{sport}"])
    try:
        pid = worker_pids(sport)[0]
        stop_process(pid)
        assert wait_for(lambda: f"WORKER TIMEOUT (pid:{pid})" in srv.log(), 6)
    except BaseException:
        srv.stop()
        raise
    return srv, sport, pid


def test_worker_timeout_sigstop(tmp_path):
    srv, sport, pid = frozen_past_its_heartbeat(tmp_path)
    try:
        new = wait_for(lambda: [p for p in worker_pids(sport) if p != pid], 6)
        assert new
        assert wait_for(lambda: http_get(srv.port, "/pid")[2] == str(new[0]).encode(), 5)
        assert stats(sport)["workers_timed_out"] == 1
    finally:
        srv.stop()


def test_heartbeat_sigabrt_is_named_so(tmp_path):
    # the master's ABRT, delivered once the frozen worker runs again
    srv, _, pid = frozen_past_its_heartbeat(tmp_path)
    try:
        os.kill(pid, signal.SIGCONT)
        assert wait_for(lambda: f"Worker (pid:{pid})" in srv.log(), 5), srv.log()
        assert "SIGABRT (heartbeat timeout), exiting" in srv.log(), srv.log()
    finally:
        srv.stop()


def test_sigabrt_dumps_the_python_stacks_then_exits_1(tmp_path):
    # SPEC.md 4.4: ABRT (the master's heartbeat timeout) dumps every Python
    # thread's stack to the error log, faulthandler style, then _exit(1).
    # A request waits in balanceapp's hold loop, so its frame is on a stack.
    sport = free_port()
    srv = start(tmp_path / "srv", app="balanceapp:app", workers=1,
                args=[f"--stats=127.0.0.1:{sport}"])
    gate, entered = tmp_path / "gate", tmp_path / "entered"
    try:
        pid = worker_pids(sport)[0]
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(f"GET /hold?file={gate}&entered={entered} HTTP/1.1\r\n"
                  "Host: x\r\n\r\n".encode())
        # in the app, not only counted active: the bridge may still be
        # building the environ (no Python frame yet) on a loaded machine
        assert wait_for(entered.exists, 5)
        os.kill(pid, signal.SIGABRT)
        assert wait_for(lambda: f"Worker (pid:{pid}) exited with code 1" in srv.log(), 5), srv.log()
        log = srv.log()
        # not the master's: the log does not call it a heartbeat timeout
        assert "SIGABRT (not from the master: abort() or kill), exiting" in log, log
        assert "heartbeat timeout" not in log
        assert "most recent call first" in log, log
        assert re.search(r'File ".*balanceapp\.py", line \d+ in app', log), log
        s.close()
    finally:
        gate.touch()
        srv.stop()


def test_max_requests_retires_worker(master):
    sport = free_port()
    srv = master(args=["--max-requests=5", f"--stats=127.0.0.1:{sport}"], workers=1)
    pids = []
    for _ in range(12):
        status, _, body = http_get(srv.port, "/pid")
        assert status.endswith("200 OK")
        pids.append(int(body))
        time.sleep(0.05)
    runs = [len(list(g)) for _, g in itertools.groupby(pids)]
    # the readiness probe was the first worker's first request
    assert runs[0] == 4 and runs[1] == 5, pids
    log = srv.log()
    assert "Autorestarting worker after current request." in log
    # an expected exit: not reported as "exited with code" (SPEC.md 4.5),
    # and the worker's farewell is a master-category message (16.1)
    assert "exited with code" not in log, log
    assert "[waitressd.master] Worker exiting (pid: " in log, log


def test_a_worker_retiring_under_usr1_exits_0(master):
    # At its very end a worker frees its signal events, and libevent puts
    # back the action it found: the default, which for USR1 (logrotate's
    # postrotate) killed a worker that had already logged "Worker
    # exiting"; the master then saw an unexpected death and backed off.
    srv = master(app="slowboot:app", args=["--max-requests=2"], workers=2, threads=2)
    stop = threading.Event()

    def usr1_storm():
        while not stop.is_set():
            srv.signal(signal.SIGUSR1)
            time.sleep(0.01)

    storm = threading.Thread(target=usr1_storm)
    storm.start()
    try:
        for _ in range(120):
            status, _, _ = http_get(srv.port, "/", timeout=10)
            assert status.endswith("200 OK")
    finally:
        stop.set()
        storm.join()
    log = srv.log()
    assert log.count("Autorestarting worker after current request.") >= 30
    assert "was sent SIGUSR1" not in log, log
    assert "exited with code" not in log, log


def test_a_worker_still_importing_its_app_quits_at_once(tmp_path):
    # SPEC.md 4.4: INT and QUIT exit at once.  A worker importing its app
    # left them to its loop, which runs only after the import.
    for sig in (signal.SIGQUIT, signal.SIGINT):
        d = tmp_path / sig.name
        d.mkdir()
        (d / "slowboot").write_text("60")
        srv = Server(d, app="slowboot:app").start(wait=False)
        try:
            worker = wait_for(lambda: children(srv.proc.pid), 10)
            assert worker, srv.log()
            time.sleep(0.5)  # well into its minute of import
            os.kill(worker[0], sig)
            assert wait_for(lambda: not alive(worker[0]), 5), srv.log()
            assert wait_for(lambda: f"Worker (pid:{worker[0]}) exited with code 0" in srv.log(), 5), srv.log()
        finally:
            srv.stop(signal.SIGINT)  # its next worker imports for a minute


def test_worker_termed_by_someone_else_is_an_unexpected_exit(master):
    # SPEC.md 4.5: only the master's own requests (stop, reload, TTOU) and
    # max_requests are expected exits.  A TERM from outside makes the worker
    # stop gracefully and exit 0, as a retirement does, but it is reported
    # and backed off: the second short-lived death waits 0.2 s.
    sport = free_port()
    srv = master(args=[f"--stats=127.0.0.1:{sport}"], workers=1)
    waits = []
    for _ in range(2):
        assert wait_for(lambda: len(worker_pids(sport)) == 1, 5)
        pid = worker_pids(sport)[0]
        t0 = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        assert wait_for(lambda: (worker_pids(sport) or [pid])[0] != pid, 5)
        waits.append(time.monotonic() - t0)
        assert wait_for(lambda: f"Worker (pid:{pid}) exited with code 0" in srv.log(), 5), srv.log()
    assert waits[1] >= 0.19, waits
    assert "Autorestarting worker" not in srv.log()


def test_process_titles(master):
    sport = free_port()
    srv = master(args=[f"--stats=127.0.0.1:{sport}"], workers=2)
    assert wait_for(lambda: [w["status"] for w in stats(sport)["workers"]] == ["idle"] * 2)
    cmd = pathlib.Path(f"/proc/{srv.proc.pid}/cmdline").read_bytes()
    assert cmd.rstrip(b"\0") == b"waitressd: master"
    titles = set()
    for w in stats(sport)["workers"]:
        titles.add(pathlib.Path(f"/proc/{w['pid']}/cmdline").read_bytes().rstrip(b"\0"))
    assert titles == {b"waitressd: worker 1 (gen 1)", b"waitressd: worker 2 (gen 1)"}


# ---------------------------------------------------------------- reload

RELOAD_APP = '''
import os
VERSION = {version!r}

def app(environ, start_response):
    body = ("%s %d" % (VERSION, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def test_reload_under_load(tmp_path):
    appdir = tmp_path / "app"
    appdir.mkdir()
    (appdir / "reloadapp.py").write_text(RELOAD_APP.format(version="one"))
    port, sport = free_port(), free_port()
    good = (f'listen = "127.0.0.1:{port}";\nworkers = 2;\nthreads = 4;\n'
            f'stats = "127.0.0.1:{sport}";\npythonpath = "{appdir}";\n')
    srv = configured(tmp_path / "srv", good, app="reloadapp:app",
                     drop=("--listen", "--workers", "--threads"), args=[f"--pythonpath={appdir}"])
    srv.port = port
    srv.start()
    conf = srv.tmp / "waitressd.conf"
    load = Load(port, threads=8).start()
    try:
        time.sleep(0.7)
        # 1: plain reload
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: stats(sport)["reloads"] == 1, 10)
        time.sleep(0.5)
        # 2: new application code
        (appdir / "reloadapp.py").write_text(RELOAD_APP.format(version="second"))
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: stats(sport)["reloads"] == 2, 10)
        n = len(load.bodies)
        assert wait_for(lambda: any(b.startswith(b"second ") for b in load.bodies[n:]), 3)
        time.sleep(0.5)
        # 3: an invalid configuration is refused, nothing changes
        conf.write_text(good.replace("threads = 4", "threads = 0"))
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: "reload failed: " in srv.log(), 5)
        time.sleep(0.5)
        assert stats(sport)["reloads"] == 2 and stats(sport)["generation"] == 3
        # 4: a valid one again, with more workers
        conf.write_text(good.replace("workers = 2", "workers = 3"))
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: stats(sport)["reloads"] == 3, 10)
        time.sleep(0.7)
    finally:
        load.stop()
    try:
        assert load.failures == [], load.failures[:5]
        assert load.ok > 200
        tail = load.bodies[-20:]
        assert all(b.startswith(b"second ") for b in tail)
        doc = stats(sport)
        assert doc["workers_target"] == 3
        assert wait_for(lambda: len(stats(sport)["workers"]) == 3, 10)
        assert all(w["generation"] == 4 for w in stats(sport)["workers"])
        log = srv.log()
        assert ("reload failed: threads must be at least 1; keeping previous configuration"
                in log), log
        assert log.count("Handling signal: hup") == 4
    finally:
        assert srv.stop() == 0
    srv.check_log()


def test_reload_keeps_listening_socket_and_binds_new_ones(tmp_path):
    port, port2 = free_port(), free_port()
    srv = configured(tmp_path / "srv", f'listen = "127.0.0.1:{port}";\n')
    srv.port = port
    srv.start()
    conf = srv.tmp / "waitressd.conf"
    try:
        # a connection waiting in the backlog during the reload is served
        conf.write_text(f'listen = "127.0.0.1:{port} 127.0.0.1:{port2}";\n')
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: "Reload complete" in srv.log(), 10)
        assert http_get(port2, "/")[2].startswith(b"masterapp ")
        assert http_get(port, "/")[2].startswith(b"masterapp ")
        # every new listener is announced (SPEC.md 3.1), the kept one once
        log = srv.log()
        assert f"Serving on http://127.0.0.1:{port2}" in log
        assert log.count(f"Serving on http://127.0.0.1:{port}\n") == 1
        # drop the first address: closed once the old workers are gone
        conf.write_text(f'listen = "127.0.0.1:{port2}";\n')
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: srv.log().count("Reload complete") == 2, 10)
        assert wait_for(lambda: _refused(port), 10)
        assert http_get(port2, "/")[0].endswith("200 OK")
    finally:
        srv.stop()
    srv.check_log()


def test_reload_keeps_port_zero_listeners(tmp_path):
    # SPEC.md 4.3 step 3 keeps every socket whose configured address is
    # unchanged; "port 0" is such an address.  Each HUP used to bind a
    # fresh port and close the old one once the old workers left, so
    # clients of the announced port were refused.  Two port-0 entries
    # (never deduplicated, SPEC.md 3.1) keep their two sockets.
    srv = configured(tmp_path / "srv", 'listen = "127.0.0.1:0 127.0.0.1:0";\n')
    srv.start(wait=False)
    served = re.compile(r"Serving on http://127\.0\.0\.1:(\d+)")
    assert wait_for(lambda: len(served.findall(srv.log())) == 2, 10), srv.log()
    ports = [int(p) for p in served.findall(srv.log())]
    assert ports[0] != ports[1]
    srv.port = ports[0]
    try:
        srv.wait_ready()
        pid = int(http_get(ports[0], "/pid")[2])
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: "Reload complete" in srv.log(), 10)
        # the old worker is gone; both announced ports still answer
        assert wait_for(lambda: not pathlib.Path(f"/proc/{pid}").exists(), 10)
        for port in ports:
            assert int(http_get(port, "/pid")[2]) != pid
        assert [int(p) for p in served.findall(srv.log())] == ports
        # the ports they got, now written out, are the same sockets
        (srv.tmp / "waitressd.conf").write_text(
            f'listen = "127.0.0.1:{ports[0]} 127.0.0.1:{ports[1]}";\n')
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: srv.log().count("Reload complete") == 2, 10), srv.log()
        for port in ports:
            assert http_get(port, "/pid")[0].endswith("200 OK")
        assert [int(p) for p in served.findall(srv.log())] == ports
    finally:
        srv.stop()
    srv.check_log()


def _refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_reload_bind_failure_changes_nothing(tmp_path):
    port = free_port()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    busy_port = busy.getsockname()[1]
    srv = configured(tmp_path / "srv", f'listen = "127.0.0.1:{port}";\n')
    srv.port = port
    srv.start()
    try:
        pid = int(http_get(port, "/pid")[2])
        (srv.tmp / "waitressd.conf").write_text(
            f'listen = "127.0.0.1:{port} 127.0.0.1:{busy_port}";\n')
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: "reload failed: " in srv.log(), 5)
        assert "keeping previous configuration" in srv.log()
        assert int(http_get(port, "/pid")[2]) == pid  # same worker
    finally:
        busy.close()
        srv.stop()
    srv.check_log()


def _backlog(port):
    """The backlog of the socket listening on PORT (ss: Send-Q)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                         text=True, check=True).stdout.split()
    return int(out[2])


def _umask(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return line.split()[1]
    raise AssertionError("no Umask line")


def test_failed_reload_leaves_backlog_and_umask_alone(tmp_path):
    # SPEC.md 4.3 step 1: a failed reload leaves sockets and config as they
    # were.  The kept socket used to take the new backlog, and the master
    # the new umask, before the bind failure was found.
    port = free_port()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    busy_port = busy.getsockname()[1]
    srv = configured(tmp_path / "srv",
                     f'listen = "127.0.0.1:{port}";\nbacklog = 1000;\numask = "027";\n')
    srv.port = port
    srv.start()
    conf = srv.tmp / "waitressd.conf"
    try:
        assert _backlog(port) == 1000 and _umask(srv.proc.pid) == "0027"
        conf.write_text(f'listen = "127.0.0.1:{port} 127.0.0.1:{busy_port}";\n'
                        'backlog = 7;\numask = "000";\n')
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: "reload failed: " in srv.log(), 5)
        assert _backlog(port) == 1000
        assert _umask(srv.proc.pid) == "0027"
        # a reload that commits applies both
        conf.write_text(f'listen = "127.0.0.1:{port}";\nbacklog = 7;\numask = "002";\n')
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: "Reload complete" in srv.log(), 10)
        assert _backlog(port) == 7 and _umask(srv.proc.pid) == "0002"
    finally:
        busy.close()
        srv.stop()
    srv.check_log()


def test_failed_reload_leaves_unix_socket_perms_alone(tmp_path):
    sport = free_port()
    srv = start(tmp_path / "srv", workers=1, unix=True, app=None,
                config='app = "masterapp:app";\nunix_socket_perms = "600";\n',
                args=[f"--stats=127.0.0.1:{sport}"])
    conf = srv.tmp / "waitressd.conf"
    mode = lambda: oct(os.stat(srv.unix_path).st_mode & 0o777)
    try:
        assert mode() == "0o600"
        conf.write_text('app = "no_such_module_xyz:app";\nunix_socket_perms = "666";\n')
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: "reload failed: worker failed to boot" in srv.log(), 10)
        assert mode() == "0o600"
        conf.write_text('app = "masterapp:app";\nunix_socket_perms = "640";\n')
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: "Reload complete" in srv.log(), 10)
        assert mode() == "0o640"
    finally:
        srv.stop()


def test_reload_moves_the_pidfile(tmp_path):
    old, new = tmp_path / "old.pid", tmp_path / "new.pid"
    port = free_port()
    srv = configured(tmp_path / "srv", f'listen = "127.0.0.1:{port}";\npidfile = "{old}";\n')
    srv.port = port
    srv.start()
    conf = srv.tmp / "waitressd.conf"
    holder = subprocess.Popen(["sleep", "30"])
    try:
        me = f"{srv.proc.pid}\n"
        assert old.read_text() == me
        # held by a live process: refused, as at start-up (SPEC.md 2.3)
        new.write_text(f"{holder.pid}\n")
        conf.write_text(f'listen = "127.0.0.1:{port}";\npidfile = "{new}";\n')
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: f"reload failed: Already running on PID {holder.pid} "
                                f"(or pid file '{new}' is stale); keeping previous "
                                "configuration" in srv.log(), 5), srv.log()
        assert new.read_text() == f"{holder.pid}\n" and old.read_text() == me
        # cannot be written: the reload fails, the old file stays
        bad = tmp_path / "no-such-dir" / "p.pid"
        conf.write_text(f'listen = "127.0.0.1:{port}";\npidfile = "{bad}";\n')
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: f"reload failed: cannot write pidfile {bad}: No such file "
                                "or directory; keeping previous configuration" in srv.log(), 5)
        assert old.read_text() == me
        # a stale new path: written, and the old file removed
        new.unlink()
        conf.write_text(f'listen = "127.0.0.1:{port}";\npidfile = "{new}";\n')
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: "Reload complete" in srv.log(), 10)
        assert wait_for(lambda: not old.exists(), 5)
        assert new.read_text() == me
        # the same file under another spelling stays
        conf.write_text(f'listen = "127.0.0.1:{port}";\npidfile = "{tmp_path}/./new.pid";\n')
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: srv.log().count("Reload complete") == 2, 10)
        assert new.read_text() == me
    finally:
        holder.kill()
        holder.wait()
        srv.stop()
    assert not new.exists()
    srv.check_log()


def test_reload_with_an_unopenable_log_names_it_and_changes_nothing(tmp_path):
    port = free_port()
    srv = configured(tmp_path / "srv", f'listen = "127.0.0.1:{port}";\n')
    srv.port = port
    srv.start()
    missing = srv.tmp / "no-such-dir" / "access.log"
    try:
        pid = int(http_get(port, "/pid")[2])
        (srv.tmp / "waitressd.conf").write_text(
            f'listen = "127.0.0.1:{port}";\naccess_log = "{missing}";\n')
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: f"reload failed: cannot open access_log {missing}: "
                                "No such file or directory; keeping previous "
                                "configuration" in srv.log(), 5), srv.log()
        assert int(http_get(port, "/pid")[2]) == pid  # same worker
    finally:
        srv.stop()
    srv.check_log()


def test_reload_of_a_directory_or_a_big_int_keeps_the_old_config(tmp_path):
    # libconfig 1.5 exit()s when it reads a directory (as the file or as an
    # @include) and wraps ints past 32 bits; a HUP must still only log and
    # keep the running configuration (SPEC.md 4.3, 2.4)
    port = free_port()
    srv = configured(tmp_path / "srv", f'listen = "127.0.0.1:{port}";\n')
    srv.port = port
    srv.start()
    conf = srv.tmp / "waitressd.conf"
    try:
        pid = int(http_get(port, "/pid")[2])
        (srv.tmp / "sub").mkdir()
        conf.write_text(f'listen = "127.0.0.1:{port}";\n@include "sub"\n')
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: f"reload failed: {conf}:2: cannot read include file "
                                f"{srv.tmp}/sub: Is a directory; keeping previous "
                                "configuration" in srv.log(), 5), srv.log()
        conf.write_text(f'listen = "127.0.0.1:{port}";\nthreads = 4294967297;\n')
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: f"reload failed: {conf}:2: threads = 4294967297 does not "
                                "fit in 32 bits" in srv.log(), 5), srv.log()
        conf.unlink()
        conf.mkdir()
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: f"reload failed: cannot read configuration file {conf}: "
                                "Is a directory; keeping previous configuration"
                                in srv.log(), 5), srv.log()
        assert srv.proc.poll() is None
        assert int(http_get(port, "/pid")[2]) == pid  # same worker
        assert "Reload complete" not in srv.log()
    finally:
        srv.stop()
    srv.check_log()


def test_reload_lets_a_paused_upload_finish(tmp_path):
    # SPEC.md 4.4 (d): a partly received request may finish arriving and
    # is served; only idle keep-alive connections go after 1 s (b).  The
    # client pauses 1.5 s twice in its body while the old worker stops.
    srv = start(tmp_path / "srv", app="echo:app", workers=1)
    try:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n" + b"a" * 100)
        time.sleep(0.2)
        srv.signal(signal.SIGHUP)
        for part in (b"b", b"c"):
            time.sleep(1.5)
            s.sendall(part * 100)
        status, headers, body = read_response(s)
        s.close()
        assert status == "HTTP/1.1 200 OK"
        assert ("Connection", "close") in headers
        assert json.loads(body)["body"] == "a" * 100 + "b" * 100 + "c" * 100
    finally:
        srv.stop()


def test_reload_worker_boot_failure_aborts(tmp_path):
    sport = free_port()
    srv = start(tmp_path / "srv", workers=2, config='app = "masterapp:app";\n',
                app=None, args=[f"--stats=127.0.0.1:{sport}"])
    try:
        pids = worker_pids(sport)
        (srv.tmp / "waitressd.conf").write_text('app = "no_such_module_xyz:app";\n')
        srv.signal(signal.SIGHUP)
        assert wait_for(lambda: "reload failed: worker failed to boot (exit status 4); "
                                "keeping previous configuration" in srv.log(), 10)
        time.sleep(0.5)
        doc = stats(sport)
        assert doc["generation"] == 1 and doc["reloads"] == 0
        assert wait_for(lambda: worker_pids(sport) == pids, 5)
        assert http_get(srv.port, "/")[2].startswith(b"masterapp ")
    finally:
        srv.stop()


def test_systemd_socket_activation(tmp_path):
    # SPEC.md 3.3: with LISTEN_PID equal to the master's pid, the
    # LISTEN_FDS descriptors from 3 on are the sockets.  The workers do not
    # inherit the variables (systemd's own sd_listen_fds convention, which
    # gunicorn follows): an app that starts a server of its own must not
    # think fd 3 is its to take.  The master keeps them for a reload.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    launcher = ("import os, sys\n"
                "os.dup2(int(sys.argv[1]), 3)\n"
                "os.environ['LISTEN_FDS'] = '1'\n"
                "os.environ['LISTEN_PID'] = str(os.getpid())\n"
                "os.execv(sys.argv[2], sys.argv[2:])\n")
    log = tmp_path / "log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["/usr/bin/python3", "-c", launcher, str(sock.fileno()), WAITRESSD,
             "--workers=1", f"--pythonpath={APPS}", "masterapp:app"],
            pass_fds=(sock.fileno(),), stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    sock.close()
    try:
        assert wait_for(lambda: f"Serving on http://127.0.0.1:{port}" in log.read_text(), 10)
        assert http_get(port, "/env?LISTEN_FDS")[2] == b"-"
        assert http_get(port, "/env?LISTEN_PID")[2] == b"-"
        assert http_get(port, "/env?PATH")[2] != b"-"  # the rest is kept
        proc.send_signal(signal.SIGHUP)  # the master still finds fd 3
        assert wait_for(lambda: "Reload complete" in log.read_text(), 10), log.read_text()
        assert http_get(port, "/pid")[0].endswith("200 OK")
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
    assert "was sent SIG" not in log.read_text()


# ---------------------------------------------------------------- daemon duties


def test_pidfile_refused_when_held_by_live_process(tmp_path):
    pidfile = tmp_path / "wd.pid"
    holder = subprocess.Popen(["sleep", "30"])
    try:
        pidfile.write_text(f"{holder.pid}\n")
        r = subprocess.run([WAITRESSD, f"--pidfile={pidfile}", "--listen=127.0.0.1:0",
                            f"--pythonpath={APPS}", "masterapp:app"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 1
        assert (f"Already running on PID {holder.pid} (or pid file '{pidfile}' is stale)"
                in r.stderr)
        assert pidfile.read_text() == f"{holder.pid}\n"
    finally:
        holder.kill()
        holder.wait()


def test_a_second_instance_leaves_the_running_ones_logs_alone(tmp_path):
    # found by the live pidfile before anything else: it opened, wrote its
    # warnings and error into, and chowned the running server's logs first
    pidfile, elog, alog = tmp_path / "wd.pid", tmp_path / "err.log", tmp_path / "acc.log"
    holder = subprocess.Popen(["sleep", "30"])
    try:
        pidfile.write_text(f"{holder.pid}\n")
        elog.write_text("the running server's\n")
        os.chmod(elog, 0o600)
        r = subprocess.run([WAITRESSD, f"--pidfile={pidfile}", "--listen=127.0.0.1:0",
                            f"--error-log={elog}", f"--access-log={alog}", "--send-bytes=1",
                            "--user=nobody", f"--pythonpath={APPS}", "masterapp:app"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 1
        # the line, and this command's own configuration warning, on stderr
        assert r.stderr.startswith(f"waitressd: Already running on PID {holder.pid} "
                                   f"(or pid file '{pidfile}' is stale)\n")
        assert r.stderr.count("Already running") == 1
        assert elog.read_text() == "the running server's\n"
        assert os.stat(elog).st_uid == os.geteuid() and os.stat(elog).st_mode & 0o777 == 0o600
        assert not alog.exists()
    finally:
        holder.kill()
        holder.wait()


def test_stale_pidfile_is_overwritten(tmp_path):
    pidfile = tmp_path / "wd.pid"
    dead = subprocess.Popen(["true"])
    dead.wait()
    pidfile.write_text(f"{dead.pid}\n")
    srv = start(tmp_path / "srv", workers=1, args=[f"--pidfile={pidfile}"])
    try:
        assert pidfile.read_text() == f"{srv.proc.pid}\n"
    finally:
        assert srv.stop() == 0
    assert not pidfile.exists()


def test_daemon_detaches_and_writes_pidfile(tmp_path):
    pidfile, log = tmp_path / "wd.pid", tmp_path / "err.log"
    port = free_port()
    r = subprocess.run([WAITRESSD, "--daemon", f"--pidfile={pidfile}", f"--error-log={log}",
                        f"--listen=127.0.0.1:{port}", "--workers=1",
                        f"--pythonpath={APPS}", "masterapp:app"],
                       capture_output=True, text=True, timeout=20, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: pidfile.exists(), 5)
    pid = int(pidfile.read_text())
    try:
        assert wait_for(lambda: _serves(port), 10)
        status = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(status[3]) != pid  # the session leader's child
        assert int(status[3]) != os.getsid(0)  # a session of its own
        os.kill(pid, signal.SIGTERM)
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10)
        assert not pidfile.exists()
        text = log.read_text()
        assert "Shutting down: Master" in text
        # every master record is the daemon's: "Starting" and "Serving on"
        # carried the PID of the process that had exited after the fork
        master_lines = [l for l in text.splitlines()
                        if "[waitressd.master]" in l or "Serving on" in l]
        assert "Starting waitressd" in master_lines[0]
        assert any("Serving on" in l for l in master_lines)
        assert all(f"] [{pid}] [" in l for l in master_lines
                   if "Worker exiting" not in l), text
    finally:
        if os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)


def test_daemon_exits_1_when_the_app_cannot_load(tmp_path):
    # SPEC.md 1: at initial startup a worker that cannot load the app makes
    # the command exit 1 -- with --daemon too: the parent waits for the
    # detached master's verdict.  It serves at once when all is well (the
    # test above), and the command returns only once it does.
    log = tmp_path / "err.log"
    port = free_port()
    r = subprocess.run([WAITRESSD, "--daemon", f"--error-log={log}",
                        f"--listen=127.0.0.1:{port}", "--workers=1",
                        f"--pythonpath={APPS}", "nosuchmodule:app"],
                       capture_output=True, text=True, timeout=20, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert wait_for(lambda: "Shutting down: Master" in log.read_text(), 5)
    assert _refused(port)


def _serves(port):
    try:
        return http_get(port, "/", timeout=1)[0].endswith("200 OK")
    except OSError:
        return False


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change user")
def test_workers_drop_privileges(tmp_path):
    sport = free_port()
    tmp_path.chmod(0o755)
    srv = start(tmp_path / "srv", workers=1,
                args=["--user=nobody", f"--stats=127.0.0.1:{sport}"])
    try:
        (srv.tmp).chmod(0o755)
        wpid = worker_pids(sport)[0]
        uids = [line for line in pathlib.Path(f"/proc/{wpid}/status").read_text().splitlines()
                if line.startswith("Uid:")][0].split()[1:]
        import pwd
        nobody = pwd.getpwnam("nobody").pw_uid
        assert set(int(u) for u in uids) == {nobody}
        muids = [line for line in pathlib.Path(f"/proc/{srv.proc.pid}/status").read_text()
                 .splitlines() if line.startswith("Uid:")][0].split()[1:]
        assert set(int(u) for u in muids) == {0}  # the master keeps its own
        assert http_get(srv.port, "/pid")[0].endswith("200 OK")
    finally:
        srv.stop()


# SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGCHLD, SIGWINCH
DEFAULT_IN_CHILDREN = (1, 2, 3, 10, 12, 14, 15, 17, 28)


@pytest.mark.parametrize("how", ["run", "thread", "boot", "fork"])
def test_processes_the_app_starts_get_signals(master, how):
    # A process the app starts inherits the signal mask of the thread
    # that started it, and every signal ignored with SIG_IGN even across
    # exec: with the worker's signals blocked, Popen.terminate() and
    # `timeout` did nothing to the child.  As under waitress: nothing
    # blocked, nothing the worker ignores for its own sake ignored.
    srv = master(workers=1, threads=4)
    answers = [http_get(srv.port, f"/child-signals?{how}")[2].decode() for _ in range(3)]
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        answers += ex.map(lambda _: http_get(srv.port, f"/child-signals?{how}", timeout=20)[2].decode(),
                          range(6))
    for answer in answers:
        blocked, ignored = (int(x, 16) for x in answer.split())
        assert blocked == 0, answer
        assert [s for s in DEFAULT_IN_CHILDREN if ignored & (1 << (s - 1))] == [], answer


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1,
                                 signal.SIGHUP, signal.SIGUSR2])
def test_a_forked_child_of_the_app_dies_of_its_signals_alone(master, sig):
    # os.fork() (multiprocessing's default) copies the worker's signal
    # handlers, and libevent's handler writes to a socket pair the child
    # shares with the worker: Process.terminate() left the child running
    # and made the *worker* stop gracefully.  As under waitress, such a
    # child gets the default action.
    srv = master(workers=1, threads=2)
    pid = int(http_get(srv.port, "/pid")[2])
    status, _, body = http_get(srv.port, f"/fork-signal?{int(sig)}", timeout=20)
    assert body == f"killed {int(sig)}".encode(), body
    time.sleep(0.5)
    assert http_get(srv.port, "/pid")[2] == str(pid).encode()
    assert f"Worker exiting (pid: {pid})" not in srv.log()


def test_worker_ignores_the_masters_other_signals(master):
    # SPEC.md 4.4: `pkill -HUP waitressd` (or TTIN, TTOU, WINCH, USR2)
    # reaches the workers too and must not take them down.
    srv = master(workers=1, threads=2)
    pid = int(http_get(srv.port, "/pid")[2])
    for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGWINCH, signal.SIGUSR2):
        os.kill(pid, sig)
    time.sleep(0.3)
    for _ in range(3):
        assert http_get(srv.port, "/pid")[2] == str(pid).encode()


def test_requests_never_run_on_pythons_main_thread(master):
    # As under waitress, whose main thread only runs its loop: a request
    # runs on another thread, whichever worker thread serves it.  On the
    # main thread, signal.signal() succeeded and a request could take the
    # worker's SIGTERM (graceful stop then waited for the SIGKILL).
    srv = master(app="sigapp:app", workers=1, threads=4)
    paths = ["/main-thread", "/set-handler"] * 4
    answers = [http_get(srv.port, p)[2] for p in paths]
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        answers += ex.map(lambda p: http_get(srv.port, p, timeout=20)[2], paths)
    assert set(answers) == {b"not main", b"ValueError"}, answers
    # and the worker's TERM is still its own: a graceful stop
    (pid,) = children(srv.proc.pid)
    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: f"Worker exiting (pid: {pid})" in srv.log(), 10), srv.log()


def test_the_worker_keeps_its_signals_from_an_app_that_takes_them(master):
    # sigapp sets Python handlers for TERM and USR1 at import (agents and
    # libraries do).  The worker's handlers were set before the import,
    # and the app's replaced them: TERM no longer stopped the worker, and
    # a stop or reload waited for the master's SIGKILL.
    srv = master(app="sigapp:app", workers=1, threads=2)
    log = srv.log()
    assert "A handler for SIGTERM was set while the application was imported" in log
    assert "A handler for SIGUSR1 was set while the application was imported" in log
    assert "SIGUSR2" not in log  # an ignored signal the app may have
    (old,) = children(srv.proc.pid)
    os.kill(old, signal.SIGQUIT)
    assert wait_for(lambda: not alive(old), 5)
    (pid,) = wait_for(lambda: [p for p in children(srv.proc.pid) if p != old and alive(p)], 10)
    # booted: a TERM during the import would meet the app's handler
    assert wait_for(lambda: "200 OK" in http_get(srv.port, "/")[0], 10)
    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: f"Worker exiting (pid: {pid})" in srv.log(), 10), srv.log()


def test_a_forked_child_keeps_the_apps_own_handlers(master):
    # The child's reset to default actions is for the worker's handlers;
    # a handler the app set (USR2 here) stays, as in a child of waitress.
    srv = master(app="sigapp:app", workers=1, threads=2)
    assert http_get(srv.port, "/fork-usr2", timeout=20)[2] == b"exited 0"


def test_python_signal_handlers_of_the_app_run(master):
    # A handler the app sets at import (a stack dump on USR2, say) runs
    # on the main thread, which now only waits: it must wake for it.
    srv = master(app="sigapp:app", workers=1, threads=2)
    (pid,) = children(srv.proc.pid)
    for n in (1, 2):
        os.kill(pid, signal.SIGUSR2)
        assert wait_for(lambda: http_get(srv.port, "/usr2")[2] == str(n).encode(), 3)
