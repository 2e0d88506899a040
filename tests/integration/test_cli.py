"""The command line of SPEC.md section 1 and the configuration of section 2,
seen from outside: --help, --version, usage errors, -t output, the config
file, precedence.  Everything here runs waitressd to completion; nothing
serves."""
import os
import pathlib
import pwd
import grp
import re
import socket
import subprocess
import time

import pytest

from conftest import WAITRESSD, free_port, run

# SPEC.md 2.2 and 2.3: every option key, and which of them are booleans.
SPEC_OPTIONS = """
host port listen ipv4 ipv6 unix_socket unix_socket_perms sockets server_name
threads trusted_proxy trusted_proxy_count trusted_proxy_headers
log_untrusted_proxy_headers clear_untrusted_proxy_headers url_scheme
url_prefix ident backlog recv_bytes send_bytes outbuf_overflow
outbuf_high_watermark inbuf_overflow connection_limit cleanup_interval
channel_timeout log_socket_errors max_request_header_size
max_request_body_size expose_tracebacks asyncore_loop_timeout
asyncore_use_poll channel_request_lookahead app call pythonpath workers
graceful_timeout worker_timeout max_requests max_requests_jitter pidfile
daemon user group umask access_log error_log log_level stats
""".split()
SPEC_BOOLS = set("""
ipv4 ipv6 log_untrusted_proxy_headers clear_untrusted_proxy_headers
log_socket_errors expose_tracebacks asyncore_use_poll call daemon
""".split())
GENERAL_FLAGS = {"config", "check-config", "help", "version"}

CHECK_OK = ("waitressd: the configuration file {0} syntax is ok\n"
            "waitressd: configuration file {0} test is successful\n")
CHECK_FAILED = "waitressd: {1}\nwaitressd: configuration file {0} test failed\n"


def flag(key):
    return key.replace("_", "-")


def help_flags(text):
    """{flag name: is_bool} for every option line of the usage text."""
    found = {}
    for m in re.finditer(r"^\s+(?:-\w(?: \w+)?, )?--([a-z0-9-]+)(, --no-[a-z0-9-]+)?(=\S+)?$",
                         text, re.M):
        found[m.group(1)] = bool(m.group(2))
    return found


def test_help_spells_out_both_boolean_flags():
    # every flag appears literally, so a search for --no-ipv6 finds it
    out = run("--help").stdout
    for flag in ("--ipv6", "--no-ipv6", "--daemon", "--no-daemon", "--call", "--no-call"):
        assert re.search(rf"(^|[\s,]){re.escape(flag)}(,|$)", out, re.M), flag


# ---------------------------------------------------------------- help

def test_help_goes_to_stdout_and_exits_0():
    r = run("--help")
    assert r.returncode == 0
    assert r.stdout.startswith("Usage: waitressd ")
    assert "--max-request-body-size" in r.stdout
    assert r.stderr == ""


def test_help_lists_every_option_of_the_spec():
    r = run("-h")
    assert r.returncode == 0
    found = help_flags(r.stdout)
    expected = {flag(k): k in SPEC_BOOLS for k in SPEC_OPTIONS}
    for name in GENERAL_FLAGS:
        assert name in found, f"--{name} missing from --help"
        del found[name]
    assert found == expected


def test_help_wins_over_bad_arguments():
    r = run("--no-such-flag", "--threads=abc", "a:b", "c:d", "--help")
    assert r.returncode == 0
    assert r.stdout.startswith("Usage:")
    assert r.stderr == ""


# ---------------------------------------------------------------- version

def test_version_prints_name_and_version():
    r = run("--version")
    assert r.returncode == 0
    assert re.fullmatch(r"waitressd \d+\.\d+\.\d+\S*\n", r.stdout)
    assert r.stderr == ""


def test_short_version_flag():
    r = run("-V")
    assert r.returncode == 0
    assert r.stdout == run("--version").stdout


# ---------------------------------------------------------------- usage errors

def test_no_app_is_a_usage_error():
    r = run()
    assert r.returncode == 1
    assert r.stderr.startswith("Error: Specify an application\n")
    assert "Usage: waitressd" in r.stderr
    assert r.stdout == ""


def test_an_empty_app_is_named_and_fails_to_import_as_in_check():
    # given, though empty: the same answer as -t and waitress-serve ''
    r = run("--listen=127.0.0.1:0", "--app=")
    assert r.returncode == 1
    assert "Error: Cannot import WSGI application '': invalid format" in r.stderr
    r = run("-t", "--app=")
    assert r.returncode == 1
    assert "waitressd: Cannot import WSGI application '': invalid format" in r.stderr


