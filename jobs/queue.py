"""Enqueueing worker tasks. With django-q2's ORM broker the task row is written through the same
database connection, so enqueueing inside a transaction is an outbox: the task exists if and only if
the transaction commits. The sweeper re-drives anything a lost task would have done."""

from django.conf import settings
from django_q.tasks import async_task

from jobs.models import WorkerLease

# Up while a poll run is queued and has not started: every submission asks for a poll, and one queued
# run serves them all. It lapses by itself, so a lost task only delays polling until the flag lapses
# or the schedule runs.
POLL_QUEUED_FLAG = "poll-queued"
# The same for submission runs: every new job asks for one, and a run takes every job that is due.
SUBMIT_QUEUED_FLAG = "submit-queued"
# A queued run that has not started after this long is presumed lost (or stuck behind a long queue):
# the next request queues another. Two runs at once are harmless, each job is taken by one claim.
SUBMIT_QUEUED_SECONDS = 15


def enqueue_submit(job_id: str) -> None:
    """A submit attempt for one job (a job back from its mirror, a cancel that must look the job up)."""
    async_task("jobs.tasks.submit_job", job_id, task_name=f"submit {job_id}")


def enqueue_submissions() -> bool:
    """Queue a submission run unless one is queued already; returns whether this call queued it."""
    if not WorkerLease.flag_set(SUBMIT_QUEUED_FLAG, SUBMIT_QUEUED_SECONDS):
        return False
    async_task("jobs.tasks.submit_due_jobs", task_name="submit due jobs")
    return True


def submission_run_started() -> None:
    """A submission run started: the next new job queues another, so runs work in parallel under load."""
    WorkerLease.flag_clear(SUBMIT_QUEUED_FLAG)


def enqueue_mirror(mirror_id: int, *, job_id: str | None = None, backend_name: str = "") -> None:
    """Copy a mirror; `job_id` (a job waiting on it) or `backend_name` (of the mirror's account) says
    whose configuration builds the target and its credentials."""
    async_task("jobs.tasks.mirror_image", mirror_id, job_id, backend_name, task_name=f"mirror {mirror_id}")


def enqueue_cancel(job_id: str) -> None:
    async_task("jobs.tasks.cancel_job", job_id, task_name=f"cancel {job_id}")


def enqueue_poll() -> bool:
    """Queue a poll run unless one is queued already; returns whether this call queued it."""
    if not WorkerLease.flag_set(POLL_QUEUED_FLAG, settings.TRAIN_POLL_INTERVAL_SECONDS):
        return False
    async_task("jobs.tasks.poll_due_jobs", task_name="poll due jobs")
    return True


def poll_run_started() -> None:
    """A poll run started: the next request for a poll queues a new one."""
    WorkerLease.flag_clear(POLL_QUEUED_FLAG)


def enqueue_effects(event_id: int) -> None:
    async_task("jobs.tasks.run_job_effects", event_id, task_name=f"effects of event {event_id}")
