"""Re-hashing stored blobs, and quarantining any whose bytes no longer match their digest.

This is the repair path for a store damaged by something other than a verified push (a disk fault,
a hand edit, or the upload race fixed in docs/decisions/0032): a quarantined blob is not served or
accepted in manifests, and the next verified push of that digest puts correct bytes back
(registry/services.py `_promote`)."""

import hashlib
import logging

from registry.models import Blob
from registry.store import CHUNK_BYTES, get_store

log = logging.getLogger(__name__)


def blob_damage(*, blob: Blob) -> str:
    """Why the stored bytes of `blob` are not the blob (empty when they are). Streams the bytes in
    bounded chunks: memory stays flat whatever the size."""
    store = get_store()
    size = store.blob_size(blob.digest)
    if size is None:
        return "missing from the store"
    if size != blob.size:
        return f"stored size {size}, recorded size {blob.size}"
    algorithm, _, expected = blob.digest.partition(":")
    hasher = hashlib.new(algorithm)
    reader = store.blob_open(blob.digest, 0, size)
    try:
        while chunk := reader.read(CHUNK_BYTES):
            hasher.update(chunk)
    finally:
        reader.close()
    if hasher.hexdigest() != expected:
        return f"stored bytes hash to {algorithm}:{hasher.hexdigest()}"
    return ""


def blob_quarantine(*, blob: Blob) -> bool:
    """Move the damaged bytes aside, then stop serving the blob. In this order, a push that repairs
    the blob (which it does only once the row is quarantined) can never have its bytes moved aside
    afterwards. False when another run quarantined it first."""
    get_store().blob_quarantine(blob.digest)
    won = blob.quarantine()
    if won:
        log.warning("quarantined blob %s", blob.digest)
    return won


def blobs_verify(*, dry_run: bool = False, report=None) -> tuple[int, int]:
    """Check every served blob; quarantine the damaged ones unless `dry_run`. `report(blob, why)` is
    called for each damaged blob. Returns (checked, damaged)."""
    checked = damaged = 0
    for blob in Blob.objects.filter(quarantined_at__isnull=True).order_by("pk").iterator(chunk_size=500):
        checked += 1
        why = blob_damage(blob=blob)
        if not why:
            continue
        damaged += 1
        if report is not None:
            report(blob, why)
        if not dry_run:
            blob_quarantine(blob=blob)
    return checked, damaged
