"""Getting a job to its backend exactly once.

The job is claimed with a conditional update that also counts the attempt (committed before any
cloud call, because django-q2 does not count attempts killed mid-task). The remote name is fixed at
creation, so a retry after a crash either finds the remote job (`find`) or re-submits under the same
name, which the backend treats as the same job. A transient error releases the job with a back-off
(`next_submit_at`); the budget for retries is the job's pending deadline, enforced by the sweep.
Every call uses the backend configuration pinned on the job. Nothing here knows a cloud.
"""

import logging
import random
import time
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from backends.base import WAITING_CAPACITY, WAITING_QUOTA, Backend, BackendError, RemoteRef, SpecError
from jobs import queue
from jobs.mirroring import job_mirror_stage
from jobs.models import Job, JobStatus, Submission
from jobs.retries import cancel_resend_at, submit_retry_at
from jobs.services import job_backend, job_remote_ref, job_spec
from trainsvc import faults
from trainsvc.heartbeat import heartbeat

log = logging.getLogger(__name__)

WAITING_FOR = {WAITING_QUOTA: "Waiting for quota", WAITING_CAPACITY: "Waiting for capacity"}
# A submission run looks at this many of the longest-due jobs at a time and takes a random RUN_TAKE of
# them, so that runs working in parallel on a backlog mostly take different jobs: a job another run
# took costs a read and a failed conditional update, and runs walking the same 50 jobs collided on
# most of them.
RUN_BATCH = 50
RUN_TAKE = 10


def submit_lease() -> timedelta:
    # A live submitter renews its claim (a heartbeat), so a claim this old belongs to a worker that died:
    # the redelivered task (or the sweep) takes over, and looks the remote job up before any re-create.
    return timedelta(seconds=settings.TRAIN_SUBMIT_CLAIM_SECONDS)


def job_renew_submission_claim(job_id: str, attempt: int) -> bool:
    """Keep this attempt's claim alive; False once another attempt took the job over (or it moved on)."""
    return bool(Job.objects.filter(pk=job_id, submission=Submission.SUBMITTING, submit_attempts=attempt).update(
        submit_claimed_at=timezone.now()))


def job_claim_submission(job_id: str, job: Job | None = None) -> Job | None:
    """Claim the job for submission; None if it is not waiting (or another worker holds a live claim).
    `job`, the row just read, saves reading it again."""
    job = job or Job.objects.filter(pk=job_id).first()
    if job is None or not job.claim_submission(stale_before=timezone.now() - submit_lease()):
        return None
    return job


def jobs_due_for_submission(*, now=None):
    """Jobs whose submit attempt is due: new ones, those a back-off released, and those whose claim
    lapsed (the worker that held it died: a redelivered run takes them over)."""
    now = now or timezone.now()
    return Job.objects.filter(status=JobStatus.PENDING).filter(
        Q(submission=Submission.WAITING, next_submit_at__lte=now)
        | Q(submission=Submission.SUBMITTING, submit_claimed_at__lt=now - submit_lease()))


def jobs_due_in_turn():
    """Due jobs, longest-due first, whichever way a job fell due. A job whose claim lapsed has no
    next_submit_at (PostgreSQL sorts NULL last): by that alone, under a backlog it would never come."""
    return jobs_due_for_submission().order_by(Coalesce("next_submit_at", "submit_claimed_at"))


def jobs_submit_due(*, deadline: float) -> bool:
    """Submit due jobs, the longest-due first, until none is left or the monotonic `deadline` passes.
    Returns whether due jobs remain. Several runs may work at once: each job is taken by one claim,
    and a job another run took costs one failed conditional update. A run that sees a backlog queues
    another run, so a burst of new jobs spreads over every free worker."""
    previous = None
    while True:
        batch = list(jobs_due_in_turn().values_list("pk", flat=True)[:RUN_BATCH])
        if not batch:
            return False
        if previous and previous.issubset(batch):
            # None of those it took moved on (a claim that keeps failing). No successor: it would find
            # the same jobs at once, again and again. The sweep queues the next run.
            return False
        if len(batch) > 1:
            queue.enqueue_submissions()  # a backlog: the next free worker joins in (and asks for the next)
        taking = random.sample(batch, min(RUN_TAKE, len(batch)))
        previous = set(taking)
        for job_id in taking:
            if time.monotonic() >= deadline:
                return True
            job_submit(job_id)


