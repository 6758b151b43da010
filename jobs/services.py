"""Job workflows called by the API, the admin and the tasks: create, cancel, the spec a backend sees,
and the backend a job is driven with (`job_backend`: the configuration the job was created with)."""

import hashlib
import json

from django.db import IntegrityError, transaction
from django.utils import timezone

from backends.base import Backend, JobSpec, Mount, RemoteRef
from backends.services import backend_for_account, backend_for_snapshot
from jobs import queue
from jobs.images import image_resolve
from jobs.models import MIRROR_STAGES, IdempotencyKey, Job, JobStatus, Submission
from jobs.retries import pending_deadline


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


def job_backend(job: Job) -> Backend:
    """The backend for every call on an existing job: built from the configuration pinned on the job,
    so an account editing its configuration affects new jobs only. Raises SpecError if disabled."""
    return backend_for_snapshot(account_id=job.account_id, name=job.backend, config=job.backend_config)


def job_remote_ref(job: Job) -> RemoteRef:
    return RemoteRef(name=job.remote_name, remote_id=job.remote_id)


def job_poll_group(job: Job) -> tuple:
    """Jobs polled in one backend call: same account, backend and pinned configuration."""
    return job.account_id, job.backend, json.dumps(job.backend_config, sort_keys=True)


def request_fingerprint(body) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _replay(account, key: str, fingerprint: str) -> Job | None:
    # Nearly every key is new: ask for the two columns first, and read the job only for a replay.
    record = IdempotencyKey.objects.filter(account=account, key=key).values_list("fingerprint", "job_id")[:1]
    if not record:
        return None
    (recorded, job_id), = record
    if recorded != fingerprint:
        raise IdempotencyMismatch("This Idempotency-Key was already used with a different request body.")
    return Job.objects.get(pk=job_id)


def job_create(*, account, user, data: dict, idempotency_key: str | None = None, fingerprint: str = "",
               actor: str = ""):
    """Validate against the backend, pin the image and the backend configuration, create the job
    PENDING (its first event names `actor`) and enqueue its submission.

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
    spec = job_spec(job)
    backend.validate(spec)
    # Pinned at creation: the configuration the job was validated against is the one it is sent with.
    job.backend_config = dict(backend.config)
    job.remote_name = backend.remote_name(job.id)
    job.pending_deadline_at = pending_deadline(created_at=job.created_at,
                                               cloud_queue_seconds=backend.max_queue_seconds(spec))
    job.next_submit_at = job.created_at  # due now: the next submission run takes it
    try:
        with transaction.atomic():
            job.save(force_insert=True)
            job.record_created(actor=actor)
            if idempotency_key:
                IdempotencyKey.objects.create(account=account, key=idempotency_key, fingerprint=fingerprint, job=job)
            queue.enqueue_submissions()
    except IntegrityError:
        # A concurrent request with the same key won the insert; answer as it did.
        if idempotency_key and (existing := _replay(account, idempotency_key, fingerprint)):
            return existing, False
        raise
    return job, True


def job_cancel(*, job: Job, actor: str = "") -> Job:
    """Cancel `job` on behalf of `actor`. A job never handed to a submitter is CANCELED at once.
    Otherwise the request is recorded and goes to the cloud: a submitted job gets a cancel task; a
    job whose earlier attempt may have created the remote job gets a submit attempt, which looks the
    remote job up before anything else and cancels it or the job. The poller records CANCELED when the
    cloud confirms (if the job finished first, that outcome stands). Raises JobConflict for a
    finished job."""
    now = timezone.now()
    # Never handed to a submitter (waiting, or waiting for its image's mirror): nothing reached the cloud.
    # A shared mirror goes on: another job, or the next one, may need it.
    if job.status == JobStatus.PENDING and job.submission in MIRROR_STAGES and not job.submit_attempts:
        if job.transition(JobStatus.CANCELED, reason="Canceled before it was submitted.", actor=actor,
                          expect={"submission__in": MIRROR_STAGES, "submit_attempts": 0},
                          cancel_requested_at=now, cancel_requested_by=actor):
            return job
    with transaction.atomic():
        # Locked so this and the submitter's "mark submitted" see each other: one of them sends the cancel.
        current = Job.objects.select_for_update().get(pk=job.pk)
        if current.is_terminal:
            raise JobConflict(f"The job is already {current.status}.")
        current.request_cancel(actor=actor, now=now)
        if current.submission == Submission.SUBMITTED:
            queue.enqueue_cancel(job.pk)
        elif current.submission in MIRROR_STAGES:
            Job.objects.filter(pk=job.pk).update(next_submit_at=now)  # under the row lock
            queue.enqueue_submit(job.pk)
    job.refresh_from_db()
    return job
