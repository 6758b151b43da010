"""Registry workflows: uploads, links, manifests and tags. Called by the /v2 views, the API and tasks.

Rules kept here and nowhere else: a blob is visible in a repository only through a link; a blob is
stored only after its bytes hash to the digest the client named; a manifest is stored only when all
it references is in the repository; every tag move writes a TagEvent in the same transaction."""

import hashlib
import logging
import uuid
from functools import partial

from django.db import IntegrityError, transaction
from django.utils import timezone

from registry import quota
from registry.errors import RegistryError
from registry.gc import uploads_reclaim
from registry.hashing import ResumableSha256, algorithm_of, digest_bytes, digest_chunks, new_hasher, saved_state
from registry.manifests import INT64_MAX, manifest_parse
from registry.models import Blob, Manifest, ManifestReference, Repository, RepositoryBlob, Tag, TagEvent, Upload
from registry.names import account_of, reference_kind
from registry.signals import tag_pushed
from registry.store import UploadDamaged, get_store
from registry.upload_writes import Metered, Renewing, lease_lost, lease_take, range_error
from trainsvc import faults

log = logging.getLogger(__name__)


def repository_find(*, name: str) -> Repository | None:
    return Repository.objects.filter(name=name).first()


def repository_for_push(*, name: str) -> Repository:
    """The repository `name`, created on first push. Its account exists: the caller is a member."""
    repository = repository_find(name=name)
    if repository is not None:
        return repository
    try:
        with transaction.atomic():
            return Repository.objects.create(name=name, account_id=account_of(name))
    except IntegrityError:
        return Repository.objects.get(name=name)


def blob_in_repository(*, repository: Repository | None, digest: str) -> Blob | None:
    if repository is None:
        return None
    # A quarantined blob (registry_verify found its bytes damaged) is unknown until pushed again.
    link = RepositoryBlob.objects.select_related("blob").filter(
        repository=repository, blob__digest=digest, blob__quarantined_at__isnull=True).first()
    return link.blob if link else None


def _link(repository: Repository, blob: Blob) -> None:
    """Link `blob` (whose row the caller holds locked) into `repository`, or refresh the link's push
    time: garbage collection's grace runs from the latest push or mount."""
    try:
        with transaction.atomic():
            link, created = RepositoryBlob.objects.get_or_create(repository=repository, blob=blob)
    except IntegrityError:
        return  # a concurrent push linked it first (and so refreshed it)
    if not created:
        RepositoryBlob.objects.filter(pk=link.pk).update(pushed_at=timezone.now())


# --- uploads ---------------------------------------------------------------------------------------

def account_stored_bytes(*, account_id: str) -> int:
    """What counts against the account's quota (registry/quota.py)."""
    return quota.account_stored_bytes(account_id=account_id)


def upload_start(*, repository: Repository, actor: str) -> Upload:
    """Open a session; the per-account cap is counted and the row inserted under the account's lock."""
    upload = Upload(repository=repository, created_by=actor[:200])
    if ResumableSha256.available():
        upload.hash_state = saved_state(new_hasher())
    with transaction.atomic():
        quota.account_lock(repository.account_id)
        quota.uploads_cap_check(repository.account_id, timezone.now())
        upload.save(force_insert=True)
    try:
        upload.store_state = get_store().upload_init(upload)
    except BaseException:
        Upload.objects.filter(pk=upload.pk).delete()
        raise
    Upload.objects.filter(pk=upload.pk).update(store_state=upload.store_state)
    return upload


def upload_find(*, repository: Repository | None, upload_id: str) -> Upload:
    """The live session `upload_id` of `repository`; another repository's session is unknown here."""
    try:
        key = uuid.UUID(upload_id)
    except ValueError:
        key = None
    upload = None
    if key is not None and repository is not None:
        upload = Upload.objects.filter(pk=key, repository=repository, expires_at__gt=timezone.now()).first()
    if upload is None:
        raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id[:64]})
    upload.repository = repository
    return upload


