"""A spot job may wait for capacity until its MaxWaitTimeInSeconds (48 h by default for a 24 h run):
its pending deadline lies past that, so Train never expires a job SageMaker is still queueing."""

from datetime import timedelta

import pytest

from backends.aws.sagemaker import SageMakerBackend, build_request
from jobs.models import Job, JobStatus
from jobs.retries import QUEUE_LIMIT_MARGIN
from jobs.services import job_create, job_spec
from jobs.sweeping import jobs_sweep
from tests.backends.test_sagemaker_request import DIGEST, ECR_IMAGE

pytestmark = pytest.mark.django_db
DAY = 24 * 3600


def create(account, **options) -> Job:
    job, _ = job_create(account=account, user=None, data={
        "name": "spot", "backend": "sagemaker", "image": f"{ECR_IMAGE}@{DIGEST}", "command": ["python", "train.py"],
        "args": [], "env": {}, "resources": {"machine_type": "ml.g5.xlarge"}, "storage_mounts": [],
        "max_runtime_seconds": DAY, "labels": {}, "backend_options": options})
    return job


def test_the_pending_deadline_of_a_spot_job_lies_past_its_max_wait(sagemaker_account, settings):
    job = create(sagemaker_account, spot=True)
    max_wait = build_request(job_spec(job), job.remote_name, job.backend_config)["StoppingCondition"][
        "MaxWaitTimeInSeconds"]
    assert max_wait == 2 * DAY
    assert job.pending_deadline_at == job.created_at + timedelta(seconds=max_wait) + QUEUE_LIMIT_MARGIN
    assert settings.TRAIN_PENDING_DEADLINE_SECONDS < max_wait


def test_a_spot_job_queued_for_a_day_is_not_expired(sagemaker_account, settings):
    job = create(sagemaker_account, spot=True)
    on_demand = create(sagemaker_account)
    later = job.created_at + timedelta(seconds=settings.TRAIN_PENDING_DEADLINE_SECONDS + 3600)
    assert jobs_sweep(now=later).expired == 1
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING
    assert Job.objects.get(pk=on_demand.pk).status == JobStatus.EXPIRED


def test_an_explicit_max_wait_sets_the_deadline(sagemaker_account, sagemaker_config):
    job = create(sagemaker_account, spot=True, max_wait_seconds=3 * DAY)
    assert SageMakerBackend(sagemaker_config).max_queue_seconds(job_spec(job)) == 3 * DAY
    assert job.pending_deadline_at - job.created_at == timedelta(days=3) + QUEUE_LIMIT_MARGIN