def test_unknown_flag():
    r = run("--no-such-flag", "x:app")
    assert r.returncode == 1
    assert r.stderr.startswith("Error: option --no-such-flag not recognized\n")
    assert "Usage: waitressd" in r.stderr


def test_a_short_cluster_goes_on_after_an_unknown_letter():
    # GNU getopt reads -xh as -x -h: the unknown letter is reported and the
    # rest of the cluster still counts (it stopped at the x)
    r = run("-xh")
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == run("--help").stdout
    r = run("-xV")
    assert (r.returncode, r.stdout, r.stderr) == (0, run("-V").stdout, "")
    r = run("-xt")
    assert (r.returncode, r.stderr) == (1, CHECK_FAILED.format(
        "(command line)", "option -x not recognized"))


def test_missing_argument_is_one_line():
    r = run("x:app", "--threads")
    assert r.returncode == 1
    assert r.stderr == "Error: option --threads requires argument\n"


def test_boolean_flag_with_value_is_one_line():
    r = run("--ipv6=1", "x:app")
    assert r.returncode == 1
    assert r.stderr == "Error: option --ipv6 must not have an argument\n"


def test_two_apps():
    r = run("a:app", "b:app")
    assert r.returncode == 1
    assert r.stderr == "Error: Provide only one WSGI app\n"


def test_non_integer_threads_names_option_and_value():
    r = run("--threads=abc", "x:app")
    assert r.returncode == 1
    assert r.stderr == "waitressd: invalid value for threads: 'abc'\n"


def test_zero_threads_rejected():
    r = run("--threads=0", "x:app")
    assert r.returncode == 1
    assert r.stderr == "waitressd: threads must be at least 1\n"


@pytest.mark.parametrize("key", ["error_log", "access_log"])
def test_unopenable_log_is_one_line_naming_option_and_path(tmp_path, key):
    # It said "cannot open log: ..." naming neither, twice for error_log
    # (the second copy as a log record sent to stderr, the log not open).
    path = tmp_path / "missing-dir" / "x.log"
    flag = "--" + key.replace("_", "-")
    r = run(f"--listen=127.0.0.1:{free_port()}", f"{flag}={path}", "x:app")
    assert r.returncode == 1
    assert r.stderr == (f"waitressd: cannot open {key} {path}: "
                        "No such file or directory\n")


def test_config_file_typo_is_one_clear_line(tmp_path):
    conf = tmp_path / "w.conf"
    conf.write_text('app = "x:app";\nthread = 4;\n')
    r = run("-c", str(conf))
    assert r.returncode == 1
    assert r.stderr == "waitressd: Unknown adjustment 'thread'\n"


@pytest.mark.parametrize("text, shown", [("3.0", "3.0"), ("1e3", "1000.0"),
                                          ("0.1", "0.1"), ("2.5", "2.5")])
def test_config_file_float_for_an_int_shows_the_float(tmp_path, text, shown):
    # printed with %g it read "invalid value for threads: 3", as if 3 were
    # refused; the value is shown as Python would print the float
    conf = tmp_path / "w.conf"
    conf.write_text(f'app = "x:app";\nthreads = {text};\n')
    r = run("-c", str(conf))
    assert r.returncode == 1
    assert r.stderr == f"waitressd: invalid value for threads: {shown}\n"


def test_config_file_syntax_error_names_file_and_line(tmp_path):
    conf = tmp_path / "w.conf"
    conf.write_text('app = "x:app";\n\nthreads = ;\n')
    r = run("-c", str(conf))
    assert r.returncode == 1
    assert re.fullmatch(re.escape(f"waitressd: {conf}:3: ") + r"[^\n]+\n", r.stderr)


def test_config_file_missing():
    r = run("-c", "/nonexistent/w.conf", "x:app")
    assert r.returncode == 1
    assert r.stderr == ("waitressd: cannot open configuration file "
                        "/nonexistent/w.conf: No such file or directory\n")


def test_cross_validation_message():
    r = run("--listen=127.0.0.1:8080", "--port=9000", "x:app")
    assert r.returncode == 1
    assert r.stderr == "waitressd: host or port may not be set if listen is set.\n"


def test_bad_listen_address():
    r = run("--listen=127.0.0.1:70000", "x:app")
    assert r.returncode == 1
    assert r.stderr == "waitressd: Invalid host/port specified.\n"


