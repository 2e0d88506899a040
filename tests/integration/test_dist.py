"""Distribution: the man pages and the sample configuration against the one
option table (as `waitressd --help` prints it), `make install` /
`make uninstall` into a DESTDIR, the systemd units, socket activation with
systemd-socket-activate, and the log reopening the logrotate snippet
relies on (SIGUSR1)."""
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import APPS, PYTHON, WAITRESSD, free_port, read_all, run

SRCDIR = pathlib.Path(os.environ.get("WD_SRCDIR") or pathlib.Path(__file__).resolve().parents[2])
ETC = SRCDIR / "etc"
MAN8 = ETC / "waitressd.8"
MAN5 = ETC / "waitressd.conf.5"
SAMPLE = ETC / "waitressd.conf"
BUILDDIR = pathlib.Path(WAITRESSD).resolve().parent

GENERAL = {"config", "check-config", "help", "version"}
MAN_SECTIONS = ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SIGNALS", "FILES",
                "EXIT STATUS", "SEE ALSO")


def help_options():
    """[(flag, is_bool, default or None)] for every option of --help."""
    text = run("--help").stdout
    opts = []
    for m in re.finditer(r"^  (?:-\w(?: \w+)?, )?--([a-z0-9-]+)(, --no-[a-z0-9-]+)?(?:=\S+)?\n((?:        .*\n)*)",
                         text, re.M):
        desc = " ".join(m.group(3).split())
        d = re.search(r"Default: (.*)\.$", desc)
        opts.append((m.group(1), bool(m.group(2)), d.group(1) if d else None))
    return opts


OPTIONS = help_options()
SETTINGS = [o for o in OPTIONS if o[0] not in GENERAL]


def roff_text(path):
    """The roff source with escapes and font changes reduced to text."""
    s = path.read_text()
    s = re.sub(r"\\f[BIRP]", "", s)
    s = s.replace("\\-", "-").replace("\\(dq", '"').replace("\\%", "").replace("\\&", "")
    return s


def norm(value):
    """A default as --help, the man page and the sample write it."""
    v = value.strip().rstrip(";").strip()
    v = v.strip("[]").strip().strip('"')
    return "" if v in ("empty", "none") else v


def sample_values():
    """{key: value text} of the sample's `#key = value;` lines."""
    out = {}
    for m in re.finditer(r"^#?([a-z0-9_]+) = (.*);\s*$", SAMPLE.read_text(), re.M):
        out.setdefault(m.group(1), m.group(2))
    return out


def test_help_lists_the_settings():
    assert len(SETTINGS) >= 50
    assert {"config", "check-config", "help", "version"} <= {o[0] for o in OPTIONS}


@pytest.mark.parametrize("flag,is_bool,default", SETTINGS, ids=[o[0] for o in SETTINGS])
def test_option_in_waitressd_8(flag, is_bool, default):
    text = roff_text(MAN8)
    assert re.search(rf"--{re.escape(flag)}(?![a-z-])", text), f"--{flag} missing from waitressd.8"
    if is_bool:
        assert f"--no-{flag}" in text, f"--no-{flag} missing from waitressd.8"


@pytest.mark.parametrize("flag,is_bool,default", SETTINGS, ids=[o[0] for o in SETTINGS])
def test_option_in_waitressd_conf_5(flag, is_bool, default):
    key = flag.replace("-", "_")
    m = re.search(rf"^\.BR {key} \" \((\w[^;]*); (.*)\)\"$", roff_text(MAN5), re.M)
    assert m, f"{key} missing from waitressd.conf.5"
    if is_bool:
        assert m.group(1) == "boolean"
    if default is not None:
        assert norm(m.group(2)) == norm(default), f"{key}: man page {m.group(2)!r}, --help {default!r}"


@pytest.mark.parametrize("flag,is_bool,default", SETTINGS, ids=[o[0] for o in SETTINGS])
def test_option_in_sample_config(flag, is_bool, default):
    key = flag.replace("-", "_")
    values = sample_values()
    assert key in values, f"{key} missing from etc/waitressd.conf"
    if default is not None:
        assert norm(values[key]) == norm(default), f"{key}: sample {values[key]!r}, --help {default!r}"


