"""A warm starter for local-job supervisors: `python -m backends.local_launcher`.

Each local job has a supervisor of its own (backends/local_runner.py). Started as a new Python
process, a supervisor costs an interpreter start and its imports, about 75 ms of CPU, which is most of
what a local job costs Train: at 25 submissions a second that alone fills a 2-vCPU host. Instead, each
process that submits local jobs keeps one launcher, a small Python process with the supervisor's
code already imported, and each supervisor is a fork of it (a few ms).

The launcher holds nothing a job needs: a supervisor it forked is in a session of its own and owns
its run directory (run.lock), exactly as one started with `python -m backends.local_runner` does. The
launcher leaves when its parent does (end of file on its input), and its supervisors go on.

The protocol, one JSON line each way: the parent writes `"<run dir>"`, the launcher forks the
supervisor and answers `{"pid": N}` (or `{"error": "..."}` when it could not fork).

Standard library only, like the supervisor.
"""

import gc
import json
import os
import select
import subprocess
import sys
import threading
import traceback
from pathlib import Path

from backends import local_runner

# --- the launcher's side ---------------------------------------------------------------------------
# How often an idle launcher collects the supervisors that ended (they are its children while it lives).
REAP_EVERY_SECONDS = 5


def reap() -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def become_supervisor(run: Path) -> int:
    """In the forked child: a session of its own, the launcher's pipes (its stdin and stdout) replaced
    by /dev/null and stderr by the run's supervisor.log, as a supervisor started directly has them."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    log = os.open(run / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for target, source in ((0, devnull), (1, devnull), (2, log)):
        os.dup2(source, target)
    os.close(devnull)
    os.close(log)
    try:
        return local_runner.main(str(run))
    except BaseException:
        traceback.print_exc()
        return 1


def launch(line: bytes) -> dict:
    try:
        run = Path(json.loads(line))
        pid = os.fork()
    except (ValueError, TypeError, OSError) as exc:
        return {"error": str(exc)}
    if pid == 0:
        code = 1
        try:
            code = become_supervisor(run)
        finally:
            os._exit(code)
    return {"pid": pid}


def serve(requests: int = 0, answers: int = 1) -> None:
    """Fork a supervisor per request line until the parent goes away (end of file)."""
    pending = b""
    while True:
        ready, _, _ = select.select([requests], [], [], REAP_EVERY_SECONDS)
        reap()
        if not ready:
            continue
        chunk = os.read(requests, 65536)
        if not chunk:
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            os.write(answers, json.dumps(launch(line)).encode() + b"\n")


# --- the parent's side -----------------------------------------------------------------------------
STOP_WAIT_SECONDS = 5
# Where `python -m backends.local_launcher` finds the package.
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class LaunchError(OSError):
    pass


class Launcher:
    """The parent's handle on its launcher, started on first use and again if it died."""

    def __init__(self, cwd: Path = PROJECT_ROOT):
        self.cwd = cwd
        self._process: subprocess.Popen | None = None
        self._pid = None  # the process that started it: a forked copy of the parent starts its own
        self._lock = threading.Lock()

    def start_supervisor(self, run: Path) -> int:
        """Fork a supervisor for `run`; returns its pid. One retry with a fresh launcher covers one that
        died since the last job (its parent's recycling, an operator's kill)."""
        with self._lock:
            for _attempt in range(2):
                process = self._running()
                try:
                    process.stdin.write(json.dumps(str(run)) + "\n")
                    process.stdin.flush()
                    answer = process.stdout.readline()
                except OSError:
                    answer = ""
                if answer:
                    reply = json.loads(answer)
                    if "pid" in reply:
                        return reply["pid"]
                    raise LaunchError(f"could not start a supervisor: {reply.get('error')}")
                self._discard()
            raise LaunchError("the local-job launcher exited")

    def _running(self) -> subprocess.Popen:
        if self._pid != os.getpid():
            self._process = None  # a forked copy of the parent: that launcher belongs to the original
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "backends.local_launcher"], cwd=self.cwd, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
                start_new_session=True,  # a terminal's Ctrl-C is for the service, which ends it by leaving
            )
            self._pid = os.getpid()
        return self._process

    def _discard(self) -> None:
        if self._process is not None:
            for pipe in (self._process.stdin, self._process.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
            try:
                self._process.wait(timeout=STOP_WAIT_SECONDS)  # it leaves at end of file
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


if __name__ == "__main__":
    # What the supervisors inherit is never collected in them: their garbage collections then leave
    # those pages alone instead of writing to, and so copying, every object they inherited.
    gc.freeze()
    serve()
