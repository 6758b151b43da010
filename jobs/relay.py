"""The relay check: the worker's main process queues the runs that a killed task worker left behind.

Polling and submitting are runs that hand over to a successor (jobs.tasks.run_handing_over). A run
SIGKILLed in the middle (an OOM kill, a node drain, an operator's kill) queues no successor, and its
task is redelivered only after TRAIN_TASK_RETRY_SECONDS (minutes). New work queues runs of its own,
but a quiet period may bring none, and the minutely schedule would then be the only way back. The
main process of `manage.py worker` is not a task worker, so it outlives them: every few seconds it
asks, with a few indexed queries, whether polling or submitting is due and nobody is on it, and if so
queues a run. Both requests are flag-gated, so several workers' checks still queue one run each.
A poll loop whose process is gone from this host is not waited for: its lease counts as free
(WorkerLease.is_held), and the run this queues takes it over at once (WorkerLease.acquire)."""

from django.utils import timezone

from jobs import queue
from jobs.models import WorkerLease
from jobs.polling import POLL_LOOP_LEASE, next_due_at
from jobs.submission import jobs_due_for_submission

RELAY_CHECK_SECONDS = 2


def relay_check(*, now=None) -> list[str]:
    """Queue a poll run if an active job is due and no poll loop holds its lease, and a submission run
    if a job is due for submission. Returns what it queued ("poll", "submit")."""
    now = now or timezone.now()
    queued = []
    upcoming = next_due_at()
    if upcoming is not None and upcoming <= now and not WorkerLease.is_held(POLL_LOOP_LEASE, now=now) \
            and queue.enqueue_poll():
        queued.append("poll")
    if jobs_due_for_submission(now=now).exists() and queue.enqueue_submissions():
        queued.append("submit")
    return queued
