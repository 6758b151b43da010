"""Azure ML test fixtures' data: a customer's tenant and workspace in the fake cloud, Train's app
consented there, and the settings (for this process and for worker subprocesses) that make Train sign
in at the fake's Entra ID."""

from backends.azure.client import azure_clients_clear
from backends.azure.entra import entra_tokens_clear
from backends.azure.runs import api_hosts_clear

TENANT = "5e1f0c1a-8d3b-4c7e-9f2a-1b2c3d4e5f60"
SUBSCRIPTION = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
RESOURCE_GROUP = "ml-rg"
WORKSPACE = "acme-ml"
REGION = "westeurope"
TRAIN_APP = "3c9a7d12-6b4e-4f1a-9e8d-7c6b5a493821"
TRAIN_APP_SECRET = "train-app-secret-" + "s" * 16
ACR_IMAGE = "acmeimages.azurecr.io/trainer"
DIGEST = "sha256:" + "ab" * 32


def azure_env(cloud) -> dict:
    """Environment for a worker or gateway subprocess: Train's app, signing in at the fake."""
    return {"TRAIN_AZURE_CLIENT_ID": TRAIN_APP, "TRAIN_AZURE_CLIENT_SECRET": TRAIN_APP_SECRET,
            "TRAIN_AZURE_AUTHORITY": cloud.url, "TRAIN_AZURE_READ_TIMEOUT_SECONDS": "1",
            "TRAIN_AZURE_ML_POLL_SECONDS": "1,2"}


def config_for(cloud, **changes) -> dict:
    """An account's configuration (as PUT), reaching the fake through `arm_endpoint`."""
    return {"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP, "workspace": WORKSPACE,
            "region": REGION, "tenant_id": TENANT, "arm_endpoint": cloud.url, **changes}


def clear_caches() -> None:
    azure_clients_clear()
    entra_tokens_clear()
    api_hosts_clear()
