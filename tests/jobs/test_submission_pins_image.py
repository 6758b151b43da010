"""A tag in the cloud's own registry runs the digest it named when the job was first submitted: the
core asks the backend to pin it once, records it on the job (`image_digest`, `cloud_image`, which
the API shows) before the create, and every retry sends that same digest, even if the tag moved."""

import pytest

from backends.base import BackendError
from jobs.models import Job, Submission
from jobs.submission import job_submit
from tests.support.jobs import make_job

pytestmark = pytest.mark.django_db

TAGGED = "cloud.example/acme/trainer:stable"
DIGEST = "sha256:" + "1" * 64
MOVED = "sha256:" + "2" * 64


@pytest.fixture
def tagged_job(acme, fake_backend):
    return make_job(acme, backend="fake", image=TAGGED, image_digest="")


def test_a_tag_is_pinned_recorded_and_sent_by_its_digest(tagged_job, fake_backend, api, member):
    fake_backend.pins[TAGGED] = f"cloud.example/acme/trainer@{DIGEST}"
    job_submit(tagged_job.pk)

    job = Job.objects.get(pk=tagged_job.pk)
    assert job.submission == Submission.SUBMITTED
    assert [spec.image for spec in fake_backend.specs] == [f"cloud.example/acme/trainer@{DIGEST}"]
    shown = api.get(f"/v1/jobs/{job.pk}", **member.headers).json()
    assert (shown["image"], shown["image_digest"], shown["cloud_image"]) == (
        TAGGED, DIGEST, f"cloud.example/acme/trainer@{DIGEST}")


def test_a_retry_sends_the_digest_of_the_first_attempt_after_the_tag_moved(tagged_job, fake_backend):
    fake_backend.pins[TAGGED] = f"cloud.example/acme/trainer@{DIGEST}"
    fake_backend.fail_next["submit"] = BackendError("503 from the cloud")
    job_submit(tagged_job.pk)
    assert Job.objects.get(pk=tagged_job.pk).submission == Submission.WAITING

    fake_backend.pins[TAGGED] = f"cloud.example/acme/trainer@{MOVED}"  # someone pushed the tag again
    Job.objects.filter(pk=tagged_job.pk).update(next_submit_at=tagged_job.created_at)
    job_submit(tagged_job.pk)

    job = Job.objects.get(pk=tagged_job.pk)
    assert job.submission == Submission.SUBMITTED and job.image_digest == DIGEST
    assert [spec.image for spec in fake_backend.specs] == [f"cloud.example/acme/trainer@{DIGEST}"]
    assert fake_backend.calls["pin_image"] == 1


def test_a_tag_the_backend_cannot_read_runs_as_given_with_no_digest_shown(tagged_job, fake_backend):
    job_submit(tagged_job.pk)  # no pin: the backend could not read the tag (or the registry is not its own)
    job = Job.objects.get(pk=tagged_job.pk)
    assert job.submission == Submission.SUBMITTED and (job.image_digest, job.cloud_image) == ("", "")
    assert [spec.image for spec in fake_backend.specs] == [TAGGED]


def test_an_image_pinned_at_creation_is_not_pinned_again(acme, fake_backend):
    job = make_job(acme, backend="fake")  # Train's own image: its digest was pinned when the job was created
    job_submit(job.pk)
    assert fake_backend.calls["pin_image"] == 0
    assert Job.objects.get(pk=job.pk).image_digest == job.image_digest
