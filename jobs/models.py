"""Jobs and their status history.

`Job.transition()` is the only writer of `status`: it checks the move, applies it with a conditional
UPDATE (… WHERE status = <the status the caller saw>), writes a JobEvent in the same transaction and
says whether it won. A caller that lost the race changes nothing.

A JobEvent is also the outbox of the edge it records: what must happen on entering a state (stop the
remote job, fetch the log tail) is listed in `effects` and run by `jobs.effects` after the move has
committed, never before it was won.
"""

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from trainsvc.heartbeat import holder_died_here


class JobStatus(models.TextChoices):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.EXPIRED})
ACTIVE_STATUSES = frozenset({JobStatus.PENDING, JobStatus.IN_PROGRESS})
ALLOWED_MOVES = {
    JobStatus.PENDING: frozenset({JobStatus.IN_PROGRESS} | TERMINAL_STATUSES),
    JobStatus.IN_PROGRESS: TERMINAL_STATUSES,
    **{status: frozenset() for status in TERMINAL_STATUSES},
}


class Submission(models.TextChoices):
    """Progress of getting the job to its backend, kept apart from the user-facing status: all of it
    is PENDING to the user."""

    WAITING = "WAITING"  # not yet handed to the backend (or released after a transient error)
    # Its image is being copied to the registry its cloud pulls from (Job.mirror); no attempt is counted.
    MIRRORING = "MIRRORING"
    SUBMITTING = "SUBMITTING"  # claimed by a worker; the remote create may or may not have happened
    SUBMITTED = "SUBMITTED"  # the backend has it; the poller follows it from here


# Where a job may enter (or stay in) the mirroring stage: not yet claimed by a submitter.
MIRROR_STAGES = (Submission.WAITING, Submission.MIRRORING)


class Effect(models.TextChoices):
    """Side effects of entering a state, run once the transition has committed (jobs.effects)."""

    STOP_REMOTE = "stop_remote"  # Train ended the job (e.g. the pending deadline): stop the cloud's copy
    LOG_TAIL = "log_tail"  # entering FAILED: keep the last lines of the job's log


class IllegalTransition(Exception):
    pass


def new_job_id() -> str:
    return "job_" + secrets.token_hex(16)


class JobQuerySet(models.QuerySet):
    def for_account(self, account):
        return self.filter(account=account)

    def active(self):
        return self.filter(status__in=ACTIVE_STATUSES)