@pytest.mark.parametrize("args", [["--port=2147483648"], ["--port=-1"],
                                  ["--listen=127.0.0.1:-1"]])
def test_port_getaddrinfo_cannot_take_is_invalid_address(args):
    # port is a Python int with no range of its own (SPEC.md 2.1, 3.1)
    r = run(*args, "x:app")
    assert r.returncode == 1
    assert r.stderr == "waitressd: Invalid host/port specified.\n"


# ---------------------------------------------------------------- -t

def test_check_success_without_file():
    r = run("-t", "--listen=127.0.0.1:0")
    assert r.returncode == 0
    assert r.stderr == CHECK_OK.format("(command line)")
    assert r.stdout == ""


def test_check_success_with_file(tmp_path):
    conf = tmp_path / "w.conf"
    conf.write_text('listen = ["127.0.0.1:0"];\nthreads = 2;\n')
    r = run("-t", "-c", str(conf))
    assert r.returncode == 0
    assert r.stderr == CHECK_OK.format(conf)


def test_check_failure_text():
    r = run("--check-config", "--threads=abc")
    assert r.returncode == 1
    assert r.stderr == CHECK_FAILED.format("(command line)",
                                           "invalid value for threads: 'abc'")


def test_check_failure_with_file(tmp_path):
    conf = tmp_path / "w.conf"
    conf.write_text("thread = 4;\n")
    r = run("-t", "-c", str(conf))
    assert r.returncode == 1
    assert r.stderr == CHECK_FAILED.format(conf, "Unknown adjustment 'thread'")


def test_check_failure_on_unknown_flag():
    r = run("-t", "--bogus")
    assert r.returncode == 1
    assert r.stderr == CHECK_FAILED.format("(command line)",
                                           "option --bogus not recognized")


def test_check_failure_on_unknown_flag_names_the_config_file(tmp_path):
    # FILE is the -c path whenever there is one (SPEC.md 1), also when the
    # error is a usage error on the command line
    conf = tmp_path / "ok.conf"
    conf.write_text("threads = 2;\n")
    for args in (["-c", str(conf), "--bogus"], ["--bogus", f"--config={conf}"]):
        r = run("-t", *args)
        assert r.returncode == 1
        assert r.stderr == CHECK_FAILED.format(conf, "option --bogus not recognized")


def test_check_refuses_a_directory_and_a_wrapped_int(tmp_path):
    # libconfig 1.5 would exit(2) on the first two and read threads as 1
    # on the last (SPEC.md 1: exit 1 with the test-failed verdict; 2.4)
    (tmp_path / "sub").mkdir()
    r = run("-t", "-c", str(tmp_path / "sub"))
    assert (r.returncode, r.stderr) == (1, CHECK_FAILED.format(
        tmp_path / "sub", f"cannot read configuration file {tmp_path}/sub: Is a directory"))
    conf = tmp_path / "w.conf"
    conf.write_text('threads = 2;\n@include "sub"\n')
    r = run("-t", "-c", str(conf))
    assert (r.returncode, r.stderr) == (1, CHECK_FAILED.format(
        conf, f"{conf}:2: cannot read include file {tmp_path}/sub: Is a directory"))
    conf.write_text("threads = 4294967297;\n")
    r = run("-t", "-c", str(conf))
    assert (r.returncode, r.stderr) == (1, CHECK_FAILED.format(
        conf, f"{conf}:1: threads = 4294967297 does not fit in 32 bits; write it "
              "with the L suffix (4294967297L) or as a string"))
    # libconfig clamps an L number past 64 bits without a word
    conf.write_text("max_request_body_size = 99999999999999999999L;\n")
    r = run("-t", "-c", str(conf))
    assert (r.returncode, r.stderr) == (1, CHECK_FAILED.format(
        conf, f"{conf}:1: max_request_body_size = 99999999999999999999L does "
              "not fit in 64 bits"))
    # the ways SPEC.md 2.4 offers are read whole
    conf.write_text('max_request_body_size = 4294967296L;\n'
                    'inbuf_overflow = "4294967296";\n')
    r = run("-t", "-c", str(conf))
    assert (r.returncode, r.stderr) == (0, CHECK_OK.format(conf))
    # libconfig would stop at a NUL and drop what follows without a word
    conf.write_bytes(b"threads = 4;\n\0threads = 9;\n")
    r = run("-t", "-c", str(conf))
    assert (r.returncode, r.stderr) == (1, CHECK_FAILED.format(
        conf, f"{conf}:2: a NUL byte: the file is not text"))
    # and run, not only -t: the same line, exit 1
    conf.write_text("port = 4294967297;\n")
    r = run("-c", str(conf), "echo:app")
    assert r.returncode == 1
    assert f"{conf}:1: port = 4294967297 does not fit in 32 bits" in r.stderr


