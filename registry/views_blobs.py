"""/v2/<name>/blobs/<digest>: HEAD and GET (with Range). Blob DELETE is not offered."""

from django.http import FileResponse

from registry.auth import authorize
from registry.errors import RegistryError, registry_view
from registry.http import byte_range, empty
from registry.names import digest_lookup, name_check
from registry.services import blob_in_repository, repository_find
from registry.store import CHUNK_BYTES, get_store


@registry_view
def blob(request, name, digest):
    name_check(name)
    known = digest_lookup(digest)  # None: a well-formed digest of an algorithm no blob here has
    if request.method == "DELETE":
        authorize(request, [(f"repository:{name}", "delete")])
        raise RegistryError("UNSUPPORTED", "blobs are removed with the manifests that use them")
    if request.method not in ("GET", "HEAD"):
        raise RegistryError("UNSUPPORTED", status=405, headers={"Allow": "GET, HEAD"})
    authorize(request, [(f"repository:{name}", "pull")])
    found = blob_in_repository(repository=repository_find(name=name), digest=digest) if known else None
    if found is None:
        raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})
    window = byte_range(request, found.size)
    start, length = window or (0, found.size)
    headers = {
        "Docker-Content-Digest": found.digest, "Accept-Ranges": "bytes", "ETag": f'"{found.digest}"',
        "Content-Type": "application/octet-stream", "Content-Length": str(length),
    }
    status = 200
    if window:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{found.size}"
    if request.method == "HEAD":
        return empty(status, headers)
    response = FileResponse(get_store().blob_open(found.digest, start, length), status=status,
                            content_type="application/octet-stream")
    response.block_size = CHUNK_BYTES
    for header, value in headers.items():
        response[header] = value
    return response
