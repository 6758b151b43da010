"""Image references: `[host[:port]/]path[:tag][@digest]`, parsed with the distribution grammar.

Anything outside the grammar is rejected before it reaches storage, a path or a cloud request."""

import re
from dataclasses import dataclass

PATH_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
DOMAIN = rf"(?:{DOMAIN_COMPONENT}(?:\.{DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
TAG = r"[\w][\w.-]{0,127}"
# Job images are pinned by sha256 only: every client and cloud registry speaks it.
DIGEST = r"sha256:[a-f0-9]{64}"
# What the registry stores and verifies: the OCI spec's two registered algorithms.
REGISTRY_DIGEST = r"(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})"
# The OCI digest grammar, whatever the algorithm: well-formed, but maybe one this registry cannot compute.
DIGEST_GRAMMAR = r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+"
REGISTERED_ALGORITHMS = ("sha256", "sha512")
DIGEST_MAX_LENGTH = 7 + 128  # "sha512:" and 128 hex digits
NAME_MAX_LENGTH = 255

REFERENCE_RE = re.compile(
    rf"\A(?:(?P<domain>{DOMAIN})/)?(?P<path>{PATH_COMPONENT}(?:/{PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{TAG}))?(?:@(?P<digest>{DIGEST}))?\Z",
    re.ASCII,
)
REPOSITORY_RE = re.compile(rf"\A{PATH_COMPONENT}(?:/{PATH_COMPONENT})*\Z", re.ASCII)
TAG_RE = re.compile(rf"\A{TAG}\Z", re.ASCII)
DIGEST_RE = re.compile(rf"\A{DIGEST}\Z", re.ASCII)
REGISTRY_DIGEST_RE = re.compile(rf"\A{REGISTRY_DIGEST}\Z", re.ASCII)
DIGEST_GRAMMAR_RE = re.compile(rf"\A{DIGEST_GRAMMAR}\Z", re.ASCII)


class InvalidReference(ValueError):
    pass


@dataclass(frozen=True)
class ImageReference:
    domain: str  # "" when the reference names no registry host
    path: str
    tag: str = ""
    digest: str = ""

    def __str__(self):
        text = f"{self.domain}/{self.path}" if self.domain else self.path
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _looks_like_domain(first: str) -> bool:
    # Docker's rule: the first component is a host if it has a dot or a port, or is "localhost".
    return "." in first or ":" in first or first == "localhost" or first.startswith("[")


def parse_reference(text: str) -> ImageReference:
    if not text or len(text) > 512:
        raise InvalidReference("An image reference must be 1-512 characters.")
    match = REFERENCE_RE.match(text)
    domain, path = (match["domain"] or "", match["path"]) if match else ("", "")
    if domain and not _looks_like_domain(domain):
        # "team/app" parsed "team" as a domain; it is really the first path component.
        domain, path = "", f"{domain}/{path}"
    if not match or not REPOSITORY_RE.match(path):
        raise InvalidReference(
            "Not a valid image reference; expected [host[:port]/]repository[:tag][@sha256:<64 hex>] "
            "with a lowercase repository path."
        )
    if len(path) > NAME_MAX_LENGTH:
        raise InvalidReference(f"The repository name is longer than {NAME_MAX_LENGTH} characters.")
    return ImageReference(domain=domain, path=path, tag=match["tag"] or "", digest=match["digest"] or "")
