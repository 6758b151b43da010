"""Configuring Vertex AI for an account: validated on PUT, shown on GET, no Google secret accepted,
and the confused-deputy guard: Train impersonates a tenant service account for an account only if the
service account's description names that account, so one account cannot run jobs as another's."""

import pytest

from backends.models import BackendConfig
from tests.backends.conftest import TENANT_SA, VERTEX_CONFIG

pytestmark = pytest.mark.django_db

GLOBEX_SA = "train-access@globex-ml.iam.gserviceaccount.com"


def put(api, caller, config):
    return api.put("/v1/backends/vertex-ai", {"config": config}, format="json", **caller.headers)


def test_admin_configures_vertex_ai(api, operator, google_emulated, fake_cloud):
    response = put(api, operator, {**VERTEX_CONFIG, "base_output_uri": "gs://acme-models/train/"})
    assert response.status_code == 200, response.content
    config = response.json()["config"]
    assert config == {**VERTEX_CONFIG, "base_output_uri": "gs://acme-models/train/", "mirror_on_push": False}
    assert api.get("/v1/backends/vertex-ai", **operator.headers).json()["config"] == config
    # Verified as the tenant service account: Train impersonated it and read its description.
    assert fake_cloud.calls[("vertex", "GenerateAccessToken")] == 1
    assert fake_cloud.calls[("vertex", "GetServiceAccount")] == 1


def test_another_accounts_service_account_is_refused_at_put(api, operator, outsider, google_emulated, fake_cloud):
    # globex set up its service account for Train, naming its own Train account.
    fake_cloud.vertex.service_accounts[GLOBEX_SA] = "train-account=globex"
    assert put(api, outsider, {**VERTEX_CONFIG, "impersonate_service_account": GLOBEX_SA}).status_code == 200
    # acme's admin names globex's service account: Train could impersonate it, but it is not acme's.
    stolen = put(api, operator, {**VERTEX_CONFIG, "impersonate_service_account": GLOBEX_SA})
    assert stolen.status_code == 400
    message = stolen.json()["config.impersonate_service_account"][0]
    assert "globex" in message and "train-account=acme" in message
    assert not BackendConfig.objects.filter(account_id="acme").exists()


def test_a_service_account_that_names_no_account_is_refused(api, operator, google_emulated, fake_cloud):
    fake_cloud.vertex.service_accounts[TENANT_SA] = "Vertex training for the ML team"
    response = put(api, operator, VERTEX_CONFIG)
    assert response.status_code == 400
    assert "no Train account" in response.json()["config.impersonate_service_account"][0]


def test_a_service_account_naming_two_accounts_is_refused(api, operator, google_emulated, fake_cloud):
    fake_cloud.vertex.service_accounts[TENANT_SA] = "train-account=acme train-account=globex"
    assert put(api, operator, VERTEX_CONFIG).status_code == 400


def test_a_service_account_train_cannot_impersonate_is_refused(api, operator, google_emulated, fake_cloud):
    nobody = "x@nobody-ml.iam.gserviceaccount.com"
    response = put(api, operator, {**VERTEX_CONFIG, "impersonate_service_account": nobody})
    assert response.status_code == 400
    assert "getAccessToken" in response.json()["config.impersonate_service_account"][0]
    assert not BackendConfig.objects.exists()


@pytest.mark.parametrize(("changes", "field"), [
    ({"project": None}, "config.project"),
    ({"project": "Acme_ML"}, "config.project"),
    ({"project": "acme-ml\x00"}, "config.project"),
    ({"region": "europe"}, "config.region"),
    ({"region": 2 ** 63}, "config.region"),
    ({"service_account": "trainer@gmail.com"}, "config.service_account"),
    ({"impersonate_service_account": "a/b@p.iam.gserviceaccount.com"}, "config.impersonate_service_account"),
    ({"base_output_uri": "s3://acme-models/train"}, "config.base_output_uri"),
    ({"base_output_uri": "gs://acme-models/" + "x" * 1100}, "config.base_output_uri"),
    ({"base_output_uri": "gs://acme-models/../other"}, "config.base_output_uri"),
    ({"artifact_registry_repository": "gcr.io/acme-ml/images"}, "config.artifact_registry_repository"),
    ({"artifact_registry_repository": "europe-west4-docker.pkg.dev/acme-ml/Images"},
     "config.artifact_registry_repository"),
    ({"network": "default"}, "config.network"),
    ({"api_endpoint": "https://metadata.google.internal"}, "config.api_endpoint"),
    ({"api_endpoint": "https://127.0.0.1:1\\@europe-west4-aiplatform.googleapis.com"}, "config.api_endpoint"),
    ({"mirror_on_push": "false"}, "config.mirror_on_push"),
    ({"private_key": "-----BEGIN PRIVATE KEY-----"}, "config.private_key"),
])
def test_invalid_configuration_is_400_naming_the_setting(api, operator, changes, field, google_emulated):
    config = {key: value for key, value in {**VERTEX_CONFIG, **changes}.items() if value is not None}
    response = put(api, operator, config)
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not BackendConfig.objects.filter(backend="vertex-ai").exists()


def test_a_private_service_connect_endpoint_is_allowed(api, operator, google_emulated):
    url = "https://europe-west4-aiplatform-acme.p.googleapis.com"
    response = put(api, operator, {**VERTEX_CONFIG, "api_endpoint": url, "network":
                                   "projects/123456789012/global/networks/training"})
    assert response.status_code == 200, response.content
    assert response.json()["config"]["api_endpoint"] == url


def test_members_cannot_configure(api, member, google_emulated):
    assert put(api, member, VERTEX_CONFIG).status_code == 403
