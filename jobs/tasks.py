"""Worker tasks. Each takes ids, re-reads the database and is safe to run twice."""

from jobs import queue
from jobs.effects import event_run_effects
from jobs.polling import jobs_poll_loop
from jobs.submission import job_cancel_remote, job_submit
from jobs.sweeping import jobs_sweep


def submit_job(job_id: str) -> None:
    job_submit(job_id)


def cancel_job(job_id: str) -> None:
    job_cancel_remote(job_id)


def poll_due_jobs() -> None:
    if jobs_poll_loop():
        queue.enqueue_poll()  # hand over to a successor so active jobs are never left unwatched


def sweep_jobs() -> dict:
    return vars(jobs_sweep())


def run_job_effects(event_id: int) -> None:
    event_run_effects(event_id)
