"""Following submitted jobs: claim the ones due, ask each backend in batches, record what changed.

Rows are claimed by pushing `next_poll_at` forward with a per-row compare-and-set (after SELECT … FOR
UPDATE SKIP LOCKED on PostgreSQL), so several workers can poll at once and no job is polled twice in
a cycle. A failed status fetch is never a job failure: the job backs off and shows when it was last seen.
"""

import logging
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from backends.base import UNCHANGED, Backend, BackendError, RemoteRef, RemoteStatus, SpecError
from backends.registry import backend_class
from jobs.models import ACTIVE_STATUSES, TERMINAL_STATUSES, Job, JobStatus, Submission, WorkerLease
from jobs.observations import job_record_missed_start, observation_classify
from jobs.services import job_backend, job_poll_group
from trainsvc import faults

log = logging.getLogger(__name__)

POLL_LOOP_LEASE = "poll-loop"
MAX_BACKOFF_SECONDS = 15 * 60


@dataclass
class PollReport:
    claimed: int = 0
    changed: int = 0
    unreachable: int = 0
    backend_calls: dict = field(default_factory=lambda: defaultdict(int))


def due_jobs():
    return Job.objects.filter(status__in=ACTIVE_STATUSES, submission=Submission.SUBMITTED)


def jobs_claim_due(*, limit: int, now=None) -> list[Job]:
    now = now or timezone.now()
    lease_until = now + timedelta(seconds=settings.TRAIN_POLL_LEASE_SECONDS)
    with transaction.atomic():
        candidates = list(
            due_jobs().filter(next_poll_at__lte=now).order_by("next_poll_at")
            .select_for_update(skip_locked=True, of=("self",)).select_related("account")[:limit]
        )
        if connection.features.has_select_for_update_skip_locked:
            # The rows are locked by this transaction: one UPDATE claims them all.
            Job.objects.filter(pk__in=[job.pk for job in candidates]).update(next_poll_at=lease_until)
            return candidates
        # Without row locks (SQLite), claim row by row with a compare-and-set on the old poll time.
        return [
            job for job in candidates
            if Job.objects.filter(pk=job.pk, next_poll_at=job.next_poll_at).update(next_poll_at=lease_until)
        ]


