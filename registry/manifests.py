"""Parsing and checking manifest documents (Docker schema 2, Docker manifest list, OCI manifest, OCI
index). The bytes are stored verbatim; parsing only finds what they reference and rejects what is
ambiguous or malformed."""

import json
from dataclasses import dataclass, field

from registry.errors import RegistryError
from registry.names import text_is_safe
from registry.reference import REGISTRY_DIGEST_RE

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_LIST, OCI_INDEX})
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES
# Layers that live elsewhere (`urls`) and that registries need not hold.
NON_DISTRIBUTABLE_MARKERS = ("nondistributable", "foreign")
MAX_DESCRIPTORS = 10_000
INT64_MAX = 2**63 - 1  # sizes are int64 in the spec and in the database
MEDIA_TYPE_MAX_LENGTH = 200  # the media_type and artifact_type columns


@dataclass
class ParsedManifest:
    media_type: str
    blobs: list[str] = field(default_factory=list)  # config and layers that must be linked here
    children: list[str] = field(default_factory=list)  # manifests an index names
    subject: str = ""
    artifact_type: str = ""
    blob_bytes: int = 0  # config + layers, from the descriptors


def _invalid(message: str, **detail):
    return RegistryError("MANIFEST_INVALID", message, detail=detail or None)


def media_type_of(content_type: str) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _descriptor(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be a descriptor object")
    digest, size = value.get("digest"), value.get("size")
    if not isinstance(digest, str) or not REGISTRY_DIGEST_RE.match(digest):
        raise _invalid(f"{where}.digest must be sha256:<64 hex> or sha512:<128 hex>", field=f"{where}.digest")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= INT64_MAX:
        raise _invalid(f"{where}.size must be an integer from 0 to 2^63-1", field=f"{where}.size")
    _media_type(value.get("mediaType"), f"{where}.mediaType")
    return value


def _media_type(value, where: str) -> str:
    """A media type or artifact type, as the database column can hold it; "" when absent."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _invalid(f"{where} must be a string", field=where)
    if len(value) > MEDIA_TYPE_MAX_LENGTH or not text_is_safe(value):
        raise _invalid(f"{where} must be at most {MEDIA_TYPE_MAX_LENGTH} printable characters", field=where)
    return value


def _is_non_distributable(descriptor: dict) -> bool:
    media_type = descriptor.get("mediaType") or ""
    return bool(descriptor.get("urls")) and any(marker in media_type for marker in NON_DISTRIBUTABLE_MARKERS)


def _object_without_duplicates(pairs):
    # Two `layers` keys would let the checked list differ from the one another parser reads.
    document = {}
    for key, value in pairs:
        if key in document:
            raise _invalid(f"the manifest repeats the key {key[:100]!r}", field=key[:100])
        document[key] = value
    return document


def _refuse_constant(name):
    # NaN and Infinity are not JSON: stored verbatim, they would be served back as invalid JSON.
    raise _invalid(f"the manifest contains {name}, which is not JSON")


def _load(body: bytes) -> dict:
    try:
        document = json.loads(body, object_pairs_hook=_object_without_duplicates, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise _invalid("the manifest is not valid JSON") from exc
    if not isinstance(document, dict):
        raise _invalid("the manifest must be a JSON object")
    if document.get("schemaVersion") != 2:
        raise _invalid("only schemaVersion 2 manifests are supported (schema 1 is deprecated)")
    return document


def manifest_parse(content_type: str, body: bytes) -> ParsedManifest:
    media_type = media_type_of(content_type)
    if media_type not in MANIFEST_TYPES:
        raise _invalid(f"unsupported manifest media type {media_type or '(none)'!r}; use one of "
                       + ", ".join(sorted(MANIFEST_TYPES)))
    document = _load(body)
    declared = document.get("mediaType")
    if declared is not None and declared != media_type:
        raise _invalid("the manifest's mediaType does not match the Content-Type it was sent with",
                       mediaType=str(declared)[:200], contentType=media_type)
    if media_type.startswith("application/vnd.docker.") and declared is None:
        raise _invalid("Docker manifests must state their mediaType")
    if "manifests" in document and ("layers" in document or "config" in document):
        raise _invalid("a document cannot be both an index (manifests) and an image (config, layers)")
    parsed = ParsedManifest(media_type=media_type)
    if media_type in IMAGE_TYPES:
        _parse_image(document, parsed)
    else:
        _parse_index(document, parsed)
    if parsed.blob_bytes > INT64_MAX:
        raise _invalid("the config and layer sizes add up past 2^63-1", field="layers")
    if "subject" in document:
        parsed.subject = _descriptor(document["subject"], "subject")["digest"]
    parsed.artifact_type = _media_type(document.get("artifactType"), "artifactType") or parsed.artifact_type
    return parsed


def _parse_image(document: dict, parsed: ParsedManifest) -> None:
    if "manifests" in document:
        raise _invalid("an image manifest has config and layers, not manifests")
    config = _descriptor(document.get("config"), "config")
    layers = document.get("layers", [])
    if not isinstance(layers, list) or len(layers) > MAX_DESCRIPTORS:
        raise _invalid("layers must be a list of descriptors")
    parsed.blobs.append(config["digest"])
    parsed.blob_bytes += config["size"]
    parsed.artifact_type = config.get("mediaType") or ""  # checked by _descriptor
    for index, layer in enumerate(layers):
        layer = _descriptor(layer, f"layers[{index}]")
        parsed.blob_bytes += layer["size"]
        if not _is_non_distributable(layer):
            parsed.blobs.append(layer["digest"])


def _parse_index(document: dict, parsed: ParsedManifest) -> None:
    manifests = document.get("manifests")
    if not isinstance(manifests, list) or len(manifests) > MAX_DESCRIPTORS:
        raise _invalid("an index must have a list of manifests")
    for index, child in enumerate(manifests):
        parsed.children.append(_descriptor(child, f"manifests[{index}]")["digest"])


def annotations_of(content: bytes) -> dict:
    try:
        value = json.loads(content).get("annotations")
    except (ValueError, AttributeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}
