"""Effects of entering a state, run from one place after the transition committed.

`Job.transition` lists an event's effects on the JobEvent row and enqueues `run_job_effects` in the
same transaction, so an effect exists if and only if its transition was won. The sweeper re-drives
events whose effects are not done, so each effect is idempotent: stopping a stopped job is not an
error, and a log tail is overwritten with the same lines.
"""

import logging
from datetime import timedelta

from django.utils import timezone

from backends.base import BackendError, SpecError
from jobs.models import Effect, Job, JobEvent, Submission
from jobs.services import job_backend, job_remote_ref

log = logging.getLogger(__name__)

FAILURE_LOG_LINES = 20
# A transient failure is retried by the sweep for this long; after that the effect is given up (logged).
EFFECTS_RETRY_FOR = timedelta(days=1)


def job_stop_remote(job: Job) -> None:
    """Stop the cloud's copy of a job Train has ended. A job not recorded SUBMITTED may still have one
    (an ambiguous create): look it up first."""
    backend = job_backend(job)
    ref = job_remote_ref(job) if job.submission == Submission.SUBMITTED else \
        backend.find(job.remote_name, job_id=job.pk)
    if ref is not None:
        backend.cancel(ref)


def job_fetch_log_tail(job: Job) -> None:
    job.record_log_tail(job_backend(job).logs(job_remote_ref(job), tail=FAILURE_LOG_LINES))


RUNNERS = {Effect.STOP_REMOTE: job_stop_remote, Effect.LOG_TAIL: job_fetch_log_tail}


def event_run_effects(event_id: int) -> bool:
    """Run the effects of one event; returns whether they are all done. Safe to run twice."""
    event = JobEvent.objects.select_related("job").filter(pk=event_id).first()
    if event is None or event.effects_done_at is not None:
        return True
    for effect in event.effects:
        try:
            RUNNERS[effect](event.job)
        except BackendError as exc:
            if not exc.permanent and timezone.now() - event.at < EFFECTS_RETRY_FOR:
                log.warning("effect %s of %s failed, the sweeper will retry: %s", effect, event.job_id, exc)
                return False
            log.error("effect %s of %s given up: %s", effect, event.job_id, exc)
        except SpecError as exc:  # the backend was disabled: nothing can run it
            log.error("effect %s of %s cannot run: %s", effect, event.job_id, exc)
    event.mark_effects_done()
    return True
