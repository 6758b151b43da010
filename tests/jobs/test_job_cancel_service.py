"""job_cancel and the cancel task, below the API."""

import pytest
from django_q.models import OrmQ

from jobs.models import Job, JobEvent, JobStatus, Submission
from jobs.services import JobConflict, job_cancel
from jobs.submission import job_cancel_remote
from tests.support.jobs import make_job, make_submitted_job


def test_never_submitted_job_is_canceled_at_once(acme, fake_backend):
    job = make_job(acme, backend="fake")
    job = job_cancel(job=job, actor="admin:olivia")
    assert job.status == JobStatus.CANCELED and job.cancel_requested_at is not None
    event = JobEvent.objects.get(job=job)
    assert event.actor == "admin:olivia"
    assert not OrmQ.objects.exists()


def test_submitted_job_gets_cancel_requested_and_a_cancel_task(acme, fake_backend):
    job = make_submitted_job(acme, backend="fake", status=JobStatus.IN_PROGRESS)
    job = job_cancel(job=job)
    assert job.status == JobStatus.IN_PROGRESS and job.cancel_requested_at is not None
    assert [t.func() for t in OrmQ.objects.all()] == ["jobs.tasks.cancel_job"]


def test_job_being_submitted_only_records_the_request(acme, fake_backend):
    job = make_job(acme, backend="fake", submission=Submission.SUBMITTING)
    job = job_cancel(job=job)
    assert job.status == JobStatus.PENDING and job.cancel_requested_at is not None
    assert not OrmQ.objects.exists(), "the submitter sends it once the remote job exists"


def test_finished_job_cannot_be_canceled(acme, fake_backend):
    job = make_job(acme, backend="fake")
    job.transition(JobStatus.COMPLETED)
    with pytest.raises(JobConflict):
        job_cancel(job=job)
    assert Job.objects.get(pk=job.pk).cancel_requested_at is None


def test_cancel_task_asks_the_backend_and_polls_soon(acme, fake_backend):
    job = make_submitted_job(acme, backend="fake", status=JobStatus.IN_PROGRESS)
    job_cancel(job=job)
    job_cancel_remote(job.pk)
    job_cancel_remote(job.pk)  # delivered twice: harmless
    assert fake_backend.canceled == [job.remote_name, job.remote_name]


def test_cancel_task_ignores_a_job_that_finished_meanwhile(acme, fake_backend):
    job = make_submitted_job(acme, backend="fake", status=JobStatus.IN_PROGRESS)
    job_cancel(job=job)
    Job.objects.get(pk=job.pk).transition(JobStatus.COMPLETED)
    job_cancel_remote(job.pk)
    assert fake_backend.canceled == []
