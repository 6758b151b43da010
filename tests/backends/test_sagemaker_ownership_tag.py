"""A same-named training job whose train-job-id tag reads empty may be ours (tag reads lag the create):
that is transient. A different tag, or no tag on a job older than the lag, is another job's name."""

import time

import pytest

from backends.aws.sagemaker import TAG_READ_LAG, SageMakerBackend
from backends.base import BackendError
from jobs.models import Job, JobStatus, Submission
from jobs.submission import job_submit
from tests.backends.test_sagemaker_request import JOB_ID, spec
from tests.backends.test_sagemaker_submit import sagemaker_job  # noqa: F401  (fixture)

NAME = SageMakerBackend.remote_name(JOB_ID)


@pytest.fixture
def backend(sagemaker_config):
    backend = SageMakerBackend(sagemaker_config)
    backend.account_id = "acme"
    return backend


def tags_not_readable_yet(sm, name):
    sm.tags[sm.jobs[name]["TrainingJobArn"]] = []


def test_an_empty_tag_on_a_new_job_is_transient(backend, fake_cloud):
    backend.submit(spec(), NAME)
    tags_not_readable_yet(fake_cloud.sagemaker, NAME)
    for lookup in (lambda: backend.find(NAME, job_id=JOB_ID), lambda: backend.submit(spec(), NAME)):
        with pytest.raises(BackendError) as caught:
            lookup()
        assert not caught.value.permanent and "cannot be read yet" in caught.value.message


def test_once_the_tag_reads_the_job_is_adopted(backend, fake_cloud):
    created = backend.submit(spec(), NAME)
    arn = fake_cloud.sagemaker.jobs[NAME]["TrainingJobArn"]
    tags = list(fake_cloud.sagemaker.tags[arn])
    tags_not_readable_yet(fake_cloud.sagemaker, NAME)
    with pytest.raises(BackendError):
        backend.find(NAME, job_id=JOB_ID)
    fake_cloud.sagemaker.tags[arn] = tags
    assert backend.find(NAME, job_id=JOB_ID) == created


def test_another_jobs_tag_is_permanent(backend, fake_cloud):
    backend.submit(spec(job_id="job_" + "9" * 32), NAME)
    with pytest.raises(BackendError) as caught:
        backend.find(NAME, job_id=JOB_ID)
    assert caught.value.permanent


def test_no_tag_on_an_old_job_is_permanent(backend, fake_cloud):
    backend.submit(spec(), NAME)
    tags_not_readable_yet(fake_cloud.sagemaker, NAME)
    fake_cloud.sagemaker.jobs[NAME]["CreationTime"] = time.time() - TAG_READ_LAG.total_seconds() - 60
    with pytest.raises(BackendError) as caught:
        backend.find(NAME, job_id=JOB_ID)
    assert caught.value.permanent


@pytest.mark.django_db
def test_a_submission_meeting_a_lagging_tag_waits_instead_of_failing(sagemaker_job, fake_cloud):  # noqa: F811
    sm = fake_cloud.sagemaker
    Job.objects.filter(pk=sagemaker_job.pk).update(submit_attempts=1)  # an earlier attempt's answer was lost
    SageMakerBackend(sagemaker_job.backend_config).submit(spec(job_id=sagemaker_job.pk), sagemaker_job.remote_name)
    tags_not_readable_yet(sm, sagemaker_job.remote_name)
    job_submit(sagemaker_job.pk)
    row = Job.objects.get(pk=sagemaker_job.pk)
    assert (row.status, row.submission) == (JobStatus.PENDING, Submission.WAITING)