def test_man_pages_have_only_known_options():
    """No stale option in the man page: every --flag it names exists."""
    known = {o[0] for o in OPTIONS} | {"no-" + o[0] for o in OPTIONS if o[1]}
    named = set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*[a-z0-9])", roff_text(MAN8)))
    # the placeholders of SYNOPSIS (--option) and OPTIONS (--no-NAME)
    assert named - known == {"option", "no"}


def test_sample_config_passes_check():
    r = run("-t", "-c", str(SAMPLE))
    assert r.returncode == 0, r.stderr
    assert r.stderr.endswith(f"configuration file {SAMPLE} test is successful\n")


def test_sample_config_with_app_passes_check():
    r = run("-t", "-c", str(SAMPLE), f"--pythonpath={ETC}", "hello:app")
    assert r.returncode == 0, r.stderr


def test_demo_config_passes_check():
    r = run("-t", "-c", "demo.conf", cwd=ETC)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("page", [MAN8, MAN5], ids=["waitressd.8", "waitressd.conf.5"])
def test_man_page_renders_without_warnings(page):
    if shutil.which("groff") is None:
        pytest.skip("groff not installed")
    r = subprocess.run(["groff", "-ww", "-z", "-man", str(page)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr


@pytest.mark.parametrize("page", [MAN8, MAN5], ids=["waitressd.8", "waitressd.conf.5"])
def test_man_page_sections(page):
    heads = re.findall(r'^\.SH "?([A-Z ]+)"?$', page.read_text(), re.M)
    want = [s for s in MAN_SECTIONS if page == MAN8 or s not in ("OPTIONS", "SIGNALS")]
    assert [h for h in heads if h in want] == want


def test_man_page_version_matches_binary():
    version = run("--version").stdout.split()[1]
    for page in (MAN8, MAN5):
        assert f'"waitressd {version}"' in page.read_text()


# ------------------------------------------------------------- install

def make(*args, destdir):
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    return subprocess.run(["make", "-s", "-C", str(BUILDDIR), *args, f"DESTDIR={destdir}"],
                          capture_output=True, text=True, env=env, timeout=300)


def installed(root):
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}


def one(files, suffix):
    hits = [p for rel, p in files.items() if rel.endswith(suffix)]
    assert len(hits) == 1, f"{suffix}: {sorted(files)}"
    return hits[0]


@pytest.fixture
def destdir(tmp_path):
    if not (BUILDDIR / "Makefile").exists():
        pytest.skip("WAITRESSD is not in a configured build directory")
    root = tmp_path / "dest"
    r = make("install", destdir=root)
    assert r.returncode == 0, r.stdout + r.stderr
    return root


def test_the_release_tarball_holds_every_tracked_file(tmp_path):
    # it lacked tests/lsan.supp and tests/tsan.supp, which the shipped
    # scripts/check and scripts/tsan name, and bench/, which the README
    # (installed as documentation too) links
    if not (BUILDDIR / "Makefile").exists():
        pytest.skip("WAITRESSD is not in a configured build directory")
    if not (SRCDIR / ".git").exists():
        pytest.skip("a release tarball is what is being tested")
    tracked = subprocess.run(["git", "-C", str(SRCDIR), "ls-files"], capture_output=True,
                             text=True, check=True).stdout.split()
    dist = tmp_path / "dist"
    r = make("distdir", f"distdir={dist}", destdir=tmp_path / "unused")
    assert r.returncode == 0, r.stdout + r.stderr
    shipped = {p.relative_to(dist).as_posix() for p in dist.rglob("*") if p.is_file()}
    # git's own bookkeeping stays out
    missing = sorted(f for f in tracked if f not in shipped
                     and pathlib.PurePath(f).name not in (".gitignore", ".gitkeep"))
    assert missing == []


def test_install_layout(destdir):
    files = installed(destdir)
    binary = one(files, "/sbin/waitressd")
    assert os.access(binary, os.X_OK)
    assert one(files, "/man8/waitressd.8").read_bytes() == MAN8.read_bytes()
    assert one(files, "/man5/waitressd.conf.5").read_bytes() == MAN5.read_bytes()
    assert one(files, "etc/waitressd.conf").read_bytes() == SAMPLE.read_bytes()
    assert "USR1" in one(files, "etc/logrotate.d/waitressd").read_text()
    one(files, "/examples/hello.py")
    one(files, "/examples/nginx-waitressd.conf")


def test_units_install_under_the_prefix_by_default():
    # they went to pkg-config systemd's /lib/systemd/system whatever the
    # prefix, so `./configure --prefix=$HOME/w && make install` wrote
    # outside it (and failed as a plain user).  PREFIX/lib/systemd/system
    # is still on systemd's search path for /usr and /usr/local.
    if not (BUILDDIR / "config.status").exists():
        pytest.skip("WAITRESSD is not in a configured build directory")
    config = subprocess.run([str(BUILDDIR / "config.status"), "--config"],
                            capture_output=True, text=True, check=True).stdout
    if "systemdsystemunitdir" in config:
        pytest.skip("configured with an explicit --with-systemdsystemunitdir")
    make_vars = (BUILDDIR / "Makefile").read_text()
    unitdir = re.search(r"^systemdsystemunitdir = (.*)$", make_vars, re.M).group(1)
    assert unitdir == "${prefix}/lib/systemd/system"


def test_installed_units_name_installed_paths(destdir):
    files = installed(destdir)
    service = one(files, "/systemd/system/waitressd.service").read_text()
    socket_unit = one(files, "/systemd/system/waitressd.socket").read_text()
    assert "@" not in service.replace("$MAINPID", "")
    exec_start = re.search(r"^ExecStart=(.*)$", service, re.M).group(1).split()
    binary = destdir / exec_start[0].lstrip("/")
    config = destdir / exec_start[exec_start.index("-c") + 1].lstrip("/")
    assert os.access(binary, os.X_OK), exec_start
    assert config.read_bytes() == SAMPLE.read_bytes()
    assert re.search(r"^ListenStream=", socket_unit, re.M)
    assert re.search(r"^KillSignal=SIGTERM$", service, re.M)


def test_units_pass_systemd_analyze(destdir, tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    files = installed(destdir)
    units = tmp_path / "units"
    units.mkdir()
    for name in ("waitressd.service", "waitressd.socket"):
        shutil.copy(one(files, "/" + name), units / name)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(units / "waitressd.socket"),
                        str(units / "waitressd.service")], capture_output=True, text=True)
    # the binary is in DESTDIR, not where the unit says: that line only
    problems = [l for l in r.stderr.splitlines() if "is not executable" not in l]
    assert problems == []


