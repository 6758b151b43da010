"""Submitting to Vertex AI exactly once without unique names: the create carries the train-job-id label,
every retry lists by that label first and adopts what it finds, and a refusal is reported as such.
Against the fake cloud over real HTTP, with Train's own credentials and the impersonation it serves."""

import pytest

from backends.base import BackendError
from backends.services import backend_for_snapshot
from tests.backends.conftest import TENANT_SA
from tests.backends.test_vertex_request import spec

pytestmark = pytest.mark.django_db


@pytest.fixture
def backend(vertex_config):
    return backend_for_snapshot(account_id="acme", name="vertex-ai", config=vertex_config)


def creates(cloud) -> int:
    return cloud.calls[("vertex", "CreateCustomJob")]


def test_a_create_makes_one_custom_job_named_by_vertex(backend, fake_cloud):
    job = spec()
    ref = backend.submit(job, backend.remote_name(job.job_id))
    assert ref.name == job.job_id
    assert ref.remote_id.startswith("projects/123456789012/locations/europe-west4/customJobs/")
    assert fake_cloud.vertex.jobs_tagged(job.job_id) == [ref.remote_id]
    assert fake_cloud.vertex.creates == [backend.build_request(job, ref.name)]
    assert fake_cloud.vertex.creators == [TENANT_SA], "created as the impersonated service account"


def test_the_fake_creates_a_second_job_for_a_repeated_create(backend, fake_cloud):
    job = spec()
    first = backend.submit(job, job.job_id)
    second = backend.submit(job, job.job_id)
    assert first.remote_id != second.remote_id and len(fake_cloud.vertex.jobs_tagged(job.job_id)) == 2
    # find follows the oldest, whichever create answered last.
    assert backend.find(job.job_id, job_id=job.job_id).remote_id == first.remote_id


def test_a_create_whose_answer_was_lost_is_found_not_repeated(backend, fake_cloud):
    job = spec()
    fake_cloud.set_faults(timeout_after_apply=1.0, operations={"CreateCustomJob"})
    ref = backend.submit(job, job.job_id)
    assert creates(fake_cloud) == 1, "the retry listed by label and adopted the job"
    assert fake_cloud.calls[("vertex", "ListCustomJobs")] >= 1
    assert fake_cloud.vertex.jobs_tagged(job.job_id) == [ref.remote_id]


def test_a_create_that_failed_before_applying_is_tried_again(backend, fake_cloud):
    job = spec()
    plan = fake_cloud.set_faults(server_error=0.5, seed=3, operations={"CreateCustomJob"})
    ref = backend.submit(job, job.job_id)
    assert fake_cloud.vertex.jobs_tagged(job.job_id) == [ref.remote_id]
    assert creates(fake_cloud) == plan.injected[("server_error", "CreateCustomJob")] + 1


def test_an_unconfirmed_create_is_a_transient_error_and_find_adopts_it_later(backend, fake_cloud):
    job = spec()
    fake_cloud.set_faults(timeout_after_apply=1.0, operations={"CreateCustomJob", "ListCustomJobs"})
    with pytest.raises(BackendError) as unsure:
        backend.submit(job, job.job_id)
    assert not unsure.value.permanent
    assert creates(fake_cloud) == 1, "no second create while the lookup could not answer"
    fake_cloud.set_faults()
    assert backend.find(job.job_id, job_id=job.job_id).remote_id == fake_cloud.vertex.jobs_tagged(job.job_id)[0]


def test_find_knows_no_job_that_was_never_created(backend, fake_cloud):
    assert backend.find("job_" + "0" * 32, job_id="job_" + "0" * 32) is None


def test_throttled_creates_wait_for_quota(backend, fake_cloud):
    fake_cloud.set_faults(throttle=1.0, operations={"CreateCustomJob"})
    with pytest.raises(BackendError) as refused:
        backend.submit(spec(), spec().job_id)
    assert refused.value.waiting == "quota" and not refused.value.permanent
    assert refused.value.retry_after == 30.0
    assert "RESOURCE_EXHAUSTED" in refused.value.message


def test_a_request_vertex_rejects_fails_permanently(backend, fake_cloud):
    job = spec(image="europe-west4-docker.pkg.dev/acme-ml/images/trainer:v1@sha256:" + "a" * 64)
    request = backend.build_request(job, job.job_id)
    request["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["imageUri"] = job.image  # repo:tag@digest
    backend.build_request = lambda *_: request
    with pytest.raises(BackendError) as rejected:
        backend.submit(job, job.job_id)
    assert rejected.value.permanent and "Invalid image URI" in rejected.value.message
    assert creates(fake_cloud) == 1


def test_a_service_account_train_may_not_impersonate_is_a_permanent_refusal(vertex_config, fake_cloud):
    other = {**vertex_config, "impersonate_service_account": "train@other-corp.iam.gserviceaccount.com"}
    backend = backend_for_snapshot(account_id="acme", name="vertex-ai", config=other)
    with pytest.raises(BackendError) as refused:
        backend.submit(spec(), spec().job_id)
    assert refused.value.permanent and "getAccessToken" in refused.value.message
    assert creates(fake_cloud) == 0
