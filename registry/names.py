"""Checks on what a /v2 path carries, made before any database or storage access."""

from registry.errors import RegistryError
from registry.reference import DIGEST_RE, NAME_MAX_LENGTH, REPOSITORY_RE, TAG_RE


def name_check(name: str) -> str:
    """`<account>/<path>` in the OCI grammar, or NAME_INVALID."""
    if len(name) > NAME_MAX_LENGTH or not REPOSITORY_RE.match(name):
        raise RegistryError("NAME_INVALID", "Repository names are lowercase path components (a-z, 0-9, "
                            "separators . _ __ -) joined by '/', at most 255 characters.", detail={"name": name[:300]})
    if "/" not in name:
        raise RegistryError("NAME_INVALID", "Repository names are <account>/<repository>.", detail={"name": name})
    return name


def digest_check(digest: str) -> str:
    if not DIGEST_RE.match(digest or ""):
        raise RegistryError("DIGEST_INVALID", "Digests are sha256:<64 lowercase hex>.", detail={"digest": digest[:200]})
    return digest


def reference_kind(reference: str) -> str:
    """'digest' or 'tag' for a manifest reference, or DIGEST_INVALID / TAG_INVALID."""
    if ":" in reference:
        digest_check(reference)
        return "digest"
    if not TAG_RE.match(reference):
        raise RegistryError("TAG_INVALID", "Tags are 1-128 characters: letters, digits, '_', '.', '-', not "
                            "starting with '.' or '-'.", detail={"tag": reference[:200]})
    return "tag"


def account_of(name: str) -> str:
    return name.split("/", 1)[0]