def _write(upload: Upload, token: str, chunks, length: int | None, *, release: bool) -> None:
    """Stream a body into the store at the committed offset, then commit it by the lease token."""
    resumable = bool(upload.hash_state) or (upload.offset == 0 and ResumableSha256.available())
    hasher = new_hasher(bytes(upload.hash_state)) if resumable else None
    metered = Metered(upload, token, chunks, hasher, length)
    store, previous = get_store(), dict(upload.store_state)
    store_state = store.upload_write(upload, metered, token=token)
    faults.hit("upload_after_store_write")
    if not upload.lease_commit(token=token, offset=upload.offset + metered.count, store_state=store_state,
                               hash_state=saved_state(hasher) if hasher else b"", release=release):
        raise lease_lost(upload)
    store.upload_committed(upload, previous)


def upload_append(*, upload: Upload, chunks, start: int | None = None, length: int | None = None) -> Upload:
    """Append a request body at the upload's offset. `start` (from Content-Range) must be that offset;
    `length` is the declared Content-Length, if any."""
    if start is not None and start != upload.offset:
        raise range_error(upload, f"the next chunk must start at byte {upload.offset}")
    token = lease_take(upload)
    try:
        _write(upload, token, chunks, length, release=True)
    except BaseException:
        # A killed process never gets here: its lease expires instead (docs/decisions/0032).
        upload.lease_release(token=token)
        raise
    return upload


def _digest_of(upload: Upload, algorithm: str = "sha256") -> str:
    """The digest of the upload's bytes: from the saved SHA-256 state when there is one, else (and
    always for sha512) by re-reading the stored bytes."""
    if algorithm == "sha256" and upload.hash_state:
        return "sha256:" + ResumableSha256(bytes(upload.hash_state)).hexdigest()
    return digest_chunks(get_store().upload_read(upload), algorithm)


def _stored_digest(upload: Upload, token: str, digest: str) -> str:
    """The digest of the bytes the store would promote, read back (same algorithm as `digest`)."""
    algorithm = digest.partition(":")[0]
    hasher, lease = hashlib.new(algorithm), Renewing(upload, token)
    for chunk in get_store().upload_read(upload):
        hasher.update(chunk)
        lease.tick()
    return f"{algorithm}:{hasher.hexdigest()}"


# Refusals after which a push cannot go on: its session is closed and its bytes removed.
_CLOSING_CODES = {"DENIED", "DIGEST_INVALID"}


def upload_finish(*, upload: Upload, digest: str, chunks=None, length: int | None = None) -> Blob:
    """Close the session: append the final body (if any), verify the whole blob against `digest`,
    store it under that digest and link it into the repository. A mismatch stores nothing; a push
    refused by the quota or a limit closes its session."""
    token = lease_take(upload)
    try:
        if chunks is not None:
            _write(upload, token, chunks, length, release=False)
        return _promote(upload, token, digest)
    except RegistryError as exc:
        if exc.code in _CLOSING_CODES or exc.status == 413:
            upload_cancel(upload=upload)
        else:
            upload.lease_release(token=token)
        raise
    except BaseException:
        upload.lease_release(token=token)
        raise


