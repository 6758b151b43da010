"""Job bodies, job rows and the worker queue, for tests above and below the API."""

import hashlib

from django.utils import timezone
from django_q.models import OrmQ

from backends.base import Backend
from backends.models import BackendConfig
from jobs.models import Job, Submission

IMAGE_DIGEST = "sha256:" + hashlib.sha256(b"trainer image").hexdigest()
# Pinned by digest, so the body stays valid whatever the registry holds.
IMAGE = f"registry.example.com/acme/trainer@{IMAGE_DIGEST}"


def job_body(**overrides) -> dict:
    """A valid POST /v1/jobs body for the local backend, with `overrides` applied."""
    body = {"name": "sft-run", "backend": "local", "image": IMAGE, "command": ["python", "train.py"]}
    body.update(overrides)
    return body


def make_job(account, **fields) -> Job:
    """A job row written directly (no API, nothing enqueued), with its remote name derived and the
    account's backend configuration pinned, as job_create does."""
    values = {"name": "sft-run", "backend": "local", "image": IMAGE, "image_digest": IMAGE_DIGEST,
              "command": ["python", "train.py"], "max_runtime_seconds": 3600}
    values.update(fields)
    values["command"] = list(values["command"])
    if "backend_config" not in values:
        row = BackendConfig.objects.filter(account=account, backend=values["backend"]).first()
        values["backend_config"] = dict(row.config) if row else {}
    job = Job(account=account, **values)
    job.remote_name = job.remote_name or Backend.remote_name(job.id)
    job.save(force_insert=True)
    return job


def make_submitted_job(account, **fields) -> Job:
    """A job its backend already has (as after submit_job), due for a poll."""
    fields.setdefault("submission", Submission.SUBMITTED)
    fields.setdefault("next_poll_at", timezone.now())
    job = make_job(account, **fields)
    if not job.remote_id:
        Job.objects.filter(pk=job.pk).update(remote_id=job.remote_name)
        job.remote_id = job.remote_name
    return job


def queued_tasks() -> list[tuple[str, tuple]]:
    """(function path, args) of every task waiting in django-q's ORM queue, oldest first."""
    return [(row.func(), tuple(row.args() or ())) for row in OrmQ.objects.order_by("id")]


def queued_job_ids(func_name: str) -> list:
    """The job ids waiting in the queue for task `func_name` (e.g. "jobs.tasks.submit_job")."""
    return [args[0] if args else None for func, args in queued_tasks() if func == func_name]


def run_queued(func_name: str) -> int:
    """Run (and take off the queue) every waiting task for `func_name`, as a worker would; returns how
    many ran. Tasks they enqueue stay queued."""
    from django.utils.module_loading import import_string

    rows = [row for row in OrmQ.objects.order_by("id") if row.func() == func_name]
    for row in rows:
        row.delete()
        import_string(func_name)(*(row.args() or ()))
    return len(rows)
