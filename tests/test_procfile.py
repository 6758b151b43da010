"""Tests and benchmarks start the service from the Procfile's own lines (tests/support/procfile.py):
the variables expand as a shell would expand them, and nothing is added to the command line."""

import shlex
import sys

from tests.support.procfile import expand, procfile_argv, procfile_line


def test_variables_expand_as_in_a_shell():
    variables = {"PORT": "8123", "EMPTY": ""}
    assert expand("$PORT ${PORT} ${UNSET_FOR_TEST:-2} ${EMPTY:-3} ${PORT:-9}", variables) == "8123 8123 2 3 8123"


def test_web_line_runs_as_written_with_this_interpreter():
    argv = procfile_argv("web", {"PORT": 8123, "WEB_CONCURRENCY": 3})
    assert argv[:3] == [sys.executable, "-m", "gunicorn"]
    assert not any("$" in arg for arg in argv)
    assert argv[3:] == shlex.split(expand(procfile_line("web"), {"PORT": "8123", "WEB_CONCURRENCY": "3"}))[1:]
    assert "127.0.0.1:8123" in argv and argv[argv.index("--workers") + 1] == "3"


def test_worker_line_is_the_bounded_stop_command():
    assert procfile_argv("worker") == [sys.executable, "manage.py", "worker"]
