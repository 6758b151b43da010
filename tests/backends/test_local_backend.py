"""The local backend runs real processes through its detached supervisor."""

import os
import signal
import uuid

import pytest

from backends.base import JobSpec, Mount, RemoteRef
from backends.local import PROCESS_NOTE, LocalBackend
from tests.support.processes import wait_until


@pytest.fixture
def backend(settings):
    # Under TRAIN_DATA_DIR, as in a deployment: job users can pass through it to their run directory.
    settings.TRAIN_LOCAL_RUN_DIR = settings.TRAIN_DATA_DIR / f"local-jobs-{uuid.uuid4().hex[:8]}"
    settings.TRAIN_LOCAL_KILL_GRACE_SECONDS = 1
    return LocalBackend()


def spec(*argv, job_id="job_abc", **fields):
    return JobSpec(job_id=job_id, account_id="acme", name="t", image="python:3.11", command=tuple(argv), **fields)


def run(backend, job_spec, name="train-abc"):
    ref = backend.submit(job_spec, name)
    return ref


def final_status(backend, ref, timeout=20):
    def finished():
        seen = backend.poll([ref])[ref]
        return seen if seen.status not in ("PENDING", "IN_PROGRESS") else None

    return wait_until(finished, timeout=timeout, message=f"{ref.name} to finish")


def test_exit_zero_completes_and_output_is_in_the_logs(backend):
    ref = run(backend, spec("sh", "-c", "echo hello; echo err >&2"))
    seen = final_status(backend, ref)
    assert (seen.status, seen.remote_status) == ("COMPLETED", "exited" + PROCESS_NOTE)
    assert seen.started_at and seen.finished_at and seen.finished_at >= seen.started_at
    assert backend.logs(ref, tail=10) == ["hello", "err"]


def test_nonzero_exit_fails_with_the_code(backend):
    seen = final_status(backend, run(backend, spec("sh", "-c", "exit 3")))
    assert seen.status == "FAILED" and "exited with code 3" in seen.message


def test_missing_program_fails_with_a_clear_message(backend):
    seen = final_status(backend, run(backend, spec("/nonexistent/train-program")))
    assert seen.status == "FAILED" and "Could not start" in seen.message


def test_env_args_and_mounts_reach_the_process_but_server_secrets_do_not(backend, storage_dir, monkeypatch):
    monkeypatch.setenv("SERVER_ONLY_SECRET", "s3cr3t")
    job = spec("sh", "-c", 'echo "$GREETING $1 $STORAGE_MOUNT_0_PATH $TRAIN_JOB_ID ${SERVER_ONLY_SECRET:-none}"',
               "sh", args=("world",), env={"GREETING": "hi"},
               storage_mounts=(Mount(source=f"file://{storage_dir}", mode="ro"),))
    ref = run(backend, job)
    assert final_status(backend, ref).status == "COMPLETED"
    assert backend.logs(ref) == [f"hi world {storage_dir} job_abc none"]


def test_cancel_stops_the_process_group(backend, job_scratch):
    pid_file = job_scratch / "child.pid"
    ref = run(backend, spec("sh", "-c", f"echo $$ > {pid_file}; sleep 60"))
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=10, message="job start")
    backend.cancel(ref)
    seen = final_status(backend, ref)
    assert seen.status == "CANCELED"
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_cancel_before_start_never_runs_the_command(backend, job_scratch):
    marker = job_scratch / "ran"
    name = "train-never"
    (backend.run_dir(name)).mkdir(parents=True)
    (backend.run_dir(name) / "cancel").touch()
    ref = run(backend, spec("touch", str(marker)), name=name)
    assert final_status(backend, ref).status == "CANCELED"
    assert not marker.exists()


def test_max_runtime_expires_the_job(backend):
    seen = final_status(backend, run(backend, spec("sleep", "60", max_runtime_seconds=1)))
    assert seen.status == "EXPIRED"


def test_submitting_twice_starts_the_process_once(backend, job_scratch):
    starts = job_scratch / "starts"
    job = spec("sh", "-c", f"echo start >> {starts}")
    ref = run(backend, job)
    run(backend, job)
    final_status(backend, ref)
    run(backend, job)  # a late retry after the job finished
    assert starts.read_text().count("start") == 1
    assert backend.find(ref.name, job_id=job.job_id) == ref
    assert backend.find("train-unknown", job_id="job_unknown") is None


