"""Worker tasks. Each takes ids, re-reads the database and is safe to run twice."""

import time

from django.conf import settings
from django.db import close_old_connections

from jobs import queue
from jobs.effects import event_run_effects
from jobs.image_store import local_images_tidy
from jobs.mirroring import mirror_drive
from jobs.polling import jobs_poll_loop
from jobs.submission import job_cancel_remote, job_submit, jobs_submit_due
from jobs.sweeping import jobs_sweep

# A poll run stops this long before the task timeout, leaving time to record the last batch and hand over.
POLL_TASK_MARGIN_SECONDS = 10
# A submission run takes no new job after this long, and hands the rest to a successor queued behind
# whatever waits: django-q has no priorities, so a run that kept its worker for as long as jobs keep
# coming would hold a poll run back (and with it every job's recorded end). It also leaves the last
# submission nearly the whole task timeout (a slow cloud, its retries).
SUBMIT_RUN_SECONDS = 5


def submit_job(job_id: str) -> None:
    job_submit(job_id)


def run_handing_over(*, started, run, successor) -> None:
    """A run that works until its budget is spent: `started()` lets the next request queue another run,
    and `successor()` queues one unless `run()` says it left nothing behind. If the run fails, a
    successor is queued all the same."""
    more = True
    try:
        started()
        more = run()
    finally:
        if more:
            successor()


def submit_due_jobs() -> None:
    """A submission run: every job due for a submit attempt, until none is left (jobs.submission)."""
    deadline = time.monotonic() + SUBMIT_RUN_SECONDS
    run_handing_over(started=queue.submission_run_started, run=lambda: jobs_submit_due(deadline=deadline),
                     successor=queue.enqueue_submissions)


def mirror_image(mirror_id: int, job_id: str | None = None, backend_name: str = "") -> None:
    close_old_connections()
    mirror_drive(mirror_id, job_id=job_id, backend_name=backend_name)


def cancel_job(job_id: str) -> None:
    job_cancel_remote(job_id)


def poll_due_jobs() -> None:
    task_deadline = time.monotonic() + settings.TRAIN_TASK_TIMEOUT_SECONDS - POLL_TASK_MARGIN_SECONDS
    close_old_connections()  # the worker's connection may have been dropped since its last task
    run_handing_over(started=queue.poll_run_started, run=lambda: jobs_poll_loop(task_deadline=task_deadline),
                     successor=queue.enqueue_poll)


def sweep_jobs() -> dict:
    return vars(jobs_sweep())


def run_job_effects(event_id: int) -> None:
    event_run_effects(event_id)


def prune_local_images() -> dict:
    """Hourly: free the local backend's image store of images no recent or active job wants."""
    return local_images_tidy()
