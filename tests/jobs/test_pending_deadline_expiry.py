"""The pending-deadline sweep wins its EXPIRED transition first; stopping the remote copy is the
effect of that edge, so a job that moved on meanwhile is never stopped."""

from datetime import timedelta

import pytest
from django.utils import timezone

from backends.base import BackendError, RemoteStatus
from jobs.models import Effect, Job, JobEvent, JobStatus, Submission
from jobs.polling import jobs_poll_once
from jobs.sweeping import jobs_sweep
from tests.support.jobs import make_job, make_submitted_job, queued_job_ids, run_queued


@pytest.fixture
def overdue(settings):
    return {"pending_deadline_at": timezone.now() - timedelta(seconds=1)}


def test_a_submitted_job_is_expired_then_stopped_remotely(acme, fake_backend, overdue):
    job = make_submitted_job(acme, backend="fake", **overdue)
    fake_backend.jobs[job.remote_name] = RemoteStatus("PENDING", "Queued")
    assert jobs_sweep().expired == 1
    assert fake_backend.canceled == [], "nothing is stopped before the transition is won"
    event = JobEvent.objects.get(job=job, to_status=JobStatus.EXPIRED)
    assert event.effects == [Effect.STOP_REMOTE]
    run_queued("jobs.tasks.run_job_effects")
    assert fake_backend.canceled == [job.remote_name]
    assert Job.objects.get(pk=job.pk).status == JobStatus.EXPIRED


def test_the_stopped_job_is_not_recorded_canceled_afterwards(acme, fake_backend, overdue):
    job = make_submitted_job(acme, backend="fake", **overdue)
    jobs_sweep()
    run_queued("jobs.tasks.run_job_effects")
    fake_backend.jobs[job.remote_name] = RemoteStatus("CANCELED", "Stopped")
    Job.objects.filter(pk=job.pk).update(next_poll_at=timezone.now())
    jobs_poll_once()
    assert Job.objects.get(pk=job.pk).status == JobStatus.EXPIRED
    assert list(JobEvent.objects.filter(job=job).values_list("to_status", flat=True)) == [JobStatus.EXPIRED]


def test_a_job_that_got_capacity_first_is_never_stopped(acme, fake_backend, overdue, monkeypatch):
    job = make_submitted_job(acme, backend="fake", **overdue)
    real_transition = Job.transition

    def poller_wins_first(self, to, **kwargs):
        if to == JobStatus.EXPIRED:  # the poller records the start between the sweep's read and its move
            Job.objects.get(pk=self.pk).transition(JobStatus.IN_PROGRESS, reason="capacity arrived")
        return real_transition(self, to, **kwargs)

    monkeypatch.setattr(Job, "transition", poller_wins_first)
    assert jobs_sweep().expired == 0
    run_queued("jobs.tasks.run_job_effects")
    assert Job.objects.get(pk=job.pk).status == JobStatus.IN_PROGRESS
    assert fake_backend.canceled == [] and fake_backend.calls["cancel"] == 0


def test_a_failing_stop_is_retried_by_the_sweep(acme, fake_backend, overdue):
    job = make_submitted_job(acme, backend="fake", **overdue)
    jobs_sweep()
    fake_backend.fail_next["cancel"] = BackendError("throttled")
    run_queued("jobs.tasks.run_job_effects")
    assert fake_backend.canceled == []
    assert jobs_sweep(now=timezone.now() + timedelta(minutes=1)).effects_redriven == 1
    run_queued("jobs.tasks.run_job_effects")
    assert fake_backend.canceled == [job.remote_name]


def test_a_released_job_whose_create_may_have_applied_is_looked_up_and_stopped(acme, fake_backend, overdue):
    job = make_job(acme, backend="fake", submission=Submission.WAITING, submit_attempts=2, **overdue)
    fake_backend.jobs[job.remote_name] = RemoteStatus("PENDING", "Queued")  # the ambiguous create applied
    jobs_sweep()
    run_queued("jobs.tasks.run_job_effects")
    assert Job.objects.get(pk=job.pk).status == JobStatus.EXPIRED
    assert fake_backend.calls["find"] == 1 and fake_backend.canceled == [job.remote_name]


def test_a_never_attempted_job_expires_without_asking_the_cloud(acme, fake_backend, overdue):
    job = make_job(acme, backend="fake", **overdue)
    jobs_sweep()
    assert Job.objects.get(pk=job.pk).status == JobStatus.EXPIRED
    assert queued_job_ids("jobs.tasks.run_job_effects") == []
    assert sum(fake_backend.calls.values()) == 0
