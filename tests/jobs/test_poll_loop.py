"""The poll loop and one poll cycle: hand-over only when it is needed, a time budget per batch, a failing
group that backs off alone, and at most one queued poll run however many submissions ask for one."""

import logging
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from backends.base import BackendError, RemoteStatus
from backends.local import LocalBackend
from jobs import queue
from jobs.models import Job, JobStatus, WorkerLease
from jobs.polling import POLL_LOOP_LEASE, jobs_claim_due, jobs_poll_once
from jobs.submission import job_submit
from jobs.tasks import poll_due_jobs
from tests.support.fake_backend import FakeBackend
from tests.support.jobs import make_job, make_submitted_job, queued_job_ids
from trainsvc.accounts.services import account_create

POLL_TASK = "jobs.tasks.poll_due_jobs"


def running(fake_backend, job):
    fake_backend.jobs[job.remote_name] = RemoteStatus("IN_PROGRESS", "Training")
    return job


# --- hand-over --------------------------------------------------------------------------------------


def test_no_hand_over_when_the_next_due_job_is_beyond_the_next_scheduled_run(transactional_db, fake_backend):
    acme = account_create(account_id="acme")
    later = timezone.now() + timedelta(seconds=settings.TRAIN_POLL_INTERVAL_SECONDS + 240)
    make_submitted_job(acme, backend="fake", next_poll_at=later)
    started = time.monotonic()
    poll_due_jobs()
    assert time.monotonic() - started < settings.TRAIN_POLL_WINDOW_SECONDS, "it did not wait for the job"
    assert queued_job_ids(POLL_TASK) == [], "a successor that polls nothing is a spin"
    assert fake_backend.calls["poll"] == 0


def test_hand_over_when_work_falls_due_before_the_next_scheduled_run(transactional_db, fake_backend):
    acme = account_create(account_id="acme")
    # Beyond this run's window, but before the schedule's next run.
    soon = timezone.now() + timedelta(seconds=settings.TRAIN_POLL_WINDOW_SECONDS + 10)
    make_submitted_job(acme, backend="fake", next_poll_at=soon)
    poll_due_jobs()
    assert len(queued_job_ids(POLL_TASK)) == 1


def test_no_hand_over_without_active_jobs(transactional_db, fake_backend):
    poll_due_jobs()
    assert queued_job_ids(POLL_TASK) == []


def test_loop_polls_what_falls_due_within_its_window_then_frees_its_lease(transactional_db, fake_backend):
    acme = account_create(account_id="acme")
    job = running(fake_backend, make_submitted_job(
        acme, backend="fake", next_poll_at=timezone.now() + timedelta(seconds=1)))
    poll_due_jobs()
    assert Job.objects.get(pk=job.pk).status == JobStatus.IN_PROGRESS
    assert WorkerLease.objects.get(name=POLL_LOOP_LEASE).held_until <= timezone.now()


def test_a_run_whose_loop_fails_still_hands_over(transactional_db, fake_backend, monkeypatch):
    acme = account_create(account_id="acme")
    make_submitted_job(acme, backend="fake", next_poll_at=timezone.now() + timedelta(seconds=30))

    def broken(**_kwargs):
        raise RuntimeError("unexpected")

    monkeypatch.setattr("jobs.tasks.jobs_poll_loop", broken)
    with pytest.raises(RuntimeError):
        poll_due_jobs()
    assert len(queued_job_ids(POLL_TASK)) == 1, "the successor is started in a finally"


# --- the budget -------------------------------------------------------------------------------------


@pytest.fixture
def slow_poll(monkeypatch):
    """FakeBackend.poll that observes one job, then spends the rest of the budget (an adapter that stops
    at the deadline and returns what it saw)."""

    def poll(self, refs, *, since=None, deadline=None):
        self.calls["poll"] += 1
        self.deadlines.append(deadline)
        while time.monotonic() < deadline:
            time.sleep(0.02)
        return {refs[0]: self.jobs[refs[0].name]}

    monkeypatch.setattr(FakeBackend, "poll", poll)


def test_a_spent_budget_stops_the_batch_and_releases_unpolled_jobs(acme, fake_backend, slow_poll):
    globex = account_create(account_id="globex")
    old = timezone.now() - timedelta(minutes=1)
    # Due one after another, so first[0] is the job the slow poll observes (ties are in no set order).
    first = [running(fake_backend, make_submitted_job(acme, backend="fake", next_poll_at=old + timedelta(seconds=i)))
             for i in range(3)]
    second = [running(fake_backend, make_submitted_job(globex, backend="fake")) for _ in range(2)]
    report = jobs_poll_once(deadline=time.monotonic() + 0.3)

    assert fake_backend.calls["poll"] == 1, "no backend call starts after the budget"
    assert (report.claimed, report.changed, report.released) == (5, 1, 4)
    now = timezone.now()
    for job in first[1:] + second:
        row = Job.objects.get(pk=job.pk)
        assert row.status == JobStatus.PENDING
        assert row.next_poll_at <= now, "released: due again at once, not withheld for the claim lease"
        assert row.poll_failures == 0, "not polled is not unreachable"
    assert Job.objects.get(pk=first[0].pk).status == JobStatus.IN_PROGRESS
    assert jobs_poll_once().claimed == 4, "the released jobs come first in the next cycle"


def test_the_budget_reaches_the_backend_and_is_cut_to_the_batch_budget(acme, fake_backend):
    make_submitted_job(acme, backend="fake")
    started = time.monotonic()
    jobs_poll_once(deadline=started + 3600)
    (deadline,) = fake_backend.deadlines
    assert started < deadline <= time.monotonic() + settings.TRAIN_POLL_BATCH_SECONDS


