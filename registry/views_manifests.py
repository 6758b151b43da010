"""/v2/<name>/manifests/<reference>, /v2/<name>/tags/list and /v2/<name>/referrers/<digest>."""

import json
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpResponse, JsonResponse

from registry.auth import authorize
from registry.errors import RegistryError, registry_view
from registry.http import body_bytes, empty, paginate
from registry.manifests import OCI_INDEX, annotations_of
from registry.models import Manifest, Tag
from registry.names import digest_lookup, name_check, reference_kind, reference_lookup
from registry.reference import TAG_RE
from registry.services import manifest_delete, manifest_find, manifest_put, repository_find, repository_for_push

MAX_TAG_PARAMETERS = 100  # tags one push may set; each writes a tag row and a history event


@registry_view
def manifest(request, name, reference):
    name_check(name)
    resource = f"repository:{name}"
    if request.method in ("GET", "HEAD"):
        kind = reference_lookup(reference)
        authorize(request, [(resource, "pull")])
        return _serve(request, name, reference, kind)
    if request.method == "PUT":
        tags = _tag_parameters(request, reference_kind(reference))
        caller = authorize(request, [(resource, "pull"), (resource, "push")])
        body = body_bytes(request, limit=settings.TRAIN_REGISTRY_MAX_MANIFEST_BYTES)
        stored = manifest_put(repository=repository_for_push(name=name), reference=reference,
                              content_type=request.headers.get("Content-Type", ""), body=body, actor=caller.actor,
                              tags=tags)
        headers = {"Location": f"/v2/{name}/manifests/{stored.digest}", "Docker-Content-Digest": stored.digest}
        if tags:
            headers["OCI-Tag"] = ", ".join(tags)
        if stored.subject_digest:
            headers["OCI-Subject"] = stored.subject_digest
        return empty(201, headers)
    if request.method == "DELETE":
        kind = reference_lookup(reference)
        caller = authorize(request, [(resource, "delete")])
        repository = repository_find(name=name)
        if repository is None:
            raise RegistryError("NAME_UNKNOWN", detail={"name": name})
        if kind is None:
            raise _unknown(reference)
        manifest_delete(repository=repository, reference=reference, actor=caller.actor)
        return empty(202, {})
    raise RegistryError("UNSUPPORTED", status=405, headers={"Allow": "GET, HEAD, PUT, DELETE"})


def _tag_parameters(request, kind: str) -> tuple[str, ...]:
    """The `?tag=` parameters of a push by digest (each a valid tag), which tag it in the same step:
    the only way to tag a manifest pushed by a sha512 digest."""
    tags = tuple(dict.fromkeys(request.GET.getlist("tag")))
    if tags and kind != "digest":
        raise RegistryError("TAG_INVALID", "tag parameters go with a push by digest", detail={"tag": tags[0][:200]})
    if len(tags) > MAX_TAG_PARAMETERS:
        raise RegistryError("TAG_INVALID", f"at most {MAX_TAG_PARAMETERS} tag parameters per push")
    for tag in tags:
        if not TAG_RE.match(tag):
            raise RegistryError("TAG_INVALID", detail={"tag": tag[:200]})
    return tags


def _unknown(reference: str) -> RegistryError:
    return RegistryError("MANIFEST_UNKNOWN", detail={"Digest" if ":" in reference else "Tag": reference[:200]})


def _serve(request, name, reference, kind):
    found = manifest_find(repository=repository_find(name=name), reference=reference) if kind else None
    if found is None:
        raise _unknown(reference)
    headers = {"Docker-Content-Digest": found.digest, "ETag": f'"{found.digest}"',
               "Content-Length": str(found.size)}
    if request.method == "HEAD":
        response = empty(200, headers)
        response["Content-Type"] = found.media_type
        return response
    # Exactly the bytes pushed, with the type they were pushed as: the digest is of these bytes.
    response = HttpResponse(bytes(found.content), content_type=found.media_type)
    for header, value in headers.items():
        response[header] = value
    return response


@registry_view
def tags_list(request, name):
    repository = _readable_repository(request, name)
    tags, link = paginate(Tag.objects.filter(repository=repository), "name", request,
                          path=f"/v2/{name}/tags/list")
    response = JsonResponse({"name": name, "tags": tags})
    if link:
        response["Link"] = link
    return response


@registry_view
def referrers(request, name, digest):
    """Manifests whose subject is `digest`, by digest, in pages of `n` with a `Link` to the next (as
    tags/list). Only the page's rows are read, and their content only for the annotations. Always an OCI
    index: empty for a subject nothing refers to, for a digest of an algorithm this registry does not
    store, and for a repository with no manifests yet (the spec forbids a 404)."""
    known = digest_lookup(digest)
    repository = _readable_repository(request, name, missing_ok=True)
    artifact_type = request.GET.get("artifactType")  # unsafe text was refused by registry_view
    rows = Manifest.objects.none()
    if repository is not None and known is not None:
        rows = Manifest.objects.filter(repository=repository, subject_digest=digest)
    if artifact_type:
        rows = rows.filter(artifact_type=artifact_type)
    page, link = paginate(rows, "digest", request, path=f"/v2/{name}/referrers/{digest}")
    if link and artifact_type:
        link = _link_with(link, artifactType=artifact_type)
    descriptors = _referrer_descriptors(rows, page)
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors})
    response = HttpResponse(body, content_type=OCI_INDEX)
    if artifact_type:
        response["OCI-Filters-Applied"] = "artifactType"
    if link:
        response["Link"] = link
    return response


# Manifests are read for their annotations in batches of at most this many bytes, so a page of
# large manifests never sits in memory at once.
REFERRER_CONTENT_BATCH_BYTES = 8 * 1024 * 1024


def _referrer_descriptors(rows, digests: list[str]) -> list[dict]:
    found = {row.digest: row for row in rows.filter(digest__in=digests).only(
        "pk", "digest", "media_type", "size", "artifact_type")}
    page = [found[d] for d in digests if d in found]
    annotations = {}
    for batch in _batches_by_size(page, REFERRER_CONTENT_BATCH_BYTES):
        for pk, content in Manifest.objects.filter(pk__in=[row.pk for row in batch]).values_list("pk", "content"):
            annotations[pk] = annotations_of(bytes(content))
    descriptors = []
    for row in page:
        descriptor = {"mediaType": row.media_type, "digest": row.digest, "size": row.size}
        if row.artifact_type:
            descriptor["artifactType"] = row.artifact_type
        if annotations.get(row.pk):
            descriptor["annotations"] = annotations[row.pk]
        descriptors.append(descriptor)
    return descriptors


def _batches_by_size(rows, limit: int):
    batch, total = [], 0
    for row in rows:
        if batch and total + row.size > limit:
            yield batch
            batch, total = [], 0
        batch.append(row)
        total += row.size
    if batch:
        yield batch


def _link_with(link: str, **params) -> str:
    """`link` (`<path?query>; rel="next"`) with `params` added to its query."""
    target, _, rest = link.partition(">")
    return f"{target}&{urlencode(params)}>{rest}"


def _readable_repository(request, name, *, missing_ok=False):
    """The repository `name` for a read-only listing endpoint, after the checks every such read needs
    (None for a missing one when `missing_ok`)."""
    name_check(name)
    if request.method not in ("GET", "HEAD"):
        raise RegistryError("UNSUPPORTED", status=405, headers={"Allow": "GET"})
    authorize(request, [(f"repository:{name}", "pull")])
    repository = repository_find(name=name)
    if repository is None and not missing_ok:
        raise RegistryError("NAME_UNKNOWN", detail={"name": name})
    return repository
