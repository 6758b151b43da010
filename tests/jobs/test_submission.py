"""submit_job: exactly one remote job per Train job, whatever happens around the cloud call."""

from datetime import timedelta

import pytest
from django.utils import timezone

from backends.base import BackendError, RemoteStatus
from jobs.models import Job, JobEvent, JobStatus, Submission
from jobs.submission import job_submit
from tests.support.jobs import make_job, queued_job_ids


@pytest.fixture
def job(acme, fake_backend):
    return make_job(acme, backend="fake")


def test_submit_creates_remote_job_and_marks_submitted(job, fake_backend):
    job_submit(job.pk)
    row = Job.objects.get(pk=job.pk)
    assert row.submission == Submission.SUBMITTED
    assert row.status == JobStatus.PENDING
    assert row.remote_id == f"remote-{job.remote_name}"
    assert row.console_url.endswith(job.remote_name)
    assert row.submit_attempts == 1
    assert fake_backend.calls[f"create:{job.remote_name}"] == 1
    assert queued_job_ids("jobs.tasks.poll_due_jobs"), "a poll is enqueued so the first status shows quickly"


def test_second_delivery_of_the_task_does_nothing(job, fake_backend):
    job_submit(job.pk)
    job_submit(job.pk)
    assert fake_backend.calls["submit"] == 1
    assert Job.objects.get(pk=job.pk).submit_attempts == 1


def test_live_claim_blocks_a_concurrent_submitter(job, fake_backend):
    Job.objects.filter(pk=job.pk).update(submission=Submission.SUBMITTING, submit_claimed_at=timezone.now(),
                                         submit_attempts=1)
    job_submit(job.pk)
    assert fake_backend.calls["submit"] == 0


def test_stale_claim_is_taken_over_and_finds_the_remote_job_instead_of_creating(job, fake_backend, settings):
    # A worker created the remote job, then died before recording it.
    fake_backend.jobs[job.remote_name] = RemoteStatus(status="IN_PROGRESS", remote_status="Training")
    stale = timezone.now() - timedelta(seconds=settings.TRAIN_TASK_TIMEOUT_SECONDS + 1)
    Job.objects.filter(pk=job.pk).update(submission=Submission.SUBMITTING, submit_claimed_at=stale,
                                         submit_attempts=1)
    job_submit(job.pk)
    row = Job.objects.get(pk=job.pk)
    assert row.submission == Submission.SUBMITTED and row.submit_attempts == 2
    assert fake_backend.calls["find"] == 1 and fake_backend.calls["submit"] == 0


def test_transient_error_releases_the_job_for_a_retry(job, fake_backend):
    fake_backend.fail_next["submit"] = BackendError("throttled")
    job_submit(job.pk)
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.PENDING and row.submission == Submission.WAITING
    assert "throttled" in row.status_message
    job_submit(job.pk)  # the sweeper's re-delivery
    assert Job.objects.get(pk=job.pk).submission == Submission.SUBMITTED
    assert fake_backend.calls[f"create:{job.remote_name}"] == 1


def test_permanent_error_fails_the_job_with_the_reason(job, fake_backend):
    fake_backend.fail_next["submit"] = BackendError("role cannot be assumed", permanent=True)
    job_submit(job.pk)
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.FAILED
    assert row.status_message == "role cannot be assumed"
    assert JobEvent.objects.get(job=job).to_status == JobStatus.FAILED


def test_cancel_requested_before_create_cancels_without_creating(job, fake_backend):
    Job.objects.filter(pk=job.pk).update(cancel_requested_at=timezone.now())
    job_submit(job.pk)
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELED
    assert fake_backend.calls["submit"] == 0


def test_cancel_arriving_during_submission_is_sent_after_create(job, fake_backend, monkeypatch):
    original = fake_backend.submit

    def submit_then_user_cancels(self, spec, name):
        ref = original(self, spec, name)
        Job.objects.filter(pk=job.pk).update(cancel_requested_at=timezone.now())
        return ref

    monkeypatch.setattr(fake_backend, "submit", submit_then_user_cancels)
    job_submit(job.pk)
    assert Job.objects.get(pk=job.pk).submission == Submission.SUBMITTED
    assert queued_job_ids("jobs.tasks.cancel_job"), "the cancellation must reach the backend"


def test_terminal_job_is_never_submitted(job, fake_backend):
    job.transition(JobStatus.CANCELED)
    job_submit(job.pk)
    assert fake_backend.calls["submit"] == 0
