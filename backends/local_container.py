"""The supervisor's side of a `local` job that runs in a container (podman or docker).

The container's name is the job's remote name, so the engine itself refuses a second one. A
supervisor finds the container before it creates anything: a new supervisor (after the previous one
died) adopts the container, running or exited, instead of starting another. Order of work, so that
whatever process dies between two steps nothing runs twice and nothing is lost:

  pull the pinned digest → create the container → write `started` → start it (only if it never ran)
  → stream its log into output.log → wait, stopping it on cancel or expiry → save the log → the
  backend's `result.json` is written by the runner → the container is removed.

Standard library only: `backends.local_runner` imports it without Django.
"""

import fcntl
import json
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

WAIT_STEP_SECONDS = 0.5
ENGINE_CALL_TIMEOUT_SECONDS = 120
PULL_TIMEOUT_SECONDS = 3600
# An image that names no user runs as this user when Train cannot give it one of its own (not root).
UNPRIVILEGED_USER = "65534:65534"


class EngineError(Exception):
    pass


def engine_call(container: dict, *args: str, timeout: float = ENGINE_CALL_TIMEOUT_SECONDS,
                check: bool = True) -> subprocess.CompletedProcess:
    """Run the engine (`container`: its binary, name and environment) with Train's PATH and HOME only;
    EngineError when it cannot run, times out or (with `check`) fails, naming its last error line."""
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
           **container["engine_env"]}
    try:
        done = subprocess.run([container["binary"], *args], capture_output=True, text=True, timeout=timeout,
                              env=env, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineError(f"{container['engine']} {args[0]}: {exc}") from exc
    if check and done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise EngineError((lines[-1] if lines else f"exit code {done.returncode}")[:500])
    return done


def inspect(container: dict) -> dict | None:
    """The container's State (Status, ExitCode, OOMKilled, StartedAt), or None if there is none."""
    done = engine_call(container, "container", "inspect", container["name"], check=False)
    if done.returncode != 0:
        if "no such" in done.stderr.lower():
            return None
        raise EngineError(done.stderr.strip()[:500] or "inspect failed")
    found = json.loads(done.stdout or "[]")
    return found[0]["State"] if found else None


def _auth_args(container: dict, run: Path) -> list[str]:
    auth = run / "registry-auth" / "config.json"
    if not auth.exists():
        return []
    if container["engine"] == "podman":
        return ["--authfile", str(auth)]
    return []


def pull(container: dict, run: Path) -> None:
    args = []
    if container["engine"] == "docker":
        if (run / "registry-auth" / "config.json").exists():
            args = ["--config", str(run / "registry-auth")]
        engine_call(container, *args, "pull", "--quiet", container["image"], timeout=PULL_TIMEOUT_SECONDS)
        return
    if not container["tls_verify"]:
        args.append("--tls-verify=false")
    engine_call(container, "pull", "--quiet", *args, *_auth_args(container, run), container["image"],
            timeout=PULL_TIMEOUT_SECONDS)


def image_user(container: dict) -> str:
    done = engine_call(container, "image", "inspect", "--format", "{{.Config.User}}", container["image"])
    return done.stdout.strip()


def create(container: dict, run: Path, uid: int | None) -> None:
    """Create the container (never started). A container of that name already there is the job's
    own: another supervisor created it, and it is adopted."""
    user = image_user(container) or (f"{uid}:{uid}" if uid is not None else UNPRIVILEGED_USER)
    args = ["create", "--name", container["name"], "--user", user, "--env-file", str(run / "container.env"),
            *container["create_args"], container["image"], *container["args"]]
    done = engine_call(container, *args, check=False)
    if done.returncode != 0 and inspect(container) is None:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise EngineError((lines[-1] if lines else "create failed")[:500])


def start(container: dict) -> None:
    engine_call(container, "start", container["name"])


def stop(container: dict, grace_seconds: float) -> None:
    """SIGTERM (the container's stop signal), then SIGKILL after the grace period."""
    engine_call(container, "stop", "--time", str(int(grace_seconds)), container["name"],
            timeout=grace_seconds + ENGINE_CALL_TIMEOUT_SECONDS, check=False)


def remove(container: dict) -> None:
    engine_call(container, "rm", "--force", container["name"], check=False)


def follow_logs(container: dict, run: Path) -> subprocess.Popen:
    """`<engine> logs -f` into output.log, rewritten from the container's first line: a supervisor
    that adopts a container shows the whole log again, not a half of it."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **container["engine_env"]}
    with open(run / "output.log", "wb", buffering=0) as log:
        return subprocess.Popen([container["binary"], "logs", "--follow", container["name"]], env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def save_logs(container: dict, run: Path) -> None:
    """The whole log once the container has exited (the follower may have missed the last lines)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **container["engine_env"]}
    tmp = run / ".output.log.tmp"
    with open(tmp, "wb") as log:
        done = subprocess.run([container["binary"], "logs", container["name"]], env=env, stdin=subprocess.DEVNULL,
                              stdout=log, stderr=subprocess.STDOUT, timeout=ENGINE_CALL_TIMEOUT_SECONDS)
    if done.returncode == 0:
        os.replace(tmp, run / "output.log")
    else:
        tmp.unlink(missing_ok=True)