def _promote(upload: Upload, token: str, digest: str) -> Blob:
    """Move the verified bytes under `digest` and record the blob. A blob already served under that
    digest is kept as it is (nothing of this upload replaces it); a new or quarantined one gets this
    upload's bytes. Those are the bytes the lease holders hashed as they wrote them (decision 0032),
    unless a writer may have outlived its lease; then they are read back and hashed first."""
    store = get_store()
    try:
        store.upload_assemble(upload)
    except UploadDamaged as exc:
        log.error("upload %s: %s", upload.pk, exc)
        raise RegistryError("DIGEST_INVALID", "the stored upload does not match what was sent; push again",
                            detail={"Digest": digest}) from exc
    actual = _digest_of(upload, algorithm_of(digest))
    if actual != digest:
        raise RegistryError("DIGEST_INVALID", detail={"Digest": digest, "Actual": actual})
    existing = Blob.objects.filter(digest=digest, quarantined_at__isnull=True).exists()
    if not existing and upload.lease_taken_over and store.REHASH_AFTER_TAKEOVER:
        stored = _stored_digest(upload, token, digest)
        if stored != digest:
            log.error("upload %s: stored bytes hash to %s, not %s", upload.pk, stored, digest)
            raise RegistryError("DIGEST_INVALID", "the stored upload does not match its digest; push again",
                                detail={"Digest": digest, "Actual": stored})
    with transaction.atomic():
        # Under the account's lock: the upload's reservation becomes a linked blob in one step.
        quota.account_lock(upload.repository.account_id)
        # Promote under the blob's row lock: garbage collection deletes a blob's file only under that
        # lock, so the file the link is made for is there when the link commits.
        blob, created = Blob.lock_or_create(digest=digest, size=upload.offset)
        if not created and blob.quarantined_at is None:
            store.upload_discard(upload)  # served already: nothing of this upload replaces it
        else:
            store.upload_promote(upload, digest)
            if blob.quarantined_at is not None:
                blob.quarantine_lift()
        _link(upload.repository, blob)
        Upload.objects.filter(pk=upload.pk).delete()
    return blob


def upload_cancel(*, upload: Upload) -> None:
    get_store().upload_discard(upload)
    Upload.objects.filter(pk=upload.pk).delete()


def uploads_expire(*, now=None) -> int:
    """Discard expired and idle sessions with their stored bytes (registry/gc.py); how many."""
    return uploads_reclaim(now=now).count("uploads")


def blob_mount(*, repository: Repository, source: Repository | None, digest: str) -> Blob | None:
    """Link `digest` from `source` into `repository` if `source` has it (the caller's pull right on
    `source` is checked by the view). None means: fall back to an upload."""
    blob = blob_in_repository(repository=source, digest=digest)
    if blob is None:
        return None
    with transaction.atomic():
        # Under the blob's lock, re-read the source's link: garbage collection may just have removed it.
        if not Blob.lock([digest]) or not RepositoryBlob.objects.filter(repository=source, blob=blob).exists():
            return None
        _link(repository, blob)
    return blob


# --- manifests and tags ----------------------------------------------------------------------------

def manifest_find(*, repository: Repository | None, reference: str) -> Manifest | None:
    if repository is None:
        return None
    if reference_kind(reference) == "digest":
        return Manifest.objects.filter(repository=repository, digest=reference).first()
    tag = Tag.objects.select_related("manifest").filter(repository=repository, name=reference).first()
    return tag.manifest if tag else None


def _check_references(repository: Repository, parsed) -> int:
    """MANIFEST_BLOB_UNKNOWN unless every blob and child is in `repository`; returns the total size.
    Runs in manifest_put's transaction and leaves the blobs' rows locked until the manifest and its
    references commit, so garbage collection cannot remove a link or blob checked here."""
    locked = Blob.lock(parsed.blobs)
    linked = dict(RepositoryBlob.objects.filter(repository=repository, blob_id__in=locked,
                                                blob__quarantined_at__isnull=True)
                  .values_list("blob__digest", "blob__size"))
    for digest in parsed.blobs:
        if digest not in linked:
            raise RegistryError("MANIFEST_BLOB_UNKNOWN", detail={"digest": digest})
    children = dict(Manifest.objects.filter(repository=repository, digest__in=set(parsed.children))
                    .values_list("digest", "total_size"))
    for digest in parsed.children:
        if digest not in children:
            raise RegistryError("MANIFEST_BLOB_UNKNOWN", "the index names a manifest unknown to this repository",
                                detail={"digest": digest})
    # Each child's total fits int64; their sum need not (a listing figure, so it is capped, not refused).
    return min(parsed.blob_bytes + sum(children.values()), INT64_MAX)


