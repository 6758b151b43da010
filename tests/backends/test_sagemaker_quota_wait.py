"""A job submitted while the AWS account sits at its instance quota waits PENDING, quoting SageMaker,
for as long as its pending deadline allows, and is submitted once the quota frees."""

from datetime import timedelta

import pytest
from django.utils import timezone

from backends.aws.sagemaker import SageMakerBackend, build_request
from jobs.models import Job, JobStatus, Submission
from jobs.services import job_spec
from jobs.submission import job_submit
from jobs.sweeping import jobs_sweep
from tests.backends.test_sagemaker_request import ECR_IMAGE
from tests.support.jobs import make_job

pytestmark = pytest.mark.django_db
INSTANCE = "ml.g5.xlarge"


def sagemaker_job(account, **fields) -> Job:
    job = make_job(account, backend="sagemaker", image=f"{ECR_IMAGE}:v1", image_digest="",
                   resources={"machine_type": INSTANCE, "instance_count": 1}, **fields)
    Job.objects.filter(pk=job.pk).update(remote_name=SageMakerBackend.remote_name(job.id))
    return Job.objects.get(pk=job.pk)


@pytest.fixture
def quota_in_use(sagemaker_account, fake_cloud):
    """The account may run one ml.g5.xlarge, and another training job runs on it."""
    sm = fake_cloud.sagemaker
    sm.instance_quota[INSTANCE] = 1
    blocker = sagemaker_job(sagemaker_account)
    sm.insert(build_request(job_spec(blocker), "someone-elses-job", blocker.backend_config))
    return "someone-elses-job"


def retry_now(job: Job) -> None:
    """Time passes: the job's back-off is over (the sweep would hand it out now)."""
    Job.objects.filter(pk=job.pk).update(next_submit_at=timezone.now())


def test_a_job_at_the_quota_waits_pending_and_is_submitted_once_it_frees(sagemaker_account, fake_cloud,
                                                                         quota_in_use):
    job = sagemaker_job(sagemaker_account, created_at=timezone.now() - timedelta(minutes=30))
    for _ in range(8):  # more attempts, and more time, than the old five-attempt budget
        retry_now(job)
        job_submit(job.pk)
        row = Job.objects.get(pk=job.pk)
        assert (row.status, row.submission) == (JobStatus.PENDING, Submission.WAITING)
    assert row.status_message.startswith("Waiting for quota: ")
    assert "account-level service limit 'ml.g5.xlarge for training job usage'" in row.status_message
    assert jobs_sweep().expired == 0, "waiting for quota is not a failure while the deadline allows"

    fake_cloud.sagemaker.complete(quota_in_use)
    retry_now(job)
    job_submit(job.pk)
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.submission) == (JobStatus.PENDING, Submission.SUBMITTED)
    assert row.status_message == ""
    assert fake_cloud.sagemaker.jobs_tagged(job.pk) == [job.remote_name]


def test_throttled_creates_come_back_after_the_clouds_retry_after(sagemaker_account, fake_cloud):
    job = sagemaker_job(sagemaker_account)
    fake_cloud.set_faults(throttle=1.0, operations=["CreateTrainingJob"])
    before = timezone.now()
    job_submit(job.pk)
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.submission) == (JobStatus.PENDING, Submission.WAITING)
    assert row.next_submit_at >= before + timedelta(seconds=30), "retry_after of a throttled account"
    assert "ThrottlingException" in row.status_message
