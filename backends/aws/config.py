"""An account's SageMaker configuration: what an admin may set, and the ExternalId Train generates.

The ExternalId guards the role an account lets Train assume against the confused-deputy problem: only
Train knows which value belongs to which account, so one account cannot make Train act in another's
AWS account by naming that account's role. It is therefore generated here, kept across updates, and
never taken from the caller.
"""

import re
import secrets

from django.conf import settings

from backends.base import SpecError
from backends.common.endpoints import EndpointError, checked_endpoint_url

# The partition-aware shapes from the SageMaker and IAM API models.
REGION_RE = re.compile(r"\A[a-z]{2}(?:-[a-z]+)+-\d{1,2}\Z")
ROLE_ARN_RE = re.compile(r"\Aarn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}\Z")
# s3://bucket[/prefix]: bucket names are 3-63 lowercase letters, digits, dots and hyphens.
S3_URI_RE = re.compile(r"\As3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<key>[^\x00-\x1f]*))?\Z")
S3_URI_MAX_LENGTH = 1024  # SageMaker's S3Uri limit
EXTERNAL_ID_BYTES = 20  # 40 hex characters; STS accepts 2-1224
# ECR repository names (the CreateRepository API model): slash-separated components of lowercase
# letters and digits joined by single '.', '_' or '-', 2-256 characters in all. Train's mirrors live
# under `<prefix>/<Train repository>`, so the prefix leaves room for the repository name.
ECR_NAME_RE = re.compile(r"\A(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*\Z")
ECR_NAME_MAX_LENGTH = 256
ECR_PREFIX_MAX_LENGTH = 64
DEFAULT_ECR_PREFIX = "train"

REQUIRED = ("region", "execution_role_arn", "output_s3_uri")
# One endpoint per AWS service Train calls: a SageMaker VPC endpoint does not serve STS, Logs or ECR.
ENDPOINTS = ("endpoint_url", "sts_endpoint_url", "logs_endpoint_url", "ecr_endpoint_url")
# Mirroring to ECR: where images go, and how the repositories Train creates are set up.
FLAGS = ("ecr_tag_immutability", "ecr_scan_on_push", "mirror_on_push")
OPTIONAL = ("checkpoint_s3_uri", "assume_role_arn", *ENDPOINTS, "registry_endpoint", "ecr_repository_prefix", *FLAGS)
GENERATED = ("external_id",)


def s3_uri_error(value) -> str | None:
    """Why `value` is not an s3://bucket[/prefix] URI SageMaker accepts, or None if it is."""
    if not isinstance(value, str) or len(value) > S3_URI_MAX_LENGTH or not S3_URI_RE.match(value):
        return "Must be an s3://bucket/prefix URI (lowercase bucket name, at most 1024 characters)."
    if ".." in value.split("/") or "//" in value[len("s3://"):]:
        return "The prefix must be normalised (no '..' segments or repeated '/')."
    return None


def aws_endpoint_url(value) -> str:
    """The canonical form of an AWS endpoint URL, or EndpointError. Only hosts the deployment allows
    (TRAIN_AWS_ENDPOINT_HOSTS) are accepted, so an account cannot aim Train's signed requests at an
    internal service (docs/decisions/0057-endpoint-validation.md)."""
    return checked_endpoint_url(value, allowed_hosts=settings.TRAIN_AWS_ENDPOINT_HOSTS)


def endpoint_url_error(value) -> str | None:
    """Why `value` may not be used as an AWS endpoint, or None."""
    try:
        aws_endpoint_url(value)
    except EndpointError as exc:
        return str(exc)
    return None


def registry_endpoint_url(value) -> str:
    """The canonical form of a registry endpoint (where Train pushes mirrored images instead of
    GetAuthorizationToken's proxyEndpoint), or EndpointError. Train sends the account's ECR token
    there, so only hosts the deployment allows (TRAIN_AWS_REGISTRY_HOSTS) are accepted."""
    return checked_endpoint_url(value, allowed_hosts=settings.TRAIN_AWS_REGISTRY_HOSTS)


def registry_endpoint_error(value) -> str | None:
    try:
        registry_endpoint_url(value)
    except EndpointError as exc:
        return str(exc)
    return None


def ecr_prefix_error(value) -> str | None:
    if isinstance(value, str) and len(value) <= ECR_PREFIX_MAX_LENGTH and ECR_NAME_RE.match(value):
        return None
    return (f"An ECR repository name prefix of at most {ECR_PREFIX_MAX_LENGTH} characters: lowercase letters "
            "and digits, joined by single '.', '_', '-' or '/', such as train or ml/train.")


def _flag_error(value) -> str | None:
    return None if isinstance(value, bool) else "true or false."


def _field_errors(config: dict) -> dict[str, str]:
    errors = {}
    for key in config:
        if key not in REQUIRED + OPTIONAL + GENERATED:
            errors[key] = f"Unknown setting; the sagemaker backend takes {', '.join(REQUIRED + OPTIONAL)}."
    for key in REQUIRED:
        if not config.get(key):
            errors[key] = "Required."
    checks = {
        "region": lambda v: None if isinstance(v, str) and REGION_RE.match(v) else "An AWS region such as eu-west-1.",
        "execution_role_arn": _role_error,
        "assume_role_arn": _role_error,
        "output_s3_uri": s3_uri_error,
        "checkpoint_s3_uri": s3_uri_error,
        **{key: endpoint_url_error for key in ENDPOINTS},
        "registry_endpoint": registry_endpoint_error,
        "ecr_repository_prefix": ecr_prefix_error,
        **{key: _flag_error for key in FLAGS},
    }
    for key, check in checks.items():
        # A flag is checked whenever present: "false" (a string) is truthy, but must still be refused.
        present = key in config if key in FLAGS else config.get(key)
        if present and key not in errors and (message := check(config[key])):
            errors[key] = message
    return errors


def _role_error(value) -> str | None:
    if isinstance(value, str) and ROLE_ARN_RE.match(value):
        return None
    return "An IAM role ARN such as arn:aws:iam::123456789012:role/TrainGateway."


def validate_config(config: dict, *, previous: dict) -> dict:
    """The cleaned configuration, or SpecError keyed by setting. `external_id` comes from `previous`
    (or is generated on the first PUT); a caller may echo it back unchanged, never change it."""
    errors = _field_errors(config)
    external_id = previous.get("external_id") or secrets.token_hex(EXTERNAL_ID_BYTES)
    if "external_id" in config and config["external_id"] != external_id:
        errors["external_id"] = "Train generates the ExternalId for this account; it cannot be set."
    if errors:
        raise SpecError(errors)
    cleaned = {key: config[key] for key in REQUIRED + OPTIONAL if config.get(key)}
    cleaned.setdefault("ecr_repository_prefix", DEFAULT_ECR_PREFIX)
    cleaned.update({key: bool(config.get(key)) for key in FLAGS})
    cleaned["output_s3_uri"] = cleaned["output_s3_uri"].rstrip("/") + "/"
    if "checkpoint_s3_uri" in cleaned:
        cleaned["checkpoint_s3_uri"] = cleaned["checkpoint_s3_uri"].rstrip("/") + "/"
    for key in ENDPOINTS:
        if key in cleaned:
            cleaned[key] = aws_endpoint_url(cleaned[key])
    if "registry_endpoint" in cleaned:
        cleaned["registry_endpoint"] = registry_endpoint_url(cleaned["registry_endpoint"])
    cleaned["external_id"] = external_id
    return cleaned
