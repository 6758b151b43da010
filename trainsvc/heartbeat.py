"""A heartbeat: renew a short lease from a background thread for as long as this process lives.

A lease that only lapses when its holder is gone can be short (seconds), so a killed worker's work is
taken over quickly, while a live holder keeps it however long its cloud call takes. The thread dies
with the process; a process that is merely slow keeps its lease, and the task timeout bounds that.
A holder named by `holder_name()` can also be found dead sooner, by a process on its host that sees
its process gone (`holder_died_here`).
"""

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from django.db import DatabaseError, connection

log = logging.getLogger(__name__)
# A holder's name: host, process id and a random part, e.g. "worker-7:4182:9f2c1a0b" (64 characters at most).
HOST_NAME_LENGTH = 40


def holder_name() -> str:
    """A name for a lease holder that tells a process on the same host whether the holder still runs."""
    return f"{socket.gethostname()[:HOST_NAME_LENGTH]}:{os.getpid()}:{secrets.token_hex(4)}"


def process_running(pid: int) -> bool:
    """Whether `pid` runs on this host (a zombie waiting to be reaped does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return not Path("/proc").is_dir()  # without /proc, assume it runs
    except (OSError, IndexError):
        return False


def holder_died_here(holder: str) -> bool:
    """True only when `holder` names a process of this host that no longer runs. A holder of another
    host, or a name in another form, is never presumed dead: its lease lapses by itself."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname()[:HOST_NAME_LENGTH] and pid.isdigit() and not process_running(int(pid))


class Heartbeat:
    def __init__(self, renew: Callable[[], bool], every: float, what: str):
        self.renew, self.every, self.what = renew, every, what
        self.lost = False  # the lease was taken by someone else: stop the work it guards
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {what}", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every):
                try:
                    if not self.renew():
                        log.warning("%s: lease lost to another holder", self.what)
                        self.lost = True
                        return
                except DatabaseError as exc:  # a dropped connection: reconnect on the next beat
                    log.warning("%s: heartbeat failed, retrying: %s", self.what, exc)
                    connection.close()
        finally:
            connection.close()  # this thread's own connection

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def heartbeat(renew: Callable[[], bool], *, lease_seconds: float, what: str):
    """Call `renew` every third of `lease_seconds` while the block runs. `renew` returns False when the
    lease is no longer ours; the yielded Heartbeat's `lost` then turns True."""
    beat = Heartbeat(renew, lease_seconds / 3, what)
    beat._thread.start()
    try:
        yield beat
    finally:
        beat.stop()
