"""Pinning a job's image to the manifest digest its tag points at when the job is submitted."""

from registry.models import Manifest, Repository, Tag


class ImageNotFound(LookupError):
    """The repository, tag or digest is not in Train's registry (for this account)."""


def image_pin(*, account_id: str, path: str, tag: str = "", digest: str = "") -> str:
    """The digest that `<path>[:tag][@digest]` names in Train's registry. The path must be inside
    `account_id`; otherwise, as for an unknown repository, ImageNotFound (never "forbidden", so
    another account's repositories cannot be discovered)."""
    repository = None
    if path.split("/", 1)[0] == account_id and "/" in path:
        repository = Repository.objects.filter(name=path, account_id=account_id).first()
    if repository is None:
        raise ImageNotFound(f"There is no repository {path} in your account's registry; push the image first.")
    if digest:
        if not Manifest.objects.filter(repository=repository, digest=digest).exists():
            raise ImageNotFound(f"{path} has no manifest {digest}.")
        return digest
    tag = tag or "latest"
    found = Tag.objects.select_related("manifest").filter(repository=repository, name=tag).first()
    if found is None:
        raise ImageNotFound(f"{path} has no tag {tag!r}; push it first or name a digest.")
    return found.manifest.digest