def test_reinstall_keeps_edited_config_and_uninstall_leaves_it(destdir):
    files = installed(destdir)
    conf = one(files, "etc/waitressd.conf")
    conf.write_text(conf.read_text() + 'app = "mine:app";\n')
    r = make("install", destdir=destdir)
    assert r.returncode == 0, r.stderr
    assert conf.read_text().endswith('app = "mine:app";\n')
    r = make("uninstall", destdir=destdir)
    assert r.returncode == 0, r.stderr
    assert sorted(installed(destdir)) == [conf.relative_to(destdir).as_posix()]


def test_uninstall_removes_everything_unmodified(destdir):
    r = make("uninstall", destdir=destdir)
    assert r.returncode == 0, r.stderr
    assert installed(destdir) == {}


# ---------------------------------------------------- socket activation

def get(port, path="/", host="127.0.0.1"):
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: test\r\n\r\n".encode())
        return read_all(s)


def wait_port(port, proc, log, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(log.read_text())


def stop(proc, sig=signal.SIGTERM):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    return proc.returncode


@pytest.mark.parametrize("config", [False, True], ids=["flags", "config-file"])
def test_socket_activation_serves(tmp_path, config):
    sa = shutil.which("systemd-socket-activate")
    if sa is None:
        pytest.skip("systemd-socket-activate not installed")
    port = free_port()
    log = tmp_path / "log"
    argv = [sa, "-l", f"127.0.0.1:{port}", WAITRESSD]
    if config:
        conf = tmp_path / "waitressd.conf"
        conf.write_text(f'app = "echo:app";\npythonpath = ["{APPS}"];\nworkers = 2;\n')
        argv += ["-c", str(conf)]
    else:
        argv += ["--workers=2", f"--pythonpath={APPS}", "echo:app"]
    with open(log, "wb") as logf:
        proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT)
    try:
        # systemd-socket-activate holds the socket and execs waitressd on
        # the first connection: the request itself starts the server
        wait_port(port, proc, log)
        resp = get(port, "/activated?x=1")
        assert resp.startswith(b"HTTP/1.0 200 OK\r\n"), resp + log.read_bytes()
        env = json.loads(resp.partition(b"\r\n\r\n")[2])["environ"]
        assert env["PATH_INFO"] == "/activated"
        assert env["SERVER_PORT"] == str(port)
        for _ in range(5):
            assert get(port).startswith(b"HTTP/1.0 200 OK\r\n")
    finally:
        rc = stop(proc)
    text = log.read_text()
    assert rc == 0, text
    assert "Serving on http://127.0.0.1:%d" % port in text
    assert "Shutting down: Master" in text


