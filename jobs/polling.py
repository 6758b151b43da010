"""Following submitted jobs: claim the ones due, ask each backend in batches, record what changed.

Rows are claimed by pushing `next_poll_at` forward with a per-row compare-and-set (after SELECT … FOR
UPDATE SKIP LOCKED on PostgreSQL), so several workers can poll at once and no job is polled twice in
a cycle. A failed status fetch is never a job failure: the job backs off and shows when it was last seen.
"""

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone

from backends.base import UNCHANGED, Backend, BackendError, RemoteRef, RemoteStatus, SpecError
from backends.registry import backend_class
from jobs.models import ACTIVE_STATUSES, TERMINAL_STATUSES, Job, JobStatus, Submission, WorkerLease
from jobs.observations import job_record_missed_start, observation_classify
from jobs.services import job_backend, job_poll_group
from trainsvc import faults
from trainsvc.heartbeat import heartbeat, holder_name

log = logging.getLogger(__name__)

POLL_LOOP_LEASE = "poll-loop"
# The looping run starts a cycle at most this often (a job's change is recorded up to this much later).
CYCLE_SPACING_SECONDS = 1
MAX_BACKOFF_SECONDS = 15 * 60


@dataclass
class PollReport:
    claimed: int = 0
    changed: int = 0
    unreachable: int = 0
    released: int = 0  # claimed but not polled before the budget ran out: due again at once
    failed_groups: int = 0
    backend_calls: dict = field(default_factory=lambda: defaultdict(int))


def due_jobs():
    return Job.objects.filter(status__in=ACTIVE_STATUSES, submission=Submission.SUBMITTED)


def jobs_claim_due(*, limit: int, now=None) -> list[Job]:
    """Claim up to `limit` due jobs, oldest due first, by pushing their `next_poll_at` out by the claim
    lease (`claim_seconds`). The returned instances hold the claimed `next_poll_at`, and in `due_at`
    when they fell due."""
    now = now or timezone.now()
    with transaction.atomic():
        candidates = list(
            due_jobs().filter(next_poll_at__lte=now).order_by("next_poll_at")
            .select_for_update(skip_locked=True, of=("self",))[:limit]
        )
        until = {name: now + timedelta(seconds=claim_seconds(name)) for name in {job.backend for job in candidates}}
        if connection.features.has_select_for_update_skip_locked:
            # The rows are locked by this transaction: one UPDATE per backend claims them all.
            for name, lease_until in until.items():
                Job.objects.filter(pk__in=[job.pk for job in candidates if job.backend == name]).update(
                    next_poll_at=lease_until)
            claimed = candidates
        else:
            # Without row locks (SQLite), claim row by row with a compare-and-set on the old poll time.
            claimed = [
                job for job in candidates
                if Job.objects.filter(pk=job.pk, next_poll_at=job.next_poll_at).update(
                    next_poll_at=until[job.backend])
            ]
    for job in claimed:
        job.due_at, job.next_poll_at = job.next_poll_at, until[job.backend]
    return claimed


def claim_seconds(backend_name: str) -> int:
    try:
        own = backend_class(backend_name).poll_claim_seconds
    except (KeyError, ImportError):  # a backend no longer installed: its group fails and backs off alone
        own = None
    return min(own, settings.TRAIN_POLL_LEASE_SECONDS) if own else settings.TRAIN_POLL_LEASE_SECONDS


def jobs_release_claims(jobs: list[Job], *, keep_place: bool) -> int:
    """Give back claimed jobs that were not polled: due again at once, not withheld for the lease.
    `keep_place`: due since when they fell due, so a group the budget never reached comes before the
    group that spent it. The guard on the claimed time leaves alone a job another writer touched."""
    released = 0
    now = timezone.now()
    for job in jobs:
        released += Job.objects.filter(pk=job.pk, next_poll_at=job.next_poll_at).update(
            next_poll_at=min(job.due_at, now) if keep_place else now)
    return released


