"""Images for Azure ML: Train's images mirrored to the workspace's ACR (`acr`), pushed to as Train's
own app with an ACR-audience Entra ID token exchanged for an ACR refresh token (backends/azure/acr.py).

Train's app needs AcrPush on that registry; the workspace's compute pulls with its own identity
(AcrPull: automatic for the workspace's attached registry)."""

from __future__ import annotations

from django.conf import settings

from backends.azure.acr import ACR_SCOPE, acr_app_target
from backends.azure.config import ACR_RE, registry_endpoint_url
from backends.azure.entra import AppCredential, entra_token
from backends.base import BackendError, SpecError
from backends.common.endpoints import EndpointError
from registry.client import RegistryClientError
from registry.mirror import MirrorTarget

# Mirrors live under train/<Train repository> in the account's ACR.
MIRROR_PREFIX = "train"


def acr_mirror_target(config: dict, repository: str) -> MirrorTarget:
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

    return acr_app_target(registry_name=match["name"], repository=f"{MIRROR_PREFIX}/{repository}",
                          tenant_id=tenant_id, app=AppCredential.from_settings().client_id, entra_token=token,
                          registry_endpoint_url=endpoint or None)
