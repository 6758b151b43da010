"""The worker and the gateway, started from their Procfile lines, stop within seconds on SIGTERM,
whether it is sent to the whole process group (honcho's Ctrl-C, systemd's stop) or to the main
process alone, and leave none of their processes behind; and Ctrl-C under `make run` (honcho) stops
everything without honcho having to SIGKILL anything."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.processes import free_port, gateway, qcluster, service_env, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
STOP_DEADLINE_SECONDS = 15


def descendants(pid: int) -> set[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cluster_started(proc, log: Path, workers: int = 2):
    """All of the cluster's processes: main, sentinel, its workers, pusher and monitor."""
    def started():
        assert proc.poll() is None, log.read_text()[-2000:]
        return len(descendants(proc.pid)) >= workers + 3

    wait_until(started, timeout=60, message="the worker cluster to start")
    return descendants(proc.pid)


def assert_stops(proc, children: set[int], send) -> float:
    started = time.monotonic()
    send()
    try:
        proc.wait(timeout=STOP_DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {STOP_DEADLINE_SECONDS}s after SIGTERM")
    wait_until(lambda: not any(running(pid) for pid in children), timeout=STOP_DEADLINE_SECONDS,
               message="every child process to end")
    return time.monotonic() - started


def test_worker_stops_on_sigterm_to_its_process_group(tmp_path):
    with qcluster(tmp_path) as proc:
        children = cluster_started(proc, tmp_path / "qcluster.log")
        assert_stops(proc, children, lambda: os.killpg(proc.pid, signal.SIGTERM))
    assert proc.returncode == 0


def test_worker_stops_on_sigterm_to_its_main_process_alone(tmp_path):
    with qcluster(tmp_path) as proc:
        children = cluster_started(proc, tmp_path / "qcluster.log")
        assert_stops(proc, children, lambda: os.kill(proc.pid, signal.SIGTERM))


def test_worker_stops_on_sigint_to_its_process_group(tmp_path):
    """Ctrl-C in a terminal running the worker directly."""
    with qcluster(tmp_path) as proc:
        children = cluster_started(proc, tmp_path / "qcluster.log")
        assert_stops(proc, children, lambda: os.killpg(proc.pid, signal.SIGINT))


def test_gateway_stops_on_sigterm_to_its_process_group(tmp_path):
    with gateway(tmp_path) as (_base, proc):
        children = descendants(proc.pid)
        assert len(children) == 2  # WEB_CONCURRENCY workers
        assert_stops(proc, children, lambda: os.killpg(proc.pid, signal.SIGTERM))
    assert proc.returncode == 0


def test_ctrl_c_under_honcho_stops_the_procfile_without_a_sigkill(tmp_path):
    """`make run`'s Ctrl-C: the terminal sends SIGINT to honcho's whole process group (honcho starts
    the Procfile's lines in its own group), and honcho SIGTERMs each process. Honcho SIGKILLs what is
    still running 5 s later, and says so; a clean stop never gets there."""
    import requests

    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = service_env(PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", TRAIN_BIND="127.0.0.1")
    log = tmp_path / "honcho.log"
    with processes.running([str(bin_dir / "honcho"), "start", "-f", "Procfile", "-p", str(port)], env=env,
                            log_path=log) as proc:
        def ready():
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, timeout=60, message="the Procfile's gateway to answer /readyz")
        wait_until(lambda: any(len(descendants(pid)) >= 5 for pid in descendants(proc.pid)
                               if "manage.py worker" in cmdline(pid)),
                   timeout=60, message="the Procfile's worker cluster to start")
        children = descendants(proc.pid)
        elapsed = assert_stops(proc, children, lambda: os.killpg(proc.pid, signal.SIGINT))
    output = log.read_text()
    assert "SIGKILL" not in output, output[-3000:]
    assert elapsed < STOP_DEADLINE_SECONDS
