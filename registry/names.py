"""Checks on what a /v2 path or query carries, made before any database or storage access."""

from registry.errors import UNSAFE_TEXT_RE, RegistryError
from registry.reference import (
    DIGEST_GRAMMAR_RE,
    NAME_MAX_LENGTH,
    REGISTERED_ALGORITHMS,
    REGISTRY_DIGEST_RE,
    REPOSITORY_RE,
    TAG_RE,
)

DIGEST_RULE = "Digests are sha256:<64 lowercase hex> or sha512:<128 lowercase hex>."


def text_is_safe(value: str) -> bool:
    return not UNSAFE_TEXT_RE.search(value)


def name_check(name: str) -> str:
    """`<account>/<path>` in the OCI grammar, or NAME_INVALID."""
    if len(name) > NAME_MAX_LENGTH or not REPOSITORY_RE.match(name):
        raise RegistryError("NAME_INVALID", "Repository names are lowercase path components (a-z, 0-9, "
                            "separators . _ __ -) joined by '/', at most 255 characters.",
                            detail={"name": _shown(name, 300)})
    if "/" not in name:
        raise RegistryError("NAME_INVALID", "Repository names are <account>/<repository>.", detail={"name": name})
    return name


def _shown(value: str, limit: int) -> str:
    """`value` cut to `limit` and with unsafe characters escaped, fit to echo in an error body."""
    return UNSAFE_TEXT_RE.sub(lambda m: f"\\u{ord(m[0]):04x}", value[:limit])


def digest_check(digest: str) -> str:
    """A digest this registry can verify (sha256 or sha512), or DIGEST_INVALID."""
    if not REGISTRY_DIGEST_RE.match(digest or ""):
        raise RegistryError("DIGEST_INVALID", DIGEST_RULE, detail={"digest": _shown(digest or "", 200)})
    return digest


def digest_lookup(digest: str) -> str | None:
    """For reads: the digest if this registry can hold it; None for a well-formed digest of another
    algorithm (nothing stored has it, so the answer is "unknown", not "invalid"). A digest outside the
    OCI grammar, or a malformed sha256/sha512 one, is DIGEST_INVALID."""
    if REGISTRY_DIGEST_RE.match(digest or ""):
        return digest
    algorithm = (digest or "").partition(":")[0]
    if DIGEST_GRAMMAR_RE.match(digest or "") and algorithm not in REGISTERED_ALGORITHMS:
        return None
    return digest_check(digest)


def reference_kind(reference: str) -> str:
    """'digest' or 'tag' for a manifest reference, or DIGEST_INVALID / TAG_INVALID (for a push)."""
    if ":" in reference:
        digest_check(reference)
        return "digest"
    if not TAG_RE.match(reference):
        raise RegistryError("TAG_INVALID", "Tags are 1-128 characters: letters, digits, '_', '.', '-', not "
                            "starting with '.' or '-'.", detail={"tag": _shown(reference, 200)})
    return "tag"


def reference_lookup(reference: str) -> str | None:
    """For reads and deletes: 'digest' or 'tag', or None when the reference cannot name anything
    stored (a malformed tag, a digest of an algorithm this registry does not compute): that is a
    404, as for any unknown manifest. A malformed sha256/sha512 digest is still DIGEST_INVALID."""
    if ":" in reference:
        return "digest" if digest_lookup(reference) else None
    return "tag" if TAG_RE.match(reference) else None


def account_of(name: str) -> str:
    return name.split("/", 1)[0]
