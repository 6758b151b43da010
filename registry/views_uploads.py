"""Blob uploads: POST /v2/<name>/blobs/uploads/ (session, single-request push, or mount) and
GET/PATCH/PUT/DELETE on the session URL it returns."""

from registry.auth import authorize, may
from registry.errors import RegistryError, registry_view
from registry.http import body_chunks, content_range, declared_length, empty, has_body
from registry.names import digest_check, digest_lookup, name_check
from registry.reference import NAME_MAX_LENGTH, REPOSITORY_RE
from registry.services import (
    blob_mount,
    repository_find,
    repository_for_push,
    upload_append,
    upload_cancel,
    upload_find,
    upload_finish,
    upload_start,
)
from registry.upload_writes import upload_location


def _push_needs(name):
    return [(f"repository:{name}", "pull"), (f"repository:{name}", "push")]


def _created(name, digest):
    return empty(201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})


def _progress(upload, status=202):
    end = max(upload.offset - 1, 0)
    return empty(status, {"Location": upload_location(upload), "Range": f"0-{end}",
                          "Docker-Upload-UUID": str(upload.pk)})


def _mount_source(request) -> str | None:
    source_name = request.GET.get("from", "")
    if len(source_name) > NAME_MAX_LENGTH or not REPOSITORY_RE.match(source_name):
        return None
    return source_name


def _mount_source_wanted(request, mount):
    """Pull on a mount's source, for the challenge: without it the client's token cannot mount."""
    source_name = _mount_source(request) if mount is not None else None
    return [(f"repository:{source_name}", "pull")] if source_name else []


def _try_mount(request, caller, repository, digest):
    source_name = _mount_source(request)
    if source_name is None:
        return None
    # Only from a repository the caller may pull, and only if the blob is linked there.
    if not may(caller, f"repository:{source_name}", "pull"):
        return None
    return blob_mount(repository=repository, source=repository_find(name=source_name), digest=digest)


@registry_view
def upload_begin(request, name):
    name_check(name)
    if request.method != "POST":
        raise RegistryError("UNSUPPORTED", status=405, headers={"Allow": "POST"})
    mount, digest = request.GET.get("mount"), request.GET.get("digest")
    if mount is not None:
        # A digest of an algorithm this registry does not store cannot be mounted: open a session.
        mount = digest_lookup(mount)
    if digest is not None:
        digest_check(digest)
    caller = authorize(request, _push_needs(name), wanted=_mount_source_wanted(request, mount))
    repository = repository_for_push(name=name)
    if mount is not None and _try_mount(request, caller, repository, mount) is not None:
        return _created(name, mount)
    upload = upload_start(repository=repository, actor=caller.actor)
    if digest is not None:
        blob = upload_finish(upload=upload, digest=digest, chunks=body_chunks(request),
                             length=declared_length(request))
        return _created(name, blob.digest)
    return _progress(upload)


@registry_view
def upload_session(request, name, upload_id):
    name_check(name)
    handler = {"GET": _status, "PATCH": _patch, "PUT": _put, "DELETE": _cancel}.get(request.method)
    if handler is None:
        raise RegistryError("UNSUPPORTED", status=405, headers={"Allow": "GET, PATCH, PUT, DELETE"})
    authorize(request, _push_needs(name))
    upload = upload_find(repository=repository_find(name=name), upload_id=upload_id)
    return handler(request, name, upload)


def _status(request, name, upload):
    return _progress(upload, status=204)


def _patch(request, name, upload):
    window = content_range(request)
    start = None
    if window is not None:
        start, end = window
        length = declared_length(request)
        if length is not None and length != end - start + 1:
            raise RegistryError("RANGE_INVALID", "Content-Range and Content-Length disagree",
                                headers={"Range": f"0-{max(upload.offset - 1, 0)}"})
    upload = upload_append(upload=upload, chunks=body_chunks(request), start=start,
                           length=declared_length(request))
    return _progress(upload)


def _put(request, name, upload):
    digest = digest_check(request.GET.get("digest", ""))
    chunks = length = None
    if has_body(request):
        window = content_range(request)
        if window is not None and window[0] != upload.offset:
            upload_append(upload=upload, chunks=iter(()), start=window[0])  # raises RANGE_INVALID
        chunks, length = body_chunks(request), declared_length(request)
    blob = upload_finish(upload=upload, digest=digest, chunks=chunks, length=length)
    return _created(name, blob.digest)


def _cancel(request, name, upload):
    upload_cancel(upload=upload)
    return empty(204, {})
