"""The command line of SPEC.md section 1: help, version, usage errors."""
from conftest import run


def test_version_prints_name_and_version():
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("waitressd ")
    assert r.stdout.endswith("\n")


def test_help_goes_to_stdout_and_exits_0():
    r = run("--help")
    assert r.returncode == 0
    assert "--max-request-body-size" in r.stdout
    assert r.stderr == ""


def test_no_app_is_a_usage_error():
    r = run()
    assert r.returncode == 1
    assert r.stderr.startswith("Error: Specify an application")


def test_non_integer_threads_names_option_and_value():
    r = run("--threads=abc", "x:app")
    assert r.returncode == 1
    assert "threads" in r.stderr and "abc" in r.stderr


def test_unknown_flag():
    r = run("--no-such-flag", "x:app")
    assert r.returncode == 1
    assert "Error: option --no-such-flag not recognized" in r.stderr