# ---------------------------------------------------------------- precedence

def test_command_line_beats_file(tmp_path):
    conf = tmp_path / "w.conf"
    conf.write_text("threads = 0;\n")
    assert run("-t", "-c", str(conf)).returncode == 1
    r = run("-t", "-c", str(conf), "--threads=2")
    assert r.returncode == 0, r.stderr


def test_address_group_on_command_line_drops_file_addresses(tmp_path):
    conf = tmp_path / "w.conf"
    conf.write_text('listen = "127.0.0.1:0"; unix_socket = "/tmp/x.sock";\n')
    r = run("-t", "-c", str(conf))
    assert r.stderr.startswith(
        "waitressd: unix_socket may not be set if listen is set\n")
    r = run("-t", "-c", str(conf), "--port=0", "--host=127.0.0.1")
    assert r.returncode == 0, r.stderr


def test_send_bytes_warns_on_stderr():
    r = run("-t", "--listen=127.0.0.1:0", "--send-bytes=10")
    assert r.returncode == 0
    assert re.match(r"\[[^]]+\] \[\d+\] \[WARNING\] \[waitressd\] "
                    r"send_bytes will be removed in a future release\n",
                    r.stderr)


# ---------------------------------------------------------------- every flag

def _valid_values():
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    return {
        "host": "127.0.0.1", "port": "0", "listen": "127.0.0.1:0",
        "unix_socket": "/tmp/wd-cli-test.sock", "unix_socket_perms": "660",
        "server_name": "example.org", "threads": "2",
        "trusted_proxy": "127.0.0.1", "trusted_proxy_count": None,
        "trusted_proxy_headers": None, "url_scheme": "https",
        "url_prefix": "/app", "ident": "x", "backlog": "10",
        "recv_bytes": "4096", "send_bytes": "1", "outbuf_overflow": "10",
        "outbuf_high_watermark": "10", "inbuf_overflow": "10",
        "connection_limit": "10", "cleanup_interval": "10",
        "channel_timeout": "10", "max_request_header_size": "10",
        "max_request_body_size": "10", "asyncore_loop_timeout": "2",
        "channel_request_lookahead": "1", "pythonpath": "/tmp",
        "workers": "2", "graceful_timeout": "1", "worker_timeout": "0",
        "max_requests": "5", "max_requests_jitter": "5",
        "pidfile": "/tmp/wd.pid", "user": user, "group": group,
        "umask": "022", "access_log": "-", "error_log": "-",
        "log_level": "debug", "stats": "127.0.0.1:0",
    }


@pytest.mark.parametrize("key", [k for k in SPEC_OPTIONS
                                 if k not in SPEC_BOOLS and k not in ("app", "sockets")])
def test_every_valued_option_is_accepted(key):
    value = _valid_values()[key]
    args = ["-t", f"--{flag(key)}={value}"] if value is not None else ["-t"]
    if key in ("trusted_proxy_count", "trusted_proxy_headers"):
        args += ["--trusted-proxy=127.0.0.1",
                 "--trusted-proxy-count=2" if key == "trusted_proxy_count"
                 else "--trusted-proxy-headers=x-forwarded-for"]
    r = run(*args)
    assert r.returncode == 0, r.stderr
    # The same option written as two arguments.
    if value is not None:
        r = run("-t", f"--{flag(key)}", value)
        assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("key", sorted(SPEC_BOOLS - {"ipv4"}))
def test_every_boolean_flag_and_its_negation(key):
    for arg in (f"--{flag(key)}", f"--no-{flag(key)}"):
        r = run("-t", "--listen=127.0.0.1:0", arg)
        assert r.returncode == 0, (arg, r.stderr)


def test_ipv4_flags():
    assert run("-t", "--listen=127.0.0.1:0", "--ipv4").returncode == 0
    r = run("-t", "--listen=127.0.0.1:0", "--no-ipv4")
    assert r.stderr.startswith("waitressd: Invalid host/port specified.\n")


def test_inherited_socket_option():
    with socket.socket() as s:
        fd = s.fileno()
        r = run("-t", f"--sockets={fd}", pass_fds=(fd,))
        assert r.returncode == 0, r.stderr
    with socket.socket(type=socket.SOCK_DGRAM) as s:
        fd = s.fileno()
        r = run("-t", f"--sockets={fd}", pass_fds=(fd,))
        assert r.stderr == CHECK_FAILED.format(
            "(command line)", "Only Internet or UNIX stream sockets may be used.")


