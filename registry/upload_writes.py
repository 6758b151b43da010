"""Writing an upload's bytes: the lease a request must hold first (docs/decisions/0032), and the
request body on its way to the store, metered against the blob size limit and the account's quota
(docs/decisions/0033)."""

import time
import uuid

from django.conf import settings

from registry import quota
from registry.errors import RegistryError
from registry.models import Upload

# Without a declared length, an upload reserves quota this far ahead of its bytes at a time, so a
# multi-GB stream takes one short locked transaction per 32 MiB rather than per chunk.
RESERVE_AHEAD_BYTES = 32 * 1024 * 1024


def lease_take(upload: Upload) -> str:
    """Own the session's next offset before touching its bytes, or 416 with the current Range."""
    token, seconds = uuid.uuid4().hex, settings.TRAIN_REGISTRY_UPLOAD_LEASE_SECONDS
    if not (upload.lease_acquire(token=token, seconds=seconds) or upload.lease_take_over(token=token, seconds=seconds)):
        upload.refresh_from_db(fields=["offset"])
        raise range_error(upload, "another request is writing to this upload; retry from the offset in Range")
    return token


def lease_lost(upload: Upload) -> RegistryError:
    upload.refresh_from_db(fields=["offset"])
    return range_error(upload, "another request took this upload over; retry from the offset in Range")


class Renewing:
    """Keeps the lease of `token` alive while a long step runs (every third of its duration), and
    stops the step if the lease was lost."""

    def __init__(self, upload: Upload, token: str):
        self.upload, self.token = upload, token
        self.seconds = settings.TRAIN_REGISTRY_UPLOAD_LEASE_SECONDS
        self.renewed = time.monotonic()

    def tick(self) -> None:
        if time.monotonic() - self.renewed < self.seconds / 3:
            return
        if not self.upload.lease_renew(token=self.token, seconds=self.seconds):
            raise lease_lost(self.upload)
        self.renewed = time.monotonic()


class Metered:
    """A request body on its way to the store, for the request holding the lease: hashed and
    counted, stopped at the blob size limit, its quota reserved before each chunk is written, and
    the lease renewed while bytes flow."""

    def __init__(self, upload: Upload, token: str, chunks, hasher, length: int | None):
        self.upload, self.token, self.chunks, self.hasher, self.count = upload, token, chunks, hasher, 0
        self.end = None if length is None else upload.offset + length
        self.lease = Renewing(upload, token)
        if self.end is not None:
            self._check_size(self.end)
            self._reserve(self.end)  # a declared length is refused before any byte is written

    def _check_size(self, size: int) -> None:
        if size > settings.TRAIN_REGISTRY_MAX_BLOB_BYTES:
            raise RegistryError("SIZE_INVALID", "the blob is larger than this registry accepts", status=413)

    def _reserve(self, needed: int) -> None:
        if needed <= self.upload.reserved:
            return
        wanted = self.end if self.end is not None else needed + RESERVE_AHEAD_BYTES
        if not quota.quota_reserve(upload=self.upload, token=self.token, needed=needed, wanted=wanted):
            raise lease_lost(self.upload)

    def __iter__(self):
        for chunk in self.chunks:
            self.count += len(chunk)
            size = self.upload.offset + self.count
            self._check_size(size)
            self._reserve(size)
            self.lease.tick()
            if self.hasher is not None:
                self.hasher.update(chunk)
            yield chunk


def range_error(upload: Upload, message: str) -> RegistryError:
    last = max(upload.offset - 1, 0)
    return RegistryError("RANGE_INVALID", message, headers={
        "Range": f"0-{last}", "Location": upload_location(upload), "Docker-Upload-UUID": str(upload.pk)})


def upload_location(upload: Upload) -> str:
    return f"/v2/{upload.repository.name}/blobs/uploads/{upload.pk}"
