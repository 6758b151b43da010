"""Submission retries are paced by time (next_submit_at, back-off with jitter, the cloud's retry_after)
and budgeted by the pending deadline, never by a count of attempts."""

from datetime import timedelta

import pytest
from django.utils import timezone

from backends.base import WAITING_QUOTA, BackendError
from jobs.models import Job, JobStatus, Submission
from jobs.retries import SUBMIT_BACKOFF_BASE_SECONDS, submit_retry_at
from jobs.submission import job_submit, jobs_due_for_submission
from jobs.sweeping import jobs_sweep
from tests.support.jobs import make_job, queued_tasks


@pytest.fixture
def job(acme, fake_backend):
    return make_job(acme, backend="fake")


def test_a_transient_error_sets_the_next_attempt_in_the_future(job, fake_backend):
    fake_backend.fail_next["submit"] = BackendError("503 from the cloud")
    before = timezone.now()
    job_submit(job.pk)
    row = Job.objects.get(pk=job.pk)
    assert row.submission == Submission.WAITING
    assert before + timedelta(seconds=SUBMIT_BACKOFF_BASE_SECONDS / 2) <= row.next_submit_at
    report = jobs_sweep()
    assert (report.resubmitted, report.submission_runs) == (0, 0), "nothing is due before the retry time"
    assert queued_tasks() == []


def test_the_sweeper_hands_out_a_job_once_its_retry_is_due(job, fake_backend):
    fake_backend.fail_next["submit"] = BackendError("503 from the cloud")
    job_submit(job.pk)
    due = Job.objects.get(pk=job.pk).next_submit_at
    later = due + timedelta(seconds=1)
    assert list(jobs_due_for_submission(now=later).values_list("pk", flat=True)) == [job.pk]
    assert jobs_sweep(now=later).submission_runs == 1
    assert [func for func, _args in queued_tasks()] == ["jobs.tasks.submit_due_jobs"]


def test_retry_after_from_the_cloud_is_honoured(job, fake_backend):
    fake_backend.fail_next["submit"] = BackendError("slow down", retry_after=600)
    before = timezone.now()
    job_submit(job.pk)
    assert Job.objects.get(pk=job.pk).next_submit_at >= before + timedelta(seconds=600)


def test_back_off_doubles_with_jitter_and_is_capped():
    now = timezone.now()
    low = [submit_retry_at(now=now, attempt=n, retry_after=None, rng=_Fixed(0.0)) - now for n in (1, 2, 3)]
    assert low[1] == 2 * low[0] and low[2] == 4 * low[0]
    spread = {submit_retry_at(now=now, attempt=3, retry_after=None) for _ in range(20)}
    assert len(spread) > 1, "jobs refused together do not come back together"
    assert submit_retry_at(now=now, attempt=50, retry_after=None) - now <= timedelta(minutes=15)


def test_many_failed_attempts_do_not_fail_the_job_before_its_deadline(job, fake_backend):
    fake_backend.failing["submit"] = BackendError("503 from the cloud")
    for _ in range(12):
        Job.objects.filter(pk=job.pk).update(next_submit_at=timezone.now())
        job_submit(job.pk)
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.PENDING and row.submit_attempts == 12
    del fake_backend.failing["submit"]
    job_submit(job.pk)
    assert Job.objects.get(pk=job.pk).submission == Submission.SUBMITTED


def test_killed_attempts_do_not_burn_the_budget(job, fake_backend, settings):
    # Ten workers died mid-attempt: each left a stale claim and a counted attempt, and no answer.
    stale = timezone.now() - timedelta(seconds=settings.TRAIN_TASK_TIMEOUT_SECONDS + 1)
    Job.objects.filter(pk=job.pk).update(submission=Submission.SUBMITTING, submit_claimed_at=stale,
                                         submit_attempts=10)
    job_submit(job.pk)
    row = Job.objects.get(pk=job.pk)
    assert row.submission == Submission.SUBMITTED and row.status == JobStatus.PENDING
    assert fake_backend.calls["find"] == 1, "an earlier attempt may have created it: looked up first"


def test_a_quota_refusal_keeps_the_job_pending_quoting_the_cloud(job, fake_backend):
    fake_backend.fail_next["submit"] = BackendError("ResourceLimitExceeded: 1 ml.g5.xlarge in use",
                                                    permanent=True, waiting=WAITING_QUOTA)
    job_submit(job.pk)
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.PENDING and row.submission == Submission.WAITING
    assert row.status_message == "Waiting for quota: ResourceLimitExceeded: 1 ml.g5.xlarge in use"


def test_the_pending_deadline_ends_the_wait(job, fake_backend):
    fake_backend.failing["submit"] = BackendError("no quota", waiting=WAITING_QUOTA)
    job_submit(job.pk)
    Job.objects.filter(pk=job.pk).update(pending_deadline_at=timezone.now() - timedelta(seconds=1))
    assert jobs_sweep().expired == 1
    assert Job.objects.get(pk=job.pk).status == JobStatus.EXPIRED


class _Fixed:
    def __init__(self, value):
        self.value = value

    def uniform(self, low, high):
        return low + (high - low) * self.value