# ---------------------------------------------------------------- sample file

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "etc", "waitressd.conf")
SAMPLE_LINE = re.compile(r"^#([a-z0-9_]+) = (.*);$", re.M)


def test_sample_config_is_valid_as_shipped():
    r = run("-t", "-c", SAMPLE)
    assert r.returncode == 0, r.stderr


def test_sample_config_mentions_every_option_once():
    keys = [m.group(1) for m in SAMPLE_LINE.finditer(open(SAMPLE).read())]
    assert sorted(keys) == sorted(SPEC_OPTIONS)


@pytest.mark.parametrize("line", [m.group(0)[1:] for m in
                                  SAMPLE_LINE.finditer(open(SAMPLE).read())
                                  if m.group(1) not in ("app", "user", "group")])
def test_each_sample_line_is_valid_when_uncommented(tmp_path, line):
    conf = tmp_path / "w.conf"
    extra = 'trusted_proxy = "127.0.0.1";\n' if line.startswith("trusted_proxy_") else ""
    # as shipped, although /var/log/waitressd and /run/waitressd may not be
    # there yet: the unit makes them (LogsDirectory=, RuntimeDirectory=)
    conf.write_text(extra + line + "\n")
    r = run("-t", "-c", str(conf))
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- -t with an app

APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "apps")


def test_check_resolves_a_named_app():
    r = run("-t", "--listen=127.0.0.1:0", f"--pythonpath={APPS}", "echo:app")
    assert r.returncode == 0, r.stderr
    assert r.stderr == CHECK_OK.format("(command line)")


def test_check_reports_an_unimportable_app():
    r = run("-t", "--listen=127.0.0.1:0", "no_such_module_wd:app")
    assert r.returncode == 1
    assert r.stderr == CHECK_FAILED.format(
        "(command line)",
        "Cannot import WSGI application 'no_such_module_wd:app': "
        "No module named 'no_such_module_wd'")


def test_unimportable_app_reason_keeps_a_lone_surrogate(tmp_path):
    # an undecodable file name in the message (a surrogate escape) gave
    # "unknown error"; waitress-serve prints it backslash-escaped
    (tmp_path / "surrogate_wd.py").write_text('raise ValueError("bad \\udcff name")\n')
    r = run("-t", "--listen=127.0.0.1:0", f"--pythonpath={tmp_path}", "surrogate_wd:app")
    assert r.returncode == 1
    assert ("Cannot import WSGI application 'surrogate_wd:app': bad \\udcff name"
            in r.stderr), r.stderr


def test_an_undecodable_app_name_is_an_invalid_format_as_in_waitress():
    # the name went to Python as strict UTF-8: the reason was a codec
    # error; Python decodes a command line with surrogateescape, and
    # waitress-serve's resolve then says "invalid format"
    import subprocess
    r = subprocess.run([WAITRESSD, "-t", b"\xff:app"], capture_output=True, timeout=20)
    assert r.returncode == 1
    assert b"invalid format: '\\udcff:app'" in r.stderr, r.stderr


def test_app_from_config_file(tmp_path):
    conf = tmp_path / "w.conf"
    conf.write_text(f'app = "no_such_module_wd:app";\nlisten = "127.0.0.1:0";\n')
    r = run("-t", "-c", str(conf))
    assert r.returncode == 1
    assert "Cannot import WSGI application 'no_such_module_wd:app'" in r.stderr


def test_repeated_app_flag_last_one_wins():
    # SPEC.md 1: a repeated non-list option, the last one wins
    r = run("-t", f"--pythonpath={APPS}", "--app=nosuch:x", "--app=echo:app")
    assert r.returncode == 0, r.stderr
    r = run("-t", f"--pythonpath={APPS}", "--app=echo:app", "--app=nosuch:x")
    assert r.returncode == 1
    assert "Cannot import WSGI application 'nosuch:x'" in r.stderr
    # an --app and a positional are still two apps
    r = run("-t", "--app=echo:app", "other:app")
    assert r.returncode == 1 and "Provide only one WSGI app" in r.stderr


