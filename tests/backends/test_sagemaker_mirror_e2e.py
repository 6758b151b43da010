"""The whole promise, through the REST API with a real gateway and worker: skopeo pushes an image to
Train, a member submits a sagemaker job naming its tag, Train mirrors the pinned digest into the
account's ECR (moto's GetAuthorizationToken and CreateRepository; Debian's Distribution, which accepts
only that login, as the ECR registry), and SageMaker (the fake cloud) is asked to run exactly that
digest from ECR. The tag moving afterwards changes nothing for the job."""

import hashlib
import subprocess

import pytest
import requests

from backends.aws.config import validate_config
from backends.aws.ecr import authorization
from jobs.models import Job
from tests.backends.conftest import EXECUTION_ROLE, GATEWAY_ROLE, WORKER_ENV, fake_cloud_endpoints
from tests.conftest import require_tool
from tests.registry.ocilayout import build_image
from tests.support.distribution import distribution
from tests.support.processes import gunicorn, qcluster, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ECR_HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"


def skopeo(*args) -> subprocess.CompletedProcess:
    result = subprocess.run([require_tool("skopeo"), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def test_an_image_pushed_to_train_runs_on_sagemaker_by_digest_from_ecr(operator, member, fake_cloud, moto_url,
                                                                      tmp_path):
    sm = fake_cloud.sagemaker
    config = {"region": "eu-west-1", "execution_role_arn": EXECUTION_ROLE, "assume_role_arn": GATEWAY_ROLE,
              "output_s3_uri": "s3://acme-models/train", **fake_cloud_endpoints(fake_cloud),
              "ecr_endpoint_url": moto_url}
    ecr_password = authorization(validate_config(config, previous={})).credentials.password
    built = build_image(tmp_path / "layout", "v3", seed=909, layers=2)
    with distribution(tmp_path / "ecr", users={"AWS": ecr_password}) as ecr, \
            gunicorn(tmp_path, **WORKER_ENV) as base, qcluster(tmp_path, **WORKER_ENV):
        put = requests.put(f"{base}/v1/backends/sagemaker", json={"config": {**config, "registry_endpoint": ecr}},
                           headers=operator.http_headers, timeout=10)
        assert put.status_code == 200, put.text
        host = base.removeprefix("http://")
        skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"acme:{member.plaintext}",
               f"oci:{tmp_path / 'layout'}:v3", f"docker://{host}/acme/trainer:v3")

        body = {"name": "mirrored", "backend": "sagemaker", "image": "localhost:8000/acme/trainer:v3",
                "command": ["python", "train.py"], "resources": {"machine_type": "ml.g5.xlarge"}}
        created = requests.post(f"{base}/v1/jobs", json=body, headers=member.http_headers, timeout=10)
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        assert created.json()["image_digest"] == built.digest

        wait_until(lambda: sm.creates, timeout=90, message="the training job to be created after the mirror")
        job = Job.objects.get(pk=job_id)
        reference = f"{ECR_HOST}/train/acme/trainer@{built.digest}"
        assert sm.creates[0]["AlgorithmSpecification"]["TrainingImage"] == reference
        assert job.cloud_image == reference and job.submit_attempts == 1
        shown = requests.get(f"{base}/v1/jobs/{job_id}", headers=member.http_headers, timeout=10).json()
        assert shown["cloud_image"] == reference

        ecr_host = ecr.removeprefix("http://")
        # Mirrored by digest, untagged: --raw reads the manifest without listing tags.
        raw = skopeo("inspect", "--raw", "--tls-verify=false", "--creds", f"AWS:{ecr_password}",
                     f"docker://{ecr_host}/train/acme/trainer@{built.digest}").stdout
        assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == built.digest

        # The tag moves; the job keeps the digest it was submitted with.
        build_image(tmp_path / "layout", "v3", seed=910, layers=1)
        skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"acme:{member.plaintext}",
               f"oci:{tmp_path / 'layout'}:v3", f"docker://{host}/acme/trainer:v3")
        sm.start(job.remote_name)
        sm.complete(job.remote_name)

        def finished():
            shown = requests.get(f"{base}/v1/jobs/{job_id}", headers=member.http_headers, timeout=10).json()
            return shown if shown["status"] == "COMPLETED" else None

        done = wait_until(finished, timeout=60, message="the job to complete")
    assert done["image_digest"] == built.digest and done["cloud_image"] == reference
    assert len(sm.creates) == 1
