"""The MIRRORING submission stage: a job on an image in Train's registry, for a backend whose cloud pulls
from a registry of its own (here a real Distribution registry), waits for the shared copy of its pinned
digest there, burning no attempt, and is then submitted with that copy by digest."""

from datetime import timedelta
from functools import partialmethod

import pytest
from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import OrmQ

from backends.base import BackendError
from backends.models import BackendConfig
from jobs.models import Job, JobStatus, Submission
from jobs.services import job_cancel
from jobs.submission import job_submit
from jobs.sweeping import jobs_sweep
from registry.client import OciClient
from registry.models import Mirror, MirrorState
from tests.registry.conftest import v2_operator  # noqa: F401 (a fixture)
from tests.registry.test_mirror_copier import PASSWORD, USER, pulled, push_layers
from tests.support.distribution import distribution
from tests.support.jobs import make_job, queued_tasks

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MIRROR_TASK, SUBMIT_TASK = "jobs.tasks.mirror_image", "jobs.tasks.submit_job"


@pytest.fixture
def target_registry(tmp_path):
    with distribution(tmp_path / "distribution", users={USER: PASSWORD}) as base:
        yield base


@pytest.fixture
def mirroring_backend(fake_backend, target_registry):
    fake_backend.mirror_to = target_registry
    fake_backend.mirror_credentials = (USER, PASSWORD)
    return fake_backend


@pytest.fixture
def pushed(v2_operator):  # noqa: F811
    layers = [f"job layer {i} ".encode() * 300 for i in range(2)]
    return push_layers(v2_operator, "acme/trainer", layers)


def train_job(account, digest) -> Job:
    return make_job(account, backend="fake", image=f"{settings.TRAIN_REGISTRY_HOST}/acme/trainer:v1",
                    image_digest=digest)


def run_queued(func_name: str) -> int:
    """Run (and drop) every queued task `func_name`, as a worker would; returns how many ran."""
    tasks = [(row.pk, row.func(), tuple(row.args() or ())) for row in OrmQ.objects.order_by("id")]
    ran = 0
    for pk, func, args in tasks:
        if func == func_name:
            OrmQ.objects.filter(pk=pk).delete()
            import_string(func)(*args)
            ran += 1
    return ran


def queued(func_name: str) -> list[tuple]:
    return [args for func, args in queued_tasks() if func == func_name]


def test_a_job_waits_for_its_mirror_then_is_submitted_with_it_by_digest(
        api, operator, acme, mirroring_backend, target_registry, pushed):
    job = train_job(acme, pushed)
    job_submit(job.pk)
    waiting = Job.objects.get(pk=job.pk)
    assert (waiting.status, waiting.submission, waiting.submit_attempts) == (
        JobStatus.PENDING, Submission.MIRRORING, 0)
    assert mirroring_backend.calls["submit"] == 0, "no cloud call before the image is there"
    shown = api.get(f"/v1/jobs/{job.pk}", **operator.headers).json()
    assert shown["status"] == "PENDING"
    assert shown["sub_status"].startswith("mirroring to the test registry")
    assert shown["cloud_image"] == ""

    assert run_queued(MIRROR_TASK) == 1
    assert Mirror.objects.get().state == MirrorState.DONE
    assert run_queued(SUBMIT_TASK) == 1  # the finished mirror re-drove the job
    submitted = Job.objects.get(pk=job.pk)
    host = target_registry.split("://", 1)[1]
    assert submitted.submission == Submission.SUBMITTED
    assert submitted.cloud_image == f"{host}/train/acme/trainer@{pushed}"
    assert submitted.submit_attempts == 1, "waiting for the mirror burned no attempt"
    assert mirroring_backend.specs[-1].image == submitted.cloud_image
    assert api.get(f"/v1/jobs/{job.pk}", **operator.headers).json()["cloud_image"] == submitted.cloud_image
    assert pulled(target_registry, "train/acme/trainer", pushed).headers["Docker-Content-Digest"] == pushed


def test_jobs_of_one_image_share_one_mirror_and_a_later_one_starts_at_once(acme, mirroring_backend, pushed):
    first, second = train_job(acme, pushed), train_job(acme, pushed)
    job_submit(first.pk)
    job_submit(second.pk)
    assert Mirror.objects.count() == 1
    assert {Job.objects.get(pk=j.pk).mirror_id for j in (first, second)} == {Mirror.objects.get().pk}
    run_queued(MIRROR_TASK)  # two deliveries: one copies, the other finds it done
    assert Mirror.objects.get().attempts == 1, "the image was copied once"
    assert run_queued(SUBMIT_TASK) >= 2
    assert {Job.objects.get(pk=j.pk).submission for j in (first, second)} == {Submission.SUBMITTED}

    later = train_job(acme, pushed)
    job_submit(later.pk)
    assert Job.objects.get(pk=later.pk).submission == Submission.SUBMITTED
    assert queued(MIRROR_TASK) == []
    assert Mirror.objects.get().attempts == 1


