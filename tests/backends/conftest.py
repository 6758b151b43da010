"""Fixtures for the cloud adapters: the fake cloud (SageMaker faked, STS and CloudWatch Logs served by
moto behind it), AWS credentials that exist only in the test environment, and configured accounts."""

import logging
import os
import shutil

import pytest
from django.conf import settings

from backends.aws.config import validate_config
from backends.aws.session import aws_clients_clear
from backends.azure.config import validate_config as azure_validate_config
from backends.models import BackendConfig
from tests.backends.azureml_support import (
    REGION,
    RESOURCE_GROUP,
    SUBSCRIPTION,
    TENANT,
    TRAIN_APP,
    TRAIN_APP_SECRET,
    WORKSPACE,
    clear_caches,
    config_for,
)
from tests.fakecloud import FakeCloud
from tests.fakecloud.azureml import FakeAzureML
from tests.fakecloud.sagemaker import FakeSageMaker
from tests.fakecloud.vertex import FakeVertex

# Train's "own" AWS credentials in tests: fixed dummies, and no instance-metadata lookups.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
    "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
# For worker subprocesses: fast polling of SageMaker jobs and short AWS read timeouts.
WORKER_ENV = {**AWS_ENV, "TRAIN_SAGEMAKER_POLL_SECONDS": "1,2", "TRAIN_AWS_READ_TIMEOUT_SECONDS": "1"}
FAKE_TIMEOUT_SECONDS = 2.0  # longer than the 1 s read timeout: an injected timeout is a timeout
SEED = int(os.environ.get("FAKECLOUD_SEED", "20240611"))
EXECUTION_ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
GATEWAY_ROLE = "arn:aws:iam::123456789012:role/TrainGateway"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch, settings):
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    settings.TRAIN_AWS_READ_TIMEOUT_SECONDS = 1
    aws_clients_clear()
    yield
    aws_clients_clear()


@pytest.fixture(scope="session")
def moto_url():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def fake_cloud(moto_url):
    with FakeCloud(seed=SEED, timeout_seconds=FAKE_TIMEOUT_SECONDS) as cloud:
        cloud.fallback_url = moto_url
        cloud.sagemaker = cloud.add(FakeSageMaker()).bind(cloud)
        cloud.azureml = cloud.add(FakeAzureML()).bind(cloud)
        cloud.vertex = cloud.add(FakeVertex()).bind(cloud)
        yield cloud
        # pytest shows captured output only for a failing test: the seed to replay it (FAKECLOUD_SEED).
        print(f"fake cloud seed {cloud.faults.seed}; calls {dict(cloud.calls)}; faults {dict(cloud.faults.injected)}")


def fake_cloud_endpoints(cloud) -> dict:
    """Every AWS service Train calls, pointed at the fake cloud (it serves SageMaker and forwards STS
    and CloudWatch Logs to moto)."""
    return {key: cloud.url for key in ("endpoint_url", "sts_endpoint_url", "logs_endpoint_url")}


@pytest.fixture
def sagemaker_config(fake_cloud) -> dict:
    """A validated configuration that reaches the fake cloud, assuming a role with the ExternalId."""
    return validate_config({
        "region": "eu-west-1", "execution_role_arn": EXECUTION_ROLE, "output_s3_uri": "s3://acme-models/train",
        "assume_role_arn": GATEWAY_ROLE, **fake_cloud_endpoints(fake_cloud),
    }, previous={})


@pytest.fixture
def sagemaker_account(acme, sagemaker_config):
    """acme with SageMaker configured against the fake cloud."""
    BackendConfig.objects.create(account=acme, backend="sagemaker", config=sagemaker_config)
    return acme


@pytest.fixture
def fresh_faults():
    """Fault markers fire once per data directory; start each test with none fired."""
    shutil.rmtree(settings.TRAIN_DATA_DIR / "faults-fired", ignore_errors=True)


@pytest.fixture
def azure(fake_cloud, settings):
    """The fake's Azure ML with the customer's workspace tagged for acme, Train's app consented in the
    tenant, and this process signing in at the fake."""
    fake = fake_cloud.azureml
    fake.apps[TENANT] = {TRAIN_APP: TRAIN_APP_SECRET}
    fake.add_workspace(SUBSCRIPTION, RESOURCE_GROUP, WORKSPACE, tenant=TENANT, region=REGION,
                       tags={"train-account": "acme"})
    settings.TRAIN_AZURE_CLIENT_ID, settings.TRAIN_AZURE_CLIENT_SECRET = TRAIN_APP, TRAIN_APP_SECRET
    settings.TRAIN_AZURE_AUTHORITY = fake_cloud.url
    settings.TRAIN_AZURE_READ_TIMEOUT_SECONDS = 1
    clear_caches()
    yield fake
    clear_caches()


@pytest.fixture
def azure_config(fake_cloud, azure) -> dict:
    return azure_validate_config(config_for(fake_cloud), previous={})


# --- Vertex AI ---------------------------------------------------------------------------------------
# The tenant service account Train impersonates, and its description naming the Train account it serves.
TENANT_SA = "train-access@acme-ml.iam.gserviceaccount.com"
RUN_AS_SA = "trainer@acme-ml.iam.gserviceaccount.com"
VERTEX_CONFIG = {
    "project": "acme-ml", "region": "europe-west4", "service_account": RUN_AS_SA,
    "impersonate_service_account": TENANT_SA, "base_output_uri": "gs://acme-models/train",
    "artifact_registry_repository": "europe-west4-docker.pkg.dev/acme-ml/train-images",
}
# For worker subprocesses: every Google call to the fake cloud, fast polling, short read timeouts.
VERTEX_WORKER_ENV = {"TRAIN_VERTEX_AI_POLL_SECONDS": "1,2", "TRAIN_GOOGLE_READ_TIMEOUT_SECONDS": "1"}


@pytest.fixture
def google_emulated(fake_cloud, settings):
    """TRAIN_CLOUD_EMULATOR at the fake cloud (Train's own Google credentials come from its /token), and
    the tenant service account Train may impersonate, owned by acme."""
    from backends.gcp import artifact_registry
    from backends.gcp.session import google_sessions_clear
    from backends.gcp.vertex import active_lists_clear

    settings.TRAIN_CLOUD_EMULATOR = fake_cloud.url
    settings.TRAIN_GOOGLE_READ_TIMEOUT_SECONDS = 1
    fake_cloud.vertex.service_accounts[TENANT_SA] = "Train jobs of acme. train-account=acme"
    google_sessions_clear()
    active_lists_clear()
    artifact_registry._cache.clear()
    yield {**VERTEX_WORKER_ENV, "TRAIN_CLOUD_EMULATOR": fake_cloud.url}
    google_sessions_clear()
    active_lists_clear()
    artifact_registry._cache.clear()


@pytest.fixture
def vertex_config(google_emulated) -> dict:
    from backends.gcp.config import validate_config

    return validate_config(dict(VERTEX_CONFIG), previous={})


@pytest.fixture
def vertex_account(acme, vertex_config):
    BackendConfig.objects.create(account=acme, backend="vertex-ai", config=vertex_config)
    return acme


@pytest.fixture
def isolating_local_backend(settings):
    """A LocalBackend that runs each job as a user of its own, which needs Train to run as root: without
    root the test fails in CI and is skipped elsewhere."""
    from backends.local import LocalBackend
    from tests.conftest import IN_CI

    if os.geteuid() != 0:
        message = "local job isolation needs Train to run as root"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    settings.TRAIN_LOCAL_KILL_GRACE_SECONDS = 1
    return LocalBackend()