def test_startup_warnings_follow_error_log_and_log_level(server_factory, tmp_path):
    # SPEC.md 16.1: startup warnings are server messages; 16.2: only
    # records at or above log_level are written, to error_log.
    log = tmp_path / "err.log"
    srv = server_factory("echo:app", args=["--send-bytes=1", f"--error-log={log}"])
    srv.stop()
    assert "[WARNING] [waitressd] send_bytes will be removed in a future release" in log.read_text()
    assert "send_bytes" not in srv.log()
    quiet = server_factory("echo:app", args=["--send-bytes=1", "--log-level=error"])
    quiet.stop()
    assert "send_bytes" not in quiet.log()


def test_check_refuses_an_empty_listen_as_start_does():
    r = run("-t", "--listen=")
    assert (r.returncode, r.stderr) == (1, CHECK_FAILED.format(
        "(command line)", "no address to listen on"))


@pytest.mark.parametrize("key", ["error_log", "access_log"])
def test_check_refuses_a_log_no_start_could_open(tmp_path, key):
    # -t validates what a start would refuse (SPEC.md 1), creating
    # nothing: an empty path, a directory in the log's place
    flag = "--" + key.replace("_", "-")
    listen = f"--listen=127.0.0.1:{free_port()}"
    (tmp_path / "adir").mkdir()
    for path, why in ((tmp_path / "adir", "Is a directory"),
                      ("", "No such file or directory")):
        start = run(listen, f"{flag}={path}", "echo:app")
        assert start.returncode == 1
        assert start.stderr == f"waitressd: cannot open {key} {path}: {why}\n"
        r = run("-t", listen, f"{flag}={path}")
        assert (r.returncode, r.stderr) == (1, CHECK_FAILED.format(
            "(command line)", f"cannot open {key} {path}: {why}"))
    # a missing directory is the service manager's to make at start
    # (LogsDirectory=): -t passes it, start says what is missing
    missing = tmp_path / "missing-dir" / "x.log"
    r = run("-t", listen, f"{flag}={missing}")
    assert (r.returncode, r.stderr) == (0, CHECK_OK.format("(command line)"))
    start = run(listen, f"{flag}={missing}", "echo:app")
    assert start.stderr == f"waitressd: cannot open {key} {missing}: No such file or directory\n"
    good = tmp_path / "logs" / "x.log"
    good.parent.mkdir()
    r = run("-t", listen, f"{flag}={good}")
    assert (r.returncode, r.stderr) == (0, CHECK_OK.format("(command line)"))
    assert not good.exists()
    good.write_text("kept\n")
    r = run("-t", listen, f"{flag}={good}")
    assert (r.returncode, r.stderr) == (0, CHECK_OK.format("(command line)"))
    assert good.read_text() == "kept\n"