def test_a_refused_mirror_fails_the_job_with_the_reason(acme, mirroring_backend, pushed):
    mirroring_backend.mirror_credentials = (USER, "wrong password")
    job = train_job(acme, pushed)
    job_submit(job.pk)
    run_queued(MIRROR_TASK)
    assert Mirror.objects.get().state == MirrorState.FAILED
    run_queued(SUBMIT_TASK)
    failed = Job.objects.get(pk=job.pk)
    assert failed.status == JobStatus.FAILED
    assert "mirroring to the test registry failed" in failed.status_message
    assert "401" in failed.status_message
    assert failed.events.last().reason == failed.status_message
    assert mirroring_backend.calls["submit"] == 0


def test_an_unreachable_target_keeps_the_job_waiting_and_the_sweeper_retries(acme, mirroring_backend, pushed,
                                                                              monkeypatch, api, operator):
    mirroring_backend.mirror_to = "http://127.0.0.1:9"
    monkeypatch.setattr(OciClient, "__init__", partialmethod(OciClient.__init__, max_tries=1, backoff_seconds=0))
    job = train_job(acme, pushed)
    job_submit(job.pk)
    run_queued(MIRROR_TASK)
    mirror = Mirror.objects.get()
    assert mirror.state == MirrorState.PENDING and mirror.error
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING
    assert "retrying" in api.get(f"/v1/jobs/{job.pk}", **operator.headers).json()["sub_status"]
    jobs_sweep(now=timezone.now())
    assert queued(MIRROR_TASK) == [], "not due before the mirror's own retry time"
    jobs_sweep(now=mirror.next_attempt_at + timedelta(seconds=1))
    assert queued(MIRROR_TASK) == [(mirror.pk, job.pk, "")]


def test_the_sweeper_hands_jobs_of_an_ended_mirror_back_to_a_submitter(acme, mirroring_backend, pushed):
    job = train_job(acme, pushed)
    job_submit(job.pk)
    OrmQ.objects.all().delete()  # the mirror task was lost
    Mirror.objects.update(state=MirrorState.FAILED, error="refused")
    jobs_sweep()
    assert queued(SUBMIT_TASK) == [(job.pk,)]
    run_queued(SUBMIT_TASK)
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED


def test_cancel_while_mirroring_is_immediate_and_the_shared_mirror_goes_on(acme, mirroring_backend, pushed):
    canceled, other = train_job(acme, pushed), train_job(acme, pushed)
    job_submit(canceled.pk)
    job_submit(other.pk)
    job_cancel(job=Job.objects.get(pk=canceled.pk), actor="api:test")
    assert Job.objects.get(pk=canceled.pk).status == JobStatus.CANCELED
    run_queued(MIRROR_TASK)
    assert Mirror.objects.get().state == MirrorState.DONE
    run_queued(SUBMIT_TASK)
    assert Job.objects.get(pk=other.pk).submission == Submission.SUBMITTED
    assert Job.objects.get(pk=canceled.pk).status == JobStatus.CANCELED
    assert mirroring_backend.calls["submit"] == 1


def test_mirror_on_push_starts_the_copy_before_any_job(acme, mirroring_backend, v2_operator, target_registry):  # noqa: F811
    BackendConfig.objects.create(account=acme, backend="fake", config={"mirror_on_push": True})
    digest = push_layers(v2_operator, "acme/trainer", [b"pushed layer " * 100])
    assert [args[2] for args in queued(MIRROR_TASK)] == ["fake"]
    run_queued(MIRROR_TASK)
    mirror = Mirror.objects.get()
    assert (mirror.manifest_digest, mirror.state) == (digest, MirrorState.DONE)
    assert pulled(target_registry, "train/acme/trainer", digest).headers["Docker-Content-Digest"] == digest


def test_without_mirror_on_push_a_push_starts_nothing(acme, mirroring_backend, v2_operator):  # noqa: F811
    BackendConfig.objects.create(account=acme, backend="fake", config={})
    push_layers(v2_operator, "acme/trainer", [b"pushed layer " * 100])
    assert queued(MIRROR_TASK) == []
    assert not Mirror.objects.exists()


def test_a_job_still_mirroring_at_its_pending_deadline_expires(acme, mirroring_backend, pushed):
    job = train_job(acme, pushed)
    job_submit(job.pk)
    Job.objects.filter(pk=job.pk).update(pending_deadline_at=timezone.now() - timedelta(seconds=1))
    jobs_sweep()
    expired = Job.objects.get(pk=job.pk)
    assert expired.status == JobStatus.EXPIRED
    assert expired.events.last().effects == [], "nothing reached the cloud: nothing to stop"


def test_a_target_the_backend_cannot_prepare_now_is_retried_by_time(acme, mirroring_backend, pushed, monkeypatch):
    def unavailable(self, repository):
        raise BackendError("STS is unavailable")

    monkeypatch.setattr(mirroring_backend, "mirror_target", unavailable)
    job = train_job(acme, pushed)
    job_submit(job.pk)
    waiting = Job.objects.get(pk=job.pk)
    assert (waiting.status, waiting.submission, waiting.submit_attempts) == (JobStatus.PENDING, Submission.WAITING, 0)
    assert waiting.next_submit_at > timezone.now()
    assert "STS is unavailable" in waiting.status_message
