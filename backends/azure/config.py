"""An account's Azure ML configuration: what an admin may set, checked on PUT.

No Azure secret is part of it: Train signs in as its own app (backends/azure/entra.py). Which
workspace Train may act on for which account is decided by the workspace's `train-account` tag,
verified on PUT and before every submit (backends/azure/guard.py, decision 0077).
"""

import re

from django.conf import settings

from backends.base import SpecError
from backends.common.endpoints import EndpointError, checked_endpoint_url

GUID_RE = re.compile(r"\A[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\Z")
# Resource groups: 1-90 letters, digits, '_', '-', '.', '(' and ')', not ending in '.' (ARM's rule).
RESOURCE_GROUP_RE = re.compile(r"\A[-\w.()]{0,89}[-\w()]\Z", re.ASCII)
# Workspaces: 3-33 characters, a letter or digit first, then letters, digits, '_' and '-'.
WORKSPACE_RE = re.compile(r"\A[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}\Z")
# Azure regions by their programmatic name (westeurope, eastus2, swedencentral).
REGION_RE = re.compile(r"\A[a-z][a-z0-9]{2,39}\Z")
# Compute clusters: 2-32 characters, a letter first, then letters, digits and '-'.
COMPUTE_RE = re.compile(r"\A[a-zA-Z][a-zA-Z0-9-]{1,31}\Z")
# ACR login servers: <5-50 letters and digits>.azurecr.io.
ACR_RE = re.compile(r"\A(?P<name>[a-zA-Z0-9]{5,50})\.azurecr\.io\Z")

REQUIRED = ("subscription_id", "resource_group", "workspace", "region", "tenant_id")
OPTIONAL = ("compute", "acr", "arm_endpoint", "registry_endpoint")
FLAGS = ("mirror_on_push",)


def arm_endpoint_url(value) -> str:
    """The canonical ARM endpoint, or EndpointError: Train sends its ARM token there, so only hosts on
    TRAIN_AZURE_ML_ENDPOINT_HOSTS (decision 0057)."""
    return checked_endpoint_url(value, allowed_hosts=settings.TRAIN_AZURE_ML_ENDPOINT_HOSTS)


def registry_endpoint_url(value) -> str:
    """Where mirrored images are pushed instead of https://<acr> (a proxy, an emulator): it receives
    the ACR token, so only hosts on TRAIN_AZURE_ENDPOINT_HOSTS."""
    return checked_endpoint_url(value, allowed_hosts=settings.TRAIN_AZURE_ENDPOINT_HOSTS)


def _endpoint_check(canonical):
    def check(value):
        try:
            canonical(value)
        except EndpointError as exc:
            return str(exc)
        return None
    return check


def _pattern(regex, message):
    return lambda value: None if isinstance(value, str) and regex.match(value) else message


CHECKS = {
    "subscription_id": _pattern(GUID_RE, "A subscription id (a GUID such as 00000000-1111-2222-3333-444444444444)."),
    "tenant_id": _pattern(GUID_RE, "The Entra ID tenant id of the workspace's directory (a GUID)."),
    "resource_group": _pattern(RESOURCE_GROUP_RE, "A resource group name: 1-90 letters, digits, '_', '-', '.', "
                                                  "'(' or ')', not ending in '.'."),
    "workspace": _pattern(WORKSPACE_RE, "An Azure ML workspace name: 3-33 letters, digits, '_' or '-', "
                                        "starting with a letter or digit."),
    "region": _pattern(REGION_RE, "An Azure region name such as westeurope or eastus2."),
    "compute": _pattern(COMPUTE_RE, "A compute cluster name: 2-32 letters, digits or '-', starting with a letter. "
                                    "Leave it out for serverless compute."),
    "acr": _pattern(ACR_RE, "The workspace's container registry as <name>.azurecr.io (5-50 letters and digits)."),
    "arm_endpoint": _endpoint_check(arm_endpoint_url),
    "registry_endpoint": _endpoint_check(registry_endpoint_url),
    "mirror_on_push": lambda value: None if isinstance(value, bool) else "true or false.",
}


def validate_config(config: dict, *, previous: dict) -> dict:
    """The cleaned configuration, or SpecError keyed by setting."""
    errors = {}
    for key in config:
        if key not in CHECKS:
            errors[key] = f"Unknown setting; the azure-ml backend takes {', '.join(REQUIRED + OPTIONAL + FLAGS)}."
    for key in REQUIRED:
        if not config.get(key):
            errors[key] = "Required."
    for key, check in CHECKS.items():
        present = key in config if key in FLAGS else config.get(key)
        if present and key not in errors and (message := check(config[key])):
            errors[key] = message
    if config.get("mirror_on_push") is True and not config.get("acr"):
        errors.setdefault("mirror_on_push", "Needs acr, the registry images are mirrored to.")
    if errors:
        raise SpecError(errors)
    cleaned = {key: config[key] for key in REQUIRED + OPTIONAL if config.get(key)}
    cleaned["subscription_id"] = cleaned["subscription_id"].lower()
    cleaned["tenant_id"] = cleaned["tenant_id"].lower()
    if "acr" in cleaned:
        cleaned["acr"] = cleaned["acr"].lower()
    if "arm_endpoint" in cleaned:
        cleaned["arm_endpoint"] = arm_endpoint_url(cleaned["arm_endpoint"])
    if "registry_endpoint" in cleaned:
        cleaned["registry_endpoint"] = registry_endpoint_url(cleaned["registry_endpoint"])
    cleaned["mirror_on_push"] = bool(config.get("mirror_on_push"))
    return cleaned
