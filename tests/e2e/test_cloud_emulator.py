"""The standalone fake cloud as a developer uses it: `python -m tests.fakecloud --port P` in its own
process, the gateway and the worker from the Procfile with TRAIN_CLOUD_EMULATOR pointing there, a
backend configured with its usual fields only (no endpoints, no keys), a job submitted through the
REST API. Train must record it COMPLETED, and the fake's own listing must hold exactly one remote job.

One row of EMULATED per cloud backend: its configuration, a job body, and how to read the fake's
listing through the cloud's own API."""

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import requests

from jobs.models import Job
from tests.backends.test_sagemaker_request import DIGEST, ECR_IMAGE
from tests.support.processes import free_port, gunicorn, qcluster, running, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RUN_SECONDS = 3  # how long each job runs in the fake
# Train's own AWS credentials must come from the emulator mode alone: none in the environment, no
# config files, no instance metadata. Anything that still consults the credential chain fails.
NO_AWS_CREDENTIALS = {"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
                      "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
FAST_POLLING = {"TRAIN_SAGEMAKER_POLL_SECONDS": "1,2"}


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


@dataclass(frozen=True)
class Emulated:
    backend: str
    config: dict  # the usual fields an admin PUTs, nothing that names an endpoint or a key
    body: dict  # a job a member POSTs
    listing: Callable[[str, dict], list[str]]  # (emulator URL, config) -> keys of every remote job
    remote_key: Callable[[Job], str]  # what the listing calls the Train job's remote job


EMULATED = [
    pytest.param(Emulated(
        backend="sagemaker",
        config={"region": "eu-west-1", "execution_role_arn": "arn:aws:iam::123456789012:role/SageMakerExecution",
                "output_s3_uri": "s3://acme-models/train", "assume_role_arn": "arn:aws:iam::123456789012:role/Train"},
        body={"name": "emulated", "backend": "sagemaker", "image": f"{ECR_IMAGE}@{DIGEST}",
              "command": ["python", "train.py"], "resources": {"machine_type": "ml.g5.xlarge"},
              "storage_mounts": [{"source": "s3://acme-data/corpus", "mode": "ro"}]},
        listing=sagemaker_listing, remote_key=lambda job: job.remote_name,
    ), id="sagemaker"),
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


@pytest.mark.parametrize("case", EMULATED)
def test_a_job_runs_on_the_standalone_emulator_with_the_usual_configuration(case, emulator, operator, member,
                                                                            tmp_path, monkeypatch):
    for key in [key for key in os.environ if key.startswith("AWS_")]:
        monkeypatch.delenv(key)
    env = {**NO_AWS_CREDENTIALS, **FAST_POLLING, "TRAIN_CLOUD_EMULATOR": emulator}
    with gunicorn(tmp_path, **env) as base, qcluster(tmp_path, **env):
        put = requests.put(f"{base}/v1/backends/{case.backend}", json={"config": case.config},
                           headers=operator.http_headers, timeout=10)
        assert put.status_code == 200, put.text
        created = requests.post(f"{base}/v1/jobs", json=case.body, headers=member.http_headers, timeout=10)
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]

        def finished():
            body = requests.get(f"{base}/v1/jobs/{job_id}", headers=member.http_headers, timeout=10).json()
            return body if body["status"] in ("COMPLETED", "FAILED", "CANCELED", "EXPIRED") else None

        done = wait_until(finished, timeout=120, interval=0.5, message=f"{job_id} to finish")

    assert done["status"] == "COMPLETED", done
    assert done["started_at"] and done["finished_at"]
    assert case.listing(emulator, case.config) == [case.remote_key(Job.objects.get(pk=job_id))]
