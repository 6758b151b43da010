"""Supervisor for one `local` job: `python -m backends.local_runner RUN_DIR`.

It runs detached from the worker that started it, so a killed worker does not kill the job. The run
directory is the whole contract with `backends.local.LocalBackend`:

  spec.json    what to run (argv, env, cwd, max runtime, kill grace), written by the backend
  run.lock     flock held by the one live supervisor for the whole run
  started      written (under the lock) just before the process starts: the job never starts twice
  cancel       written by the backend to ask for a stop
  output.log   the process's stdout and stderr
  result.json  written last: outcome, exit code, times
"""

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

WAIT_STEP_SECONDS = 0.2


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def write_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


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


def supervise(run: Path) -> dict:
    spec = json.loads((run / "spec.json").read_text())
    started = time.monotonic()
    write_atomic(run / "started", {"at": now_iso(), "supervisor_pid": os.getpid()})
    try:
        with open(run / "output.log", "ab", buffering=0) as log:
            child = subprocess.Popen(
                spec["argv"], env=spec["env"], cwd=spec["cwd"], stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
    except OSError as exc:
        return {"outcome": "failed_to_start", "message": f"Could not start {spec['argv'][0]!r}: {exc.strerror}."}
    stop_requested = []
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.append("canceled"))
    while True:
        try:
            code = child.wait(timeout=WAIT_STEP_SECONDS)
            return {"outcome": "exited", "exit_code": code}
        except subprocess.TimeoutExpired:
            pass
        if stop_requested or (run / "cancel").exists():
            stop(child, spec["kill_grace_seconds"])
            return {"outcome": "canceled", "exit_code": child.returncode}
        if time.monotonic() - started > spec["max_runtime_seconds"]:
            stop(child, spec["kill_grace_seconds"])
            return {"outcome": "expired", "exit_code": child.returncode}


def main(run_dir: str) -> int:
    run = Path(run_dir)
    lock_fd = os.open(run / "run.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another supervisor owns this run
    if (run / "started").exists() or (run / "result.json").exists():
        return 0  # it already ran (or is being reported): never start the job twice
    if (run / "cancel").exists():
        result = {"outcome": "canceled", "exit_code": None}
    else:
        result = supervise(run)
    write_atomic(run / "result.json", {**result, "finished_at": now_iso()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