def next_poll_delay(job: Job, backend_cls: type[Backend], *, changed: bool, now) -> timedelta:
    """Soon after a change; rarer the longer the job has kept its status. Rounded down to a multiple of
    the shortest interval, so that quiet jobs share a few UPDATEs instead of one each."""
    low, high = backend_cls.poll_interval_bounds
    if changed:
        return timedelta(seconds=low)
    quiet_for = (now - job.status_changed_at).total_seconds()
    return timedelta(seconds=min(high, max(low, low * int(quiet_for / 5 // low))))


def batch_deadline(deadline: float | None = None) -> float:
    """When a poll cycle must stop (a time.monotonic() value): its own budget, cut to `deadline`."""
    own = time.monotonic() + settings.TRAIN_POLL_BATCH_SECONDS
    return own if deadline is None else min(own, deadline)


def jobs_poll_once(*, now=None, deadline: float | None = None) -> PollReport:
    """One poll cycle: claim what is due and poll it group by group (one group per account and backend,
    the group with the longest-waiting job first). Stops at the budget (`batch_deadline`); the claimed
    jobs it did not get to are released, so they come first in the next cycle."""
    deadline = batch_deadline(deadline)
    report = PollReport()
    claimed = jobs_claim_due(limit=settings.TRAIN_POLL_BATCH_SIZE, now=now)
    report.claimed = len(claimed)
    groups = defaultdict(list)  # insertion order is claim order: oldest due first
    for job in claimed:
        groups[job_poll_group(job)].append(job)
    for (_account_id, backend_name, _snapshot), jobs in groups.items():
        if time.monotonic() >= deadline:
            report.released += jobs_release_claims(jobs, keep_place=True)
            continue
        _poll_group(backend_name, jobs, report, deadline=deadline)
    if report.released:
        log.warning("poll budget spent: released %d claimed jobs unpolled", report.released)
    return report


def _poll_group(backend_name: str, jobs: list[Job], report: PollReport, *, deadline: float) -> None:
    refs = {job.pk: RemoteRef(name=job.remote_name, remote_id=job.remote_id) for job in jobs}
    seen_times = [job.last_seen_at for job in jobs]
    since = None if None in seen_times else min(seen_times)
    try:
        backend = job_backend(jobs[0])
        report.backend_calls[backend_name] += 1
        observed = backend.poll(list(refs.values()), since=since, deadline=deadline)
    except DatabaseError:
        raise  # not this group's fault: the cycle ends and the loop reconnects
    except Exception as exc:  # whatever one group raises, it backs off alone and the cycle goes on
        expected = isinstance(exc, (BackendError, SpecError))
        log.warning("poll of %d %s jobs of account %s failed, backing them off: %r", len(jobs), backend_name,
                    jobs[0].account_id, exc, exc_info=not expected)
        report.failed_groups += 1
        backend, observed = None, {}
    faults.hit("poll_after_fetch")
    # Refs an adapter left out because the budget ran out were not observed: release, do not back off.
    out_of_time = backend is not None and time.monotonic() >= deadline
    now = timezone.now()
    quiet = defaultdict(list)  # (status, remote status or None, delay) -> job ids
    unpolled = []
    for job in jobs:
        observation = observed.get(refs[job.pk])
        try:
            if observation is None and out_of_time:
                unpolled.append(job)
            elif observation is None:
                report.unreachable += 1
                job_note_unreachable(job)
            elif is_quiet(job, observation):
                quiet[_quiet_key(job, observation, type(backend), now)].append(job.pk)
            elif job_apply_observation(job, observation, backend, refs[job.pk]):
                report.changed += 1
        except DatabaseError:
            raise
        except Exception:  # one bad job must never stop the batch
            log.exception("recording the poll of %s failed", job.pk)
    jobs_record_quiet(quiet, now=now)
    report.released += jobs_release_claims(unpolled, keep_place=False)


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


def next_due_at():
    """When the next active job falls due (None if no job is being followed)."""
    return due_jobs().filter(next_poll_at__isnull=False).order_by("next_poll_at").values_list(
        "next_poll_at", flat=True).first()


def jobs_poll_loop(*, task_deadline: float) -> bool:
    """Poll now; then, if no other worker is already looping, keep polling what falls due for up to
    TRAIN_POLL_WINDOW_SECONDS (never past `task_deadline`, a time.monotonic() value).

    Returns whether the caller should hand over to a successor run: only when work falls due before the
    next scheduled run could take it (TRAIN_POLL_INTERVAL_SECONDS). The loop's lease is short and kept
    alive by a heartbeat, so a run that dies loses it within seconds."""
    _poll_cycle(task_deadline)
    holder = holder_name()
    lease_seconds = settings.TRAIN_POLL_LOOP_LEASE_SECONDS
    if not WorkerLease.acquire(POLL_LOOP_LEASE, holder, lease_seconds):
        return False
    window_end = min(time.monotonic() + settings.TRAIN_POLL_WINDOW_SECONDS, task_deadline)
    try:
        with heartbeat(partial(WorkerLease.renew, POLL_LOOP_LEASE, holder, lease_seconds),
                       lease_seconds=lease_seconds, what="poll loop") as beat:
            return _loop_until(window_end, task_deadline, beat)
    finally:
        try:
            WorkerLease.release(POLL_LOOP_LEASE, holder)
        except DatabaseError as exc:  # it lapses by itself within seconds
            log.warning("poll loop: could not release its lease: %s", exc)


def _loop_until(window_end: float, task_deadline: float, beat) -> bool:
    tick = settings.TRAIN_POLL_TICK_SECONDS
    upcoming = None
    while not beat.lost:  # a lost lease means another run loops now
        remaining = window_end - time.monotonic()
        if remaining <= 0:
            return _due_before_next_run(upcoming)
        close_old_connections()
        try:
            upcoming = next_due_at()
            if upcoming is None:
                return False  # nothing to follow: the next submission starts a run
            wait = (upcoming - timezone.now()).total_seconds()
            if wait <= 0:
                faults.hit("poll_loop_wake")
                cycle_started = time.monotonic()
                if _poll_cycle(task_deadline):
                    # Under load a job falls due every few milliseconds: spaced out, each cycle takes a
                    # batch (one claim, one UPDATE per quiet group) instead of the one job just due.
                    time.sleep(max(0.0, min(CYCLE_SPACING_SECONDS - (time.monotonic() - cycle_started), remaining)))
                    continue
                wait = tick  # due but claimed by another poller right now
        except DatabaseError as exc:
            _drop_connection(exc)
            upcoming, wait = None, tick
        if upcoming is not None and wait > remaining:
            return _due_before_next_run(upcoming)
        time.sleep(min(wait, tick, remaining))
    return False


def _due_before_next_run(upcoming) -> bool:
    """Whether work falls due before the next scheduled run would take it (unknown counts as yes)."""
    if upcoming is None:
        return True
    return upcoming - timezone.now() < timedelta(seconds=settings.TRAIN_POLL_INTERVAL_SECONDS)


def _poll_cycle(task_deadline: float) -> int:
    """One cycle; returns how many jobs it claimed. A dropped database connection costs this cycle only."""
    if time.monotonic() >= task_deadline:
        return 0
    try:
        return jobs_poll_once(deadline=task_deadline).claimed
    except DatabaseError as exc:
        _drop_connection(exc)
        return 0


def _drop_connection(exc: Exception) -> None:
    log.warning("poll loop: database error, reconnecting on the next wake: %s", exc)
    connection.close()