def test_the_budget_of_a_poll_run_ends_before_the_task_timeout(transactional_db, fake_backend):
    acme = account_create(account_id="acme")
    make_submitted_job(acme, backend="fake")
    started = time.monotonic()
    poll_due_jobs()
    assert fake_backend.deadlines
    assert max(fake_backend.deadlines) < started + settings.TRAIN_TASK_TIMEOUT_SECONDS


# --- one group's failure ------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [FileNotFoundError("run directory vanished"), BackendError("503"),
                                   KeyError("surprise")])
def test_a_failing_group_backs_off_alone_and_the_cycle_goes_on(acme, fake_backend, caplog, error):
    globex = account_create(account_id="globex")
    broken = make_submitted_job(acme, backend="fake", next_poll_at=timezone.now() - timedelta(minutes=1))
    healthy = running(fake_backend, make_submitted_job(globex, backend="fake"))
    fake_backend.fail_next["poll"] = error  # the first call: acme's group, the longest waiting
    with caplog.at_level(logging.WARNING, logger="jobs.polling"):
        report = jobs_poll_once()

    assert report.failed_groups == 1 and fake_backend.calls["poll"] == 2
    assert Job.objects.get(pk=healthy.pk).status == JobStatus.IN_PROGRESS
    row = Job.objects.get(pk=broken.pk)
    assert row.status == JobStatus.PENDING and row.poll_failures == 1
    assert row.next_poll_at > timezone.now() + timedelta(seconds=FakeBackend.poll_interval_bounds[0])
    assert any(str(error) in record.getMessage() for record in caplog.records), "logged with the exception"


def test_the_group_that_spent_the_budget_does_not_come_first_again(acme, fake_backend, slow_poll):
    globex = account_create(account_id="globex")
    old = timezone.now() - timedelta(minutes=1)
    slow = [make_submitted_job(acme, backend="fake", next_poll_at=old) for _ in range(2)]
    waiting = [running(fake_backend, make_submitted_job(globex, backend="fake")) for _ in range(2)]
    for job in slow:
        fake_backend.jobs[job.remote_name] = RemoteStatus("PENDING", "Queued")
    jobs_poll_once(deadline=time.monotonic() + 0.2)
    assert Job.objects.filter(pk__in=[job.pk for job in waiting], status=JobStatus.PENDING).count() == 2
    # Later, when every job is due again, the group left waiting goes first.
    jobs_poll_once(now=timezone.now() + timedelta(minutes=10), deadline=time.monotonic() + 0.2)
    assert Job.objects.get(pk=waiting[0].pk).status == JobStatus.IN_PROGRESS


def test_a_group_whose_poll_raises_an_unexpected_error_does_not_stop_other_groups(acme, fake_backend,
                                                                                  monkeypatch):
    from backends.local import LocalBackend

    def vanished(self, refs, **kwargs):
        raise FileNotFoundError("run directory vanished")

    monkeypatch.setattr(LocalBackend, "poll", vanished)
    globex = account_create(account_id="globex")
    local = make_submitted_job(acme, backend="local", next_poll_at=timezone.now() - timedelta(minutes=1))
    healthy = running(fake_backend, make_submitted_job(globex, backend="fake"))
    report = jobs_poll_once()
    assert Job.objects.get(pk=healthy.pk).status == JobStatus.IN_PROGRESS
    assert Job.objects.get(pk=local.pk).poll_failures == 1
    assert report.failed_groups == 1


# --- one queued poll run ------------------------------------------------------------------------------


def test_fifty_submissions_queue_at_most_one_poll_run(acme, fake_backend):
    for _ in range(50):
        job_submit(make_job(acme, backend="fake").pk)
    assert Job.objects.filter(submission="SUBMITTED").count() == 50
    assert len(queued_job_ids(POLL_TASK)) == 1


def test_a_started_run_lets_the_next_submission_queue_another(acme, fake_backend):
    job_submit(make_job(acme, backend="fake").pk)
    queue.poll_run_started()
    job_submit(make_job(acme, backend="fake").pk)
    job_submit(make_job(acme, backend="fake").pk)
    assert len(queued_job_ids(POLL_TASK)) == 2


def test_a_lost_poll_run_does_not_block_polling_for_good(acme, fake_backend):
    assert queue.enqueue_poll()
    assert not queue.enqueue_poll()
    # The queued run was lost (its worker died with it): the flag lapses by itself.
    WorkerLease.objects.filter(name=queue.POLL_QUEUED_FLAG).update(
        held_until=timezone.now() - timedelta(seconds=1))
    assert queue.enqueue_poll()
    assert len(queued_job_ids(POLL_TASK)) == 2


def test_a_killed_polls_local_jobs_are_withheld_for_seconds_only(acme, fake_backend, settings):
    settings.TRAIN_POLL_LEASE_SECONDS = 55  # the shipped claim lease, sized for a slow cloud
    local = make_submitted_job(acme, backend="local")
    cloud = make_submitted_job(acme, backend="fake")
    before = timezone.now()
    jobs_claim_due(limit=10)  # the poll that claimed them dies here
    local_until = Job.objects.get(pk=local.pk).next_poll_at
    assert local_until <= before + timedelta(seconds=LocalBackend.poll_claim_seconds + 1)
    cloud_until = Job.objects.get(pk=cloud.pk).next_poll_at
    assert cloud_until >= before + timedelta(seconds=settings.TRAIN_POLL_LEASE_SECONDS)
