"""Turning the image a user names into what the job records (`image`, `image_digest`)."""

import ipaddress
from dataclasses import dataclass

from backends.base import SpecError
from registry.hosts import is_train_registry
from registry.reference import InvalidReference, parse_reference
from registry.resolve import ImageNotFound, image_pin


@dataclass(frozen=True)
class ResolvedImage:
    image: str
    digest: str = ""


def _is_internal_address(domain: str) -> bool:
    host = domain.rsplit(":", 1)[0] if not domain.startswith("[") else domain[1 : domain.index("]")]
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local or address.is_reserved


def image_resolve(*, account, reference: str) -> ResolvedImage:
    """Validate `reference` and pin it to a digest where Train can. Raises SpecError naming `image`."""
    try:
        ref = parse_reference(reference)
    except InvalidReference as exc:
        raise SpecError({"image": str(exc)}) from exc
    if ref.domain and is_train_registry(ref.domain):
        # Train's own registry: pin the tag to the digest it points at now; later pushes don't move the job.
        try:
            digest = image_pin(account_id=account.id, path=ref.path, tag=ref.tag, digest=ref.digest)
        except ImageNotFound as exc:
            raise SpecError({"image": str(exc)}) from exc
        return ResolvedImage(image=str(ref), digest=digest)
    # Any other internal host (localhost included) is unreachable from a cloud, and a way to make Train's
    # worker fetch from its own network.
    if ref.domain and _is_internal_address(ref.domain):
        raise SpecError({"image": f"{ref.domain} is an internal address; name a registry by its host name."})
    return ResolvedImage(image=str(ref), digest=ref.digest)
