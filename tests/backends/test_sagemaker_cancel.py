"""Cancel is StopTrainingJob; stopping a job that already finished is not an error."""

import pytest

from backends.aws.sagemaker import SageMakerBackend
from backends.base import BackendError, RemoteRef
from tests.backends.test_sagemaker_request import JOB_ID, spec

NAME = SageMakerBackend.remote_name(JOB_ID)


@pytest.fixture
def backend(sagemaker_config):
    return SageMakerBackend(sagemaker_config)


def test_cancel_stops_the_training_job(backend, fake_cloud):
    ref = backend.submit(spec(), NAME)
    backend.cancel(ref)
    assert fake_cloud.calls[("sagemaker", "StopTrainingJob")] == 1
    assert backend.poll([ref])[ref].status == "CANCELED"


def test_stopping_reports_the_job_still_running(backend, fake_cloud):
    fake_cloud.sagemaker.stop_delay_seconds = 60
    ref = backend.submit(spec(), NAME)
    fake_cloud.sagemaker.start(NAME)
    backend.cancel(ref)
    seen = backend.poll([ref])[ref]
    assert (seen.status, seen.remote_status) == ("IN_PROGRESS", "Stopping/Stopping")


@pytest.mark.parametrize("finish", ["complete", "fail"])
def test_cancel_of_a_finished_job_is_a_no_op(backend, fake_cloud, finish):
    ref = backend.submit(spec(), NAME)
    getattr(fake_cloud.sagemaker, finish)(NAME)
    backend.cancel(ref)
    assert fake_cloud.sagemaker.status_of(NAME) in ("Completed", "Failed")


def test_cancel_twice_is_harmless(backend, fake_cloud):
    ref = backend.submit(spec(), NAME)
    backend.cancel(ref)
    backend.cancel(ref)
    assert fake_cloud.sagemaker.status_of(NAME) == "Stopped"


def test_cancel_of_an_unknown_job_is_a_permanent_error(backend, fake_cloud):
    with pytest.raises(BackendError) as caught:
        backend.cancel(RemoteRef(name="train-unknown"))
    assert caught.value.permanent


def test_console_url_links_to_the_job_in_the_aws_console(backend):
    assert backend.console_url(RemoteRef(name=NAME)) == (
        f"https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/{NAME}")
