"""The sweep re-drives lost work and expires jobs stuck in PENDING."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Job, JobEvent, JobStatus, Submission
from jobs.sweeping import jobs_sweep
from jobs.tasks import submit_due_jobs
from tests.support.jobs import make_job, make_submitted_job, queued_job_ids


@pytest.fixture
def long_ago(settings):
    return timezone.now() - timedelta(seconds=settings.TRAIN_PENDING_DEADLINE_SECONDS + 60)


def test_waiting_job_whose_task_was_lost_is_resubmitted(acme, fake_backend):
    job = make_job(acme, backend="fake", created_at=timezone.now() - timedelta(minutes=5))
    fresh = make_job(acme, backend="fake")
    report = jobs_sweep()
    assert report.resubmitted == 1
    assert queued_job_ids("jobs.tasks.submit_job") == [job.pk]
    assert fresh.pk not in queued_job_ids("jobs.tasks.submit_job")


def test_submission_claimed_by_a_dead_worker_is_resubmitted(acme, fake_backend, settings):
    stale = timezone.now() - timedelta(seconds=settings.TRAIN_TASK_TIMEOUT_SECONDS + 5)
    job = make_job(acme, backend="fake", submission=Submission.SUBMITTING, submit_claimed_at=stale)
    live = make_job(acme, backend="fake", submission=Submission.SUBMITTING, submit_claimed_at=timezone.now())
    assert jobs_sweep().submission_runs == 1
    assert queued_job_ids("jobs.tasks.submit_due_jobs") == [None], "a submission run takes it over"
    submit_due_jobs()
    assert Job.objects.get(pk=job.pk).submission == Submission.SUBMITTED
    assert Job.objects.get(pk=job.pk).submit_attempts == job.submit_attempts + 1
    assert Job.objects.get(pk=live.pk).submission == Submission.SUBMITTING, "a live claim is left alone"


def test_unconfirmed_cancel_is_sent_again(acme, fake_backend):
    job = make_submitted_job(acme, backend="fake", cancel_requested_at=timezone.now() - timedelta(minutes=5),
                             next_cancel_at=timezone.now() - timedelta(seconds=1))
    assert jobs_sweep().cancels_resent == 1
    assert queued_job_ids("jobs.tasks.cancel_job") == [job.pk]


def test_never_submitted_job_past_the_pending_deadline_expires(acme, fake_backend, long_ago):
    job = make_job(acme, backend="fake", created_at=long_ago)
    assert jobs_sweep().expired == 1
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.EXPIRED and "PENDING" in row.status_message
    assert JobEvent.objects.get(job=job).to_status == JobStatus.EXPIRED


def test_job_being_submitted_is_not_expired(acme, fake_backend, long_ago):
    job = make_job(acme, backend="fake", created_at=long_ago, submission=Submission.SUBMITTING,
                   submit_claimed_at=timezone.now())
    jobs_sweep()
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING


def test_running_job_is_not_expired_by_the_pending_deadline(acme, fake_backend, long_ago):
    job = make_submitted_job(acme, backend="fake", created_at=long_ago, status=JobStatus.IN_PROGRESS)
    jobs_sweep()
    assert Job.objects.get(pk=job.pk).status == JobStatus.IN_PROGRESS