def manifest_put(*, repository: Repository, reference: str, content_type: str, body: bytes, actor: str,
                 tags: tuple[str, ...] = ()) -> Manifest:
    """Store the manifest; point `reference` (when a tag) and each of `tags` (the `?tag=` parameters
    of a push by digest) at it, in one transaction."""
    kind = reference_kind(reference)
    # Pushed by digest: verified with that digest's algorithm, and stored under it.
    digest = digest_bytes(body, algorithm_of(reference) if kind == "digest" else "sha256")
    if kind == "digest" and reference != digest:
        raise RegistryError("DIGEST_INVALID", "the manifest does not hash to the digest it was pushed as",
                            detail={"Digest": reference, "Actual": digest})
    parsed = manifest_parse(content_type, body)
    with transaction.atomic():
        total_size = _check_references(repository, parsed)
        manifest, created = Manifest.objects.get_or_create(repository=repository, digest=digest, defaults={
            "media_type": parsed.media_type, "size": len(body), "content": body, "subject_digest": parsed.subject,
            "artifact_type": parsed.artifact_type, "total_size": total_size, "pushed_by": actor[:200]})
        if not created and manifest.media_type != parsed.media_type:
            raise RegistryError("MANIFEST_INVALID", "this digest is already stored with another media type",
                                detail={"mediaType": manifest.media_type})
        if created:
            ManifestReference.record(manifest, blobs=parsed.blobs, children=parsed.children)
        for name in dict.fromkeys(([reference] if kind == "tag" else []) + list(tags)):
            tag_move(repository=repository, name=name, manifest=manifest, actor=actor)
        Repository.objects.filter(pk=repository.pk).update(last_push_at=timezone.now())
    return manifest


def tag_move(*, repository: Repository, name: str, manifest: Manifest, actor: str) -> bool:
    """Point tag `name` at `manifest`, recording the move; False when it already pointed there."""
    tag = Tag.objects.select_for_update().select_related("manifest").filter(repository=repository, name=name).first()
    if tag is None:
        try:
            with transaction.atomic():
                Tag.objects.create(repository=repository, name=name, manifest=manifest)
        except IntegrityError:
            # A concurrent push created it: move it as if it had been there.
            return tag_move(repository=repository, name=name, manifest=manifest, actor=actor)
        old_digest = ""
    elif tag.manifest_id == manifest.pk:
        return False
    else:
        old_digest = tag.manifest.digest
        Tag.objects.filter(pk=tag.pk).update(manifest=manifest, updated_at=timezone.now())
    TagEvent.objects.create(repository=repository, tag=name, old_digest=old_digest, new_digest=manifest.digest,
                            actor=actor[:200])
    # After the commit: a receiver that enqueues work must never see a push that was rolled back.
    transaction.on_commit(partial(tag_pushed.send, sender=Repository, account_id=repository.account_id,
                                  repository=repository.name, tag=name, digest=manifest.digest))
    return True


@transaction.atomic
def manifest_delete(*, repository: Repository, reference: str, actor: str) -> None:
    """By tag: remove that tag. By digest: remove the manifest and every tag pointing at it."""
    if reference_kind(reference) == "tag":
        tag = Tag.objects.select_for_update().select_related("manifest").filter(
            repository=repository, name=reference).first()
        if tag is None:
            raise RegistryError("MANIFEST_UNKNOWN", detail={"Tag": reference})
        _tag_remove(tag, actor)
        return
    manifest = Manifest.objects.filter(repository=repository, digest=reference).first()
    if manifest is None:
        raise RegistryError("MANIFEST_UNKNOWN", detail={"Digest": reference})
    for tag in Tag.objects.select_for_update().select_related("manifest").filter(manifest=manifest):
        _tag_remove(tag, actor)
    manifest.delete()


def _tag_remove(tag: Tag, actor: str) -> None:
    TagEvent.objects.create(repository_id=tag.repository_id, tag=tag.name, old_digest=tag.manifest.digest,
                            new_digest="", actor=actor[:200])
    tag.delete()
