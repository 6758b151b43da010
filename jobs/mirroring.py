"""The MIRRORING submission stage: a job whose image is in Train's registry, sent to a backend whose
cloud pulls from its own registry, waits for the shared copy of its pinned digest there
(registry.mirror) before any cloud call, and is then submitted with that copy (`cloud_image`).

Waiting is not an attempt: no claim is taken and nothing is counted, so a slow copy never eats the
submission's retries. The job's pending deadline still bounds the wait. The copy itself runs in the
mirror task (`mirror_drive`), leased in the Mirror row, so two workers never copy one mirror; when it
ends (DONE or FAILED) every job waiting on it is handed back to a submitter."""

import logging

from django.utils import timezone

from backends.base import Backend, BackendError, SpecError
from backends.models import BackendConfig
from backends.services import backend_for_snapshot
from jobs import queue
from jobs.models import MIRROR_STAGES, Job, JobStatus, Submission
from jobs.retries import submit_retry_at
from jobs.services import job_backend
from registry.hosts import is_train_registry
from registry.mirror import MirrorTarget, mirror_ensure, mirror_progress_text, mirror_run
from registry.models import Mirror, MirrorState, Repository
from registry.reference import InvalidReference, parse_reference

log = logging.getLogger(__name__)


def train_repository_name(image: str) -> str | None:
    """`<account>/<path>` when `image` names Train's own registry; None for any other registry."""
    try:
        ref = parse_reference(image)
    except InvalidReference:
        return None
    return ref.path if ref.domain and is_train_registry(ref.domain) else None


def job_mirror_target(job: Job, backend: Backend) -> MirrorTarget | None:
    """Where the job's image must be copied before submission; None when the backend takes it as it is
    (already mirrored, not Train's image, or a backend that pulls from Train)."""
    if job.cloud_image or not job.image_digest:
        return None
    repository = train_repository_name(job.image)
    return backend.mirror_target(repository) if repository else None


def job_mirror_stage(job: Job) -> bool:
    """Run the stage for a job not yet claimed by a submitter. True: the job may be submitted now
    (no mirror needed, or it is DONE and `cloud_image` is recorded). False: it waits or ended."""
    if job.status != JobStatus.PENDING or job.submission not in MIRROR_STAGES:
        return True  # the claim decides what happens to it
    try:
        backend = job_backend(job)
        target = job_mirror_target(job, backend)
    except SpecError:
        return True  # the submitter records why the backend cannot take the job
    except BackendError as exc:
        _target_unavailable(job, exc)
        return False
    if target is None:
        return True
    if job.cancel_requested_at:
        job.transition(JobStatus.CANCELED, reason="Canceled before it was submitted.", actor=job.cancel_requested_by,
                       expect={"submission__in": MIRROR_STAGES})
        return False
    repository = Repository.objects.filter(name=train_repository_name(job.image), account_id=job.account_id).first()
    if repository is None:
        _fail(job, f"The image's repository {train_repository_name(job.image)} no longer exists in Train's registry.")
        return False
    mirror = mirror_ensure(repository=repository, digest=job.image_digest, target=target)
    if mirror.state == MirrorState.DONE:
        return job.record_cloud_image(target.reference(job.image_digest))
    if mirror.state == MirrorState.FAILED:
        _fail(job, mirror_progress_text(mirror, target.label))
        return False
    if job.enter_mirroring(mirror=mirror, label=target.label):
        queue.enqueue_mirror(mirror.pk, job_id=job.pk)
    return False


def _target_unavailable(job: Job, exc: BackendError) -> None:
    """The backend could not say where the image goes (its cloud refused or did not answer)."""
    if exc.permanent:
        _fail(job, exc.message)
        return
    retry_at = submit_retry_at(now=timezone.now(), attempt=1, retry_after=exc.retry_after)
    job.defer_submission(retry_at=retry_at, message=f"Mirroring will be retried: {exc.message}")


def _fail(job: Job, message: str) -> None:
    message = message[:2000]
    job.transition(JobStatus.FAILED, reason=message, status_message=message, expect={"submission__in": MIRROR_STAGES})


