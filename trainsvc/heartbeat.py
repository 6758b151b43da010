"""A heartbeat: renew a short lease from a background thread for as long as this process lives.

A lease that only lapses when its holder is gone can be short (seconds), so a killed worker's work is
taken over quickly, while a live holder keeps it however long its cloud call takes. The thread dies
with the process; a process that is merely slow keeps its lease, and the task timeout bounds that.
"""

import logging
import threading
from collections.abc import Callable
from contextlib import contextmanager

from django.db import DatabaseError, connection

log = logging.getLogger(__name__)


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