def _outcome(state: dict) -> dict:
    code = state.get("ExitCode")
    if state.get("OOMKilled"):
        return {"outcome": "exited", "exit_code": code, "oom_killed": True}
    return {"outcome": "exited", "exit_code": code}


def supervise(run: Path, spec: dict, uid: int | None, *, now_iso, write_atomic) -> dict:
    """Run (or adopt) the job's container until it ends; return the outcome for result.json."""
    container = spec["container"]
    started_at = time.time()
    try:
        state = inspect(container)
        if state is None:
            if (run / "started").exists():
                return {"outcome": "lost", "message": f"The container {container['name']} no longer exists."}
            with _no_prune(container):  # the image stays in the store until the container exists
                try:
                    pull(container, run)
                except EngineError as exc:
                    return {"outcome": "pull_failed", "message": f"Could not pull {container['image']}: {exc}"}
                finally:
                    _drop_credentials(run)
                create(container, run, uid)
            state = inspect(container) or {}
        started = _read_started(run)
        if started is None:
            write_atomic(run / "started", {"at": now_iso(), "supervisor_pid": os.getpid(), "epoch": started_at})
        else:
            started_at = started.get("epoch", started_at)
        if state.get("Status") in ("created", "configured"):  # never ran: start it, once
            start(container)
    except EngineError as exc:
        return {"outcome": "failed_to_start", "message": f"Could not start the container: {exc}."}
    return _wait(run, spec, container, started_at)


def _wait(run: Path, spec: dict, container: dict, started_at: float) -> dict:
    follower = follow_logs(container, run)
    stopped = None
    try:
        while True:
            try:
                follower.wait(timeout=WAIT_STEP_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            if stopped is None and (run / "cancel").exists():
                stopped = "canceled"
            elif stopped is None and time.time() - started_at > spec["max_runtime_seconds"]:
                stopped = "expired"
            if stopped:
                stop(container, spec["kill_grace_seconds"])
            if follower.poll() is not None or stopped:
                state = inspect(container)
                if state is None:
                    return {"outcome": "lost", "message": f"The container {container['name']} was removed."}
                if state.get("Status") in ("exited", "stopped", "dead"):
                    save_logs(container, run)
                    if stopped:
                        return {"outcome": stopped, "exit_code": state.get("ExitCode")}
                    return _outcome(state)
                if follower.poll() is not None:
                    follower = follow_logs(container, run)
    except EngineError as exc:
        return {"outcome": "lost", "message": f"Lost track of the container: {exc}."}
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


@contextmanager
def prune_lock(path: str | Path, *, exclusive: bool):
    """The lock that keeps a prune of the image store (exclusive, backends/local_images.py) and a
    job's pull-then-create (shared) apart: an image never goes between a job's pull and its create,
    which (`--pull never`) would then fail."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


@contextmanager
def _no_prune(container: dict):
    if not container.get("prune_lock"):  # a spec written before the lock existed
        yield
        return
    with prune_lock(container["prune_lock"], exclusive=False):
        yield


def _read_started(run: Path) -> dict | None:
    try:
        return json.loads((run / "started").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _drop_credentials(run: Path) -> None:
    """The pull token is not needed once the image is in the engine's store."""
    (run / "registry-auth" / "config.json").unlink(missing_ok=True)
