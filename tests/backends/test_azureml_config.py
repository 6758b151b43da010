"""Configuring Azure ML for an account: validated on PUT (each bad field a 400 naming it), the
workspace checked in the cloud as Train's app (region, reachability, and the `train-account` tag that
stops one account from making Train act on another's workspace), shown on GET, no secret stored."""

import pytest

from backends.models import BackendConfig
from tests.backends.azureml_support import (
    REGION,
    RESOURCE_GROUP,
    SUBSCRIPTION,
    TENANT,
    config_for,
)
from tests.conftest import make_caller
from trainsvc.accounts.models import Role

pytestmark = pytest.mark.django_db


def put(api, caller, config):
    return api.put("/v1/backends/azure-ml", {"config": config}, format="json", **caller.headers)


def test_admin_configures_azure_ml_after_train_verified_the_workspace(api, operator, member, fake_cloud, azure):
    response = put(api, operator, config_for(fake_cloud, compute="gpu-cluster", acr="AcmeImages.azurecr.io",
                                             subscription_id=SUBSCRIPTION.upper()))
    assert response.status_code == 200, response.content
    config = response.json()["config"]
    assert config["subscription_id"] == SUBSCRIPTION and config["acr"] == "acmeimages.azurecr.io"
    assert config["compute"] == "gpu-cluster" and config["mirror_on_push"] is False
    assert fake_cloud.calls[("azureml", "GetWorkspace")] == 1 and fake_cloud.calls[("azureml", "EntraToken")] == 1
    assert api.get("/v1/backends/azure-ml", **member.headers).json()["config"] == config
    stored = BackendConfig.objects.get(backend="azure-ml").config
    assert not any("secret" in key for key in stored), "no Azure secret is stored per account"


def test_a_workspace_tagged_for_another_account_is_refused(api, fake_cloud, azure):
    """The confused deputy: globex names acme's workspace, in a tenant that consented to Train's app."""
    intruder = make_caller("globex", Role.ADMIN, "gina")
    response = put(api, intruder, config_for(fake_cloud))
    assert response.status_code == 400
    assert "train-account=globex" in response.json()["config.workspace"][0]
    assert not BackendConfig.objects.filter(account_id="globex").exists()


def test_an_untagged_workspace_is_refused_until_tagged(api, operator, fake_cloud, azure):
    azure.workspaces[next(iter(azure.workspaces))]["tags"] = {}
    refused = put(api, operator, config_for(fake_cloud))
    assert refused.status_code == 400 and "carries train-account=nothing" in refused.content.decode()
    azure.workspaces[next(iter(azure.workspaces))]["tags"] = {"train-account": "acme"}
    assert put(api, operator, config_for(fake_cloud)).status_code == 200


def test_a_tenant_that_did_not_consent_is_named(api, operator, fake_cloud, azure):
    azure.apps.clear()
    response = put(api, operator, config_for(fake_cloud))
    assert response.status_code == 400
    assert "AADSTS700016" in response.json()["config.tenant_id"][0]


def test_a_workspace_elsewhere_or_missing_is_refused(api, operator, fake_cloud, azure):
    wrong_region = put(api, operator, config_for(fake_cloud, region="eastus2"))
    assert wrong_region.status_code == 400 and f"is in {REGION}" in wrong_region.content.decode()
    missing = put(api, operator, config_for(fake_cloud, workspace="nope-ws"))
    assert missing.status_code == 400 and "AzureML Data Scientist" in missing.json()["config.workspace"][0]


@pytest.mark.parametrize("field,value", [
    ("subscription_id", "not-a-guid"), ("subscription_id", 2 ** 63), ("tenant_id", "x\x00"),
    ("resource_group", "ends.with.dot."), ("resource_group", "a" * 91), ("workspace", "a"),
    ("workspace", "ws/../other"), ("region", "West Europe"), ("compute", "1cluster"), ("acr", "acme.example.com"),
    ("acr", "abc.azurecr.io"), ("arm_endpoint", "https://evil.example.com"),
    ("arm_endpoint", "https://127.0.0.1:1\\@management.azure.com"), ("registry_endpoint", "http://10.0.0.1"),
    ("mirror_on_push", "true"), ("client_secret", "s3cr3t"),
])
def test_invalid_settings_are_refused_by_name(api, operator, fake_cloud, azure, field, value):
    response = put(api, operator, config_for(fake_cloud, **{field: value}))
    assert response.status_code == 400, response.content
    assert f"config.{field}" in response.json()
    assert not BackendConfig.objects.filter(backend="azure-ml").exists()
    assert fake_cloud.calls[("azureml", "GetWorkspace")] == 0, "nothing is sent to Azure for an invalid config"


def test_required_settings_are_named(api, operator):
    response = put(api, operator, {})
    assert response.status_code == 400
    assert set(response.json()) == {f"config.{key}" for key in (
        "subscription_id", "resource_group", "workspace", "region", "tenant_id")}


def test_the_guard_runs_with_the_tenant_configured(api, operator, fake_cloud, azure):
    other_tenant = "11111111-2222-4333-8444-555555555555"
    azure.apps[other_tenant] = dict(azure.apps[TENANT])
    response = put(api, operator, config_for(fake_cloud, tenant_id=other_tenant))
    assert response.status_code == 400 and "InvalidAuthenticationTokenTenant" in response.content.decode()
    assert RESOURCE_GROUP in config_for(fake_cloud)["resource_group"]