class Job(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_job_id, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    # What to run, as submitted.
    name = models.CharField(max_length=128)
    backend = models.CharField(max_length=32)
    image = models.CharField(max_length=512)
    image_digest = models.CharField(max_length=100, blank=True)
    # What the backend is given instead of `image`: the mirror of the pinned digest, by digest.
    cloud_image = models.CharField(max_length=512, blank=True)
    command = models.JSONField(default=list)
    args = models.JSONField(default=list)
    env = models.JSONField(default=dict)
    resources = models.JSONField(default=dict)
    storage_mounts = models.JSONField(default=list)
    max_runtime_seconds = models.PositiveIntegerField()
    labels = models.JSONField(default=dict)
    backend_options = models.JSONField(default=dict)

    # Where it is.
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING, editable=False)
    status_message = models.TextField(blank=True)
    remote_status = models.CharField(max_length=128, blank=True)
    log_tail = models.JSONField(default=list, blank=True)
    submission = models.CharField(max_length=16, choices=Submission.choices, default=Submission.WAITING)
    # Counts claims (killed ones included): the find-before-create after a crash keys on it. The retry
    # budget is time (`pending_deadline_at`), not this count.
    submit_attempts = models.PositiveIntegerField(default=0)
    submit_claimed_at = models.DateTimeField(null=True, blank=True)
    # When the sweeper may next hand a WAITING job to a submitter (back-off after a transient error).
    next_submit_at = models.DateTimeField(null=True, blank=True)
    # The backend configuration the job was validated and is submitted with. Polls, cancels and log
    # reads use it, so editing the account's configuration never detaches a running job.
    backend_config = models.JSONField(default=dict, blank=True)
    remote_name = models.CharField(max_length=128, blank=True)
    remote_id = models.CharField(max_length=256, blank=True)
    console_url = models.URLField(max_length=1024, blank=True)
    # While MIRRORING: the shared copy of the image the job waits for, and how progress names the target.
    mirror = models.ForeignKey("registry.Mirror", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    mirror_label = models.CharField(max_length=64, blank=True)

    # When.
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.CharField(max_length=200, blank=True)
    # When the sweeper next re-sends an unconfirmed cancellation (backs off; stops once terminal).
    next_cancel_at = models.DateTimeField(null=True, blank=True)
    # A job still PENDING after this is EXPIRED. None: created_at + TRAIN_PENDING_DEADLINE_SECONDS.
    pending_deadline_at = models.DateTimeField(null=True, blank=True)
    status_changed_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    poll_failures = models.PositiveIntegerField(default=0)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "-created_at"], name="job_account_newest"),
            models.Index(fields=["status", "next_poll_at"], name="job_due_for_poll"),
            models.Index(fields=["status", "submission"], name="job_submission_state"),
            models.Index(fields=["submission", "next_submit_at"], name="job_due_for_submit"),
        ]

    def __str__(self):
        return f"{self.id} ({self.name})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def transition(self, to, *, reason="", remote_status=None, expect=None, actor=None, at=None,
                   effects=(), **changes) -> bool:
        """Move from the status this instance holds to `to`. Returns False, changing nothing, if another
        writer moved the job first (or a column in `expect` no longer has the expected value).

        `changes` are other columns written in the same UPDATE; `started_at`/`finished_at` are filled
        in when a move implies them and the caller gave none. `at` dates the event (default now: a
        cloud's own start time, for a start Train saw late). `effects` are run after the commit, in
        addition to those the edge implies (entering FAILED fetches the log tail)."""
        old = self.status
        if to not in ALLOWED_MOVES[old]:
            raise IllegalTransition(f"{self.id}: {old} -> {to} is not allowed")
        now = timezone.now()
        if to == JobStatus.IN_PROGRESS:
            changes.setdefault("started_at", self.started_at or at or now)
        if to in TERMINAL_STATUSES:
            changes.setdefault("finished_at", now)
            changes["next_poll_at"] = None
        if remote_status is not None:
            changes["remote_status"] = remote_status
        changes.update(status=to, status_changed_at=now)
        effects = list(dict.fromkeys([*effects, *self._edge_effects(to)]))
        with transaction.atomic():
            won = Job.objects.filter(pk=self.pk, status=old, **(expect or {})).update(**changes)
            if not won:
                return False
            event = JobEvent.objects.create(
                job_id=self.pk, from_status=old, to_status=to, reason=reason,
                remote_status=changes.get("remote_status", self.remote_status), actor=actor or "",
                at=at or now, effects=effects, effects_done_at=None if effects else now,
            )
            if effects:
                from jobs import queue  # the task row commits with the event: the event is the outbox

                queue.enqueue_effects(event.pk)
        for field, value in changes.items():
            setattr(self, field, value)
        return True

    def _edge_effects(self, to) -> list[str]:
        if to == JobStatus.FAILED and self.submission == Submission.SUBMITTED:
            return [Effect.LOG_TAIL]
        return []

    def record_created(self, *, actor: str) -> None:
        """The first event of a job's history (not a status change: the row is inserted PENDING)."""
        JobEvent.objects.create(job_id=self.pk, from_status="", to_status=self.status, actor=actor,
                                reason=f"Created by {actor}." if actor else "Created.", at=self.created_at,
                                effects_done_at=self.created_at)

    # --- conditional single-row updates; each says whether it won --------------------------------
    def claim_submission(self, *, stale_before) -> bool:
        """Take the job for a submit attempt (counting it) if it is still as this instance read it:
        waiting, or submitting under a claim older than `stale_before` (its worker died). The attempt
        count is the compare-and-set, so on success the instance holds the claim and needs no re-read."""
        now = timezone.now()
        claimable = models.Q(submission=Submission.WAITING) | models.Q(
            submission=Submission.SUBMITTING, submit_claimed_at__lt=stale_before)
        claim = {"submission": Submission.SUBMITTING, "submit_claimed_at": now,
                 "submit_attempts": self.submit_attempts + 1, "next_submit_at": None}
        won = Job.objects.filter(claimable, pk=self.pk, status=JobStatus.PENDING,
                                 submit_attempts=self.submit_attempts).update(**claim)
        if won:
            for field, value in claim.items():
                setattr(self, field, value)
        return bool(won)

    def record_submitted(self, *, attempt: int, remote_id: str, console_url: str) -> tuple[bool, bool]:
        """The backend has the job: (whether this attempt still held the claim and recorded it, whether
        a cancellation arrived meanwhile and must now be sent). Usually one UPDATE: the second runs
        only when the first lost, to tell a cancelled job from a claim another attempt took over."""
        now = timezone.now()
        claimed = Job.objects.filter(pk=self.pk, status=JobStatus.PENDING, submission=Submission.SUBMITTING,
                                     submit_attempts=attempt)
        changes = {"submission": Submission.SUBMITTED, "remote_id": remote_id, "console_url": console_url,
                   "submitted_at": now, "next_poll_at": now, "poll_failures": 0, "status_message": ""}
        # A cancel that comes after this UPDATE sees SUBMITTED and sends itself; one that came before it
        # is seen by the second UPDATE.
        if claimed.filter(cancel_requested_at__isnull=True).update(**changes):
            won, cancel = True, False
        else:
            won = cancel = bool(claimed.update(**changes))
        if won:
            for field, value in changes.items():
                setattr(self, field, value)
        return won, cancel

    def enter_mirroring(self, *, mirror, label: str) -> bool:
        """Wait for `mirror` (not an attempt: nothing reaches the backend until it is DONE)."""
        return bool(Job.objects.filter(pk=self.pk, status=JobStatus.PENDING, submission__in=MIRROR_STAGES).update(
            submission=Submission.MIRRORING, mirror=mirror, mirror_label=label[:64], next_submit_at=None))

    def defer_submission(self, *, retry_at, message: str) -> bool:
        """Leave an unclaimed job waiting until `retry_at` (its mirror target could not be prepared)."""
        return bool(Job.objects.filter(pk=self.pk, status=JobStatus.PENDING, submission__in=MIRROR_STAGES).update(
            submission=Submission.WAITING, next_submit_at=retry_at, status_message=message[:2000]))

    def record_pinned_image(self, *, attempt: int, reference: str, digest: str) -> bool:
        """The backend pinned the job's tag to `digest` (`reference` is `<repository>@<digest>`), under
        this attempt's claim: every later attempt sends the same digest."""
        changed = bool(Job.objects.filter(pk=self.pk, submission=Submission.SUBMITTING, submit_attempts=attempt,
                                          image_digest="", cloud_image="").update(
            image_digest=digest, cloud_image=reference))
        if changed:
            self.image_digest, self.cloud_image = digest, reference
        return changed

    def record_cloud_image(self, reference: str) -> bool:
        """The mirror is DONE: record what the backend pulls, and make the job submittable again."""
        won = Job.objects.filter(pk=self.pk, status=JobStatus.PENDING, submission__in=MIRROR_STAGES).update(
            submission=Submission.WAITING, cloud_image=reference, status_message="")
        if won:
            self.submission, self.cloud_image = Submission.WAITING, reference
        return bool(won)

    def release_submission(self, *, attempt: int, retry_at, message: str) -> bool:
        """Give back a claimed job after a transient error; the sweeper hands it out again at `retry_at`."""
        return bool(Job.objects.filter(pk=self.pk, status=JobStatus.PENDING, submission=Submission.SUBMITTING,
                                       submit_attempts=attempt).update(
            submission=Submission.WAITING, next_submit_at=retry_at, status_message=message))

    def request_cancel(self, *, actor: str, now) -> bool:
        """Record the first cancellation request (later ones keep the first time and actor)."""
        return bool(Job.objects.filter(pk=self.pk, cancel_requested_at__isnull=True).update(
            cancel_requested_at=now, cancel_requested_by=actor, next_cancel_at=now))

    def record_log_tail(self, lines: list[str]) -> None:
        Job.objects.filter(pk=self.pk).update(log_tail=lines)
        self.log_tail = lines

    def schedule_cancel_resend(self, *, at) -> bool:
        """Push the next re-send of an unconfirmed cancellation to `at`, while the job is active."""
        return bool(Job.objects.filter(pk=self.pk, status__in=ACTIVE_STATUSES).update(next_cancel_at=at))


