"""Editing an account's SageMaker configuration (region, assumed role) while jobs run affects new jobs
only: the running ones are still polled, finished and cancelled in their own region, as their role."""

from datetime import timedelta

import pytest
from django.utils import timezone

from backends.aws.sagemaker import SageMakerBackend
from backends.base import UNCHANGED, RemoteRef
from backends.services import backend_configure
from jobs.models import Job, JobEvent, JobStatus
from jobs.polling import jobs_poll_once
from jobs.services import job_cancel
from jobs.submission import job_cancel_remote, job_submit
from tests.backends.conftest import EXECUTION_ROLE, GATEWAY_ROLE, fake_cloud_endpoints
from tests.backends.test_sagemaker_request import ECR_IMAGE
from tests.fakecloud.sagemaker import FakeSageMaker
from tests.support.jobs import make_job

pytestmark = pytest.mark.django_db
OTHER_ROLE = "arn:aws:iam::210987654321:role/TrainGateway"
JOBS = 4  # more than SageMakerBackend describes one by one: polled by Search


def sagemaker_job(account) -> Job:
    job = make_job(account, backend="sagemaker", image=f"{ECR_IMAGE}:v1", image_digest="",
                   resources={"machine_type": "ml.g5.xlarge", "instance_count": 1})
    Job.objects.filter(pk=job.pk).update(remote_name=SageMakerBackend.remote_name(job.id))
    job_submit(job.pk)
    return Job.objects.get(pk=job.pk)


def poll_now() -> None:
    Job.objects.filter(status__in=[JobStatus.PENDING, JobStatus.IN_PROGRESS]).update(next_poll_at=timezone.now())
    jobs_poll_once()


@pytest.fixture
def us_east(fake_cloud):
    """SageMaker in us-east-1: where the edited configuration points."""
    other = fake_cloud.add(FakeSageMaker(region="us-east-1")).bind(fake_cloud)
    other.name = "sagemaker-us-east-1"
    return other


def test_running_jobs_finish_and_cancel_in_their_own_region_after_an_edit(sagemaker_account, fake_cloud, us_east,
                                                                          operator):
    sm = fake_cloud.sagemaker
    jobs = [sagemaker_job(sagemaker_account) for _ in range(JOBS)]
    poll_now()  # first sight of each: by name
    assert all(Job.objects.get(pk=job.pk).last_seen_at for job in jobs)

    backend_configure(account=sagemaker_account, name="sagemaker", config={
        "region": "us-east-1", "execution_role_arn": EXECUTION_ROLE, "output_s3_uri": "s3://acme-models/train",
        "assume_role_arn": OTHER_ROLE, **fake_cloud_endpoints(fake_cloud)})
    done, canceled = jobs[0], jobs[1]
    sm.start(done.remote_name)
    sm.complete(done.remote_name)
    poll_now()  # "modified since": a Search in eu-west-1, as the jobs were submitted
    assert Job.objects.get(pk=done.pk).status == JobStatus.COMPLETED

    job_cancel(job=Job.objects.get(pk=canceled.pk), actor=f"api:{operator.key.key_id}")
    job_cancel_remote(canceled.pk)
    assert sm.status_of(canceled.remote_name) in ("Stopping", "Stopped")
    poll_now()
    assert Job.objects.get(pk=canceled.pk).status == JobStatus.CANCELED
    assert JobEvent.objects.get(job=canceled, to_status=JobStatus.CANCELED).actor == f"api:{operator.key.key_id}"

    assert not [call for call in fake_cloud.calls if call[0] == us_east.name], "nothing went to the new region"
    roles = {c.get("RoleArn") for c in fake_cloud.forwarded if c.get("Action") == "AssumeRole"}
    assert roles == {GATEWAY_ROLE}, "the old jobs are still reached as the role they were created with"

    newer = sagemaker_job(sagemaker_account)
    assert newer.remote_id.startswith("arn:aws:sagemaker:us-east-1:"), "a new job takes the new configuration"
    assert us_east.jobs_tagged(newer.pk) == [newer.remote_name]


def test_a_job_the_search_cannot_see_is_never_called_unchanged(sagemaker_account, sagemaker_config, fake_cloud,
                                                               us_east):
    jobs = [sagemaker_job(sagemaker_account) for _ in range(JOBS)]
    elsewhere = SageMakerBackend(dict(sagemaker_config, region="us-east-1"))  # a Search in another region
    elsewhere.account_id = sagemaker_account.pk
    refs = [RemoteRef(name=job.remote_name, remote_id=job.remote_id) for job in jobs]
    seen = elsewhere.poll(refs, since=timezone.now() - timedelta(minutes=1))
    assert fake_cloud.calls[(us_east.name, "Search")] == 1
    assert UNCHANGED not in seen.values(), "jobs the query could not return are not reported healthy"
