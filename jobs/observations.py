"""What the core adds to a backend's observation before it is recorded.

Adapters report what the cloud says. Two readings need the job's own history, so they live here,
once for every cloud: a cancel the cloud made after the job's max runtime (Vertex and Azure enforce
timeouts by cancelling) is EXPIRED, not CANCELED; and a job first seen already finished gets the start
it had, at the cloud's time, before its end.
"""

from dataclasses import replace
from datetime import timedelta

from django.utils import timezone

from backends.base import RemoteStatus
from jobs.models import TERMINAL_STATUSES, Job, JobStatus

# Clouds count runtime from their own start event; allow this much disagreement with started_at.
RUNTIME_TOLERANCE = timedelta(seconds=60)


def observation_classify(job: Job, seen: RemoteStatus) -> RemoteStatus:
    """`seen`, with a cloud-side cancel after the job's max runtime (and no Train cancel request)
    read as EXPIRED."""
    if seen.status != JobStatus.CANCELED or job.cancel_requested_at is not None:
        return seen
    started = seen.started_at or job.started_at
    ended = seen.finished_at or timezone.now()
    if started is None or ended - started < timedelta(seconds=job.max_runtime_seconds) - RUNTIME_TOLERANCE:
        return seen
    return replace(seen, status=JobStatus.EXPIRED,
                   message=f"The cloud stopped the job after max_runtime_seconds ({job.max_runtime_seconds} s).")


def job_record_missed_start(job: Job, seen: RemoteStatus, *, reason: str) -> bool:
    """For a PENDING job first seen finished: record PENDING → IN_PROGRESS at the cloud's start time.
    Returns False if another writer moved the job first (then the caller records nothing)."""
    if job.status != JobStatus.PENDING or seen.status not in TERMINAL_STATUSES or seen.started_at is None:
        return True
    # Event order must stay creation < start < end, whatever the clocks say.
    at = min(timezone.now(), max(seen.started_at, job.status_changed_at))
    return job.transition(JobStatus.IN_PROGRESS, reason=reason, at=at, started_at=seen.started_at)
