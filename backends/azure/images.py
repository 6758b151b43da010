"""Images for Azure ML: Train's images mirrored to the workspace's ACR (`acr`), pushed to as Train's
own app with an ACR-audience Entra ID token exchanged for an ACR refresh token (backends/azure/acr.py).

Train's app needs AcrPush on that registry; the workspace's compute pulls with its own identity
(AcrPull: automatic for the workspace's attached registry)."""

from __future__ import annotations

import logging

from django.conf import settings

from backends.azure.acr import ACR_SCOPE, acr_app_target
from backends.azure.config import ACR_RE, registry_endpoint_url
from backends.azure.entra import AppCredential, entra_token
from backends.base import BackendError, SpecError
from backends.common.endpoints import EndpointError
from registry.client import MANIFEST_ACCEPT, RegistryClientError
from registry.mirror import MirrorTarget
from registry.reference import InvalidReference, parse_reference

log = logging.getLogger(__name__)

# Mirrors live under train/<Train repository> in the account's ACR.
MIRROR_PREFIX = "train"


def acr_mirror_target(config: dict, repository: str) -> MirrorTarget:
    return _target(config, f"{MIRROR_PREFIX}/{repository}")


def _target(config: dict, repository: str) -> MirrorTarget:
    match = ACR_RE.match(config.get("acr", ""))
    if match is None:
        raise SpecError({"image": "The account's azure-ml configuration names no acr to mirror Train's images to."})
    endpoint = settings.TRAIN_CLOUD_EMULATOR or config.get("registry_endpoint")
    if endpoint and not settings.TRAIN_CLOUD_EMULATOR:
        try:
            endpoint = registry_endpoint_url(endpoint)
        except EndpointError as exc:
            raise BackendError(f"The configured registry_endpoint is not allowed: {exc}", permanent=True) from exc
    tenant_id = config["tenant_id"]

    def token(fresh: bool) -> str:
        try:
            return entra_token(tenant_id, ACR_SCOPE, fresh=fresh)
        except BackendError as exc:
            raise RegistryClientError(exc.message, permanent=exc.permanent) from exc

    return acr_app_target(registry_name=match["name"], repository=repository,
                          tenant_id=tenant_id, app=AppCredential.from_settings().client_id, entra_token=token,
                          registry_endpoint_url=endpoint or None)


def pinned_image(config: dict, image: str) -> str:
    """`image` by digest when it names a tag in the account's own ACR (`acr`), which Train's app can
    read; otherwise as given (another ACR, which Train cannot read, runs by its tag). A registry that
    cannot be read right now leaves the tag as well: the job still runs what the tag names."""
    try:
        ref = parse_reference(image)
    except InvalidReference:
        return image
    if ref.digest or not ref.tag or not config.get("acr") or ref.domain != config["acr"]:
        return image
    try:
        client = _target(config, ref.path).client()
        answer = client.request("HEAD", f"/v2/{ref.path}/manifests/{ref.tag}", headers={"Accept": MANIFEST_ACCEPT},
                                scope=f"repository:{ref.path}:pull")
    except (RegistryClientError, BackendError, SpecError) as exc:
        log.warning("could not resolve %s to a digest: %s", image, exc)
        return image
    digest = answer.headers.get("Docker-Content-Digest", "")
    return f"{ref.domain}/{ref.path}@{digest}" if digest.startswith("sha256:") else image
