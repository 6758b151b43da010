"""Supervisor for one `local` job: `python -m backends.local_runner RUN_DIR`.

It runs detached from the worker that started it, so a killed worker does not kill the job. The run
directory is the whole contract with `backends.local.LocalBackend`:

  spec.json    what to run (argv, env, cwd, max runtime, kill grace, isolation), written by the backend
  run.lock     flock held by the one live supervisor for the whole run
  started      written (under the lock) just before the process starts: the job never starts twice
  cancel       written by the backend to ask for a stop
  output.log   the process's stdout and stderr
  container    with `container` in the spec, the job runs in a container of the pinned image
               instead (backends/local_container.py); a later supervisor adopts it
  result.json  written last: outcome, exit code, times
  removed      a container's job only: its container was removed after result.json was written

With `isolation` in the spec (Train runs as root), the process runs as a user id claimed for this run
(backends/local_isolation.py): `work/` is handed to that user, the run directory opens for it to pass
through while the job runs and closes again afterwards, and whatever the job left running is killed.
"""

import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path

from backends import local_container
from backends.local_isolation import claim_job_uid, job_preexec, kill_processes_of

# How often a supervisor looks for a cancel request and the max runtime while its job runs. Between
# two looks it sleeps until then or until the job exits, whichever comes first (exit_or_timeout).
WAIT_STEP_SECONDS = 0.5


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def write_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def exit_or_timeout(child: subprocess.Popen, pidfd: int | None, timeout: float) -> int | None:
    """The job's exit code once it exits within `timeout`, else None. With a pidfd the wait is one
    sleep that the exit ends; `Popen.wait(timeout=)` instead wakes every few milliseconds to ask,
    which across dozens of running jobs is a steady cost to the host."""
    if pidfd is None:
        try:
            return child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
    select.select([pidfd], [], [], timeout)
    return child.poll()


def open_pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux, or a kernel before 5.3
        return None


def stop(child: subprocess.Popen, grace_seconds: float) -> None:
    """SIGTERM the job's process group, then SIGKILL whatever is left after the grace period."""
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def start_job(run: Path, spec: dict, uid: int | None) -> subprocess.Popen:
    """Start the job's process in its own session, as `uid` when given."""
    env, preexec = spec["env"], None
    if uid is not None:
        isolation = spec["isolation"]
        preexec = job_preexec(uid, private_network=isolation["network"] == "none", mounts=spec.get("mounts", []))
        # Tools that look the user up by name (getpass) find it in the environment.
        env = {**env, "USER": f"train-job-{uid}", "LOGNAME": f"train-job-{uid}"}
        os.chown(spec["cwd"], uid, uid)
        os.chmod(spec["cwd"], 0o700)
        run.chmod(0o711)  # the job's user may pass through to work/, never list the run directory
    with open(run / "output.log", "ab", buffering=0) as log:
        return subprocess.Popen(
            spec["argv"], env=env, cwd=spec["cwd"], stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=preexec,
        )


def missing_mount(spec: dict) -> str:
    """Why the job cannot start with its mounts bound (one vanished since it was validated), or ""."""
    for index, mount in enumerate(spec.get("mounts", [])):
        if not os.path.exists(mount["path"]):
            return f"Storage mount {index} ({mount['path']}) no longer exists on the Train host."
    return ""


def supervise(run: Path, spec: dict, uid: int | None) -> dict:
    started = time.monotonic()
    write_atomic(run / "started", {"at": now_iso(), "supervisor_pid": os.getpid()})
    if uid is not None and (gone := missing_mount(spec)):
        return {"outcome": "failed_to_start", "message": gone}
    try:
        child = start_job(run, spec, uid)
    except (OSError, subprocess.SubprocessError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return {"outcome": "failed_to_start", "message": f"Could not start {spec['argv'][0]!r}: {reason}."}
    stop_requested = []
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.append("canceled"))
    pidfd = open_pidfd(child.pid)
    while True:
        code = exit_or_timeout(child, pidfd, WAIT_STEP_SECONDS)
        if code is not None:
            return {"outcome": "exited", "exit_code": code}
        if stop_requested or (run / "cancel").exists():
            stop(child, spec["kill_grace_seconds"])
            return {"outcome": "canceled", "exit_code": child.returncode}
        if time.monotonic() - started > spec["max_runtime_seconds"]:
            stop(child, spec["kill_grace_seconds"])
            return {"outcome": "expired", "exit_code": child.returncode}


def run_isolated(run: Path, spec: dict) -> dict:
    """Claim a user id for the job, clear it of strays, run the job as it, then close the run
    directory and kill whatever the job left behind before the id is free again."""
    isolation = spec["isolation"]
    claimed = claim_job_uid(Path(isolation["uid_dir"]), base=isolation["uid_base"], count=isolation["uid_count"],
                            start=zlib.crc32(run.name.encode()))
    if claimed is None:
        return {"outcome": "failed_to_start",
                "message": "Every local job user id is in use (TRAIN_LOCAL_JOB_UID_COUNT jobs are running)."}
    uid, _lock_fd = claimed  # held until this process exits
    kill_processes_of(uid)
    try:
        return supervise(run, spec, uid)
    finally:
        run.chmod(0o700)
        kill_processes_of(uid)


def run_container(run: Path, spec: dict) -> dict:
    """A job in a container (backends/local_container.py): as a user id claimed for it when Train
    runs as root and the image names no user of its own."""
    claimed, isolation = None, spec.get("isolation")
    if isolation and not (run / "started").exists():
        claimed = claim_job_uid(Path(isolation["uid_dir"]), base=isolation["uid_base"], count=isolation["uid_count"],
                                start=zlib.crc32(run.name.encode()))
        if claimed is None:
            return {"outcome": "failed_to_start",
                    "message": "Every local job user id is in use (TRAIN_LOCAL_JOB_UID_COUNT jobs are running)."}
    uid = claimed[0] if claimed else None
    return local_container.supervise(run, spec, uid, now_iso=now_iso, write_atomic=write_atomic)


def remove_container(run: Path, spec: dict) -> None:
    """Remove the finished container; `removed` tells the backend no supervisor is needed for it."""
    local_container.remove(spec["container"])
    write_atomic(run / "removed", {"at": now_iso()})


def main(run_dir: str) -> int:
    run = Path(run_dir)
    os.umask(0o077)  # the run's files (spec, log, result) are Train's alone
    lock_fd = os.open(run / "run.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another supervisor owns this run
    spec = json.loads((run / "spec.json").read_text())
    if (run / "result.json").exists():
        if spec.get("container"):
            remove_container(run, spec)  # its result and log are saved
        return 0
    if (run / "started").exists() and not spec.get("container"):
        return 0  # it already ran: never start the job twice (a container is found and adopted instead)
    if (run / "cancel").exists() and not (run / "started").exists():
        result = {"outcome": "canceled", "exit_code": None}
    elif spec.get("container"):
        result = run_container(run, spec)
    elif spec.get("isolation"):
        result = run_isolated(run, spec)
    else:
        result = supervise(run, spec, None)
    write_atomic(run / "result.json", {**result, "finished_at": now_iso()})
    if spec.get("container"):
        remove_container(run, spec)  # after its result and log are saved
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
