"""An account's Vertex AI configuration: what an admin may set, checked on PUT and again on use.

Train keeps no key of the customer's: it calls Google as its own identity (Application Default
Credentials) and impersonates `impersonate_service_account`, on which the customer granted Train's
identity roles/iam.serviceAccountTokenCreator. Since one Train identity serves every account, the
service account must also say which Train account may use it (its description carries
`train-account=<account id>`), verified on PUT (backends/gcp/ownership.py, decision 0071).
"""

from __future__ import annotations

import re

from django.conf import settings

from backends.base import SpecError
from backends.common.endpoints import EndpointError, checked_endpoint_url
from backends.gcp.artifact_registry import PROJECT_ID_RE, REPOSITORY_ID_RE, SERVICE_ACCOUNT_RE

# Vertex AI runs in regions only ("europe-west4", "us-central1", "northamerica-northeast1"); Artifact
# Registry also has multi-regions ("us", "europe", "asia").
REGION_RE = re.compile(r"\A[a-z]+-[a-z]+[0-9]{1,2}\Z")
AR_LOCATION_RE = re.compile(r"\A[a-z]+(?:-[a-z]+[0-9]{1,2})?\Z")
# <location>-docker.pkg.dev/<project>/<repository>, the form `docker push` and `gcloud` show.
AR_REPOSITORY_RE = re.compile(r"\A(?P<location>[a-z0-9-]+)-docker\.pkg\.dev/(?P<project>[^/]+)/(?P<repository>[^/]+)\Z")
# gs://bucket[/prefix]: bucket names are 3-63 lowercase letters, digits, '-', '_' and '.', starting and
# ending with a letter or digit (up to 222 with dots; Train keeps to the common 63).
GS_URI_RE = re.compile(r"\Ags://(?P<bucket>[a-z0-9][a-z0-9._-]{1,61}[a-z0-9])(?:/(?P<path>[^\x00-\x1f\x7f]*))?\Z")
GS_URI_MAX_LENGTH = 1024  # an object name's limit, in bytes
# A VPC network to peer the job with: projects/<project number>/global/networks/<name>.
NETWORK_RE = re.compile(r"\Aprojects/[0-9]{1,20}/global/networks/[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?\Z")
# Marker the tenant service account's description must carry, naming the one Train account it serves.
OWNER_MARKER = "train-account="

REQUIRED = ("project", "region", "service_account", "impersonate_service_account", "base_output_uri",
            "artifact_registry_repository")
FLAGS = ("mirror_on_push",)
OPTIONAL = ("network", "api_endpoint", *FLAGS)


def gs_uri_error(value) -> str | None:
    """Why `value` is not a gs://bucket[/prefix] URI, or None."""
    if not isinstance(value, str) or len(value.encode()) > GS_URI_MAX_LENGTH or not GS_URI_RE.match(value):
        return "Must be a gs://bucket/prefix URI (lowercase bucket name, at most 1024 bytes)."
    if ".." in value.split("/") or "//" in value[len("gs://"):]:
        return "The prefix must be normalised (no '..' segments or repeated '/')."
    return None


def artifact_registry_parts(value) -> dict | None:
    """{location, project, repository} of `<location>-docker.pkg.dev/<project>/<repository>`, or None."""
    match = AR_REPOSITORY_RE.match(value) if isinstance(value, str) else None
    if match is None or not AR_LOCATION_RE.match(match["location"]) or not PROJECT_ID_RE.match(match["project"]) \
            or not REPOSITORY_ID_RE.match(match["repository"]):
        return None
    return match.groupdict()


def vertex_endpoint_url(value) -> str:
    """The canonical form of an `api_endpoint` override (Private Service Connect, an emulator), or
    EndpointError. Train sends the tenant's access token there, so only hosts the deployment allows
    (TRAIN_GOOGLE_ENDPOINT_HOSTS) are accepted (decision 0057)."""
    return checked_endpoint_url(value, allowed_hosts=settings.TRAIN_GOOGLE_ENDPOINT_HOSTS)


def _endpoint_error(value) -> str | None:
    try:
        vertex_endpoint_url(value)
    except EndpointError as exc:
        return str(exc)
    return None


def _grammar(pattern: re.Pattern, expected: str):
    return lambda value: None if isinstance(value, str) and pattern.match(value) else f"Must be {expected}."


CHECKS = {
    "project": _grammar(PROJECT_ID_RE, "a project id: 6-30 lowercase letters, digits or hyphens, starting with a "
                                       "letter"),
    "region": _grammar(REGION_RE, "a Vertex AI region such as europe-west4 or us-central1"),
    "service_account": _grammar(SERVICE_ACCOUNT_RE, "a service account email such as "
                                                    "trainer@my-project.iam.gserviceaccount.com"),
    "impersonate_service_account": _grammar(SERVICE_ACCOUNT_RE, "a service account email such as "
                                                                "train-access@my-project.iam.gserviceaccount.com"),
    "base_output_uri": gs_uri_error,
    "artifact_registry_repository": lambda v: None if artifact_registry_parts(v) else (
        "Must be an Artifact Registry Docker repository: <location>-docker.pkg.dev/<project>/<repository>."),
    "network": _grammar(NETWORK_RE, "a VPC network such as projects/123456789012/global/networks/default"),
    "api_endpoint": _endpoint_error,
    "mirror_on_push": lambda v: None if isinstance(v, bool) else "true or false.",
}


def config_errors(config: dict) -> dict[str, str]:
    errors = {}
    for key in config:
        if key not in REQUIRED + OPTIONAL:
            errors[key] = f"Unknown setting; the vertex-ai backend takes {', '.join(REQUIRED + OPTIONAL)}."
    for key in REQUIRED:
        if config.get(key) in (None, ""):
            errors[key] = "Required."
    for key, check in CHECKS.items():
        present = key in config if key in FLAGS else config.get(key) not in (None, "")
        if present and key not in errors and (message := check(config[key])):
            errors[key] = message
    return errors


def validate_config(config: dict, *, previous: dict) -> dict:
    """The cleaned configuration, or SpecError keyed by setting."""
    errors = config_errors(config)
    if errors:
        raise SpecError(errors)
    cleaned = {key: config[key] for key in REQUIRED + OPTIONAL if config.get(key) not in (None, "")}
    cleaned.update({key: bool(config.get(key)) for key in FLAGS})
    cleaned["base_output_uri"] = cleaned["base_output_uri"].rstrip("/") + "/"
    if "api_endpoint" in cleaned:
        cleaned["api_endpoint"] = vertex_endpoint_url(cleaned["api_endpoint"])
    return cleaned
