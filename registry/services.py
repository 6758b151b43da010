"""Registry workflows: uploads, links, manifests and tags. Called by the /v2 views, the API and tasks.

Rules kept here and nowhere else: a blob is visible in a repository only through a link; a blob is
stored only after its bytes hash to the digest the client named; a manifest is stored only when all
it references is in the repository; every tag move writes a TagEvent in the same transaction."""

import hashlib
import logging
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from registry.errors import RegistryError
from registry.gc import uploads_reclaim
from registry.hashing import ResumableSha256, new_hasher, saved_state
from registry.manifests import manifest_parse
from registry.models import Blob, Manifest, ManifestReference, Repository, RepositoryBlob, Tag, TagEvent, Upload
from registry.names import account_of, reference_kind
from registry.store import get_store

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
    link = RepositoryBlob.objects.select_related("blob").filter(repository=repository, blob__digest=digest).first()
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

def _open_uploads(account_id: str):
    return Upload.objects.filter(repository__account_id=account_id, expires_at__gt=timezone.now())


def account_stored_bytes(*, account_id: str) -> int:
    """What counts against the account's quota: each blob linked into its repositories once, plus the
    bytes of its unfinished uploads."""
    linked = RepositoryBlob.objects.filter(repository__account_id=account_id).values("blob_id")
    blobs = Blob.objects.filter(pk__in=linked).aggregate(total=Sum("size"))["total"] or 0
    return blobs + (_open_uploads(account_id).aggregate(total=Sum("offset"))["total"] or 0)


def upload_start(*, repository: Repository, actor: str) -> Upload:
    if _open_uploads(repository.account_id).count() >= settings.TRAIN_REGISTRY_MAX_OPEN_UPLOADS:
        raise RegistryError("TOOMANYREQUESTS", "too many unfinished uploads for this account; finish or cancel some",
                            detail={"limit": settings.TRAIN_REGISTRY_MAX_OPEN_UPLOADS})
    upload = Upload(repository=repository, created_by=actor[:200])
    upload.store_state = get_store().upload_init(upload)
    if ResumableSha256.available():
        upload.hash_state = saved_state(new_hasher())
    upload.save(force_insert=True)
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
    return upload


class _Counting:
    """Pass chunks through, hashing and counting them, refusing to pass `limit` bytes (then `refusal`
    is raised: the blob size limit, or the account's quota)."""

    def __init__(self, chunks, hasher, limit: int, refusal: RegistryError):
        self.chunks, self.hasher, self.limit, self.refusal, self.count = chunks, hasher, limit, refusal, 0

    def __iter__(self):
        for chunk in self.chunks:
            self.count += len(chunk)
            if self.count > self.limit:
                raise self.refusal
            if self.hasher is not None:
                self.hasher.update(chunk)
            yield chunk


def _append_limit(upload: Upload) -> tuple[int, RegistryError]:
    """How many more bytes this upload may take, and the error for going past them."""
    size_left = settings.TRAIN_REGISTRY_MAX_BLOB_BYTES - upload.offset
    too_large = RegistryError("SIZE_INVALID", "the blob is larger than this registry accepts", status=413)
    quota = settings.TRAIN_REGISTRY_ACCOUNT_QUOTA_BYTES
    if not quota:
        return size_left, too_large
    quota_left = quota - account_stored_bytes(account_id=upload.repository.account_id)
    if quota_left < size_left:
        return max(quota_left, 0), RegistryError(
            "DENIED", "the account's registry quota is used up; delete images or ask for a larger quota",
            detail={"quota_bytes": quota})
    return size_left, too_large


def upload_append(*, upload: Upload, chunks, start: int | None = None) -> Upload:
    """Append a request body at the upload's offset. `start` (from Content-Range) must be that offset."""
    if start is not None and start != upload.offset:
        raise _range_error(upload, f"the next chunk must start at byte {upload.offset}")
    resumable = bool(upload.hash_state) or (upload.offset == 0 and ResumableSha256.available())
    hasher = new_hasher(bytes(upload.hash_state)) if resumable else None
    counting = _Counting(chunks, hasher, *_append_limit(upload))
    store_state = get_store().upload_write(upload, counting)
    now = timezone.now()
    new_offset = upload.offset + counting.count
    # Conditional on the offset we started from: of two requests racing on one session, one wins.
    won = Upload.objects.filter(pk=upload.pk, offset=upload.offset).update(
        offset=new_offset, hash_state=saved_state(hasher) if hasher else b"", store_state=store_state,
        updated_at=now,
    )
    if not won:
        upload.refresh_from_db()
        raise _range_error(upload, "another request changed this upload")
    upload.offset, upload.store_state, upload.updated_at = new_offset, store_state, now
    upload.hash_state = saved_state(hasher) if hasher else b""
    return upload


def _range_error(upload: Upload, message: str) -> RegistryError:
    last = max(upload.offset - 1, 0)
    return RegistryError("RANGE_INVALID", message, headers={
        "Range": f"0-{last}", "Location": upload_location(upload), "Docker-Upload-UUID": str(upload.pk)})


def upload_location(upload: Upload) -> str:
    return f"/v2/{upload.repository.name}/blobs/uploads/{upload.pk}"


def _digest_of(upload: Upload) -> str:
    if upload.hash_state:
        return "sha256:" + ResumableSha256(bytes(upload.hash_state)).hexdigest()
    hasher = hashlib.sha256()
    for chunk in get_store().upload_read(upload):
        hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def upload_finish(*, upload: Upload, digest: str, chunks=None) -> Blob:
    """Close the session: append the final body (if any), verify the whole blob against `digest`,
    store it under that digest and link it into the repository. A mismatch stores nothing."""
    if chunks is not None:
        upload = upload_append(upload=upload, chunks=chunks)
    store = get_store()
    store.upload_assemble(upload)
    actual = _digest_of(upload)
    if actual != digest:
        upload_cancel(upload=upload)
        raise RegistryError("DIGEST_INVALID", detail={"Digest": digest, "Actual": actual})
    with transaction.atomic():
        # Promote under the blob's row lock: garbage collection deletes a blob's file only under that
        # lock, so the file the link is made for is there when the link commits.
        blob = Blob.lock_or_create(digest=digest, size=upload.offset)
        store.upload_promote(upload, digest)
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
    linked = dict(RepositoryBlob.objects.filter(repository=repository, blob_id__in=locked)
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
    return parsed.blob_bytes + sum(children.values())


def manifest_put(*, repository: Repository, reference: str, content_type: str, body: bytes, actor: str) -> Manifest:
    kind = reference_kind(reference)
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
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
        if kind == "tag":
            tag_move(repository=repository, name=reference, manifest=manifest, actor=actor)
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
