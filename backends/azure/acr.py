"""Azure Container Registry as a mirror target: `<name>.azurecr.io/<repository>`.

Credentials, in ACR's three steps:
1. an Entra ID access token for the customer's tenant, from Train's app registration there
   (azure-identity's ClientSecretCredential, which caches and renews it);
2. exchanged at `https://<registry>/oauth2/exchange` for an ACR refresh token;
3. the refresh token is the Basic password of the all-zero user, which the registry's own Bearer
   challenge (`/oauth2/token` on the registry host) turns into scoped access tokens: the registry
   client's standard flow.
The refresh token (valid about three hours) is cached across copies until shortly before it expires
(decision 0065).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import requests
from django.conf import settings

from backends.base import SpecError
from backends.common.endpoints import checked_endpoint_url, endpoint_errors, parse_endpoint
from backends.common.renewing import RenewingProvider
from registry.client import Credentials, RegistryClientError
from registry.mirror import MirrorTarget
from registry.reference import NAME_MAX_LENGTH, REPOSITORY_RE

# Registry names: 5-50 letters and digits (the host is their lowercase form).
REGISTRY_NAME_RE = re.compile(r"\A[a-zA-Z0-9]{5,50}\Z")
GUID_RE = re.compile(r"\A[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\Z")
MAX_SECRET_LENGTH = 1024
# ACR's audience: accepted whether or not the registry still allows ARM-audience tokens.
ACR_SCOPE = "https://containerregistry.azure.net/.default"
AUTHORITY_HOST = "login.microsoftonline.com"
# The username that tells ACR the password is a refresh token from /oauth2/exchange.
REFRESH_TOKEN_USERNAME = "00000000-0000-0000-0000-000000000000"  # noqa: S105 (a fixed user name)
# ACR's documented refresh-token lifetime, assumed when the token does not say (it is a JWT today).
DEFAULT_REFRESH_TOKEN_SECONDS = 3 * 3600
# Renew this long before the refresh token's expiry: a copy started with it must finish its token
# requests in time.
EXPIRY_MARGIN = timedelta(minutes=5)
EXCHANGE_TIMEOUT_SECONDS = (10, 30)

_lock = threading.Lock()
_entra: dict[tuple[str, str, str], object] = {}  # (tenant, client, authority) -> azure-identity credential
_refresh_tokens: dict[tuple[str, str, str], Credentials] = {}  # (registry, tenant, client) -> token


def acr_errors(*, registry_name, repository, tenant_id, client_id, client_secret,
               authority_url=None, registry_endpoint_url=None) -> dict[str, str]:
    """Field -> message for every parameter a target cannot be built from."""
    errors = {}
    if not isinstance(registry_name, str) or not REGISTRY_NAME_RE.match(registry_name):
        errors["registry_name"] = "Must be a registry name: 5-50 letters and digits (<name>.azurecr.io)."
    if not isinstance(repository, str) or len(repository) > NAME_MAX_LENGTH or not REPOSITORY_RE.match(repository):
        errors["repository"] = "Must be a repository path: lowercase components joined by '/'."
    for field, value in (("tenant_id", tenant_id), ("client_id", client_id)):
        if not isinstance(value, str) or not GUID_RE.match(value):
            errors[field] = "Must be a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47."
    if not isinstance(client_secret, str) or not client_secret or len(client_secret) > MAX_SECRET_LENGTH \
            or not client_secret.isprintable():
        errors["client_secret"] = f"Must be a client secret of 1-{MAX_SECRET_LENGTH} printable characters."
    errors.update(endpoint_errors({"authority_url": authority_url, "registry_endpoint_url": registry_endpoint_url},
                                  allowed_hosts=settings.TRAIN_AZURE_ENDPOINT_HOSTS))
    return errors


def acr_target(*, registry_name: str, repository: str, tenant_id: str, client_id: str, client_secret: str,
               authority_url: str | None = None, registry_endpoint_url: str | None = None,
               ensure_repository=None) -> MirrorTarget:
    """The mirror target for `repository` in the registry `registry_name`, pushed to as Train's app
    `client_id` in the customer's tenant `tenant_id` (it needs AcrPush on the registry). Endpoint
    overrides must be on TRAIN_AZURE_ENDPOINT_HOSTS. SpecError names every invalid parameter."""
    errors = acr_errors(registry_name=registry_name, repository=repository, tenant_id=tenant_id,
                        client_id=client_id, client_secret=client_secret, authority_url=authority_url,
                        registry_endpoint_url=registry_endpoint_url)
    if errors:
        raise SpecError(errors)
    allowed = settings.TRAIN_AZURE_ENDPOINT_HOSTS
    authority = checked_endpoint_url(authority_url, allowed_hosts=allowed) if authority_url else AUTHORITY_HOST
    scheme, host = "https", f"{registry_name.lower()}.azurecr.io"
    if registry_endpoint_url:
        endpoint = parse_endpoint(checked_endpoint_url(registry_endpoint_url, allowed_hosts=allowed))
        scheme, host = endpoint.scheme, endpoint.url.split("://", 1)[1]
    tenant_id, client_id = tenant_id.lower(), client_id.lower()

    def fetch(fresh: bool) -> Credentials:
        return refresh_token(registry=host, scheme=scheme, tenant_id=tenant_id, client_id=client_id,
                             client_secret=client_secret, authority=authority, fresh=fresh)

    return MirrorTarget(registry=host, repository=repository, scheme=scheme, label="ACR",
                        credentials=RenewingProvider(fetch), ensure_repository=ensure_repository)


def acr_app_target(*, registry_name: str, repository: str, tenant_id: str, app: str,
                   entra_token: Callable[[bool], str], registry_endpoint_url: str | None = None,
                   ensure_repository=None) -> MirrorTarget:
    """The mirror target for `repository` in `registry_name`, pushed to with Entra ID tokens for the
    ACR audience that `entra_token(fresh)` returns (Train's own app `app`, whatever its credential:
    the azure-ml backend's). `registry_endpoint_url` must be a canonical, allowed endpoint."""
    errors = {key: message for key, message in acr_errors(
        registry_name=registry_name, repository=repository, tenant_id=tenant_id, client_id=REFRESH_TOKEN_USERNAME,
        client_secret=None).items() if key != "client_secret"}  # no secret here: entra_token proves the app
    if errors:
        raise SpecError(errors)
    registry = f"{registry_name.lower()}.azurecr.io"
    scheme, host = "https", registry
    if registry_endpoint_url:
        endpoint = parse_endpoint(registry_endpoint_url)
        scheme, host = endpoint.scheme, endpoint.url.split("://", 1)[1]

    def fetch(fresh: bool) -> Credentials:
        return refresh_token(registry=host, scheme=scheme, tenant_id=tenant_id.lower(), client_id=app,
                             client_secret="", authority="", fresh=fresh,
                             entra=lambda: entra_token(fresh))

    return MirrorTarget(registry=registry, repository=repository, scheme=scheme, label="ACR",
                        credentials=RenewingProvider(fetch), ensure_repository=ensure_repository,
                        endpoint=f"{scheme}://{host}" if registry_endpoint_url else "")


@dataclasses.dataclass(frozen=True)
class AcrTarget(MirrorTarget):
    """A MirrorTarget pushed through another endpoint than the registry the cloud pulls from:
    `registry` (and so `reference()` and the Mirror row) names <name>.azurecr.io; `endpoint`, when
    set, is where Train connects instead (a proxy or an emulator)."""

    endpoint: str = dataclasses.field(default="")

    @property
    def url(self) -> str:
        return self.endpoint or super().url


def refresh_token(*, registry: str, scheme: str, tenant_id: str, client_id: str, client_secret: str,
                  authority: str, fresh: bool = False, entra: Callable[[], str] | None = None) -> Credentials:
    """The all-zero user and an ACR refresh token for `registry`: cached until shortly before it
    expires, unless `fresh`. `entra` supplies the Entra ID token instead of a client secret."""
    key = (registry, tenant_id, client_id)
    with _lock:
        cached = _refresh_tokens.get(key)
        if cached is not None and not fresh and not cached.expired():
            return cached
        entra_token = entra() if entra else _entra_token(tenant_id, client_id, client_secret, authority)
        token = _exchange(f"{scheme}://{registry}/oauth2/exchange", registry, tenant_id, entra_token)
        credentials = Credentials(REFRESH_TOKEN_USERNAME, token, expires_at=_expiry(token) - EXPIRY_MARGIN)
        _refresh_tokens[key] = credentials
        return credentials


def _entra_token(tenant_id: str, client_id: str, client_secret: str, authority: str) -> str:
    from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
    from azure.identity import ClientSecretCredential

    key = (tenant_id, client_id, authority)
    credential = _entra.get(key)
    if credential is None:
        # Instance discovery asks login.microsoftonline.com about the authority; an override (an
        # emulator, a sovereign cloud's host on the allow-list) is trusted as configured instead.
        credential = ClientSecretCredential(tenant_id, client_id, client_secret, authority=authority,
                                            disable_instance_discovery=authority != AUTHORITY_HOST)
        _entra[key] = credential
    try:
        return credential.get_token(ACR_SCOPE).token
    except ServiceRequestError as exc:
        raise RegistryClientError(f"Entra ID could not be reached: {exc}") from exc
    except ClientAuthenticationError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None) or 0
        raise RegistryClientError(f"Entra ID refused Train's app {client_id} in tenant {tenant_id}: "
                                  f"{str(exc.message)[:300]}", permanent=status < 500) from exc


