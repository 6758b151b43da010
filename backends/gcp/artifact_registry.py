"""Artifact Registry as a mirror target: `<region>-docker.pkg.dev/<project>/<repository>/<path>`.

Credentials: Artifact Registry takes Basic `oauth2accesstoken:<OAuth access token>` at its token
endpoint (the Bearer realm on the registry host) and answers with a scoped registry token. The access
token is that of the account's own service account, which Train impersonates: Train's Application
Default Credentials call IAM Credentials `generateAccessToken` for it (google-auth's impersonated
credentials), so Train holds no key of the customer's. The token is cached across copies and renewed
before it expires (decision 0065).
"""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, timedelta

from django.conf import settings

from backends.base import SpecError
from backends.common.endpoints import checked_endpoint_url, endpoint_errors, parse_endpoint
from backends.common.renewing import RenewingProvider
from registry.client import Credentials, RegistryClientError
from registry.mirror import MirrorTarget
from registry.reference import NAME_MAX_LENGTH, REPOSITORY_RE

# Project ids: 6-30 characters, lowercase letters, digits and hyphens, starting with a letter and not
# ending with a hyphen. (Legacy domain-scoped ids, "example.com:project", cannot host Docker
# repositories under this host form and are refused.)
PROJECT_ID_RE = re.compile(r"\A[a-z][a-z0-9-]{4,28}[a-z0-9]\Z")
# Locations: a region ("europe-west1", "us-central1") or a multi-region ("us", "europe", "asia").
REGION_RE = re.compile(r"\A[a-z]+(?:-[a-z]+[0-9]+)?\Z")
# Repository ids: lowercase letters, digits and hyphens, starting with a letter, at most 63.
REPOSITORY_ID_RE = re.compile(r"\A[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
# Service accounts: <name>@<project>.iam.gserviceaccount.com, or a Google-managed one
# (<number>-compute@developer.gserviceaccount.com). The email goes into the IAM URL's path, so nothing
# outside this grammar is let through.
SERVICE_ACCOUNT_RE = re.compile(r"\A[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?@[a-z0-9](?:[a-z0-9.-]{0,200}[a-z0-9])?"
                                r"\.gserviceaccount\.com\Z")
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
IAM_CREDENTIALS_URL = "https://iamcredentials.googleapis.com"
GENERATE_ACCESS_TOKEN_PATH = "/v1/projects/-/serviceAccounts/{}:generateAccessToken"  # noqa: S105 (a path)
# One hour is generateAccessToken's default and its maximum without an organisation policy.
TOKEN_LIFETIME_SECONDS = 3600
# The registry client is told the token expires this much earlier than it does, so it asks for a new
# one before a request can race the expiry. (google-auth itself renews 3m45s early.)
EXPIRY_MARGIN = timedelta(seconds=60)
USERNAME = "oauth2accesstoken"

# One refresh at a time per process: they are hourly, and two copies starting together then share one.
_cache_lock = threading.Lock()
_cache: dict[tuple[str, str], object] = {}  # (service account, IAM URL) -> google-auth credentials


def artifact_registry_errors(*, project, region, repository, service_account, path,
                             iam_endpoint_url=None, registry_endpoint_url=None) -> dict[str, str]:
    """Field -> message for every parameter a target cannot be built from."""
    errors = {}
    checks = (("project", project, PROJECT_ID_RE, "a project id: 6-30 lowercase letters, digits or hyphens, "
               "starting with a letter"),
              ("region", region, REGION_RE, "an Artifact Registry location such as europe-west1 or us"),
              ("repository", repository, REPOSITORY_ID_RE, "a repository id: lowercase letters, digits and "
               "hyphens, starting with a letter, at most 63 characters"),
              ("service_account", service_account, SERVICE_ACCOUNT_RE, "a service account email such as "
               "train-mirror@my-project.iam.gserviceaccount.com"))
    for field, value, grammar, expected in checks:
        if not isinstance(value, str) or not grammar.match(value):
            errors[field] = f"Must be {expected}."
    if not isinstance(path, str) or len(path) > NAME_MAX_LENGTH or not REPOSITORY_RE.match(path):
        errors["path"] = "Must be a repository path: lowercase components joined by '/'."
    overrides = {"iam_endpoint_url": iam_endpoint_url, "registry_endpoint_url": registry_endpoint_url}
    errors.update(endpoint_errors(overrides, allowed_hosts=settings.TRAIN_GOOGLE_ENDPOINT_HOSTS))
    return errors


def artifact_registry_target(*, project: str, region: str, repository: str, service_account: str, path: str,
                             iam_endpoint_url: str | None = None, registry_endpoint_url: str | None = None,
                             ensure_repository=None) -> MirrorTarget:
    """The mirror target for `path` inside an Artifact Registry Docker repository, pushed to as the
    impersonated `service_account`. Endpoint overrides (emulators, Private Service Connect) must be on
    TRAIN_GOOGLE_ENDPOINT_HOSTS. SpecError names every invalid parameter."""
    errors = artifact_registry_errors(project=project, region=region, repository=repository, path=path,
                                      service_account=service_account, iam_endpoint_url=iam_endpoint_url,
                                      registry_endpoint_url=registry_endpoint_url)
    if errors:
        raise SpecError(errors)
    allowed = settings.TRAIN_GOOGLE_ENDPOINT_HOSTS
    iam_base = IAM_CREDENTIALS_URL
    if iam_endpoint_url:
        iam_base = checked_endpoint_url(iam_endpoint_url, allowed_hosts=allowed)
    iam_url = iam_base + GENERATE_ACCESS_TOKEN_PATH.format(service_account)
    # An override (an emulator, Private Service Connect) is only where Train connects: the job still
    # pulls from the regional host, which is what the reference names.
    endpoint = ""
    if registry_endpoint_url:
        endpoint = parse_endpoint(checked_endpoint_url(registry_endpoint_url, allowed_hosts=allowed)).url
    return MirrorTarget(registry=f"{region}-docker.pkg.dev", repository=f"{project}/{repository}/{path}",
                        endpoint=endpoint, label="Artifact Registry", ensure_repository=ensure_repository,
                        credentials=RenewingProvider(lambda fresh: access_token(service_account, iam_url,
                                                                                fresh=fresh)))


def access_token(service_account: str, iam_url: str, *, fresh: bool = False) -> Credentials:
    """`oauth2accesstoken` and an access token of `service_account`: from the cache while google-auth
    deems it valid, else (or when `fresh`) a new one from IAM Credentials."""
    from google.auth.exceptions import GoogleAuthError, TransportError
    from google.auth.transport.requests import Request

    with _cache_lock:
        try:
            credentials = _cache.get((service_account, iam_url)) or _impersonated(service_account, iam_url)
            _cache[(service_account, iam_url)] = credentials
            if fresh or not credentials.valid:
                credentials.refresh(Request())
        except TransportError as exc:
            raise RegistryClientError(f"Google's token services could not be reached: {exc}") from exc
        except GoogleAuthError as exc:
            raise RegistryClientError(f"no access token for {service_account}: {_reason(exc)}",
                                      permanent=not _retryable(exc)) from exc
        expiry = credentials.expiry.replace(tzinfo=UTC) - EXPIRY_MARGIN
        return Credentials(USERNAME, credentials.token, expires_at=expiry)


def _impersonated(service_account: str, iam_url: str):
    from google.auth import impersonated_credentials

    from backends.gcp.session import source_credentials  # ADC, or the emulator's (TRAIN_CLOUD_EMULATOR)

    source = source_credentials()
    return impersonated_credentials.Credentials(
        source_credentials=source, target_principal=service_account, target_scopes=[CLOUD_PLATFORM_SCOPE],
        lifetime=TOKEN_LIFETIME_SECONDS, iam_endpoint_override=iam_url)


def _error_body(exc) -> dict:
    for arg in exc.args[1:]:  # google-auth passes the response body, as text or already decoded
        try:
            body = json.loads(arg) if isinstance(arg, str | bytes) else arg
        except ValueError:
            continue
        if isinstance(body, dict):
            return body.get("error") if isinstance(body.get("error"), dict) else body
    return {}


def _retryable(exc) -> bool:
    """Throttling and Google's own outages pass; a refusal (403: Train's identity lacks
    roles/iam.serviceAccountTokenCreator on the account, 404: no such account) does not."""
    if getattr(exc, "retryable", False):
        return True
    code = _error_body(exc).get("code")
    return isinstance(code, int) and (code == 429 or code >= 500)


def _reason(exc) -> str:
    body = _error_body(exc)
    return str(body.get("message") or body.get("status") or (exc.args[0] if exc.args else exc))[:300]
