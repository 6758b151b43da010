"""The periodic sweep: re-drives work whose task was lost or whose retry is due, and expires jobs
stuck in PENDING.

Correctness never depends on a queued task arriving: anything the sweep finds undone, it enqueues
again, and every task is safe to run twice."""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from jobs import queue
from jobs.models import ACTIVE_STATUSES, Effect, Job, JobEvent, JobStatus, Submission
from jobs.retries import REDRIVE_AFTER
from jobs.submission import jobs_due_for_submission
from registry.mirror import mirrors_due
from registry.models import MirrorState

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    resubmitted: int = 0
    cancels_resent: int = 0
    expired: int = 0
    effects_redriven: int = 0
    mirrors_redriven: int = 0
    submission_runs: int = 0


def jobs_sweep(*, now=None) -> SweepReport:
    now = now or timezone.now()
    report = SweepReport()
    report.expired = _expire_pending(now)
    # Due jobs (new ones, those whose back-off ended, those whose worker died holding the claim) are
    # taken by a submission run: make sure one is queued. It is a no-op while one waits in the queue.
    if jobs_due_for_submission(now=now).exists() and queue.enqueue_submissions():
        report.submission_runs += 1
    # One attempt each for a job whose task was lost after its mirror.
    lost = Job.objects.filter(status=JobStatus.PENDING, submission=Submission.WAITING, next_submit_at__isnull=True,
                              created_at__lt=now - REDRIVE_AFTER)
    for job_id in lost.values_list("pk", flat=True):
        queue.enqueue_submit(job_id)
        report.resubmitted += 1
    unconfirmed = Job.objects.filter(
        status__in=ACTIVE_STATUSES, submission=Submission.SUBMITTED, cancel_requested_at__isnull=False,
        next_cancel_at__lte=now,
    )
    for job_id in unconfirmed.values_list("pk", flat=True):
        queue.enqueue_cancel(job_id)
        report.cancels_resent += 1
    report.mirrors_redriven, stage_ended = _redrive_mirrors(now)
    report.resubmitted += stage_ended
    undone = JobEvent.objects.filter(effects_done_at__isnull=True, at__lt=now - REDRIVE_AFTER)
    for event_id in undone.values_list("pk", flat=True):
        queue.enqueue_effects(event_id)
        report.effects_redriven += 1
    return report


def _redrive_mirrors(now) -> tuple[int, int]:
    """Mirrors due (a transient failure's retry, or a holder that died mid-copy) get a task; jobs left
    MIRRORING on a mirror that ended (or vanished) go back to a submitter, which fails or submits them."""
    redriven = 0
    for mirror_id in mirrors_due(now=now).values_list("pk", flat=True):
        waiting = Job.objects.filter(mirror_id=mirror_id, status=JobStatus.PENDING, submission=Submission.MIRRORING)
        queue.enqueue_mirror(mirror_id, job_id=waiting.values_list("pk", flat=True).first())
        redriven += 1
    ended = Job.objects.filter(status=JobStatus.PENDING, submission=Submission.MIRRORING).filter(
        Q(mirror__isnull=True) | Q(mirror__state__in=[MirrorState.DONE, MirrorState.FAILED]))
    stage_ended = 0
    for job_id in ended.values_list("pk", flat=True):
        queue.enqueue_submit(job_id)
        stage_ended += 1
    return redriven, stage_ended


def _expire_pending(now) -> int:
    """Expire jobs PENDING past their deadline. The EXPIRED transition is won first; stopping a remote
    copy is its effect, so a job that just got capacity (and moved on) is never stopped by mistake."""
    default_deadline = timedelta(seconds=settings.TRAIN_PENDING_DEADLINE_SECONDS)
    overdue = Job.objects.filter(status=JobStatus.PENDING).filter(
        Q(pending_deadline_at__lt=now) | Q(pending_deadline_at__isnull=True, created_at__lt=now - default_deadline))
    expired = 0
    for job in overdue:
        if job.submission == Submission.SUBMITTING:
            continue  # a submitter holds it; it is expired once released or its claim goes stale
        deadline = job.pending_deadline_at or job.created_at + default_deadline
        reason = f"Still PENDING after {int((deadline - job.created_at).total_seconds())} seconds."
        # A remote copy may exist once a submit was attempted (an ambiguous create included).
        effects = [Effect.STOP_REMOTE] if job.submit_attempts or job.submission == Submission.SUBMITTED else []
        expired += job.transition(JobStatus.EXPIRED, reason=reason, status_message=reason, effects=effects,
                                  expect={"submission": job.submission, "submit_attempts": job.submit_attempts})
    return expired
