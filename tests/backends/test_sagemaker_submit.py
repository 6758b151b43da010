"""Exactly one training job per Train job: the create request as sent, adoption on ResourceInUse, and
a create whose answer was lost looked up before any retry."""

from datetime import timedelta

import pytest
from botocore.stub import Stubber
from django.utils import timezone

from backends.aws import sagemaker
from backends.aws.sagemaker import CREATE_TRIES, SageMakerBackend, build_request
from backends.base import BackendError, RemoteRef
from jobs.models import Job, Submission
from jobs.submission import job_submit
from tests.backends.test_sagemaker_request import ECR_IMAGE, JOB_ID, spec
from tests.support.jobs import make_job
from trainsvc.faults import InjectedFault

NAME = SageMakerBackend.remote_name(JOB_ID)


@pytest.fixture
def backend(sagemaker_config):
    backend = SageMakerBackend(sagemaker_config)
    backend.account_id = "acme"
    return backend


def test_the_create_request_is_exactly_the_translation(backend):
    job = spec()
    arn = f"arn:aws:sagemaker:eu-west-1:123456789012:training-job/{NAME}"
    with Stubber(backend.clients.sagemaker_create) as stub:
        stub.add_response("create_training_job", {"TrainingJobArn": arn}, build_request(job, NAME, backend.config))
        assert backend.submit(job, NAME) == RemoteRef(name=NAME, remote_id=arn)
        stub.assert_no_pending_responses()


def test_a_second_submit_adopts_the_job_instead_of_creating_another(backend, fake_cloud):
    first = backend.submit(spec(), NAME)
    second = backend.submit(spec(), NAME)
    assert first == second
    assert fake_cloud.sagemaker.jobs_tagged(JOB_ID) == [NAME]
    assert fake_cloud.calls[("sagemaker", "CreateTrainingJob")] == 2
    assert len(fake_cloud.sagemaker.creates) == 1


def test_a_name_taken_by_another_job_is_a_permanent_error(backend):
    backend.submit(spec(job_id="job_" + "1" * 32), NAME)
    with pytest.raises(BackendError) as caught:
        backend.submit(spec(), NAME)
    assert caught.value.permanent
    assert "not created by Train for this job" in caught.value.message


def test_a_create_that_timed_out_after_it_was_applied_is_found_not_repeated(backend, fake_cloud):
    fake_cloud.set_faults(timeout_after_apply=1.0, operations={"CreateTrainingJob"})
    ref = backend.submit(spec(), NAME)
    assert ref.name == NAME and ref.remote_id.endswith(NAME)
    assert fake_cloud.calls[("sagemaker", "CreateTrainingJob")] == 1, "looked up, not created again"
    assert fake_cloud.calls[("sagemaker", "DescribeTrainingJob")] >= 1
    assert fake_cloud.sagemaker.jobs_tagged(JOB_ID) == [NAME]


def test_creates_that_never_arrive_are_retried_after_a_lookup_then_released(backend, fake_cloud, monkeypatch):
    monkeypatch.setattr(sagemaker, "CREATE_BACKOFF_SECONDS", 0.01)
    fake_cloud.set_faults(timeout=1.0, operations={"CreateTrainingJob"})
    with pytest.raises(BackendError) as caught:
        backend.submit(spec(), NAME)
    assert not caught.value.permanent
    assert fake_cloud.calls[("sagemaker", "CreateTrainingJob")] == CREATE_TRIES
    assert fake_cloud.calls[("sagemaker", "DescribeTrainingJob")] == CREATE_TRIES
    assert fake_cloud.sagemaker.names() == []


def test_a_throttled_create_is_retried_without_a_lookup(backend, fake_cloud):
    arn = f"arn:aws:sagemaker:eu-west-1:123456789012:training-job/{NAME}"
    with Stubber(backend.clients.sagemaker_create) as stub:
        stub.add_client_error("create_training_job", "ThrottlingException", "Rate exceeded", 400)
        stub.add_response("create_training_job", {"TrainingJobArn": arn})
        assert backend.submit(spec(), NAME).remote_id == arn
    assert fake_cloud.calls[("sagemaker", "DescribeTrainingJob")] == 0


@pytest.mark.parametrize(("code", "permanent"), [
    ("ValidationException", True), ("AccessDeniedException", True), ("ResourceLimitExceeded", False),
])
def test_refusals_become_backend_errors(backend, code, permanent):
    with Stubber(backend.clients.sagemaker_create) as stub:
        stub.add_client_error("create_training_job", code, "no", 400)
        with pytest.raises(BackendError) as caught:
            backend.submit(spec(), NAME)
    assert caught.value.permanent is permanent
    assert code in caught.value.message


def test_find_returns_only_the_job_train_created_under_that_name(backend):
    assert backend.find(NAME, job_id=JOB_ID) is None
    created = backend.submit(spec(), NAME)
    assert backend.find(NAME, job_id=JOB_ID) == created
    other_id = "job_" + "2" * 32
    other = SageMakerBackend.remote_name(other_id)
    backend.submit(spec(job_id="job_" + "3" * 32), other)
    with pytest.raises(BackendError) as caught:
        backend.find(other, job_id=other_id)
    assert caught.value.permanent


# --- through the submission service ---------------------------------------------------------------------
@pytest.fixture
def sagemaker_job(sagemaker_account):
    job = make_job(sagemaker_account, backend="sagemaker", image=f"{ECR_IMAGE}:v1", image_digest="",
                   resources={"machine_type": "ml.g5.xlarge", "instance_count": 1})
    Job.objects.filter(pk=job.pk).update(remote_name=SageMakerBackend.remote_name(job.id))
    return Job.objects.get(pk=job.pk)


@pytest.mark.django_db
def test_submission_records_the_training_job(sagemaker_job, fake_cloud):
    job_submit(sagemaker_job.id)
    job = Job.objects.get(pk=sagemaker_job.pk)
    assert job.submission == Submission.SUBMITTED
    assert job.remote_id == f"arn:aws:sagemaker:eu-west-1:123456789012:training-job/{job.remote_name}"
    assert job.console_url.endswith(f"#/jobs/{job.remote_name}")
    assert job.submit_attempts == 1
    assert fake_cloud.sagemaker.jobs_tagged(job.id) == [job.remote_name]


@pytest.mark.django_db
def test_a_crash_after_the_create_is_recovered_by_finding_the_job(sagemaker_job, fake_cloud, settings,
                                                                 fresh_faults):
    settings.TRAIN_FAULTS = "submit_after_create:raise"
    with pytest.raises(InjectedFault):
        job_submit(sagemaker_job.id)
    assert Job.objects.get(pk=sagemaker_job.pk).submission == Submission.SUBMITTING
    # The claim outlives the task timeout: the sweeper's redelivery may claim it again.
    Job.objects.filter(pk=sagemaker_job.pk).update(submit_claimed_at=timezone.now() - timedelta(minutes=5))
    job_submit(sagemaker_job.id)
    job = Job.objects.get(pk=sagemaker_job.pk)
    assert (job.submission, job.submit_attempts) == (Submission.SUBMITTED, 2)
    assert len(fake_cloud.sagemaker.creates) == 1
    assert fake_cloud.calls[("sagemaker", "CreateTrainingJob")] == 1, "the retry found the job first"
    assert fake_cloud.sagemaker.jobs_tagged(job.id) == [job.remote_name]