def job_mirror_status(job: Job) -> str:
    """The sub-status of a job waiting for its mirror ("mirroring to ECR: 1.2 of 3.4 GB")."""
    if job.submission != Submission.MIRRORING or job.mirror is None:
        return ""
    text = mirror_progress_text(job.mirror, job.mirror_label or "the cloud's registry")
    if job.mirror.state == MirrorState.PENDING and job.mirror.error:
        text += f" (retrying after: {job.mirror.error[:200]})"
    return text


# --- the mirror task -----------------------------------------------------------------------------------
def _same_target(mirror: Mirror, target: MirrorTarget | None) -> bool:
    return target is not None and (target.registry, target.repository) == (mirror.target_registry,
                                                                          mirror.target_repository)


def mirror_target_for(mirror: Mirror, *, job_id: str | None = None, backend_name: str = "") -> MirrorTarget | None:
    """The target (with its credentials) to copy `mirror` with: from a waiting job's pinned backend
    configuration, else from the account's configuration of `backend_name` (or of any backend whose
    target is this mirror's, for a mirror started by a push)."""
    path, account_id = mirror.repository.name, mirror.repository.account_id
    # The job the task was queued for first, then a few others waiting on the mirror.
    jobs = Job.objects.filter(account_id=account_id, status=JobStatus.PENDING)
    named = list(jobs.filter(pk=job_id)) if job_id else []
    for job in named + list(jobs.filter(mirror=mirror, submission=Submission.MIRRORING)[:5]):
        try:
            target = job_backend(job).mirror_target(path)
        except (SpecError, BackendError):
            continue
        if _same_target(mirror, target):
            return target
    configs = BackendConfig.objects.filter(account_id=account_id)
    if backend_name:
        configs = configs.filter(backend=backend_name)
    for row in configs:
        try:
            target = backend_for_snapshot(account_id=account_id, name=row.backend, config=row.config
                                          ).mirror_target(path)
        except (SpecError, BackendError):
            continue
        if _same_target(mirror, target):
            return target
    return None


def mirror_drive(mirror_id: int, *, job_id: str | None = None, backend_name: str = "") -> None:
    """Copy the mirror (if due and this worker wins its lease), then re-drive the jobs waiting on it.
    Safe to run twice: a second run finds the lease held, or nothing to do."""
    mirror = Mirror.objects.select_related("repository").filter(pk=mirror_id).first()
    if mirror is None:
        return
    if mirror.state in (MirrorState.PENDING, MirrorState.COPYING):
        target = mirror_target_for(mirror, job_id=job_id, backend_name=backend_name)
        if target is None:
            log.warning("mirror %s: no backend configuration names its target any more", mirror_id)
            return
        mirror = mirror_run(mirror_id=mirror_id, target=target)
        if mirror is None:
            return  # another worker holds it (it re-drives the jobs), or it is not due yet
    if mirror.state in (MirrorState.DONE, MirrorState.FAILED):
        mirror_redrive_jobs(mirror)


def mirror_redrive_jobs(mirror: Mirror) -> int:
    """Hand every job waiting on a finished mirror back to a submitter."""
    waiting = Job.objects.filter(mirror=mirror, status=JobStatus.PENDING, submission=Submission.MIRRORING)
    count = 0
    for job_id in waiting.values_list("pk", flat=True):
        queue.enqueue_submit(job_id)
        count += 1
    return count


def mirror_on_push(*, account_id: str, repository: str, digest: str) -> int:
    """A tag of `repository` now points at `digest`: start its mirror for every backend of the account
    configured with `mirror_on_push`. Returns how many mirrors were queued."""
    repo = Repository.objects.filter(name=repository, account_id=account_id).first()
    if repo is None:
        return 0
    queued = 0
    for row in BackendConfig.objects.filter(account_id=account_id):
        try:
            backend = backend_for_snapshot(account_id=account_id, name=row.backend, config=row.config)
            target = backend.mirror_target(repository) if backend.mirror_on_push else None
        except (SpecError, BackendError):
            continue
        if target is None:
            continue
        mirror = mirror_ensure(repository=repo, digest=digest, target=target)
        if mirror.state == MirrorState.PENDING:
            queue.enqueue_mirror(mirror.pk, backend_name=row.backend)
            queued += 1
    return queued
