"""Copying one image, by digest, from Train's store into another registry.

The order follows the rules every careful copier keeps (skopeo, crane, Harbor): blobs first, each
checked with HEAD and mounted from another repository of the target where one is known to hold it;
then manifests children before parents, each written by digest with its exact bytes, so the digest
the target computes is the digest Train pinned. Blob bytes stream from Train's store in bounded
chunks (flat memory); large blobs go up in chunks whose progress is saved, so a copy that dies
mid-blob resumes at the target's offset instead of starting over.

What a copy needs to remember between attempts is behind `CopyProgress`; the Mirror rows implement it
(registry/mirror.py), and tests can use `MemoryProgress`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings

from registry.client import OciClient, RegistryClientError
from registry.manifests import manifest_parse
from registry.models import Manifest, Repository, RepositoryBlob
from registry.store import CHUNK_BYTES, get_store
from trainsvc import faults

log = logging.getLogger(__name__)

# Blobs up to this size go in one PUT; larger ones in PATCH chunks of CHUNK_UPLOAD_BYTES (or
# TRAIN_MIRROR_CHUNK_BYTES), each a point from which a killed copy resumes. Every chunk costs a round
# trip and the target's per-request work: 256 MiB kept a 1 GiB copy at skopeo's speed (64 MiB did not),
# while a resume re-sends at most one chunk.
MONOLITHIC_MAX_BYTES = 64 * 1024 * 1024
CHUNK_UPLOAD_BYTES = 256 * 1024 * 1024
DEFAULT_PARALLEL_BLOBS = 4


class CopyError(Exception):
    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.message, self.permanent = message, permanent


@dataclass(frozen=True)
class BlobRef:
    digest: str
    size: int


@dataclass(frozen=True)
class ManifestRef:
    digest: str
    media_type: str
    content: bytes


@dataclass
class CopyPlan:
    manifests: list[ManifestRef] = field(default_factory=list)  # children before parents; the root last
    blobs: list[BlobRef] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(blob.size for blob in self.blobs)


def plan_copy(*, repository: Repository, digest: str) -> CopyPlan:
    """Walk index → manifests → blobs from Train's rows. Only what `repository` holds is copied: a
    blob or child it does not link is an error, never a read of another repository's data."""
    plan, seen_blobs, seen = CopyPlan(), set(), set()

    def visit(manifest_digest: str) -> None:
        if manifest_digest in seen:
            return
        seen.add(manifest_digest)
        row = Manifest.objects.filter(repository=repository, digest=manifest_digest).only(
            "digest", "media_type", "content").first()
        if row is None:
            raise CopyError(f"{repository.name} has no manifest {manifest_digest}", permanent=True)
        content = bytes(row.content)
        parsed = manifest_parse(row.media_type, content)
        for child in parsed.children:
            visit(child)
        sizes = dict(RepositoryBlob.objects.filter(repository=repository, blob__digest__in=parsed.blobs)
                     .values_list("blob__digest", "blob__size"))
        for blob_digest in parsed.blobs:
            if blob_digest not in sizes:
                raise CopyError(f"{repository.name} does not hold blob {blob_digest}", permanent=True)
            if blob_digest not in seen_blobs:
                seen_blobs.add(blob_digest)
                plan.blobs.append(BlobRef(blob_digest, sizes[blob_digest]))
        plan.manifests.append(ManifestRef(row.digest, row.media_type, content))

    visit(digest)
    return plan


class CopyProgress:
    """What a copy remembers between attempts. Every method may be called from several threads."""

    def blob_finished(self, digest: str) -> bool:
        return False

    def blob_done(self, blob: BlobRef, *, sent: int) -> None:
        """`blob` is at the target; `sent` bytes of it were transferred by this attempt (0: skipped)."""

    def upload_saved(self, digest: str) -> tuple[str, int] | None:
        """The upload session (location, offset) an earlier attempt left for `digest`, if any."""
        return None

    def upload_progress(self, digest: str, location: str, offset: int) -> None:
        """`offset` bytes of `digest` are in the session at `location` (saved for a resume)."""

    def mount_source(self, digest: str) -> str | None:
        """Another repository of the target registry known to hold `digest`."""
        return None


class MemoryProgress(CopyProgress):
    def __init__(self):
        self.done: dict[str, int] = {}
        self.uploads: dict[str, tuple[str, int]] = {}
        self.sources: dict[str, str] = {}

    def blob_finished(self, digest):
        return digest in self.done

    def blob_done(self, blob, *, sent):
        self.done[blob.digest] = sent
        self.uploads.pop(blob.digest, None)

    def upload_saved(self, digest):
        return self.uploads.get(digest)

    def upload_progress(self, digest, location, offset):
        self.uploads[digest] = (location, offset)

    def mount_source(self, digest):
        return self.sources.get(digest)