# ------------------------------------------------------- log reopening

def rotate_and_usr1(proc, *logs):
    """What logrotate does: move each log to LOG.1, send USR1, and wait
    until the master has created the files again and passed the signal
    on to its workers."""
    for f in logs:
        f.rename(f.with_name(f.name + ".1"))
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not all(f.exists() for f in logs) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the master passes USR1 on to the workers


def test_usr1_reopens_logs_after_rotation(tmp_path):
    """What etc/waitressd.logrotate does: move the files, send USR1."""
    port = free_port()
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    proc = subprocess.Popen([WAITRESSD, f"--listen=127.0.0.1:{port}", "--workers=2",
                             f"--pythonpath={APPS}", f"--error-log={error_log}",
                             f"--access-log={access_log}", "echo:app"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc, error_log)
        assert get(port, "/before").startswith(b"HTTP/1.0 200")
        time.sleep(0.2)
        rotate_and_usr1(proc, error_log, access_log)
        # both workers answer, and each must log to the new file
        for i in range(20):
            assert get(port, f"/after{i}").startswith(b"HTTP/1.0 200")
    finally:
        rc = stop(proc)
    assert rc == 0
    old, new = (tmp_path / "access.log.1").read_text(), access_log.read_text()
    assert "/before" in old and "/after" not in old
    assert new.count("GET /after") == 20
    assert "Handling signal: usr1" in (tmp_path / "error.log.1").read_text()
    assert "Shutting down: Master" in error_log.read_text()


def test_usr1_moves_the_apps_stderr_to_the_new_error_log(tmp_path):
    """The workers' Python stderr is part of the error log (SPEC.md 2.3):
    after a rotation and USR1 it goes to the new file too."""
    port = free_port()
    error_log = tmp_path / "error.log"
    proc = subprocess.Popen([WAITRESSD, f"--listen=127.0.0.1:{port}", "--workers=2",
                             f"--pythonpath={APPS}", f"--error-log={error_log}",
                             "wsgiapps:dispatch"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc, error_log)
        for i in range(4):
            assert get(port, f"/applog?before{i}").startswith(b"HTTP/1.0 200")
        rotate_and_usr1(proc, error_log)
        for i in range(20):
            assert get(port, f"/applog?after{i}").startswith(b"HTTP/1.0 200")
    finally:
        rc = stop(proc)
    assert rc == 0
    old, new = (tmp_path / "error.log.1").read_text(), error_log.read_text()
    assert "app-logged-before0" in old and "app-logged-after" not in old
    assert all(f"app-logged-after{i}\n" in new for i in range(20)), new


def test_logrotate_snippet_spares_a_process_that_took_a_stale_pid(tmp_path):
    """A pidfile left by a killed master may name a PID the kernel has
    given to another program since; USR1 would kill most of them."""
    logrotate = shutil.which("logrotate") or shutil.which("/usr/sbin/logrotate")
    if logrotate is None:
        pytest.skip("logrotate not installed")
    logdir, pidfile = tmp_path / "log", tmp_path / "waitressd.pid"
    logdir.mkdir()
    (logdir / "error.log").write_text("old\n")
    snippet = (ETC / "waitressd.logrotate").read_text()
    snippet = snippet.replace("/var/log/waitressd", str(logdir)).replace("/run/waitressd.pid", str(pidfile))
    snippet = snippet.replace("[ -d /run/systemd/system ]", "false")
    snippet = re.sub(r"^\s*create .*$", "\tcreate", snippet, flags=re.M)
    conf = tmp_path / "logrotate.conf"
    conf.write_text(snippet)
    other = subprocess.Popen(["sleep", "60"])
    try:
        pidfile.write_text(f"{other.pid}\n")
        r = subprocess.run([logrotate, "-f", "-s", str(tmp_path / "state"), str(conf)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert (logdir / "error.log.1").exists()
        time.sleep(0.3)
        assert other.poll() is None, "the snippet signalled a process that is not waitressd"
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("systemd_host", [False, True])
def test_logrotate_snippet_rotates_and_reopens(tmp_path, systemd_host):
    """etc/waitressd.logrotate, run by logrotate itself with its paths
    moved into TMP; the server runs with a pidfile, outside any unit.  On
    a systemd host (simulated: /run/systemd/system "there", systemctl
    failing as it does for a unit that is not running) the pidfile must
    still get its USR1: the systemd branch used to win and send nothing."""
    logrotate = shutil.which("logrotate") or shutil.which("/usr/sbin/logrotate")
    if logrotate is None:
        pytest.skip("logrotate not installed")
    logdir, pidfile = tmp_path / "log", tmp_path / "waitressd.pid"
    logdir.mkdir()
    snippet = (ETC / "waitressd.logrotate").read_text()
    snippet = snippet.replace("/var/log/waitressd", str(logdir)).replace("/run/waitressd.pid", str(pidfile))
    snippet = snippet.replace("[ -d /run/systemd/system ]", "true" if systemd_host else "false")
    snippet = snippet.replace("systemctl ", "false ")
    snippet = re.sub(r"^\s*create .*$", "\tcreate", snippet, flags=re.M)
    conf = tmp_path / "logrotate.conf"
    conf.write_text(snippet)
    conf.chmod(0o644)
    port = free_port()
    error_log, access_log = logdir / "error.log", logdir / "access.log"
    proc = subprocess.Popen([WAITRESSD, f"--listen=127.0.0.1:{port}", "--workers=2",
                             f"--pythonpath={APPS}", f"--error-log={error_log}",
                             f"--access-log={access_log}", f"--pidfile={pidfile}", "echo:app"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc, error_log)
        assert get(port, "/before").startswith(b"HTTP/1.0 200")
        time.sleep(0.2)
        r = subprocess.run([logrotate, "-f", "-s", str(tmp_path / "state"), str(conf)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert (logdir / "access.log.1").exists()
        deadline = time.monotonic() + 10
        while "Handling signal: usr1" not in (logdir / "error.log.1").read_text():
            assert time.monotonic() < deadline, "no USR1 reached the master"
            time.sleep(0.05)
        time.sleep(0.5)  # the master passes USR1 on to the workers
        for i in range(10):
            assert get(port, f"/after{i}").startswith(b"HTTP/1.0 200")
    finally:
        rc = stop(proc)
    assert rc == 0
    assert "/after" not in (logdir / "access.log.1").read_text()
    assert access_log.read_text().count("GET /after") == 10
