"""Real processes for tests: the worker and the gateway on the test database, each started from its
Procfile line (tests/support/procfile.py), so tests run what `make run` and deployments run."""

import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

from tests.support.procfile import procfile_argv

ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate, *, timeout: float, interval: float = 0.2, message: str = "condition"):
    """Poll `predicate` until it returns a truthy value or `timeout` seconds pass (then fail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def child_processes(pid: int) -> list[tuple[int, str]]:
    """(pid, state letter from /proc) of each direct child of `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        if int(fields[1]) == pid:
            found.append((int(stat.parent.name), fields[0]))
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """The URL of the database the current test uses, for subprocesses."""
    settings = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings['NAME']}"
    user, host, port = settings["USER"] or "postgres", settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


def service_env(**extra) -> dict:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", DATABASE_URL=test_database_url(),
               PYTHONUNBUFFERED="1")
    env.update({key: str(value) for key, value in extra.items()})
    return env


@contextmanager
def running(argv, *, env, log_path: Path):
    """Run argv in its own process group for the duration of the block; kill the group afterwards."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=timeout)


def qcluster(tmp_path: Path, **env):
    """The worker, as the Procfile's `worker:` line starts it (django-q2's cluster)."""
    return running(procfile_argv("worker", env), env=service_env(**env), log_path=tmp_path / "qcluster.log")


@contextmanager
def gateway(tmp_path: Path, *, workers: int = 2, port: int | None = None, **env):
    """The gateway, as the Procfile's `web:` line starts it, on a free loopback port with `workers`
    worker processes (WEB_CONCURRENCY); yields (base URL, gunicorn master) once /readyz answers.
    PORT is substituted into the command line but not exported, so the registry host the settings
    derive from it stays that of the test process (a test that needs the gateway to be Train's
    registry host picks `port` and passes TRAIN_REGISTRY_HOST itself)."""
    import requests

    port = port or free_port()
    variables = {**env, "PORT": port, "TRAIN_BIND": "127.0.0.1", "WEB_CONCURRENCY": workers}
    argv = procfile_argv("web", variables)
    log = tmp_path / "gunicorn.log"
    with running(argv, env=service_env(**env), log_path=log) as proc:
        base = f"http://127.0.0.1:{port}"

        def ready():
            if proc.poll() is not None:
                raise AssertionError(f"gunicorn exited: {log.read_text()[-2000:]}")
            try:
                # A worker's first answer imports the URL configuration: allow it time on a busy machine.
                return requests.get(f"{base}/readyz", timeout=10).status_code == 200
            except requests.RequestException:  # not listening yet, or workers still booting
                return False

        wait_until(ready, timeout=60, message="gunicorn to answer /readyz")
        yield base, proc


@contextmanager
def gunicorn(tmp_path: Path, **env):
    """A gateway; yields its base URL."""
    with gateway(tmp_path, **env) as (base, _proc):
        yield base