def _chunks(digest: str, start: int, length: int) -> Iterator[bytes]:
    reader = get_store().blob_open(digest, start, length)
    try:
        while length > 0:
            data = reader.read(min(CHUNK_BYTES, length))
            if not data:
                raise CopyError(f"the store returned fewer bytes of {digest} than its size")
            length -= len(data)
            yield data
    finally:
        reader.close()


class Copier:
    def __init__(self, client: OciClient, repository: str, progress: CopyProgress, *,
                 parallel_blobs: int = DEFAULT_PARALLEL_BLOBS, on_blob=None):
        self.client, self.repository, self.progress = client, repository, progress
        self.parallel_blobs = max(1, parallel_blobs)
        self.on_blob = on_blob  # called after each blob, from the worker thread (e.g. to close DB connections)

    def copy(self, plan: CopyPlan) -> str:
        """Copy `plan`; returns the digest the target reports for the root manifest."""
        pending = [blob for blob in plan.blobs if not self.progress.blob_finished(blob.digest)]
        if pending:
            with ThreadPoolExecutor(max_workers=min(self.parallel_blobs, len(pending))) as pool:
                for future in [pool.submit(self._blob_task, blob) for blob in pending]:
                    future.result()  # the first failure propagates; the others finish or fail on their own
        stored = ""
        for manifest in plan.manifests:
            stored = self._manifest(manifest)
        return stored

    def _blob_task(self, blob: BlobRef) -> None:
        try:
            self.copy_blob(blob)
        finally:
            if self.on_blob is not None:
                self.on_blob()

    def copy_blob(self, blob: BlobRef) -> None:
        try:
            if self.client.blob_exists(self.repository, blob.digest):
                self.progress.blob_done(blob, sent=0)
                return
            source = self.progress.mount_source(blob.digest)
            if source and source != self.repository and self.client.blob_mount(self.repository, blob.digest, source):
                self.progress.blob_done(blob, sent=0)
                return
            self._upload(blob)
        except RegistryClientError as exc:
            raise CopyError(f"{blob.digest}: {exc.message}", permanent=exc.permanent) from exc

    def _upload(self, blob: BlobRef) -> None:
        location, offset = self._session(blob)
        if offset == 0 and blob.size <= MONOLITHIC_MAX_BYTES:
            self.client.upload_finish(self.repository, location, blob.digest, length=blob.size,
                                      chunks=lambda: _chunks(blob.digest, 0, blob.size))
            self.progress.blob_done(blob, sent=blob.size)
            return
        sent, chunk_bytes = 0, settings.TRAIN_MIRROR_CHUNK_BYTES or CHUNK_UPLOAD_BYTES
        while offset < blob.size:
            length = min(chunk_bytes, blob.size - offset)
            start = offset
            location = self.client.upload_chunk(self.repository, location, start, length,
                                                lambda start=start, length=length: _chunks(blob.digest, start, length))
            offset, sent = offset + length, sent + length
            self.progress.upload_progress(blob.digest, location, offset)
            faults.hit("mirror_after_chunk")  # a worker killed here resumes at the target's offset
        self.client.upload_finish(self.repository, location, blob.digest)
        self.progress.blob_done(blob, sent=sent)

    def _session(self, blob: BlobRef) -> tuple[str, int]:
        """Resume the session an earlier attempt saved, at the offset the target reports; else a new one."""
        saved = self.progress.upload_saved(blob.digest)
        if saved is not None:
            location, _saved_offset = saved
            offset = self.client.upload_offset(self.repository, location)
            if offset is not None and offset <= blob.size:
                return location, offset
        return self.client.upload_start(self.repository), 0

    def _manifest(self, manifest: ManifestRef) -> str:
        try:
            if not self.client.manifest_exists(self.repository, manifest.digest):
                stored = self.client.manifest_put(self.repository, manifest.digest, manifest.media_type,
                                                  manifest.content)
                if stored and stored != manifest.digest:
                    raise CopyError(f"the target stored {stored} for manifest {manifest.digest}", permanent=True)
        except RegistryClientError as exc:
            raise CopyError(f"manifest {manifest.digest}: {exc.message}", permanent=exc.permanent) from exc
        return manifest.digest