def test_supervisor_killed_mid_run_is_reported_lost(backend, tmp_path):
    import json

    ref = run(backend, spec("sleep", "60"))
    started = backend.run_dir(ref.name) / "started"
    wait_until(started.exists, timeout=10, message="job start")
    supervisor = json.loads(started.read_text())["supervisor_pid"]
    os.kill(supervisor, signal.SIGKILL)
    seen = wait_until(lambda: backend.poll([ref])[ref].status == "FAILED" and backend.poll([ref])[ref],
                      timeout=10, message="lost runner")
    assert seen.remote_status == "lost" + PROCESS_NOTE


def test_only_file_mounts_under_the_allowed_roots_validate(backend, storage_dir):
    from backends.base import SpecError

    backend.validate(spec("true", storage_mounts=(Mount(f"file://{storage_dir}"),)))
    for source in ("gs://bucket/data", "file:///etc", f"file://{storage_dir}/../x", "file://host/x"):
        with pytest.raises(SpecError) as excinfo:
            backend.validate(spec("true", storage_mounts=(Mount(source),)))
        assert list(excinfo.value.errors) == ["storage_mounts[0].source"]


def test_remote_ref_is_the_run_name(backend):
    assert run(backend, spec("true"), name="train-x") == RemoteRef(name="train-x", remote_id="train-x")


def test_a_supervisor_finishing_between_the_reads_is_not_reported_lost(backend, monkeypatch):
    """poll reads result.json, then `started`, then the lock. A supervisor that writes result.json
    and exits in between must be read as finished, not lost."""
    import json

    ref = run(backend, spec("sleep", "60"))
    run_dir = backend.run_dir(ref.name)
    wait_until((run_dir / "started").exists, timeout=10, message="job start")
    backend.cancel(ref)
    wait_until((run_dir / "result.json").exists, timeout=20, message="the job to end")
    result = (run_dir / "result.json").read_text()
    (run_dir / "result.json").unlink()  # as it was at the first read

    def supervisor_finishes_now(run):
        (run / "result.json").write_text(result)
        return False

    monkeypatch.setattr(LocalBackend, "_supervisor_alive", staticmethod(supervisor_finishes_now))
    seen = backend.poll([ref])[ref]
    assert (seen.status, seen.remote_status) == ("CANCELED", "canceled" + PROCESS_NOTE), seen
    assert json.loads(result)["outcome"] == "canceled"


def test_a_vanished_run_directory_is_lost_not_an_error(backend):
    import shutil

    ref = run(backend, spec("true"))
    final_status(backend, ref)
    shutil.rmtree(backend.run_dir(ref.name))
    seen = backend.poll([ref])[ref]
    assert (seen.status, seen.remote_status) == ("FAILED", "lost")
    assert "no longer exists" in seen.message


def test_the_hosts_python3_is_on_the_default_path(backend):
    ref = run(backend, spec("python3", "-c", "import sys; print(sys.version_info[0])"))
    seen = final_status(backend, ref)
    assert seen.status == "COMPLETED", (seen, backend.logs(ref))
    assert backend.logs(ref) == ["3"]


def test_commands_are_looked_up_on_train_local_path(backend, settings, job_scratch):
    tool = job_scratch / "bin" / "train-hello"
    tool.parent.mkdir()
    tool.parent.chmod(0o755)
    tool.write_text("#!/bin/sh\necho hello from the tool\n")
    tool.chmod(0o755)
    settings.TRAIN_LOCAL_PATH = f"{tool.parent}:/usr/bin:/bin"
    ref = run(backend, spec("train-hello"))
    assert final_status(backend, ref).status == "COMPLETED"
    assert backend.logs(ref) == ["hello from the tool"]


def test_relative_paths_are_relative_to_the_work_directory(backend):
    script = 'printf "#!/bin/sh\\necho relative ok\\n" > run.sh && chmod +x run.sh && ./run.sh && pwd'
    ref = run(backend, spec("sh", "-c", script))
    assert final_status(backend, ref).status == "COMPLETED", backend.logs(ref)
    assert backend.logs(ref) == ["relative ok", str(backend.run_dir(ref.name) / "work")]
