"""Logs come from CloudWatch Logs: the streams of the training job, by name prefix, newest last."""

import pytest

from backends.aws.sagemaker import SageMakerBackend
from backends.base import RemoteRef
from jobs.models import Job, Submission
from tests.backends.test_sagemaker_poll import put_log_lines
from tests.backends.test_sagemaker_request import ECR_IMAGE
from tests.support.jobs import make_job


@pytest.fixture
def backend(sagemaker_config):
    return SageMakerBackend(sagemaker_config)


def test_the_tail_of_one_hosts_stream(backend, moto_url):
    put_log_lines(moto_url, "train-logs-one/algo-1-1700000000", [f"step {i}" for i in range(30)])
    assert backend.logs(RemoteRef(name="train-logs-one"), tail=3) == ["step 27", "step 28", "step 29"]


def test_several_hosts_are_merged_in_time_order_and_labelled(backend, moto_url):
    put_log_lines(moto_url, "train-logs-two/algo-1-1700000000", ["a1", "a2"])
    put_log_lines(moto_url, "train-logs-two/algo-2-1700000000", ["b1"])
    lines = backend.logs(RemoteRef(name="train-logs-two"), tail=10)
    assert sorted(lines) == ["[algo-1] a1", "[algo-1] a2", "[algo-2] b1"]
    assert lines.index("[algo-1] a1") < lines.index("[algo-1] a2")


def test_another_job_with_a_longer_name_is_not_mixed_in(backend, moto_url):
    put_log_lines(moto_url, "train-logs-three/algo-1-1700000000", ["mine"])
    put_log_lines(moto_url, "train-logs-three0/algo-1-1700000000", ["not mine"])
    assert backend.logs(RemoteRef(name="train-logs-three"), tail=10) == ["mine"]


def test_a_job_that_has_not_written_yet_has_no_lines(backend, moto_url):
    put_log_lines(moto_url, "train-logs-other/algo-1-1700000000", ["x"])  # the group exists
    assert backend.logs(RemoteRef(name="train-logs-silent"), tail=10) == []


@pytest.mark.django_db
def test_the_logs_endpoint_reads_cloudwatch(api, member, sagemaker_account, moto_url):
    job = make_job(sagemaker_account, backend="sagemaker", image=f"{ECR_IMAGE}:v1", image_digest="",
                   remote_name="train-logs-api", submission=Submission.SUBMITTED)
    put_log_lines(moto_url, "train-logs-api/algo-1-1700000000", ["epoch 1", "epoch 2"])
    response = api.get(f"/v1/jobs/{job.pk}/logs?tail=1", **member.headers)
    assert response.status_code == 200, response.content
    assert response.json() == {"lines": ["epoch 2"]}
    assert Job.objects.get(pk=job.pk).remote_name == "train-logs-api"
