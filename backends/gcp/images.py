"""Artifact Registry tags, pinned at submission: a job that names `<location>-docker.pkg.dev/…:tag` runs
the digest the tag pointed to when it was submitted, read as the account's impersonated service
account (who must be able to read it anyway, for Vertex to pull). Where that read fails (no access,
the tag is gone, the registry is unreachable), the job runs the tag as given, as on any registry Train
cannot read (gcr.io): the job still runs what the tag names."""

from __future__ import annotations

import logging

from backends.base import BackendError, SpecError
from backends.gcp import config as gcp_config
from registry.client import MANIFEST_ACCEPT, RegistryClientError
from registry.reference import InvalidReference, parse_reference

log = logging.getLogger(__name__)


def pinned_image(config: dict, image: str) -> str:
    """`image` by digest when it names a tag in an Artifact Registry repository Train can read as the
    account's service account; otherwise `image` unchanged."""
    from backends.gcp.artifact_registry import artifact_registry_target
    from backends.gcp.session import emulator

    try:
        ref = parse_reference(image)
    except InvalidReference:
        return image
    segments = ref.path.split("/", 2)  # <project>/<repository>/<image path>
    if ref.digest or not ref.tag or len(segments) < 3:
        return image
    project, repository, path = segments
    parts = gcp_config.artifact_registry_parts(f"{ref.domain}/{project}/{repository}")
    if parts is None:
        return image
    try:
        target = artifact_registry_target(
            project=parts["project"], region=parts["location"], repository=parts["repository"], path=path,
            service_account=config["impersonate_service_account"],
            iam_endpoint_url=emulator() or None, registry_endpoint_url=emulator() or None)
        answer = target.client().request("HEAD", f"/v2/{ref.path}/manifests/{ref.tag}",
                                         headers={"Accept": MANIFEST_ACCEPT}, scope=f"repository:{ref.path}:pull")
    except (RegistryClientError, BackendError, SpecError) as exc:
        log.warning("could not resolve %s to a digest: %s", image, exc)
        return image
    digest = answer.headers.get("Docker-Content-Digest", "")
    return f"{ref.domain}/{ref.path}@{digest}" if digest.startswith("sha256:") else image