def next_poll_delay(job: Job, backend_cls: type[Backend], *, changed: bool, now) -> timedelta:
    """Soon after a change; rarer the longer the job has kept its status. Rounded down to a multiple of
    the shortest interval, so that quiet jobs share a few UPDATEs instead of one each."""
    low, high = backend_cls.poll_interval_bounds
    if changed:
        return timedelta(seconds=low)
    quiet_for = (now - job.status_changed_at).total_seconds()
    return timedelta(seconds=min(high, max(low, low * int(quiet_for / 5 // low))))


def jobs_poll_once(*, now=None) -> PollReport:
    report = PollReport()
    claimed = jobs_claim_due(limit=settings.TRAIN_POLL_BATCH_SIZE, now=now)
    report.claimed = len(claimed)
    groups = defaultdict(list)
    for job in claimed:
        groups[job_poll_group(job)].append(job)
    for (_account_id, backend_name, _snapshot), jobs in groups.items():
        _poll_group(backend_name, jobs, report)
    return report


def _poll_group(backend_name: str, jobs: list[Job], report: PollReport) -> None:
    refs = {job.pk: RemoteRef(name=job.remote_name, remote_id=job.remote_id) for job in jobs}
    seen_times = [job.last_seen_at for job in jobs]
    since = None if None in seen_times else min(seen_times)
    try:
        backend = job_backend(jobs[0])
        report.backend_calls[backend_name] += 1
        observed = backend.poll(list(refs.values()), since=since)
    except (BackendError, SpecError) as exc:
        log.warning("poll of %d %s jobs failed: %s", len(jobs), backend_name, exc)
        backend, observed = None, {}
    faults.hit("poll_after_fetch")
    now = timezone.now()
    quiet = defaultdict(list)  # (status, remote status or None, delay) -> job ids
    for job in jobs:
        observation = observed.get(refs[job.pk])
        try:
            if observation is None:
                report.unreachable += 1
                job_note_unreachable(job)
            elif is_quiet(job, observation):
                quiet[_quiet_key(job, observation, type(backend), now)].append(job.pk)
            elif job_apply_observation(job, observation, backend, refs[job.pk]):
                report.changed += 1
        except Exception:  # one bad job must never stop the batch
            log.exception("recording the poll of %s failed", job.pk)
    jobs_record_quiet(quiet, now=now)


def is_quiet(job: Job, seen: RemoteStatus) -> bool:
    """Whether an observation leaves the job's status as it is."""
    return seen is UNCHANGED or seen.status in (None, job.status) or (
        seen.status == JobStatus.PENDING and job.status == JobStatus.IN_PROGRESS  # never move backwards
    )


def _quiet_key(job: Job, seen: RemoteStatus, backend_cls: type[Backend], now) -> tuple:
    if seen is not UNCHANGED and seen.status is None:
        log.info("%s: unknown remote state %r, keeping %s", job.pk, seen.remote_status, job.status)
    delay = next_poll_delay(job, backend_cls, changed=False, now=now)
    return job.status, None if seen is UNCHANGED else seen.remote_status[:128], delay


def jobs_record_quiet(groups: dict, *, now) -> None:
    """Record "seen, status unchanged" for many jobs in one UPDATE per (status, sub-status, delay)."""
    for (status, remote_status, delay), job_ids in groups.items():
        fields = {"last_seen_at": now, "poll_failures": 0, "next_poll_at": now + delay}
        if remote_status is not None:
            fields["remote_status"] = remote_status
        # The status guard keeps a job that another writer moved meanwhile from being overwritten.
        Job.objects.filter(pk__in=job_ids, status=status).update(**fields)


def job_note_unreachable(job: Job) -> None:
    failures = job.poll_failures + 1
    delay = min(MAX_BACKOFF_SECONDS, backend_class(job.backend).poll_interval_bounds[0] * 2**failures)
    Job.objects.filter(pk=job.pk).update(
        poll_failures=failures, next_poll_at=timezone.now() + timedelta(seconds=delay)
    )


def job_apply_observation(job: Job, seen: RemoteStatus, backend: Backend, ref: RemoteRef) -> bool:
    """Record an observation that changes the job's status; returns whether this writer won. The
    effects of the edge (the log tail of a FAILED job) run after it, from jobs.effects."""
    seen = observation_classify(job, seen)
    if not job_record_missed_start(job, seen, reason=f"The {job.backend} backend reported a start."):
        return False
    now = timezone.now()
    changes = {"last_seen_at": now, "poll_failures": 0, "status_message": seen.message}
    if seen.started_at:
        changes["started_at"] = seen.started_at
    if seen.status in TERMINAL_STATUSES:
        changes["finished_at"] = seen.finished_at or now
    else:
        changes["next_poll_at"] = now + next_poll_delay(job, type(backend), changed=True, now=now)
    reason = seen.message or f"The {job.backend} backend reported {seen.remote_status}."
    actor = job.cancel_requested_by if seen.status == JobStatus.CANCELED else None
    return job.transition(seen.status, reason=reason, remote_status=seen.remote_status[:128], actor=actor,
                          **changes)


# --- the poll loop ----------------------------------------------------------------------------------


def lease_acquire(name: str, holder: str, seconds: float) -> bool:
    now = timezone.now()
    until = now + timedelta(seconds=seconds)
    WorkerLease.objects.get_or_create(name=name, defaults={"held_until": now - timedelta(seconds=1)})
    return bool(
        WorkerLease.objects.filter(name=name, held_until__lt=now).update(holder=holder, held_until=until)
        or WorkerLease.objects.filter(name=name, holder=holder).update(held_until=until)
    )


def lease_release(name: str, holder: str) -> None:
    WorkerLease.objects.filter(name=name, holder=holder).update(held_until=timezone.now(), holder="")


def jobs_poll_loop() -> bool:
    """Poll now; then, if no other worker is already looping, keep polling what falls due for up to
    TRAIN_POLL_WINDOW_SECONDS. Returns True when it stopped with active jobs left, so the caller
    hands over to a successor run and status changes never wait for the next scheduled run."""
    jobs_poll_once()
    holder = secrets.token_hex(8)
    window = settings.TRAIN_POLL_WINDOW_SECONDS
    if not lease_acquire(POLL_LOOP_LEASE, holder, window + 30):
        return False
    deadline = time.monotonic() + window
    try:
        while True:
            upcoming = (
                due_jobs().filter(next_poll_at__isnull=False).order_by("next_poll_at")
                .values_list("next_poll_at", flat=True).first()
            )
            if upcoming is None:
                return False
            wait = max(settings.TRAIN_POLL_TICK_SECONDS, (upcoming - timezone.now()).total_seconds())
            if time.monotonic() + wait > deadline:
                return True
            time.sleep(wait)
            jobs_poll_once()
    finally:
        lease_release(POLL_LOOP_LEASE, holder)
