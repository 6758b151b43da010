"""Through the REST API, with a real gateway and worker: an admin configures SageMaker against an
emulated AWS (SageMaker by the fake cloud; STS and CloudWatch Logs by moto, behind the same
endpoint_url), a member submits jobs, and each is created once with every field and followed to the end."""

import signal

import pytest
import requests

from backends.aws.sagemaker import build_request
from jobs.models import Job, JobEvent
from jobs.services import job_spec
from tests.backends.conftest import EXECUTION_ROLE, GATEWAY_ROLE, WORKER_ENV, fake_cloud_endpoints
from tests.backends.test_sagemaker_poll import put_log_lines
from tests.backends.test_sagemaker_request import DIGEST, ECR_IMAGE
from tests.support.processes import gunicorn, qcluster, stop_group, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BODY = {
    "name": "llama-sft-3", "backend": "sagemaker", "image": f"{ECR_IMAGE}@{DIGEST}",
    "command": ["python", "train.py"], "args": ["--epochs", "3"], "env": {"WANDB_PROJECT": "sft"},
    "resources": {"machine_type": "ml.g5.12xlarge", "instance_count": 2},
    "storage_mounts": [{"source": "s3://acme-data/corpus", "mode": "ro"},
                       {"source": "s3://acme-data/checkpoints/sft-3", "mode": "rw"}],
    "max_runtime_seconds": 7200, "labels": {"team": "nlp"},
    "backend_options": {"volume_size_gb": 100, "spot": True},
}


def wait_for(base, caller, job_id, statuses, *, with_log_tail=False):
    def reached():
        body = requests.get(f"{base}/v1/jobs/{job_id}", headers=caller.http_headers, timeout=5).json()
        return body if body["status"] in statuses and (body["log_tail"] or not with_log_tail) else None

    return wait_until(reached, timeout=60, interval=0.3, message=f"{job_id} to reach {statuses}")


def test_jobs_submitted_through_the_api_run_on_sagemaker(operator, member, fake_cloud, moto_url, tmp_path):
    sm = fake_cloud.sagemaker
    with gunicorn(tmp_path, **WORKER_ENV) as base, qcluster(tmp_path, **WORKER_ENV) as worker:
        config = {"region": "eu-west-1", "execution_role_arn": EXECUTION_ROLE, "assume_role_arn": GATEWAY_ROLE,
                  "output_s3_uri": "s3://acme-models/train", **fake_cloud_endpoints(fake_cloud)}
        put = requests.put(f"{base}/v1/backends/sagemaker", json={"config": config}, headers=operator.http_headers,
                           timeout=10)
        assert put.status_code == 200, put.text
        external_id = put.json()["config"]["external_id"]

        created = requests.post(f"{base}/v1/jobs", json=BODY, headers=member.http_headers, timeout=10)
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        failing = requests.post(f"{base}/v1/jobs", json={**BODY, "name": "doomed"}, headers=member.http_headers,
                                timeout=10).json()["id"]
        wait_until(lambda: len(sm.creates) == 2 and all(j.remote_id for j in Job.objects.all()), timeout=30,
                   message="both training jobs created")

        job = Job.objects.get(pk=job_id)
        sent = next(request for request in sm.creates if request["TrainingJobName"] == job.remote_name)
        assert sent == build_request(job_spec(job), job.remote_name, job.account.backend_configs.get().config)
        assert sent["AlgorithmSpecification"]["TrainingImage"] == f"{ECR_IMAGE}@{DIGEST}"
        assert sent["ResourceConfig"] == {"InstanceType": "ml.g5.12xlarge", "InstanceCount": 2, "VolumeSizeInGB": 100}
        assert sent["Environment"]["STORAGE_MOUNT_0_PATH"] == "/opt/ml/input/data/mount0"
        assert sent["CheckpointConfig"]["S3Uri"] == "s3://acme-data/checkpoints/sft-3/"
        assert {"Key": "team", "Value": "nlp"} in sent["Tags"] and sent["EnableManagedSpotTraining"] is True
        assert any(c.get("Action") == "AssumeRole" and c.get("ExternalId") == external_id
                   for c in fake_cloud.forwarded)

        sm.start(job.remote_name)
        running = wait_for(base, member, job_id, {"IN_PROGRESS"})
        assert running["sub_status"] == "InProgress/Training" and running["started_at"]
        sm.complete(job.remote_name)
        done = wait_for(base, member, job_id, {"COMPLETED", "FAILED", "CANCELED", "EXPIRED"})

        doomed = Job.objects.get(pk=failing).remote_name
        put_log_lines(moto_url, f"{doomed}/algo-1-1700000000", ["epoch 1", "CUDA error: out of memory"])
        sm.fail(doomed, "AlgorithmError: ExecuteUserScriptError: exit code 1")
        # The log tail is the effect of entering FAILED: it follows the transition in its own task.
        failed = wait_for(base, member, failing, {"COMPLETED", "FAILED", "CANCELED", "EXPIRED"}, with_log_tail=True)
        logs = requests.get(f"{base}/v1/jobs/{failing}/logs", headers=member.http_headers, timeout=10).json()
        stop_group(worker, signal.SIGKILL)

    assert done["status"] == "COMPLETED" and done["sub_status"] == "Completed/Completed"
    assert done["finished_at"] and done["console_url"].endswith(f"#/jobs/{job.remote_name}")
    assert done["remote_id"] == f"arn:aws:sagemaker:eu-west-1:123456789012:training-job/{job.remote_name}"
    assert failed["status"] == "FAILED"
    assert failed["status_message"] == "AlgorithmError: ExecuteUserScriptError: exit code 1"
    assert failed["log_tail"] == ["epoch 1", "CUDA error: out of memory"]
    assert logs == {"lines": ["epoch 1", "CUDA error: out of memory"]}
    assert len(sm.creates) == 2 and fake_cloud.calls[("sagemaker", "CreateTrainingJob")] == 2
    for each in (job_id, failing):
        assert JobEvent.objects.filter(job_id=each, to_status__in=["COMPLETED", "FAILED"]).count() == 1
