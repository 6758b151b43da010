"""Enqueueing worker tasks. With django-q2's ORM broker the task row is written through the same
database connection, so enqueueing inside a transaction is an outbox: the task exists if and only if
the transaction commits. The sweeper re-drives anything a lost task would have done."""

from django_q.tasks import async_task


def enqueue_submit(job_id: str) -> None:
    async_task("jobs.tasks.submit_job", job_id, task_name=f"submit {job_id}")


def enqueue_cancel(job_id: str) -> None:
    async_task("jobs.tasks.cancel_job", job_id, task_name=f"cancel {job_id}")


def enqueue_poll() -> None:
    async_task("jobs.tasks.poll_due_jobs", task_name="poll due jobs")


def enqueue_effects(event_id: int) -> None:
    async_task("jobs.tasks.run_job_effects", event_id, task_name=f"effects of event {event_id}")
