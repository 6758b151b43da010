"""When to try again: submission back-off, cancel re-sends and the pending deadline.

Retries are paced by time, not counted: a job keeps trying while its pending deadline allows, so a
worker killed mid-attempt (counted in `submit_attempts`, never answered) costs no budget, and a job
waiting for quota is not failed for having waited.
"""

import random
from datetime import datetime, timedelta

from django.conf import settings

# Give a freshly enqueued task time to run before the sweep enqueues it again.
REDRIVE_AFTER = timedelta(seconds=30)
# Submission back-off after a transient error: doubles per attempt from the base, with full jitter
# over its upper half so that jobs refused together (a quota, a brownout) do not return together.
SUBMIT_BACKOFF_BASE_SECONDS = 15
SUBMIT_BACKOFF_MAX_SECONDS = 15 * 60
# Unconfirmed cancellations are re-sent after as long again as they have waited, within these bounds:
# soon at first, then rarely for a cloud that takes long to stop.
CANCEL_RESEND_MIN = timedelta(minutes=2)
CANCEL_RESEND_MAX = timedelta(hours=1)
# A job the cloud may keep queued itself (a spot job's MaxWait) gets this much longer than the cloud's
# own limit, so the cloud's verdict (EXPIRED by the cloud) is seen before Train's deadline fires.
QUEUE_LIMIT_MARGIN = timedelta(hours=1)


def submit_retry_at(*, now: datetime, attempt: int, retry_after: float | None, rng=random) -> datetime:
    """When to hand a job back to a submitter after transient failure number `attempt` (1-based)."""
    ceiling = min(SUBMIT_BACKOFF_MAX_SECONDS, SUBMIT_BACKOFF_BASE_SECONDS * 2 ** max(0, attempt - 1))
    delay = rng.uniform(ceiling / 2, ceiling)
    return now + timedelta(seconds=max(delay, retry_after or 0))


def cancel_resend_at(*, now: datetime, requested_at: datetime) -> datetime:
    waited = now - requested_at
    return now + min(CANCEL_RESEND_MAX, max(CANCEL_RESEND_MIN, waited))


def pending_deadline(*, created_at: datetime, cloud_queue_seconds: int) -> datetime:
    """The moment a job still PENDING is EXPIRED: TRAIN_PENDING_DEADLINE_SECONDS after creation, or
    later for a job the cloud itself may keep queued longer."""
    deadline = timedelta(seconds=settings.TRAIN_PENDING_DEADLINE_SECONDS)
    if cloud_queue_seconds:
        deadline = max(deadline, timedelta(seconds=cloud_queue_seconds) + QUEUE_LIMIT_MARGIN)
    return created_at + deadline
