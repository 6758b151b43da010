"""Mirrors: one image, by digest, copied into one target registry repository, shared by every job that
needs it.

A target is cloud-neutral (`MirrorTarget`): a registry, a repository, a credentials provider, and an
optional "ensure the repository exists" step. Which cloud it is, and how its credentials are made, is
the business of the backend that builds it; nothing here asks.

Exactly one worker copies a mirror at a time: `Mirror.lease` is a compare-and-set with a short lease
that a heartbeat renews while the copy runs (however long one chunk takes), so a worker that dies
frees the mirror within seconds, and the next run continues from the saved per-blob progress (blobs
already at the target are never sent again; a half-sent blob resumes at the target's offset). The
copy checks the lease at each blob and chunk, and stops if another worker took it over.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from registry.client import CredentialsProvider, OciClient
from registry.copier import DEFAULT_PARALLEL_BLOBS, BlobRef, Copier, CopyError, CopyProgress, plan_copy
from registry.models import Mirror, MirrorBlob, MirrorState, Repository, TargetBlob
from trainsvc.heartbeat import heartbeat

log = logging.getLogger(__name__)

LEASE_SECONDS = 15
# Besides the heartbeat, the copy renews at a blob or chunk boundary at most this often: that renewal
# is what tells it that the lease was lost.
LEASE_RENEW_EVERY_SECONDS = 5
RETRY_BASE_SECONDS = 15
RETRY_MAX_SECONDS = 15 * 60


@dataclass(frozen=True)
class MirrorTarget:
    registry: str  # host[:port], e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com
    repository: str  # e.g. train/acme/trainer
    credentials: CredentialsProvider | None
    label: str = "the target registry"  # how progress names it to users: "ECR", "Artifact Registry"
    scheme: str = "https"
    realm_hosts: tuple[str, ...] = ()
    ensure_repository: Callable[[], None] | None = None
    parallel_blobs: int = DEFAULT_PARALLEL_BLOBS
    # Where Train connects, when not the registry itself (a proxy, a private endpoint, an emulator):
    # `registry`, and so `reference()` and the Mirror row, still name the registry the cloud pulls from.
    endpoint: str = ""

    @property
    def url(self) -> str:
        return self.endpoint or f"{self.scheme}://{self.registry}"

    def client(self) -> OciClient:
        return OciClient(self.url, self.credentials, realm_hosts=self.realm_hosts)

    def reference(self, digest: str) -> str:
        """What the cloud pulls: the target repository by digest."""
        return f"{self.registry}/{self.repository}@{digest}"


class LeaseLost(Exception):
    """Another worker took the mirror over (this one was presumed dead): stop without writing."""


def mirror_ensure(*, repository: Repository, digest: str, target: MirrorTarget) -> Mirror:
    """The shared mirror of `digest` for `target`, created PENDING if it did not exist."""
    key = {"manifest_digest": digest, "target_registry": target.registry, "target_repository": target.repository}
    mirror = Mirror.objects.filter(**key).first()
    if mirror is not None:
        return mirror
    try:
        with transaction.atomic():
            return Mirror.objects.create(repository=repository, **key)
    except IntegrityError:
        return Mirror.objects.get(**key)


def mirror_retry(*, mirror: Mirror) -> bool:
    """Put a FAILED mirror back in line (the admin's "retry"); False if it was not FAILED."""
    return bool(Mirror.objects.filter(pk=mirror.pk, state=MirrorState.FAILED).update(
        state=MirrorState.PENDING, error="", next_attempt_at=timezone.now(), updated_at=timezone.now()))


def mirror_progress_text(mirror: Mirror, label: str) -> str:
    """What a job waiting for this mirror shows: "mirroring to ECR: 1.2 of 3.4 GB"."""
    if mirror.state == MirrorState.DONE:
        return f"mirrored to {label}"
    if mirror.state == MirrorState.FAILED:
        return f"mirroring to {label} failed: {mirror.error}"
    if not mirror.bytes_total:
        return f"mirroring to {label}: starting"
    return f"mirroring to {label}: {_gb(mirror.bytes_done)} of {_gb(mirror.bytes_total)} GB"


def _gb(size: int) -> str:
    return f"{size / 1e9:.1f}"


class _DatabaseProgress(CopyProgress):
    """Per-blob progress in MirrorBlob rows; renews the mirror's lease as it goes. Called from the
    copier's worker threads, each with its own database connection."""

    def __init__(self, mirror: Mirror, holder: str):
        self.mirror, self.holder = mirror, holder
        self._renewed = time.monotonic()
        self._done = set(MirrorBlob.objects.filter(mirror=mirror, done_at__isnull=False)
                         .values_list("digest", flat=True))

    def renew(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._renewed < LEASE_RENEW_EVERY_SECONDS:
            return
        if not self.mirror.lease_renew(self.holder, seconds=LEASE_SECONDS):
            raise LeaseLost(f"mirror {self.mirror.pk} was taken over by another worker")
        self._renewed = time.monotonic()

    def blob_finished(self, digest):
        return digest in self._done

    def blob_done(self, blob: BlobRef, *, sent: int) -> None:
        self.renew(force=True)
        now = timezone.now()
        if MirrorBlob.objects.filter(mirror=self.mirror, digest=blob.digest, done_at__isnull=True).update(
                done_at=now, bytes_sent=F("bytes_sent") + sent, upload_location="", upload_offset=0):
            Mirror.objects.filter(pk=self.mirror.pk).update(
                blobs_done=F("blobs_done") + 1, bytes_done=F("bytes_done") + blob.size, updated_at=now)
        TargetBlob.objects.get_or_create(target_registry=self.mirror.target_registry,
                                         target_repository=self.mirror.target_repository, digest=blob.digest)

    def upload_saved(self, digest):
        row = MirrorBlob.objects.filter(mirror=self.mirror, digest=digest).exclude(upload_location="").first()
        return (row.upload_location, row.upload_offset) if row else None

    def upload_progress(self, digest, location, offset):
        self.renew()
        MirrorBlob.objects.filter(mirror=self.mirror, digest=digest).update(upload_location=location,
                                                                             upload_offset=offset)

    def mount_source(self, digest):
        return (TargetBlob.objects.filter(target_registry=self.mirror.target_registry, digest=digest)
                .exclude(target_repository=self.mirror.target_repository)
                .values_list("target_repository", flat=True).first())


def _after_blob() -> None:
    # Copier threads open their own connections; close them rather than leak one per blob.
    connection.close()


def mirror_run(*, mirror_id: int, target: MirrorTarget) -> Mirror | None:
    """Copy the mirror if this worker wins its lease; None if another worker holds it or it is not
    due. Safe to run twice at once and to be killed at any line."""
    close_old_connections()
    holder = secrets.token_hex(8)
    mirror = Mirror.lease_take(mirror_id, holder, seconds=LEASE_SECONDS)
    if mirror is None:
        return None
    try:
        if target.ensure_repository is not None:
            target.ensure_repository()
        repository = mirror.repository
        plan = plan_copy(repository=repository, digest=mirror.manifest_digest)
        MirrorBlob.objects.bulk_create([MirrorBlob(mirror=mirror, digest=b.digest, size=b.size) for b in plan.blobs],
                                       ignore_conflicts=True)
        Mirror.objects.filter(pk=mirror.pk).update(bytes_total=plan.total_bytes, blobs_total=len(plan.blobs))
        progress = _DatabaseProgress(mirror, holder)
        with heartbeat(partial(mirror.lease_renew, holder, seconds=LEASE_SECONDS), lease_seconds=LEASE_SECONDS,
                       what=f"mirror {mirror_id}"):
            Copier(target.client(), target.repository, progress, parallel_blobs=target.parallel_blobs,
                   on_blob=_after_blob).copy(plan)
    except LeaseLost:
        log.warning("mirror %s: lease lost; the other worker continues", mirror_id)
        return None
    except CopyError as exc:
        _record_failure(mirror, holder, exc.message, permanent=exc.permanent)
    except Exception as exc:  # a bug or an outage of ours must not leave the lease held for long
        log.exception("mirror %s failed", mirror_id)
        _record_failure(mirror, holder, f"{type(exc).__name__}: {exc}", permanent=False)
    else:
        Mirror.objects.filter(pk=mirror.pk, lease_holder=holder).update(
            state=MirrorState.DONE, error="", lease_holder="", lease_until=None, finished_at=timezone.now(),
            updated_at=timezone.now())
    mirror.refresh_from_db()
    return mirror


def _record_failure(mirror: Mirror, holder: str, message: str, *, permanent: bool) -> None:
    now = timezone.now()
    if permanent:
        changes = {"state": MirrorState.FAILED, "finished_at": now}
    else:
        delay = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** min(mirror.attempts, 10))
        changes = {"state": MirrorState.PENDING,
                   "next_attempt_at": now + timedelta(seconds=delay * (0.5 + random.random()))}  # noqa: S311
    Mirror.objects.filter(pk=mirror.pk, lease_holder=holder).update(
        error=message[:2000], lease_holder="", lease_until=None, updated_at=now, **changes)


def mirrors_due(*, now=None):
    """Mirrors a worker should run now: due PENDING ones, and COPYING ones whose holder died."""
    now = now or timezone.now()
    return Mirror.objects.filter(
        Q(state=MirrorState.PENDING, next_attempt_at__lte=now) | Q(state=MirrorState.COPYING, lease_until__lt=now))
