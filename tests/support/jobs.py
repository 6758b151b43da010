"""Job bodies, job rows and the worker queue, as the API tests use them."""

import hashlib

from django_q.models import OrmQ

from jobs.models import Job

IMAGE_DIGEST = "sha256:" + hashlib.sha256(b"trainer image").hexdigest()
# Pinned by digest, so the body stays valid whatever the registry holds.
IMAGE = f"registry.example.com/acme/trainer@{IMAGE_DIGEST}"


def job_body(**overrides) -> dict:
    """A valid POST /v1/jobs body for the local backend, with `overrides` applied."""
    body = {"name": "sft-run", "backend": "local", "image": IMAGE, "command": ["python", "train.py"]}
    body.update(overrides)
    return body


def make_job(account, **fields) -> Job:
    """A job row written directly (no API, nothing enqueued)."""
    values = {"name": "sft-run", "backend": "local", "image": IMAGE, "image_digest": IMAGE_DIGEST,
              "command": ["python", "train.py"], "max_runtime_seconds": 3600}
    values.update(fields)
    return Job.objects.create(account=account, **values)


def queued_tasks() -> list[tuple[str, tuple]]:
    """(function path, args) of every task waiting in django-q's ORM queue, oldest first."""
    return [(row.func(), tuple(row.args() or ())) for row in OrmQ.objects.order_by("id")]
