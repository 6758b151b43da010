"""Building jobs directly in the database, for tests below the API."""

from django.conf import settings

from backends.base import Backend
from jobs.models import Job, Submission


def make_job(account, *, backend="local", command=("sh", "-c", "true"), **fields) -> Job:
    job = Job(
        account=account, name=fields.pop("name", "test-job"), backend=backend, image="python:3.11",
        command=list(command), max_runtime_seconds=fields.pop("max_runtime_seconds",
                                                              settings.TRAIN_DEFAULT_MAX_RUNTIME_SECONDS),
        **fields,
    )
    job.remote_name = job.remote_name or Backend.remote_name(job.id)
    job.save(force_insert=True)
    return job


def make_submitted_job(account, **fields) -> Job:
    from django.utils import timezone

    fields.setdefault("submission", Submission.SUBMITTED)
    fields.setdefault("next_poll_at", timezone.now())
    job = make_job(account, **fields)
    job.remote_id = job.remote_id or job.remote_name
    job.save(update_fields=["remote_id"])
    return job
