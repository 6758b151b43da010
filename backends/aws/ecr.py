"""Amazon ECR as the mirror target of the sagemaker backend: where an image of Train's registry is
copied so that SageMaker can pull it, and the credentials Train pushes with.

- The registry is the one GetAuthorizationToken names (`proxyEndpoint`): the ECR registry of the AWS
  account whose credentials Train uses (the account's assumed role). The repository there is
  `<ecr_repository_prefix>/<Train repository>`, e.g. `train/acme/trainer`, created on first use.
- `registry_endpoint`, when configured, replaces only where Train connects (an ECR emulator, or a
  proxy in front of ECR); the reference SageMaker pulls still names the ECR registry, because that is
  where SageMaker pulls from.
- The password is GetAuthorizationToken's token (base64 of `AWS:<password>`), valid until its
  `expiresAt`. The registry client asks for a new one once that time has passed, so an expired token
  is never sent again (docs/decisions/0061-ecr-target-naming-and-credentials.md).
- Under TRAIN_CLOUD_EMULATOR (development), pushes go to the emulator, which serves ECR's registry.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings

from backends.aws.config import DEFAULT_ECR_PREFIX, registry_endpoint_url
from backends.aws.errors import backend_error, error_code
from backends.aws.session import aws_clients
from backends.aws.validation import ECR_HOST_RE, ecr_repository, ecr_repository_error
from backends.base import BackendError
from backends.common.endpoints import EndpointError, parse_endpoint
from registry.client import Credentials, RegistryClientError
from registry.copier import CopyError
from registry.mirror import MirrorTarget

LABEL = "ECR"
USERNAME = "AWS"  # ECR's registry login user is always AWS; the token is the password
# A token is renewed this long before ECR's expiresAt, so a request never starts on one about to lapse.
EXPIRY_MARGIN = timedelta(minutes=5)
SCAN_ON_PUSH = "ecr_scan_on_push"
TAG_IMMUTABILITY = "ecr_tag_immutability"


@dataclass(frozen=True)
class Authorization:
    credentials: Credentials
    proxy_endpoint: str


def authorization(config: dict) -> Authorization:
    """A fresh ECR login from GetAuthorizationToken with the account's credentials, or BackendError."""
    try:
        answer = aws_clients(config).ecr.get_authorization_token()
    except Exception as exc:  # botocore's ClientError and connection errors alike
        raise backend_error(exc, "issue an ECR login token") from exc
    try:
        data = answer["authorizationData"][0]
        user, _, password = base64.b64decode(data["authorizationToken"], validate=True).decode().partition(":")
        expires_at = data["expiresAt"]
        proxy_endpoint = data["proxyEndpoint"]
    except (KeyError, IndexError, TypeError, ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BackendError(f"ECR returned an unreadable login token: {type(exc).__name__}") from exc
    if user != USERNAME or not password or not isinstance(expires_at, datetime):
        raise BackendError("ECR returned a login token Train does not understand.")
    expires_at = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
    return Authorization(Credentials(USERNAME, password, expires_at=expires_at - EXPIRY_MARGIN), proxy_endpoint)


def registry_host(proxy_endpoint: str) -> str:
    """The ECR registry host of a proxyEndpoint, or BackendError if it is not an ECR registry."""
    try:
        endpoint = parse_endpoint(proxy_endpoint)
    except EndpointError as exc:
        raise BackendError(f"ECR named an unusable registry endpoint: {exc}", permanent=True) from exc
    if endpoint.scheme != "https" or endpoint.port not in (None, 443) or not ECR_HOST_RE.match(endpoint.host):
        raise BackendError(f"ECR named {endpoint.url}, which is not an ECR registry.", permanent=True)
    return endpoint.host


class TokenProvider:
    """The target's credentials provider: the first call returns the login fetched with the target (so
    building a target costs one GetAuthorizationToken, not two), every later call a new login. The
    registry client calls it again only when the last one expired or was refused."""

    def __init__(self, config: dict, first: Credentials | None = None):
        self.config, self._first = config, first

    def __call__(self) -> Credentials:
        first, self._first = self._first, None
        if first is not None and not first.expired():
            return first
        try:
            return authorization(self.config).credentials
        except BackendError as exc:
            raise RegistryClientError(exc.message, permanent=exc.permanent) from exc


def repository_ensurer(config: dict, name: str):
    """CreateRepository with the account's settings, once per mirror run; an existing repository is
    left as it is (an operator may have changed its settings)."""

    def ensure() -> None:
        try:
            aws_clients(config).ecr.create_repository(
                repositoryName=name,
                imageTagMutability="IMMUTABLE" if config.get(TAG_IMMUTABILITY) else "MUTABLE",
                imageScanningConfiguration={"scanOnPush": bool(config.get(SCAN_ON_PUSH))},
                tags=[{"Key": "train-managed", "Value": "true"}],
            )
        except Exception as exc:
            if getattr(exc, "response", None) is not None and error_code(exc) == "RepositoryAlreadyExistsException":
                return
            error = backend_error(exc, f"create the ECR repository {name}")
            raise CopyError(error.message, permanent=error.permanent) from exc

    return ensure


def ecr_target(config: dict, repository: str) -> MirrorTarget:
    """The ECR mirror target of Train's `repository` for an account's (pinned) sagemaker configuration,
    or BackendError (no login, a repository name ECR refuses, an endpoint no longer allowed)."""
    prefix = config.get("ecr_repository_prefix") or DEFAULT_ECR_PREFIX
    name = ecr_repository(prefix, repository)
    if message := ecr_repository_error(prefix, repository):
        raise BackendError(message, permanent=True)
    endpoint = ""
    if settings.TRAIN_CLOUD_EMULATOR:
        endpoint = settings.TRAIN_CLOUD_EMULATOR  # it serves ECR's registry too (at /v2/)
    elif config.get("registry_endpoint"):
        try:
            endpoint = registry_endpoint_url(config["registry_endpoint"])
        except EndpointError as exc:
            raise BackendError(f"The configured registry_endpoint is not allowed: {exc}", permanent=True) from exc
    login = authorization(config)
    return MirrorTarget(
        registry=registry_host(login.proxy_endpoint), repository=name, label=LABEL,
        credentials=TokenProvider(config, login.credentials), endpoint=endpoint,
        scheme=parse_endpoint(endpoint).scheme if endpoint else "https",
        ensure_repository=repository_ensurer(config, name),
    )
