"""poll_due_jobs: observations become transitions; fetch errors never fail a job."""

from datetime import timedelta

import pytest
from django.utils import timezone

from backends.base import UNCHANGED, BackendError, RemoteStatus
from jobs.models import Job, JobEvent, JobStatus
from jobs.polling import jobs_claim_due, jobs_poll_once
from tests.support.concurrency import run_at_once
from tests.support.jobs import make_submitted_job


@pytest.fixture
def job(acme, fake_backend):
    job = make_submitted_job(acme, backend="fake")
    fake_backend.jobs[job.remote_name] = RemoteStatus(status="PENDING", remote_status="Queued")
    return job


def test_running_job_moves_to_in_progress_with_cloud_start_time(job, fake_backend):
    started = timezone.now() - timedelta(minutes=3)
    fake_backend.jobs[job.remote_name] = RemoteStatus("IN_PROGRESS", "Training", started_at=started)
    report = jobs_poll_once()
    row = Job.objects.get(pk=job.pk)
    assert (report.claimed, report.changed) == (1, 1)
    assert row.status == JobStatus.IN_PROGRESS and row.remote_status == "Training"
    assert row.started_at == started
    assert row.last_seen_at is not None
    assert row.next_poll_at > timezone.now()


def test_failed_job_keeps_reason(job, fake_backend):
    fake_backend.jobs[job.remote_name] = RemoteStatus("FAILED", "Failed", message="OOM in step 12")
    jobs_poll_once()
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.FAILED
    assert row.status_message == "OOM in step 12"
    assert row.next_poll_at is None
    assert JobEvent.objects.get(job=job).reason == "OOM in step 12"


def test_unchanged_status_only_pushes_next_poll_out(job):
    jobs_poll_once()
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.PENDING and row.remote_status == "Queued"
    assert not JobEvent.objects.exists()


def test_unchanged_marker_counts_as_seen(job, fake_backend):
    fake_backend.jobs[job.remote_name] = UNCHANGED
    jobs_poll_once()
    row = Job.objects.get(pk=job.pk)
    assert row.last_seen_at is not None and row.poll_failures == 0
    assert row.remote_status == "" and row.status == JobStatus.PENDING


def test_fetch_error_backs_off_and_never_fails_the_job(job, fake_backend):
    fake_backend.fail_next["poll"] = BackendError("503 from the cloud")
    jobs_poll_once()
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.PENDING
    assert row.poll_failures == 1 and row.last_seen_at is None
    first_delay = row.next_poll_at - timezone.now()
    Job.objects.filter(pk=job.pk).update(next_poll_at=timezone.now())
    fake_backend.unreachable.add(job.remote_name)
    jobs_poll_once()
    row = Job.objects.get(pk=job.pk)
    assert row.poll_failures == 2
    assert row.next_poll_at - timezone.now() > first_delay, "back-off grows"


def test_unknown_native_state_keeps_status_and_shows_it(job, fake_backend):
    fake_backend.jobs[job.remote_name] = RemoteStatus(None, "Hibernating")
    jobs_poll_once()
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.PENDING and row.remote_status == "Hibernating"


def test_job_not_due_is_not_polled(job, fake_backend):
    Job.objects.filter(pk=job.pk).update(next_poll_at=timezone.now() + timedelta(minutes=5))
    assert jobs_poll_once().claimed == 0
    assert fake_backend.calls["poll"] == 0


def test_jobs_of_one_account_and_backend_are_polled_in_one_call(acme, fake_backend):
    for _ in range(5):
        job = make_submitted_job(acme, backend="fake")
        fake_backend.jobs[job.remote_name] = RemoteStatus("PENDING", "Queued")
    report = jobs_poll_once()
    assert report.claimed == 5
    assert fake_backend.calls["poll"] == 1


def test_cancel_confirmed_by_cloud_is_recorded_but_a_finish_that_came_first_wins(acme, fake_backend):
    canceled = make_submitted_job(acme, backend="fake", cancel_requested_at=timezone.now())
    finished = make_submitted_job(acme, backend="fake", cancel_requested_at=timezone.now())
    fake_backend.jobs[canceled.remote_name] = RemoteStatus("CANCELED", "Stopped")
    fake_backend.jobs[finished.remote_name] = RemoteStatus("COMPLETED", "Completed")
    jobs_poll_once()
    assert Job.objects.get(pk=canceled.pk).status == JobStatus.CANCELED
    assert Job.objects.get(pk=finished.pk).status == JobStatus.COMPLETED


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_hand_a_job_to_two_pollers(fake_backend):
    from trainsvc.accounts.services import account_create

    account = account_create(account_id="acme")
    jobs = [make_submitted_job(account, backend="fake") for _ in range(40)]
    results = run_at_once(lambda: [job.pk for job in jobs_claim_due(limit=40)], 4)
    claimed = [pk for batch in results for pk in batch]
    assert len(claimed) == len(set(claimed)), "a job was claimed twice in one cycle"
    assert set(claimed) == {job.pk for job in jobs}
