"""Garbage collection of the registry's storage: idle and expired upload sessions, upload bytes left
without a session, links and blobs no manifest references, and blob files left without a row.

Safe while pushes go on, and safe to run twice at once (docs/decisions/0038-registry-garbage-collection.md):
- a link or blob row is deleted only by a conditional DELETE, re-checked in a fresh statement while
  holding the Blob row lock that manifest_put, upload_finish and blob_mount also take;
- a blob file is deleted only while its row is locked and has no link left (or, for a file without a
  row, while a placeholder row claims its digest), so a blob that is linked always has its file;
- an upload's bytes are discarded only after its row was deleted conditionally on being still idle.
Every step stands alone: a run killed between two lines leaves nothing that the next run cannot finish."""

import datetime as dt
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from registry.errors import RegistryError
from registry.manifests import manifest_parse
from registry.models import Blob, Manifest, ManifestReference, RepositoryBlob, Upload
from registry.store import get_store

log = logging.getLogger(__name__)

BATCH = 500  # digests checked against the database per query when walking the store

KINDS = {
    "uploads": "idle or expired upload sessions",
    "upload_debris": "upload bytes without a session",
    "links": "repository links no manifest there references",
    "blobs": "blobs no repository links",
    "orphans": "blob files without a row",
    "references": "manifests whose references were recorded",
}


@dataclass
class GcReport:
    """What one run removed (or, in a dry run, would remove): counts and bytes per kind."""

    dry_run: bool = False
    deadline: float | None = None  # time.monotonic() after which a run stops, leaving the rest to the next
    stopped: bool = False
    counts: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)

    def out_of_time(self) -> bool:
        self.stopped = self.stopped or (self.deadline is not None and time.monotonic() > self.deadline)
        return self.stopped

    def add(self, kind: str, size: int = 0) -> None:
        self.counts[kind] += 1
        self.sizes[kind] += size

    def count(self, kind: str) -> int:
        return self.counts[kind]

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        lines = [f"{verb} {self.counts[kind]} {text} ({self.sizes[kind]} bytes)"
                 for kind, text in KINDS.items() if kind != "references"]
        lines.append(f"recorded references of {self.counts['references']} manifests")
        if self.stopped:
            lines.append("stopped at the time budget; the next run continues")
        return lines


def gc_run(*, dry_run: bool = False, now: dt.datetime | None = None, budget_seconds: float | None = None) -> GcReport:
    """One full collection: uploads first (their sessions free slots), then links, blobs, orphans.
    With `budget_seconds`, it stops between two items once that time has passed."""
    now = now or timezone.now()
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    report = GcReport(dry_run=dry_run, deadline=deadline)
    references_record_missing(report=report)
    uploads_reclaim(now=now, report=report)
    blob_cutoff = now - dt.timedelta(seconds=settings.TRAIN_REGISTRY_GC_GRACE_SECONDS)
    links_sweep(cutoff=blob_cutoff, report=report)
    blobs_sweep(cutoff=blob_cutoff, report=report)
    orphans_sweep(cutoff=blob_cutoff, report=report)
    return report


def _batches(items, size: int = BATCH):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- references ------------------------------------------------------------------------------------

def _lenient_references(content: bytes) -> tuple[set, set]:
    """Digests a stored manifest names even when today's parser refuses it (it may predate a rule):
    naming too much only keeps a blob longer."""
    try:
        document = json.loads(bytes(content))
    except ValueError:
        return set(), set()
    if not isinstance(document, dict):
        return set(), set()

    def named(items):
        return {item["digest"] for item in items if isinstance(item, dict) and isinstance(item.get("digest"), str)}

    layers = document.get("layers") if isinstance(document.get("layers"), list) else []
    children = document.get("manifests") if isinstance(document.get("manifests"), list) else []
    return named([document.get("config"), *layers]), named(children)


def references_record_missing(*, report: GcReport) -> None:
    """Record the references of manifests stored without them (by a version before the table).
    Runs even in a dry run: it only adds rows, and the sweeps' answers depend on it."""
    unrecorded = Manifest.objects.filter(~Exists(ManifestReference.objects.filter(manifest=OuterRef("pk"))))
    for manifest in unrecorded.only("pk", "media_type", "content").iterator(chunk_size=100):
        try:
            parsed = manifest_parse(manifest.media_type, bytes(manifest.content))
            blobs, children = set(parsed.blobs), set(parsed.children)
        except RegistryError:
            blobs, children = _lenient_references(manifest.content)
        if blobs or children:
            ManifestReference.record(manifest, blobs=blobs, children=children)
            report.add("references")


# --- uploads ---------------------------------------------------------------------------------------

def uploads_reclaim(*, now: dt.datetime | None = None, report: GcReport | None = None) -> GcReport:
    """Delete sessions that are expired or got no bytes for TRAIN_REGISTRY_UPLOAD_IDLE_SECONDS (freeing
    the account's slot), then their bytes; then upload bytes whose session row is gone."""
    now = now or timezone.now()
    report = report or GcReport()
    idle_before = now - dt.timedelta(seconds=settings.TRAIN_REGISTRY_UPLOAD_IDLE_SECONDS)
    store = get_store()
    # The store's last write too: a single long PATCH refreshes the row only when it ends.
    stored = {item.name: item for item in store.upload_list()}
    stale = Upload.objects.filter(Q(updated_at__lt=idle_before) | Q(expires_at__lte=now))
    for upload in stale.select_related("repository").iterator():
        if report.out_of_time():
            return report
        written = stored.get(str(upload.pk))
        if upload.expires_at > now and written is not None and written.modified >= idle_before:
            continue
        if report.dry_run or upload.reclaim(idle_before=idle_before, now=now):
            if not report.dry_run:
                _discard(store, upload)
            stored.pop(str(upload.pk), None)
            report.add("uploads", upload.offset)
    _upload_debris_remove(store, stored, idle_before, report)
    return report


