"""The standalone fake cloud as a developer uses it: `python -m tests.fakecloud --port P` in its own
process, the gateway and the worker from the Procfile with TRAIN_CLOUD_EMULATOR pointing there, a
backend configured with its usual fields only (no endpoints, no keys), a job submitted through the
REST API. Train must record it COMPLETED, and the fake's own listing must hold exactly one remote job.
Where the emulator serves the cloud's registry, a second job names an image pushed to Train: it is
mirrored there by digest and the remote job runs that digest.

One row of EMULATED per cloud backend: its configuration, a job body, and how to read the fake's
listing (and a remote job's image) through the cloud's own API."""

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import requests

from jobs.models import Job
from tests.backends.test_sagemaker_request import DIGEST, ECR_IMAGE
from tests.conftest import require_tool
from tests.registry.ocilayout import build_image
from tests.support.processes import free_port, gunicorn, qcluster, running, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RUN_SECONDS = 3  # how long each job runs in the fake
# Train's own AWS credentials must come from the emulator mode alone: none in the environment, no
# config files, no instance metadata. Anything that still consults the credential chain fails.
NO_AWS_CREDENTIALS = {"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                      "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
FAST_POLLING = {"TRAIN_SAGEMAKER_POLL_SECONDS": "1,2", "TRAIN_AZURE_ML_POLL_SECONDS": "1,2",
                "TRAIN_VERTEX_AI_POLL_SECONDS": "1,2"}
PUSHED = "localhost:8000/acme/trainer:v1"  # an image in Train's registry (the test settings' host)


def sagemaker_listing(emulator: str, config: dict) -> list[str]:
    """Every training job name ListTrainingJobs returns in the configured region."""
    import boto3

    client = boto3.client("sagemaker", endpoint_url=emulator, region_name=config["region"],
                          aws_access_key_id="reader", aws_secret_access_key="reader")
    names, token = [], None
    while True:
        page = client.list_training_jobs(MaxResults=100, **({"NextToken": token} if token else {}))
        names += [summary["TrainingJobName"] for summary in page["TrainingJobSummaries"]]
        token = page.get("NextToken")
        if not token:
            return names


def sagemaker_image(emulator: str, config: dict, key: str) -> str:
    import boto3

    client = boto3.client("sagemaker", endpoint_url=emulator, region_name=config["region"],
                          aws_access_key_id="reader", aws_secret_access_key="reader")
    return client.describe_training_job(TrainingJobName=key)["AlgorithmSpecification"]["TrainingImage"]


AZURE = {"subscription_id": "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9", "resource_group": "ml-rg",
         "workspace": "acme-ml", "region": "westeurope", "tenant_id": "5e1f0c1a-8d3b-4c7e-9f2a-1b2c3d4e5f60",
         "acr": "acmeimages.azurecr.io"}
AZURE_API = "2024-04-01"
AZURE_WORKSPACE = (f"/subscriptions/{AZURE['subscription_id']}/resourceGroups/{AZURE['resource_group']}"
                   f"/providers/Microsoft.MachineLearningServices/workspaces/{AZURE['workspace']}")


def azure_workspace(emulator: str) -> None:
    """The customer's workspace, tagged for the Train account (the emulator's step before any PUT)."""
    answer = requests.put(f"{emulator}{AZURE_WORKSPACE}", params={"api-version": AZURE_API}, timeout=10,
                          json={"location": AZURE["region"], "tags": {"train-account": "acme"}})
    assert answer.status_code in (200, 201), answer.text


def azure_get(emulator: str, path: str) -> dict:
    from backends.azure.entra import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET

    token = requests.post(f"{emulator}/{AZURE['tenant_id']}/oauth2/v2.0/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": EMULATOR_CLIENT_ID, "client_secret": EMULATOR_CLIENT_SECRET,
        "scope": "https://management.azure.com/.default"}).json()["access_token"]
    answer = requests.get(f"{emulator}{path}", params={"api-version": AZURE_API}, timeout=10,
                          headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def azure_listing(emulator: str, config: dict) -> list[str]:
    return [job["name"] for job in azure_get(emulator, f"{AZURE_WORKSPACE}/jobs")["value"]]


def azure_image(emulator: str, config: dict, key: str) -> str:
    job = azure_get(emulator, f"{AZURE_WORKSPACE}/jobs/{key}")
    return azure_get(emulator, job["properties"]["environmentId"])["properties"]["image"]


VERTEX = {"project": "acme-ml", "region": "europe-west4", "service_account": "trainer@acme-ml.iam.gserviceaccount.com",
          # The emulator's convention: train-<account>@… names that Train account in its description.
          "impersonate_service_account": "train-acme@acme-ml.iam.gserviceaccount.com",
          "base_output_uri": "gs://acme-models/train",
          "artifact_registry_repository": "europe-west4-docker.pkg.dev/acme-ml/train-images"}


def vertex_get(emulator: str, path: str) -> dict:
    """A Vertex AI read as the tenant service account: the emulator's refresh grant, then IAM
    Credentials generateAccessToken, as any Google client would."""
    from backends.gcp.session import EMULATOR_REFRESH_TOKEN

    source = requests.post(f"{emulator}/token", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": EMULATOR_REFRESH_TOKEN}).json()["access_token"]
    access = requests.post(f"{emulator}/v1/projects/-/serviceAccounts/{VERTEX['impersonate_service_account']}"
                           ":generateAccessToken", json={"scope": ["https://www.googleapis.com/auth/cloud-platform"]},
                           headers={"Authorization": f"Bearer {source}"}, timeout=10).json()["accessToken"]
    answer = requests.get(f"{emulator}{path}", headers={"Authorization": f"Bearer {access}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def vertex_listing(emulator: str, config: dict) -> list[str]:
    path = f"/v1/projects/{config['project']}/locations/{config['region']}/customJobs"
    return [job["name"] for job in vertex_get(emulator, path).get("customJobs", [])]


def vertex_image(emulator: str, config: dict, key: str) -> str:
    job = vertex_get(emulator, f"/v1/{key}")
    return job["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["imageUri"]


@dataclass(frozen=True)
class Emulated:
    backend: str
    config: dict  # the usual fields an admin PUTs, nothing that names an endpoint or a key
    body: dict  # a job a member POSTs
    listing: Callable[[str, dict], list[str]]  # (emulator URL, config) -> keys of every remote job
    remote_key: Callable[[Job], str]  # what the listing calls the Train job's remote job
    remote_image: Callable[[str, dict, str], str]  # (emulator URL, config, key) -> the image it runs
    mirrored: Callable[[dict, str], str]  # (config, digest) -> where an image pushed to Train runs from
    prepare: Callable[[str], None] = lambda emulator: None  # what the customer sets up in the cloud first


EMULATED = [
    pytest.param(Emulated(
        backend="sagemaker",
        config={"region": "eu-west-1", "execution_role_arn": "arn:aws:iam::123456789012:role/SageMakerExecution",
                "output_s3_uri": "s3://acme-models/train", "assume_role_arn": "arn:aws:iam::123456789012:role/Train"},
        body={"name": "emulated", "backend": "sagemaker", "image": f"{ECR_IMAGE}@{DIGEST}",
              "command": ["python", "train.py"], "resources": {"machine_type": "ml.g5.xlarge"},
              "storage_mounts": [{"source": "s3://acme-data/corpus", "mode": "ro"}]},
        listing=sagemaker_listing, remote_key=lambda job: job.remote_name, remote_image=sagemaker_image,
        mirrored=lambda config, digest: f"123456789012.dkr.ecr.{config['region']}.amazonaws.com/train/acme/trainer"
                                        f"@{digest}",
    ), id="sagemaker"),
    pytest.param(Emulated(
        backend="azure-ml", config=AZURE,
        body={"name": "emulated", "backend": "azure-ml", "image": f"{AZURE['acr']}/trainer@sha256:{'ab' * 32}",
              "command": ["python", "train.py"], "resources": {"machine_type": "Standard_NC24ads_A100_v4"},
              "storage_mounts": [{"source": "azureml://datastores/corpus/paths/web", "mode": "ro"}]},
        listing=azure_listing, remote_key=lambda job: job.remote_name, remote_image=azure_image,
        mirrored=lambda config, digest: f"{config['acr']}/train/acme/trainer@{digest}",
        prepare=azure_workspace,
    ), id="azure-ml"),
    pytest.param(Emulated(
        backend="vertex-ai", config=VERTEX,
        body={"name": "emulated", "backend": "vertex-ai",
              "image": f"europe-west4-docker.pkg.dev/acme-ml/images/trainer@sha256:{'ab' * 32}",
              "command": ["python", "train.py"], "resources": {"machine_type": "g2-standard-12"},
              "storage_mounts": [{"source": "gs://acme-data/corpus", "mode": "ro"}]},
        listing=vertex_listing, remote_key=lambda job: job.remote_id, remote_image=vertex_image,
        mirrored=lambda config, digest: f"{config['artifact_registry_repository']}/acme/trainer@{digest}",
    ), id="vertex-ai"),
]


@pytest.fixture
def emulator(tmp_path):
    """`python -m tests.fakecloud` on a free port; yields the TRAIN_CLOUD_EMULATOR URL it prints."""
    port = free_port()
    log = tmp_path / "fakecloud.log"
    argv = [sys.executable, "-m", "tests.fakecloud", "--port", str(port), "--run-seconds", str(RUN_SECONDS)]
    with running(argv, env=dict(os.environ, PYTHONUNBUFFERED="1"), log_path=log) as proc:
        def announced():
            if proc.poll() is not None:
                raise AssertionError(f"the fake cloud exited: {log.read_text()[-2000:]}")
            lines = [line for line in log.read_text().splitlines() if line.startswith("export TRAIN_CLOUD_EMULATOR=")]
            return lines[0].partition("=")[2] if lines else None

        url = wait_until(announced, timeout=60, message="the fake cloud to print its URL")
        assert url == f"http://127.0.0.1:{port}"
        yield url


def push(base: str, caller, tmp_path) -> str:
    """An image pushed to Train's registry as `PUSHED` with skopeo; its digest."""
    built = build_image(tmp_path / "layout", "v1", seed=4242, layers=2)
    result = subprocess.run([require_tool("skopeo"), "copy", "--dest-tls-verify=false", "--dest-creds",
                             f"acme:{caller.plaintext}", f"oci:{tmp_path / 'layout'}:v1",
                             f"docker://{base.removeprefix('http://')}/{PUSHED.split('/', 1)[1]}"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return built.digest


@pytest.mark.parametrize("case", EMULATED)
def test_jobs_run_on_the_standalone_emulator_with_the_usual_configuration(case, emulator, operator, member,
                                                                          tmp_path, monkeypatch):
    for key in [key for key in os.environ if key.startswith("AWS_")]:
        monkeypatch.delenv(key)
    env = {**NO_AWS_CREDENTIALS, **FAST_POLLING, "TRAIN_CLOUD_EMULATOR": emulator}
    case.prepare(emulator)
    with gunicorn(tmp_path, **env) as base, qcluster(tmp_path, **env):
        put = requests.put(f"{base}/v1/backends/{case.backend}", json={"config": case.config},
                           headers=operator.http_headers, timeout=10)
        assert put.status_code == 200, put.text
        digest = push(base, member, tmp_path)
        ids = []
        for body in (case.body, {**case.body, "name": "emulated-pushed", "image": PUSHED}):
            created = requests.post(f"{base}/v1/jobs", json=body, headers=member.http_headers, timeout=10)
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])

        def finished():
            shown = [requests.get(f"{base}/v1/jobs/{job_id}", headers=member.http_headers, timeout=10).json()
                     for job_id in ids]
            return shown if all(s["status"] in ("COMPLETED", "FAILED", "CANCELED", "EXPIRED") for s in shown) else None

        done = wait_until(finished, timeout=120, interval=0.5, message=f"{ids} to finish")

    outcomes = [(shown["status"], bool(shown["started_at"]), bool(shown["finished_at"])) for shown in done]
    assert outcomes == [("COMPLETED", True, True)] * 2
    keys = [case.remote_key(Job.objects.get(pk=job_id)) for job_id in ids]
    assert sorted(case.listing(emulator, case.config)) == sorted(keys)
    # The pushed image was mirrored to the emulated registry by digest, and the remote job runs it.
    reference = case.mirrored(case.config, digest)
    assert done[1]["cloud_image"] == reference
    assert case.remote_image(emulator, case.config, keys[1]) == reference
    path = reference.split("/", 1)[1].split("@")[0]
    manifest = requests.get(f"{emulator}/v2/{path}/manifests/{digest}", timeout=10,
                            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert manifest.status_code == 200 and hashlib.sha256(manifest.content).hexdigest() == digest.split(":")[1]