def job_submit(job_id: str) -> None:
    waiting = Job.objects.filter(pk=job_id).first()
    if waiting is None or not job_mirror_stage(waiting):
        return  # its image is being mirrored (the mirror task re-drives it), or the job ended
    job = job_claim_submission(job_id, waiting)
    if job is None:
        return
    renew = partial(job_renew_submission_claim, job.pk, job.submit_attempts)
    with heartbeat(renew, lease_seconds=settings.TRAIN_SUBMIT_CLAIM_SECONDS, what=f"submit {job.pk}"):
        _submit_claimed(job)


def _submit_claimed(job: Job) -> None:
    attempt = job.submit_attempts
    try:
        backend = job_backend(job)
        # After a crash or an ambiguous error the remote job may exist already: look before creating.
        ref = backend.find(job.remote_name, job_id=job.pk) if attempt > 1 else None
        if ref is None:
            if job.cancel_requested_at:
                job.transition(JobStatus.CANCELED, reason="Canceled before it was submitted.",
                               actor=job.cancel_requested_by,
                               expect={"submission": Submission.SUBMITTING, "submit_attempts": attempt})
                return
            _pin_image(job, backend)
            ref = backend.submit(job_spec(job), job.remote_name)
        faults.hit("submit_after_create")
    except SpecError as exc:
        _fail(job, f"The {job.backend} backend rejected the job: {exc}")
        return
    except BackendError as exc:
        if exc.permanent:
            _fail(job, exc.message)
        else:
            _release(job, attempt, exc)
        return
    _mark_submitted(job, attempt, ref, backend.console_url(ref))


def _pin_image(job: Job, backend: Backend) -> None:
    """A tag in the cloud's own registry is sent by the digest it names now, recorded on the job first
    (a retry sends the same digest, and the API shows it). Train's own images are pinned already."""
    if job.image_digest or job.cloud_image:
        return
    pinned = backend.pin_image(job.image)
    _, at, digest = pinned.rpartition("@")
    if pinned != job.image and at and digest.startswith("sha256:"):
        job.record_pinned_image(attempt=job.submit_attempts, reference=pinned, digest=digest)


def _mark_submitted(job: Job, attempt: int, ref: RemoteRef, console_url: str) -> None:
    with transaction.atomic():  # the tasks commit with the state that needs them
        won, cancel = job.record_submitted(attempt=attempt, remote_id=ref.remote_id, console_url=console_url)
        if not won:
            return  # a later attempt took over; it will record the same remote job
        if cancel:
            queue.enqueue_cancel(job.pk)  # the cancel arrived while we were submitting
        queue.enqueue_poll()


def _release(job: Job, attempt: int, exc: BackendError) -> None:
    """A transient failure: give the job back, due again after a back-off (the sweeper re-drives it)."""
    retry_at = submit_retry_at(now=timezone.now(), attempt=attempt, retry_after=exc.retry_after)
    if exc.waiting:
        message = f"{WAITING_FOR.get(exc.waiting, 'Waiting')}: {exc.message}"
    else:
        message = f"Submission will be retried: {exc.message}"
    log.warning("submit %s attempt %s failed, retrying at %s: %s", job.pk, attempt, retry_at, exc.message)
    job.release_submission(attempt=attempt, retry_at=retry_at, message=message[:2000])


def _fail(job: Job, message: str) -> None:
    job.transition(JobStatus.FAILED, reason=message, status_message=message,
                   expect={"submission": Submission.SUBMITTING})


def job_cancel_remote(job_id: str) -> None:
    """Send a requested cancellation to the backend. Safe to repeat; the sweeper re-sends it, backing
    off, until the job is terminal."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.is_terminal or job.submission != Submission.SUBMITTED or not job.cancel_requested_at:
        return
    now = timezone.now()
    job.schedule_cancel_resend(at=cancel_resend_at(now=now, requested_at=job.cancel_requested_at))
    try:
        job_backend(job).cancel(job_remote_ref(job))
    except (BackendError, SpecError) as exc:
        log.warning("cancel %s failed, the sweeper will retry: %s", job_id, exc)
        return
    Job.objects.filter(pk=job.pk, status__in=[JobStatus.PENDING, JobStatus.IN_PROGRESS]).update(
        next_poll_at=timezone.now()
    )
    queue.enqueue_poll()
