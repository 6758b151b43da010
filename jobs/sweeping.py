"""The periodic sweep: re-drives work whose task was lost, and expires jobs stuck in PENDING.

Correctness never depends on a queued task arriving: anything the sweep finds undone, it enqueues
again, and every task is safe to run twice."""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from backends.base import BackendError, RemoteRef, SpecError
from backends.services import backend_for_account
from jobs import queue
from jobs.models import ACTIVE_STATUSES, Job, JobStatus, Submission
from jobs.submission import submit_lease

log = logging.getLogger(__name__)

# Give a freshly enqueued task time to run before the sweep enqueues it again.
REDRIVE_AFTER = timedelta(seconds=30)
CANCEL_RESEND_AFTER = timedelta(minutes=2)


@dataclass
class SweepReport:
    resubmitted: int = 0
    cancels_resent: int = 0
    expired: int = 0


def jobs_sweep(*, now=None) -> SweepReport:
    now = now or timezone.now()
    report = SweepReport()
    report.expired = _expire_pending(now)
    stuck = Job.objects.filter(status=JobStatus.PENDING).filter(
        Q(submission=Submission.WAITING, created_at__lt=now - REDRIVE_AFTER)
        | Q(submission=Submission.SUBMITTING, submit_claimed_at__lt=now - submit_lease())
    )
    for job_id in stuck.values_list("pk", flat=True):
        queue.enqueue_submit(job_id)
        report.resubmitted += 1
    unconfirmed = Job.objects.filter(
        status__in=ACTIVE_STATUSES, submission=Submission.SUBMITTED,
        cancel_requested_at__lt=now - CANCEL_RESEND_AFTER,
    )
    for job_id in unconfirmed.values_list("pk", flat=True):
        queue.enqueue_cancel(job_id)
        report.cancels_resent += 1
    return report


def _expire_pending(now) -> int:
    deadline = now - timedelta(seconds=settings.TRAIN_PENDING_DEADLINE_SECONDS)
    expired = 0
    reason = f"Still PENDING after {settings.TRAIN_PENDING_DEADLINE_SECONDS} seconds."
    for job in Job.objects.filter(status=JobStatus.PENDING, created_at__lt=deadline).select_related("account"):
        if job.submission == Submission.SUBMITTING:
            continue  # a submitter holds it; expiring now could orphan the remote job it is creating
        if job.submission == Submission.SUBMITTED and not _stop_remote(job):
            continue  # try again next sweep rather than leave a remote job running unseen
        expired += job.transition(JobStatus.EXPIRED, reason=reason, status_message=reason,
                                  expect={"submission": job.submission})
    return expired


def _stop_remote(job: Job) -> bool:
    try:
        backend = backend_for_account(account=job.account, name=job.backend)
        backend.cancel(RemoteRef(name=job.remote_name, remote_id=job.remote_id))
    except (BackendError, SpecError) as exc:
        log.warning("could not stop expired job %s: %s", job.pk, exc)
        return False
    return True