def _exchange(url: str, registry: str, tenant_id: str, entra_token: str) -> str:
    form = {"grant_type": "access_token", "service": registry, "tenant": tenant_id, "access_token": entra_token}
    try:
        response = requests.post(url, data=form, timeout=EXCHANGE_TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        raise RegistryClientError(f"{registry}/oauth2/exchange failed: {exc}") from exc
    if response.status_code != 200:
        raise RegistryClientError(f"{registry}/oauth2/exchange answered {response.status_code}: "
                                  f"{response.text[:300]}", status=response.status_code,
                                  permanent=response.status_code in (400, 401, 403, 404))
    try:
        token = response.json()["refresh_token"]
    except (ValueError, KeyError, TypeError):
        raise RegistryClientError(f"{registry}/oauth2/exchange returned no refresh token") from None
    if not isinstance(token, str) or not token:
        raise RegistryClientError(f"{registry}/oauth2/exchange returned no refresh token")
    return token


def _expiry(token: str) -> datetime:
    """The refresh token's `exp` when it is a JWT (read, not verified: it only says when to renew),
    else ACR's documented lifetime from now."""
    try:
        payload = token.split(".")[1]
        exp = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]
        if isinstance(exp, int | float) and 0 < exp < 2 ** 40:
            return datetime.fromtimestamp(exp, UTC)
    except (IndexError, ValueError, KeyError, TypeError):
        pass
    return datetime.fromtimestamp(time.time() + DEFAULT_REFRESH_TOKEN_SECONDS, UTC)