class JobEvent(models.Model):
    """Append-only status history: one row per status change, written with the change."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    # "" for the first event, the job's creation.
    from_status = models.CharField(max_length=16, choices=JobStatus.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=JobStatus.choices)
    reason = models.TextField(blank=True)
    remote_status = models.CharField(max_length=128, blank=True)
    actor = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField(default=timezone.now)
    # The outbox: effects of entering `to_status` (Effect values), done when effects_done_at is set.
    effects = models.JSONField(default=list, blank=True)
    effects_done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["effects_done_at", "at"], name="jobevent_effects_due")]

    def __str__(self):
        return f"{self.job_id}: {self.from_status} -> {self.to_status}"

    def mark_effects_done(self) -> bool:
        """Record that every effect ran; False if another run recorded it first."""
        now = timezone.now()
        won = JobEvent.objects.filter(pk=self.pk, effects_done_at__isnull=True).update(effects_done_at=now)
        self.effects_done_at = self.effects_done_at or now
        return bool(won)


class IdempotencyKey(models.Model):
    """`Idempotency-Key` of a job submission, scoped to the account, with a fingerprint of the body."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "key"], name="one_idempotency_key_per_account")]

    def __str__(self):
        return f"{self.account_id}/{self.key}"


# WorkerLease.flag_set in one statement (PostgreSQL and SQLite): insert the flag raised, or raise an
# existing one only if it is down; a row comes back only when this statement raised it.
RAISE_FLAG_SQL = (
    "INSERT INTO jobs_workerlease (name, holder, held_until) VALUES (%s, '', %s) "
    "ON CONFLICT (name) DO UPDATE SET held_until = excluded.held_until "
    "WHERE jobs_workerlease.held_until < %s RETURNING name"
)


