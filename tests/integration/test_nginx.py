"""waitressd behind Debian's nginx, configured by the example site
etc/nginx-waitressd.conf (ports rewritten): the app sees the client's
address, scheme and host from the forwarded headers, and a TERM (then a
restart) of one of the two instances while requests flow loses none."""
import http.client
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import Server, free_port

SRCDIR = pathlib.Path(os.environ.get("WD_SRCDIR") or pathlib.Path(__file__).resolve().parents[2])
SITE = SRCDIR / "etc" / "nginx-waitressd.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
PROXY_ARGS = ("--trusted-proxy=127.0.0.1",
              "--trusted-proxy-headers=x-forwarded-for x-forwarded-proto x-forwarded-host")

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx not installed")


def backend(tmp, name, port, workers=2):
    """A waitressd on PORT serving the echo app (slowecho: echo after
    ?delay=S seconds), trusting the local proxy."""
    d = tmp / name
    d.mkdir(exist_ok=True)
    srv = Server(d, app="slowecho:app", workers=workers, threads=4,
                 args=(f"--listen=127.0.0.1:{port}", f"--access-log={d / 'access.log'}", *PROXY_ARGS))
    srv.port = port
    return srv


def make_cert(tmp):
    if shutil.which("openssl") is None:
        return None
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def nginx_conf(tmp, http_port, tls_port, up_ports, cert):
    """The example site inside a minimal nginx.conf that keeps every file
    in TMP; its listen and upstream ports are rewritten."""
    site = SITE.read_text()
    site, n = re.subn(r"server 127\.0\.0\.1:8080\b", f"server 127.0.0.1:{up_ports[0]}", site)
    assert n == 1
    site, n = re.subn(r"server 127\.0\.0\.1:8081\b", f"server 127.0.0.1:{up_ports[1]}", site)
    assert n == 1
    listen = f"listen 127.0.0.1:{http_port};"
    if cert is not None:
        listen += (f"\n    listen 127.0.0.1:{tls_port} ssl;"
                   f"\n    ssl_certificate {cert[0]};\n    ssl_certificate_key {cert[1]};")
    site, n = re.subn(r"^    listen 80;$", listen, site, flags=re.M)
    assert n == 1
    user = "user root;\n" if os.geteuid() == 0 else ""
    temps = "".join(f"    {k}_temp_path {tmp / k};\n"
                    for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}daemon off;
