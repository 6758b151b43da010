"""Job workflows called by the API, the admin and the tasks: create, cancel, and the spec a backend sees."""

import hashlib
import json

from django.db import IntegrityError, transaction
from django.utils import timezone

from backends.base import JobSpec, Mount
from backends.services import backend_for_account
from jobs import queue
from jobs.images import image_resolve
from jobs.models import IdempotencyKey, Job, JobStatus, Submission


class JobConflict(Exception):
    """The request conflicts with the job's state (e.g. cancelling a finished job): HTTP 409."""


class IdempotencyMismatch(Exception):
    """The Idempotency-Key was used before with a different body: HTTP 422."""


def job_spec(job: Job) -> JobSpec:
    return JobSpec(
        job_id=job.id, account_id=job.account_id, name=job.name, image=job.cloud_image or job.image,
        image_digest=job.image_digest, command=tuple(job.command), args=tuple(job.args), env=dict(job.env),
        resources=dict(job.resources), storage_mounts=tuple(Mount(**m) for m in job.storage_mounts),
        max_runtime_seconds=job.max_runtime_seconds, labels=dict(job.labels),
        backend_options=dict(job.backend_options),
    )


def request_fingerprint(body) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _replay(account, key: str, fingerprint: str) -> Job | None:
    record = IdempotencyKey.objects.select_related("job").filter(account=account, key=key).first()
    if record is None:
        return None
    if record.fingerprint != fingerprint:
        raise IdempotencyMismatch("This Idempotency-Key was already used with a different request body.")
    return record.job


def job_create(*, account, user, data: dict, idempotency_key: str | None = None, fingerprint: str = ""):
    """Validate against the backend, pin the image, create the job PENDING and enqueue its submission.

    Returns (job, created). With an idempotency key, the same key and body return the first job
    (created=False); the same key with another body raises IdempotencyMismatch. Raises SpecError,
    writing nothing, when the backend or image rejects the spec."""
    if idempotency_key and (existing := _replay(account, idempotency_key, fingerprint)):
        return existing, False
    backend = backend_for_account(account=account, name=data["backend"])
    image = image_resolve(account=account, reference=data["image"])
    job = Job(
        account=account, created_by=user, name=data["name"], backend=data["backend"], image=image.image,
        image_digest=image.digest, command=data["command"], args=data["args"], env=data["env"],
        resources=data["resources"], storage_mounts=[dict(m) for m in data["storage_mounts"]],
        max_runtime_seconds=data["max_runtime_seconds"], labels=data["labels"],
        backend_options=data["backend_options"],
    )
    backend.validate(job_spec(job))
    job.remote_name = backend.remote_name(job.id)
    try:
        with transaction.atomic():
            job.save(force_insert=True)
            if idempotency_key:
                IdempotencyKey.objects.create(account=account, key=idempotency_key, fingerprint=fingerprint, job=job)
            queue.enqueue_submit(job.id)
    except IntegrityError:
        # A concurrent request with the same key won the insert; answer as it did.
        if idempotency_key and (existing := _replay(account, idempotency_key, fingerprint)):
            return existing, False
        raise
    return job, True


def job_cancel(*, job: Job, actor: str = "") -> Job:
    """Cancel `job`. A job never handed to its backend is CANCELED at once; otherwise the cancellation
    is recorded and sent to the backend, and the poller records CANCELED when the cloud confirms (if
    the job finished first, that outcome stands). Raises JobConflict for a finished job."""
    if job.status == JobStatus.PENDING and job.submission == Submission.WAITING:
        now = timezone.now()
        if job.transition(JobStatus.CANCELED, reason="Canceled before it was submitted.", actor=actor,
                          expect={"submission": Submission.WAITING}, cancel_requested_at=now):
            return job
    with transaction.atomic():
        # Locked so this and the submitter's "mark submitted" see each other: one of them sends the cancel.
        current = Job.objects.select_for_update().get(pk=job.pk)
        if current.is_terminal:
            raise JobConflict(f"The job is already {current.status}.")
        if current.cancel_requested_at is None:
            Job.objects.filter(pk=job.pk).update(cancel_requested_at=timezone.now())
        if current.submission == Submission.SUBMITTED:
            queue.enqueue_cancel(job.pk)
    job.refresh_from_db()
    return job