def test_a_pidfile_in_a_missing_directory_fails_before_serving(tmp_path):
    # it was found only after the sockets were bound ("Serving on ...")
    pid = tmp_path / "missing-dir" / "w.pid"
    why = f"cannot write pidfile {pid}: No such file or directory"
    listen = f"--listen=127.0.0.1:{free_port()}"
    r = run(listen, f"--pidfile={pid}", "--pythonpath=" + APPS, "echo:app")
    assert (r.returncode, r.stderr) == (1, f"waitressd: {why}\n")
    # once on stderr, and in the error log (it went to stderr twice, as a
    # held record too, and never to the file)
    elog = tmp_path / "e.log"
    r = run(listen, f"--pidfile={pid}", f"--error-log={elog}", "--pythonpath=" + APPS, "echo:app")
    assert (r.returncode, r.stderr) == (1, f"waitressd: {why}\n")
    assert elog.read_text().endswith(f"[ERROR] [waitressd.master] {why}\n")
    # -t leaves a missing directory to the service manager (RuntimeDirectory=)
    r = run("-t", listen, f"--pidfile={pid}")
    assert (r.returncode, r.stderr) == (0, CHECK_OK.format("(command line)"))
    # and refuses what no start gets past
    r = run("-t", listen, f"--pidfile={tmp_path}")
    assert (r.returncode, r.stderr) == (1, CHECK_FAILED.format(
        "(command line)", f"cannot write pidfile {tmp_path}: Is a directory"))
    # a symlink to a directory is replaced by the rename, as it always was
    (tmp_path / "d").mkdir()
    (tmp_path / "lnk").symlink_to(tmp_path / "d")
    r = run("-t", listen, f"--pidfile={tmp_path}/lnk")
    assert (r.returncode, r.stderr) == (0, CHECK_OK.format("(command line)"))
    # a live pidfile is no reason for -t to fail: it checks the running
    # server's own configuration before a reload
    live = tmp_path / "live.pid"
    live.write_text(f"{os.getpid()}\n")
    r = run("-t", listen, f"--pidfile={live}")
    assert (r.returncode, r.stderr) == (0, CHECK_OK.format("(command line)"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another user")
def test_paths_as_a_user_who_is_not_root(tmp_path):
    # As the service's user (the README's `sudo -u www-data waitressd -t`),
    # -t must not refuse what the root master would open; and a stale
    # read-only pidfile (left by --umask=0222) does not stop a start, since
    # the pidfile is written anew and renamed over it.
    import tempfile
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    shared = pathlib.Path(tempfile.mkdtemp(prefix="wd-nobody-"))
    try:
        shared.chmod(0o777)
        rootdir = shared / "root-only"
        rootdir.mkdir(mode=0o755)
        r = subprocess.run(as_nobody + [WAITRESSD, "-t", "--listen=127.0.0.1:0",
                                        f"--pidfile={rootdir}/w.pid",
                                        f"--error-log={rootdir}/e.log"],
                           capture_output=True, text=True, timeout=20)
        assert (r.returncode, r.stderr) == (0, CHECK_OK.format("(command line)"))
        # and with CAP_DAC_OVERRIDE (AmbientCapabilities= in a unit), a
        # directory only root may write takes the pidfile: the check asked
        # access(), which judges by the real uid without capabilities
        port = free_port()
        proc = subprocess.Popen(as_nobody + ["--inh-caps=+dac_override",
                                             "--ambient-caps=+dac_override",
                                             WAITRESSD, f"--listen=127.0.0.1:{port}",
                                             "--workers=1", f"--pythonpath={APPS}",
                                             f"--pidfile={rootdir}/w.pid", "echo:app"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            while not (rootdir / "w.pid").exists():
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            proc.terminate()
            assert proc.wait(timeout=20) == 0
        pid = shared / "w.pid"
        pid.write_text("999999999\n")
        pid.chmod(0o444)
        os.chown(pid, 65534, 65534)
        port = free_port()
        proc = subprocess.Popen(as_nobody + [WAITRESSD, f"--listen=127.0.0.1:{port}",
                                             "--workers=1", f"--pythonpath={APPS}",
                                             f"--pidfile={pid}", "echo:app"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            while pid.read_text() == "999999999\n":
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert pid.read_text() == f"{proc.pid}\n"
        finally:
            proc.terminate()
            assert proc.wait(timeout=20) == 0
    finally:
        subprocess.run(["rm", "-rf", str(shared)], check=True)


def test_check_refuses_a_unix_socket_no_start_could_bind(tmp_path):
    (tmp_path / "plain").write_text("not a socket\n")
    for path, why in ((tmp_path / "plain", "Address already in use"),
                      ("/tmp/" + "s" * 110, "path too long")):
        line = f"cannot listen on unix:{path}: {why}"
        start = run(f"--unix-socket={path}", "--pythonpath=" + APPS, "echo:app")
        assert (start.returncode, start.stderr) == (1, f"waitressd: {line}\n")
        r = run("-t", f"--unix-socket={path}")
        assert (r.returncode, r.stderr) == (1, CHECK_FAILED.format("(command line)", line))
    assert (tmp_path / "plain").read_text() == "not a socket\n"
    # a missing directory is the service manager's to make (RuntimeDirectory=)
    r = run("-t", f"--unix-socket={tmp_path}/missing-dir/s.sock")
    assert (r.returncode, r.stderr) == (0, CHECK_OK.format("(command line)"))
    # a socket already there (the running server's, before a reload) is fine
    sock = tmp_path / "live.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    r = run("-t", f"--unix-socket={sock}")
    assert (r.returncode, r.stderr) == (0, CHECK_OK.format("(command line)"))
    s.close()


def test_check_and_a_failed_start_keep_to_log_level():
    # SPEC.md 16.2: only records at or above log_level are written; -t's
    # success is exactly its two lines (SPEC.md 1)
    r = run("-t", "--listen=127.0.0.1:0", "--send-bytes=10", "--log-level=error")
    assert (r.returncode, r.stderr) == (0, CHECK_OK.format("(command line)"))
    r = run("--listen=127.0.0.1:0", "--send-bytes=10", "--log-level=error",
            "--stats=garbage", "x:app")
    assert r.returncode == 1
    assert r.stderr == ("waitressd: invalid value for stats: invalid address "
                        "'garbage' (expected HOST:PORT, [V6]:PORT, unix:PATH or /PATH)\n")
    # at the default level the warning is there
    r = run("-t", "--listen=127.0.0.1:0", "--send-bytes=10")
    assert "send_bytes will be removed" in r.stderr


def test_an_error_in_an_included_file_names_it_by_a_usable_path(tmp_path, monkeypatch):
    # libconfig names an included file as the @include wrote it, relative
    # to the including file's directory, not to the current one
    inc = tmp_path / "inc"
    inc.mkdir()
    (inc / "main.conf").write_text('threads = 2;\n@include "bad.conf"\n')
    (inc / "bad.conf").write_text("# one\n\nbacklog = ;\n")
    r = run("-t", "-c", str(inc / "main.conf"))
    assert r.returncode == 1
    assert re.fullmatch(re.escape(f"waitressd: {inc}/bad.conf:3: ") + r"[^\n]+\n"
                        + re.escape(f"waitressd: configuration file {inc}/main.conf test failed\n"),
                        r.stderr), r.stderr
    monkeypatch.chdir(tmp_path)
    r = run("-t", "-c", "inc/main.conf")
    assert r.stderr.startswith("waitressd: inc/bad.conf:3: "), r.stderr
    # a setting given twice, the second time in the included file
    (inc / "bad.conf").write_text("# one\nthreads = 3;\n")
    r = run("-t", "-c", "inc/main.conf")
    assert r.stderr.startswith("waitressd: inc/bad.conf:2: "), r.stderr
    # and under the other spelling, which waitressd itself finds
    (inc / "bad.conf").write_text("# one\n\nmax-requests = 3;\n")
    (inc / "main.conf").write_text('max_requests = 2;\n@include "bad.conf"\n')
    r = run("-t", "-c", "inc/main.conf")
    assert r.stderr.startswith("waitressd: inc/bad.conf:3: max_requests is set twice"), r.stderr


def test_check_refuses_a_stats_address_start_would_refuse():
    # -t validates the whole configuration (SPEC.md 1), stats included
    r = run("-t", "--listen=127.0.0.1:0", "--stats=garbage")
    assert r.returncode == 1
    assert "invalid value for stats: invalid address 'garbage'" in r.stderr
    assert r.stderr.rstrip().endswith("test failed")
    r = run("-t", "--listen=127.0.0.1:0", "--stats=127.0.0.1:9191")
    assert r.returncode == 0, r.stderr
    # glibc wraps a port past 65535 (84873 served on 19337)
    r = run("-t", "--listen=127.0.0.1:0", "--stats=127.0.0.1:84873")
    assert r.returncode == 1
    assert ("invalid value for stats: invalid address '127.0.0.1:84873' "
            "(port out of range 0-65535)") in r.stderr
    r = run("-t", "--listen=127.0.0.1:0", "--stats=unix:/run/x.sock")
    assert r.returncode == 0, r.stderr


def test_a_stats_address_without_a_host_is_refused():
    # ":PORT" bound every interface, where a listen entry ":8080" is an
    # error (SPEC.md 3.1); the endpoint has no access control, so every
    # address takes the explicit "*:PORT"
    r = run("-t", "--listen=127.0.0.1:0", "--stats=:9191")
    assert (r.returncode, r.stderr) == (1, CHECK_FAILED.format(
        "(command line)", "invalid value for stats: invalid address ':9191' "
        "(expected HOST:PORT, [V6]:PORT, unix:PATH or /PATH)"))
    r = run("-t", "--listen=127.0.0.1:0", "--stats=[]:9191")
    assert r.returncode == 1
    r = run("-t", "--listen=127.0.0.1:0", "--stats=*:9191")
    assert (r.returncode, r.stderr) == (0, CHECK_OK.format("(command line)"))


def test_an_empty_or_too_long_stats_path_is_refused():
    # "unix:" bound an abstract socket named by NUL bytes that no client
    # could reach; a path past sun_path passed -t and failed at start
    long = "/tmp/" + "x" * 110
    for value, why in (("unix:", "invalid address 'unix:' (expected HOST:PORT, "
                                 "[V6]:PORT, unix:PATH or /PATH)"),
                       (f"unix:{long}", f"unix:{long}: path too long (at most 107 bytes)"),
                       (long, f"{long}: path too long (at most 107 bytes)")):
        line = f"invalid value for stats: {why}"
        r = run("-t", "--listen=127.0.0.1:0", f"--stats={value}")
        assert (r.returncode, r.stderr) == (1, CHECK_FAILED.format("(command line)", line))
        r = run(f"--listen=127.0.0.1:{free_port()}", f"--stats={value}", "x:app")
        assert (r.returncode, r.stderr) == (1, f"waitressd: {line}\n")
