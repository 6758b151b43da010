"""Train's own Entra ID app, from the deployment's settings: a client secret, a certificate (a signed
client assertion) or a federated token file; tokens cached per tenant; a deployment without a
credential says so; and with TRAIN_CLOUD_EMULATOR an account configures azure-ml with its usual fields
only, every call (ARM, Entra ID, run history, ACR) reaching the emulator as its well-known app."""

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from backends.azure import api
from backends.azure.azureml import AzureMLBackend
from backends.azure.config import validate_config
from backends.azure.entra import entra_token, entra_tokens_clear
from backends.base import BackendError
from tests.backends.azureml_support import REGION, RESOURCE_GROUP, SUBSCRIPTION, TENANT, TRAIN_APP, WORKSPACE
from tests.backends.test_azureml_submit import JOB_ID, spec

pytestmark = pytest.mark.django_db


def test_tokens_are_cached_per_tenant_and_scope(fake_cloud, azure):
    first = entra_token(TENANT, api.ARM_SCOPE)
    assert entra_token(TENANT, api.ARM_SCOPE) == first
    assert fake_cloud.calls[("azureml", "EntraToken")] == 1
    assert entra_token(TENANT, api.ARM_SCOPE, fresh=True) != first


def test_a_federated_token_file_needs_no_secret(fake_cloud, azure, settings, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("eyJ.federated.token\n")
    azure.federated[TRAIN_APP] = "eyJ.federated.token"
    settings.TRAIN_AZURE_CLIENT_SECRET, settings.TRAIN_AZURE_FEDERATED_TOKEN_FILE = "", str(token_file)
    assert entra_token(TENANT, api.ARM_SCOPE).startswith("aad-")
    token_file.write_text("eyJ.some.other")  # the platform renewed it to something Entra ID does not accept
    with pytest.raises(BackendError) as refused:
        entra_token(TENANT, api.ARM_SCOPE, fresh=True)
    assert refused.value.permanent and "AADSTS7000215" in refused.value.message


def test_a_certificate_signs_the_client_assertion(fake_cloud, azure, settings, tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "train")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem = tmp_path / "train.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))
    azure.certificates[TRAIN_APP] = key.public_key()
    settings.TRAIN_AZURE_CLIENT_SECRET, settings.TRAIN_AZURE_CLIENT_CERTIFICATE_PATH = "", str(pem)
    assert entra_token(TENANT, api.ARM_SCOPE).startswith("aad-")
    azure.certificates[TRAIN_APP] = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    with pytest.raises(BackendError):
        entra_token(TENANT, api.ARM_SCOPE, fresh=True)


def test_a_deployment_without_a_credential_says_so(settings):
    settings.TRAIN_AZURE_CLIENT_ID, settings.TRAIN_AZURE_CLIENT_SECRET = "", ""
    entra_tokens_clear()
    with pytest.raises(BackendError) as missing:
        entra_token(TENANT, api.ARM_SCOPE)
    assert missing.value.permanent and "TRAIN_AZURE_CLIENT_ID" in missing.value.message


def test_the_emulator_serves_every_call_with_the_usual_fields(api, operator, fake_cloud, azure, settings):
    settings.TRAIN_CLOUD_EMULATOR = fake_cloud.url
    settings.TRAIN_AZURE_CLIENT_ID = settings.TRAIN_AZURE_CLIENT_SECRET = ""  # the emulator app is used instead
    settings.TRAIN_AZURE_AUTHORITY = "https://login.microsoftonline.com"
    azure.apps.clear()  # no app is registered: the emulator's well-known one is accepted in every tenant
    usual = {"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP, "workspace": WORKSPACE,
             "region": REGION, "tenant_id": TENANT, "acr": "acmeimages.azurecr.io"}
    response = api.put("/v1/backends/azure-ml", {"config": usual}, format="json", **operator.headers)
    assert response.status_code == 200, response.content
    backend = AzureMLBackend(validate_config(usual, previous={}))
    backend.account_id = "acme"
    ref = backend.submit(spec(), AzureMLBackend.remote_name(JOB_ID))
    azure.fail(ref.name, "boom")
    assert backend.poll([ref])[ref].message == "UserError: boom"
    assert fake_cloud.calls[("azureml", "PutJob")] == 1 and fake_cloud.calls[("azureml", "RunDetails")] == 1
    target = backend.mirror_target("acme/trainer")
    assert target.url == fake_cloud.url and target.registry == "acmeimages.azurecr.io"
    assert target.reference("sha256:" + "0" * 64).startswith("acmeimages.azurecr.io/train/acme/trainer@")


def test_the_standalone_fake_runs_each_job_to_completion(settings):
    """`standalone` as `python -m tests.fakecloud` uses it: a workspace made with an ARM PUT, then a job
    submitted with the usual fields through the emulator setting starts and completes by itself."""
    import requests

    from tests.backends.azureml_support import clear_caches
    from tests.fakecloud import FakeCloud
    from tests.fakecloud.azureml import standalone
    from tests.support.processes import wait_until

    with FakeCloud() as cloud:
        lines = standalone(cloud, run_seconds=2)
        assert "Azure ML" in lines[0]
        settings.TRAIN_CLOUD_EMULATOR = cloud.url
        clear_caches()
        workspace = api.Workspace(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE).arm_id
        made = requests.put(f"{cloud.url}{workspace}", params={"api-version": api.WORKSPACES_API_VERSION},
                            json={"location": REGION, "tags": {"train-account": "acme"}}, timeout=10)
        assert made.status_code == 200, made.text
        config = validate_config({"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP,
                                  "workspace": WORKSPACE, "region": REGION, "tenant_id": TENANT}, previous={})
        AzureMLBackend.verify_config(config, account_id="acme")
        backend = AzureMLBackend(config)
        ref = backend.submit(spec(), AzureMLBackend.remote_name(JOB_ID))
        seen = wait_until(lambda: (s := backend.poll([ref])[ref]).status == "COMPLETED" and s, timeout=20,
                          interval=0.3, message="the job to complete by itself")
        assert seen.started_at and seen.finished_at
        listed = requests.get(f"{cloud.url}{workspace}/jobs", params={"api-version": api.JOBS_API_VERSION},
                              headers={"Authorization": f"Bearer {entra_token(TENANT, api.ARM_SCOPE)}"}, timeout=10)
        assert [job["name"] for job in listed.json()["value"]] == [ref.name]
        clear_caches()
