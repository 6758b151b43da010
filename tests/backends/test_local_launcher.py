"""The warm launcher that forks local-job supervisors (backends/local_launcher.py): each supervisor
runs its job exactly as a directly started one does, outlives the launcher, and a launcher that died
is replaced."""

import json
import os
import signal
from pathlib import Path

import pytest

from backends.local_launcher import Launcher
from tests.support.processes import child_processes, wait_until


def run_dir(tmp_path: Path, name: str, command: str) -> Path:
    run = tmp_path / name
    (run / "work").mkdir(parents=True)
    spec = {"argv": ["sh", "-c", command], "env": {"PATH": "/usr/bin:/bin"}, "cwd": str(run / "work"),
            "max_runtime_seconds": 60, "kill_grace_seconds": 1}
    (run / "spec.json").write_text(json.dumps(spec))
    return run


def result(run: Path) -> dict:
    wait_until(lambda: (run / "result.json").exists(), timeout=30, message=f"{run.name} finished")
    return json.loads((run / "result.json").read_text())


@pytest.fixture
def launcher():
    launcher = Launcher()
    yield launcher
    launcher._discard()


def test_a_forked_supervisor_runs_the_job_and_records_its_outcome(tmp_path, launcher):
    run = run_dir(tmp_path, "ok", "echo hello; exit 3")
    pid = launcher.start_supervisor(run)
    assert result(run)["exit_code"] == 3
    assert (run / "output.log").read_text() == "hello\n"
    assert json.loads((run / "started").read_text())["supervisor_pid"] == pid


def test_the_supervisor_is_in_a_session_of_its_own_and_outlives_the_launcher(tmp_path, launcher):
    run = run_dir(tmp_path, "long", "sleep 2")
    pid = launcher.start_supervisor(run)
    # A group signal to the worker (Ctrl-C) must not reach the job.
    wait_until(lambda: os.getsid(pid) == pid, timeout=10, message="the supervisor leads a session of its own")
    os.kill(launcher._process.pid, signal.SIGKILL)  # the launcher dies while the job runs
    outcome = result(run)
    assert (outcome["outcome"], outcome["exit_code"]) == ("exited", 0)


def test_a_dead_launcher_is_replaced_on_the_next_job(tmp_path, launcher):
    launcher.start_supervisor(run_dir(tmp_path, "first", "true"))
    first = launcher._process.pid
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: launcher._process.poll() is not None, timeout=10, message="the launcher died")
    second_run = run_dir(tmp_path, "second", "exit 0")
    launcher.start_supervisor(second_run)
    assert launcher._process.pid != first
    assert result(second_run)["exit_code"] == 0


def test_a_second_supervisor_for_the_same_run_never_starts_the_job_twice(tmp_path, launcher):
    run = run_dir(tmp_path, "twice", f"echo $$ >> {tmp_path}/starts; sleep 1")
    launcher.start_supervisor(run)
    launcher.start_supervisor(run)
    result(run)
    assert len((tmp_path / "starts").read_text().split()) == 1


def test_ended_supervisors_are_collected(tmp_path, launcher):
    pids = {launcher.start_supervisor(run_dir(tmp_path, f"r{i}", "true")) for i in range(3)}

    def ended() -> bool:
        return all(state == "Z" for pid, state in child_processes(launcher._process.pid) if pid in pids)

    wait_until(ended, timeout=30, message="the supervisors ended")
    launcher.start_supervisor(run_dir(tmp_path, "last", "sleep 1"))  # a request collects the ended ones
    assert not pids & {pid for pid, _state in child_processes(launcher._process.pid)}, "no zombies left behind"


def test_an_unreadable_request_is_an_error_not_a_dead_launcher(tmp_path, launcher):
    launcher.start_supervisor(run_dir(tmp_path, "warm", "true"))
    process = launcher._process
    process.stdin.write("not json\n")
    process.stdin.flush()
    assert "error" in json.loads(process.stdout.readline())
    assert process.poll() is None