worker_processes 1;
pid {tmp / 'nginx.pid'};
error_log {tmp / 'error.log'} info;
events {{ worker_connections 512; }}
http {{
    log_format up '$remote_addr "$request" $status $upstream_addr';
    access_log {tmp / 'access.log'} up;
{temps}
{site}
}}
"""


@pytest.fixture
def stack(tmp_path):
    ports = [free_port(), free_port()]
    backends = [backend(tmp_path, "a", ports[0]), backend(tmp_path, "b", ports[1])]
    for b in backends:
        b.start()
    ngx_dir = tmp_path / "nginx"
    ngx_dir.mkdir()
    cert = make_cert(ngx_dir)
    http_port, tls_port = free_port(), free_port()
    conf = ngx_dir / "nginx.conf"
    conf.write_text(nginx_conf(ngx_dir, http_port, tls_port, ports, cert))
    t = subprocess.run([NGINX, "-t", "-p", str(ngx_dir), "-c", str(conf), "-e", str(ngx_dir / "error.log")],
                       capture_output=True, text=True)
    assert t.returncode == 0, t.stderr
    ngx = subprocess.Popen([NGINX, "-p", str(ngx_dir), "-c", str(conf), "-e", str(ngx_dir / "error.log")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        assert ngx.poll() is None, ngx.stderr.read().decode()
        try:
            socket.create_connection(("127.0.0.1", http_port), timeout=0.5).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
    st = type("Stack", (), {})()
    st.backends, st.http_port, st.tls_port, st.cert, st.dir = backends, http_port, tls_port, cert, tmp_path
    yield st
    ngx.send_signal(signal.SIGQUIT)
    try:
        ngx.wait(10)
    except subprocess.TimeoutExpired:
        ngx.kill()
        ngx.wait()
    for b in st.backends:
        b.stop()
    for b in st.backends:
        b.check_log()


def raw_get(port, head, source="127.0.0.1", tls=False):
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s, server_hostname="localhost")
    with s:
        s.sendall(head.encode("latin-1"))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    status, _, rest = data.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return status.decode(), json.loads(body)["environ"] if status.endswith(b" 200 OK") else body


def test_app_sees_client_address_and_host(stack):
    # the client comes from 127.0.0.2 and claims an address of its own
    # in X-Forwarded-For; nginx appends the real one, which is what counts
    status, env = raw_get(stack.http_port,
                          "GET /shop/cart?item=7 HTTP/1.1\r\nHost: shop.example:8443\r\n"
                          "X-Forwarded-For: 198.51.100.9\r\nConnection: close\r\n\r\n",
                          source="127.0.0.2")
    assert status == "HTTP/1.1 200 OK"
    assert env["REMOTE_ADDR"] == "127.0.0.2"
    assert env["HTTP_HOST"] == "shop.example:8443"
    assert env["SERVER_NAME"] == "shop.example"
    assert env["SERVER_PORT"] == "8443"
    assert env["wsgi.url_scheme"] == "http"
    assert env["PATH_INFO"] == "/shop/cart" and env["QUERY_STRING"] == "item=7"


def test_app_sees_https_scheme(stack):
    if stack.cert is None:
        pytest.skip("openssl not installed: no certificate for the TLS listener")
    status, env = raw_get(stack.tls_port,
                          "GET /secure HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n",
                          source="127.0.0.3", tls=True)
    assert status == "HTTP/1.1 200 OK"
    assert env["wsgi.url_scheme"] == "https"
    assert env["REMOTE_ADDR"] == "127.0.0.3"
    assert env["HTTP_HOST"] == "shop.example"
    assert env["SERVER_PORT"] == "443"


def test_untrusted_direct_client_cannot_spoof(stack):
    # straight to a backend from 127.0.0.2 (not the trusted proxy): the
    # forwarded headers are removed, the real peer address stays
    b = stack.backends[0]
    status, env = raw_get(b.port, "GET / HTTP/1.0\r\nHost: a\r\nX-Forwarded-For: 198.51.100.9\r\n"
                                  "X-Forwarded-Proto: https\r\n\r\n", source="127.0.0.2")
    assert status == "HTTP/1.0 200 OK"
    assert env["REMOTE_ADDR"] == "127.0.0.2"
    assert env["wsgi.url_scheme"] == "http"
    assert "HTTP_X_FORWARDED_FOR" not in env


def served(backend_srv):
    path = backend_srv.tmp / "access.log"
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if "POST /flow/" in line)


def test_term_and_restart_of_one_instance_loses_no_request(stack):
    """POSTs that take 50 ms each: nginx retries a POST on another instance
    only if it could not send it (connection refused), never once sent, so
    every request running on the stopping instance has to finish there."""
    total, nthreads, duration = 300, 4, 3.0
    per_thread = total // nthreads
    results, errors = [], []
    lock = threading.Lock()
    start = time.monotonic()

    def client(tid):
        conn = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=10)
        for i in range(per_thread):
            # pace the loop over `duration` seconds
            delay = start + duration * i / per_thread - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                conn.request("POST", f"/flow/{tid}/{i}?delay=0.05", body=f"n={tid}/{i}",
                             headers={"Host": "flow.example",
                                      "Content-Type": "application/x-www-form-urlencoded"})
                resp = conn.getresponse()
                body = resp.read()
                with lock:
                    results.append((resp.status, body, f"n={tid}/{i}"))
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    errors.append(f"{tid}/{i}: {e!r}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=10)
        conn.close()

    threads = [threading.Thread(target=client, args=(t,)) for t in range(nthreads)]
    for t in threads:
        t.start()
    time.sleep(duration / 3)
    old = stack.backends[0]
    before = served(old)
    rc = old.stop(signal.SIGTERM)       # graceful: in-flight requests finish
    assert rc == 0, old.log()
    old.check_log()
    assert "Shutting down: Master" in old.log()
    # restart it on the same port while the loop goes on
    again = backend(stack.dir, "a2", old.port)
    again.start()
    stack.backends.append(again)
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(results) == total
    bad = [(s, b[:200]) for s, b, _ in results if s != 200]
    assert bad == []
    assert all(json.loads(b)["body"] == sent for _, b, sent in results)
    paths = {json.loads(b)["environ"]["PATH_INFO"] for _, b, _ in results}
    assert len(paths) == total
    # both instances took part: before the stop, and after the restart
    # (stopped first: an access-log line may follow its response)
    for b in stack.backends:
        assert b.stop() == 0
    assert before > 0
    assert served(stack.backends[1]) > 0
    assert served(again) > 0
    assert served(old) + served(stack.backends[1]) + served(again) >= total
