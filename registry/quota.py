"""Per-account storage quota and upload-session cap, held under concurrency.

Both are checked and changed under a lock on the account's row (`account_lock`), so two gateways
deciding at once see each other: a session is counted and inserted in one locked transaction, and
an upload reserves bytes (`quota_reserve`) before it writes them. What counts against the quota:
each blob linked into the account's repositories once, plus every upload session's reservation,
which covers its committed bytes and whatever a request is writing or a dead one left behind
(docs/decisions/0033-quota-reservations.md)."""

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import Greatest

from registry.errors import RegistryError
from registry.models import Blob, RepositoryBlob, Upload
from trainsvc.accounts.models import Account


def account_lock(account_id: str) -> None:
    """Serialise quota and cap decisions of one account until the surrounding transaction ends.
    PostgreSQL locks the account row; SQLite's IMMEDIATE transactions already hold the write lock."""
    list(Account.objects.select_for_update().filter(pk=account_id).values_list("pk", flat=True))


def account_stored_bytes(*, account_id: str, excluding_upload=None) -> int:
    linked = RepositoryBlob.objects.filter(repository__account_id=account_id).values("blob_id")
    blobs = Blob.objects.filter(pk__in=linked).aggregate(total=Sum("size"))["total"] or 0
    # Every session row, expired or not: its bytes stay in the store until it is discarded.
    uploads = Upload.objects.filter(repository__account_id=account_id)
    if excluding_upload is not None:
        uploads = uploads.exclude(pk=excluding_upload.pk)
    partial = uploads.aggregate(total=Sum(Greatest("offset", "reserved")))["total"] or 0
    return blobs + partial


def quota_denied() -> RegistryError:
    return RegistryError("DENIED", "the account's registry quota is used up; delete images or ask for a larger quota",
                         detail={"quota_bytes": settings.TRAIN_REGISTRY_ACCOUNT_QUOTA_BYTES})


def quota_reserve(*, upload: Upload, token: str, needed: int, wanted: int) -> bool:
    """Let `upload` occupy at least `needed` bytes (and up to `wanted`, if the quota has room), for
    the request holding lease `token`. DENIED when even `needed` does not fit; False when the lease
    was lost. With no quota configured there is nothing to reserve."""
    quota = settings.TRAIN_REGISTRY_ACCOUNT_QUOTA_BYTES
    if not quota:
        return True
    account_id = upload.repository.account_id
    with transaction.atomic():
        account_lock(account_id)
        room = quota - account_stored_bytes(account_id=account_id, excluding_upload=upload)
        if needed > room:
            raise quota_denied()
        return upload.lease_reserve(token=token, reserved=max(needed, min(wanted, room)))


def uploads_open_count(account_id: str, now) -> int:
    return Upload.objects.filter(repository__account_id=account_id, expires_at__gt=now).count()


def uploads_cap_check(account_id: str, now) -> None:
    """Call under `account_lock`, in the transaction that inserts the new session."""
    limit = settings.TRAIN_REGISTRY_MAX_OPEN_UPLOADS
    if uploads_open_count(account_id, now) >= limit:
        raise RegistryError("TOOMANYREQUESTS", "too many unfinished uploads for this account; finish or cancel some",
                            detail={"limit": limit})
