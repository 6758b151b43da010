"""`manage.py worker`: django-q2's cluster (what `manage.py qcluster` runs), stopped promptly on
SIGTERM or SIGINT, whether the signal reaches this process alone or its whole process group.

Why not `qcluster` itself: on a signal, django-q2's main process sets the cluster's stop event, and
setting a multiprocessing Event waits for every process sleeping on it to wake. A signal sent to the
whole group (honcho's Ctrl-C, systemd's stop, `kill -TERM -<pgid>`) also reaches the sentinel, which
django-q2 leaves on the default SIGTERM action: it dies while sleeping on that event, and the main
process then waits for it forever. Here the main process never touches the event: it stops the
sentinel's processes (workers, pusher, monitor) and the sentinel itself, and waits a bounded time.
A task cut short is redelivered by the ORM broker, and every task is written to run twice
(docs/decisions/0031-worker-stops-on-group-signals.md).

While the cluster runs, the main process also makes the relay check (jobs/relay.py): it queues the
poll or submission run that a task worker killed in the middle of one left behind."""

import logging
import os
import signal
import subprocess
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError, close_old_connections, connection
from django_q.cluster import Cluster

from backends.local_engine import log_local_engine
from jobs.relay import RELAY_CHECK_SECONDS, relay_check
from trainsvc.heartbeat import process_running

log = logging.getLogger(__name__)

# How long the cluster's processes get to exit after SIGTERM before they are SIGKILLed.
STOP_GRACE_SECONDS = 5


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (the sentinel's workers, pusher and monitor). Only direct ones: a
    detached local-job supervisor started by a task must outlive the worker."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask pgrep
        found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
        return [int(line) for line in found.stdout.split()]
    children = []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):  # the process ended while we looked
            continue
    return children


def signal_all(pids, sig) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def cluster_stop_now(cluster: Cluster) -> None:
    sentinel = cluster.sentinel
    if sentinel is None or not sentinel.is_alive():
        return
    pids = [*child_pids(sentinel.pid), sentinel.pid]
    signal_all(pids, signal.SIGTERM)  # django-q2 leaves SIGTERM at its default action in all of them
    sentinel.join(STOP_GRACE_SECONDS)
    signal_all([pid for pid in pids if process_running(pid)], signal.SIGKILL)
    sentinel.join(STOP_GRACE_SECONDS)


class Command(BaseCommand):
    help = "Runs the task worker (django-q2's cluster) and stops it within seconds on SIGTERM or SIGINT."

    def handle(self, *args, **options):
        settings.SECRET_KEY  # noqa: B018 - as qcluster does: refuse to start without a signing key
        log_local_engine()  # which engine runs local jobs, or why none does
        cluster = Cluster()
        stopping = threading.Event()

        def stop(signum, frame):
            stopping.set()
            cluster_stop_now(cluster)

        # Replaces the handlers Cluster() installed, which set the stop event (see the module docstring).
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        cluster.start()
        relay_while_running(cluster, stopping)
        # As with qcluster, the process now waits in multiprocessing's exit handler for the sentinel.


def relay_while_running(cluster: Cluster, stopping: threading.Event) -> None:
    """Every RELAY_CHECK_SECONDS while the cluster runs, queue the runs a killed task worker left
    behind (jobs.relay). A database outage costs checks, never the worker."""
    while not stopping.wait(RELAY_CHECK_SECONDS) and cluster.sentinel is not None and cluster.sentinel.is_alive():
        try:
            close_old_connections()
            relay_check()
        except DatabaseError as exc:
            log.warning("relay check failed, retrying: %s", exc)
            connection.close()
    connection.close()