def _discard(store, upload: Upload) -> None:
    try:
        store.upload_discard(upload)
    except Exception:  # the row is gone already: the debris sweep retries by the session id
        log.exception("could not discard the bytes of upload %s", upload.pk)


def _upload_debris_remove(store, stored: dict, idle_before: dt.datetime, report: GcReport) -> None:
    # Listed before the rows are read: a session starts by writing its (empty) bytes and then its
    # row, so bytes without a row are recent (kept by idle_before) or left by a crash.
    old = [item for item in stored.values() if item.modified < idle_before]
    for batch in _batches(old):
        live = {str(pk) for pk in Upload.objects.filter(pk__in=[item.name for item in batch])
                .values_list("pk", flat=True)}
        for item in batch:
            if report.out_of_time():
                return
            if item.name in live:
                continue
            if not report.dry_run:
                store.upload_remove(item.name)
            report.add("upload_debris", item.size)


# --- links and blobs -------------------------------------------------------------------------------

def _unreferenced_links(cutoff: dt.datetime):
    """Links pushed before `cutoff` that no manifest of their own repository references."""
    referenced = ManifestReference.objects.filter(
        kind=ManifestReference.BLOB, digest=OuterRef("blob__digest"), manifest__repository_id=OuterRef("repository_id"))
    return RepositoryBlob.objects.filter(pushed_at__lt=cutoff).exclude(Exists(referenced))


def _unreferenced_blobs(cutoff: dt.datetime, *, counting_stale_links: bool = True):
    """Blobs created before `cutoff` that no repository links and no manifest references (a dry run
    passes counting_stale_links=False: the links the link sweep would remove do not count)."""
    links = RepositoryBlob.objects.filter(blob=OuterRef("pk"))
    if not counting_stale_links:
        links = links.exclude(pk__in=_unreferenced_links(cutoff).values("pk"))
    return (Blob.objects.filter(created_at__lt=cutoff).exclude(Exists(links))
            .exclude(Exists(ManifestReference.objects.filter(kind=ManifestReference.BLOB, digest=OuterRef("digest")))))


def links_sweep(*, cutoff: dt.datetime, report: GcReport) -> None:
    """Remove links past the grace that no manifest of their repository references, blob by blob
    under its lock. A blob another repository's manifest references keeps that repository's link."""
    candidates = _unreferenced_links(cutoff).select_related("blob").order_by("blob_id")
    if report.dry_run:
        for link in candidates.iterator():
            report.add("links", link.blob.size)
        return
    blob_ids = _unreferenced_links(cutoff).order_by("blob_id").values_list("blob_id", flat=True).distinct()
    for blob_id in blob_ids.iterator():
        if report.out_of_time():
            return
        with transaction.atomic():
            removed, size = _blob_links_remove(blob_id, cutoff)
        for _ in range(removed):
            report.add("links", size)


def _blob_links_remove(blob_id: int, cutoff: dt.datetime) -> tuple[int, int]:
    """In the caller's transaction: lock the blob, then remove its links that are still unreferenced
    and past the grace; (links removed, blob size)."""
    locked = list(Blob.objects.select_for_update().filter(pk=blob_id).values_list("size", flat=True))
    if not locked:
        return 0, 0
    # A fresh statement after the lock: it sees a manifest or a push that committed meanwhile.
    return _unreferenced_links(cutoff).filter(blob_id=blob_id).delete()[0], locked[0]


def blobs_sweep(*, cutoff: dt.datetime, report: GcReport) -> None:
    """Delete blobs nothing links or references: the file first, under the row's lock, then the row.
    If the commit fails, the row stays without links and without file, which nothing reads: a later
    upload of that digest promotes its own bytes, and the next run deletes the row."""
    store = get_store()
    candidates = _unreferenced_blobs(cutoff, counting_stale_links=not report.dry_run)
    for blob in candidates.only("pk", "digest", "size").iterator():
        if report.out_of_time():
            return
        if report.dry_run:
            report.add("blobs", blob.size)
            continue
        with transaction.atomic():
            if not Blob.lock([blob.digest]) or not _unreferenced_blobs(cutoff).filter(pk=blob.pk).exists():
                continue
            store.blob_delete(blob.digest)
            Blob.objects.filter(pk=blob.pk).delete()
        report.add("blobs", blob.size)


def orphans_sweep(*, cutoff: dt.datetime, report: GcReport) -> None:
    """Delete blob files older than `cutoff` that have no row (a promote whose transaction died)."""
    store = get_store()
    old = (item for item in store.blob_list() if item.modified < cutoff)
    for batch in _batches(old):
        known = set(Blob.objects.filter(digest__in=[item.name for item in batch]).values_list("digest", flat=True))
        for item in batch:
            if report.out_of_time():
                return
            if item.name in known:
                continue
            if report.dry_run or _orphan_delete(store, item.name, item.size):
                report.add("orphans", item.size)


def _orphan_delete(store, digest: str, size: int) -> bool:
    """Claim `digest` with a placeholder row, so an upload finishing it now waits for us on the unique
    digest and then promotes its own bytes, delete the file, and drop the claim with it."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                claim = Blob.objects.create(digest=digest, size=size)
        except IntegrityError:
            return False  # a row exists (or is being committed): not an orphan
        store.blob_delete(digest)
        Blob.objects.filter(pk=claim.pk).delete()
    return True