class WorkerLease(models.Model):
    """A named lease one worker holds for a while (e.g. the running poll loop), so that others skip
    the work instead of duplicating it. Expires by itself if its holder dies; a live holder renews it
    (a heartbeat), so the lease can be short.

    A row can also serve as a flag that expires by itself (`flag_set`/`flag_clear`): then the holder
    is irrelevant and `held_until` is when the flag lapses."""

    name = models.CharField(primary_key=True, max_length=64)
    holder = models.CharField(max_length=64, blank=True)
    held_until = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.name} until {self.held_until:%H:%M:%S}"

    @classmethod
    def _ensure(cls, name: str, now) -> None:
        cls.objects.get_or_create(name=name, defaults={"held_until": now - timedelta(seconds=1)})

    @classmethod
    def acquire(cls, name: str, holder: str, seconds: float) -> bool:
        """Take the lease if it is free or expired (or already ours), or if its holder is a process of
        this host that is gone (`holder_died_here`); returns whether `holder` holds it."""
        now = timezone.now()
        cls._ensure(name, now)
        until = now + timedelta(seconds=seconds)
        if (cls.objects.filter(name=name, held_until__lt=now).update(holder=holder, held_until=until)
                or cls.objects.filter(name=name, holder=holder).update(held_until=until)):
            return True
        current = cls.objects.filter(name=name).values_list("holder", flat=True).first()
        return bool(current and holder_died_here(current)
                    and cls.objects.filter(name=name, holder=current).update(holder=holder, held_until=until))

    @classmethod
    def is_held(cls, name: str, *, now=None) -> bool:
        """Whether a live holder has the lease: unexpired, and not a process of this host that is gone."""
        current = cls.objects.filter(name=name, held_until__gt=now or timezone.now()).values_list(
            "holder", flat=True).first()
        return current is not None and not holder_died_here(current)

    @classmethod
    def renew(cls, name: str, holder: str, seconds: float) -> bool:
        """Extend a lease `holder` still holds; False if it expired and someone else took it."""
        until = timezone.now() + timedelta(seconds=seconds)
        return bool(cls.objects.filter(name=name, holder=holder).update(held_until=until))

    @classmethod
    def release(cls, name: str, holder: str) -> bool:
        return bool(cls.objects.filter(name=name, holder=holder).update(held_until=timezone.now(), holder=""))

    @classmethod
    def flag_set(cls, name: str, seconds: float) -> bool:
        """Raise the flag unless it is already up; returns whether this caller raised it. One statement
        (an upsert that changes the row only if the flag is down), as it runs for every job."""
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(RAISE_FLAG_SQL, [name, *map(connection.ops.adapt_datetimefield_value,
                                                       (now + timedelta(seconds=seconds), now))])
            return cursor.fetchone() is not None

    @classmethod
    def flag_clear(cls, name: str) -> bool:
        return bool(cls.objects.filter(name=name, held_until__gte=timezone.now()).update(held_until=timezone.now()))
