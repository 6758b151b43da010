"""Effects of entering a state run from the JobEvent outbox, after the transition was won: the log tail
of a FAILED job, re-driven by the sweep until done, harmless when run twice."""

from datetime import timedelta

import pytest
from django.utils import timezone

from backends.base import BackendError, RemoteStatus
from jobs.effects import event_run_effects
from jobs.models import Effect, Job, JobEvent, JobStatus
from jobs.polling import jobs_poll_once
from jobs.sweeping import jobs_sweep
from tests.support.jobs import make_submitted_job, queued_job_ids, run_queued


@pytest.fixture
def job(acme, fake_backend):
    job = make_submitted_job(acme, backend="fake")
    fake_backend.jobs[job.remote_name] = RemoteStatus("FAILED", "Failed", message="OOM in step 12")
    return job


def failed_event(job) -> JobEvent:
    return JobEvent.objects.get(job=job, to_status=JobStatus.FAILED)


def test_entering_failed_queues_the_log_tail_with_the_event(job, fake_backend):
    jobs_poll_once()
    event = failed_event(job)
    assert event.effects == [Effect.LOG_TAIL] and event.effects_done_at is None
    assert queued_job_ids("jobs.tasks.run_job_effects") == [event.pk]
    assert fake_backend.calls["logs"] == 0, "no log read inside the poll"


def test_the_effect_stores_the_log_tail_and_is_marked_done(job, fake_backend):
    jobs_poll_once()
    run_queued("jobs.tasks.run_job_effects")
    assert Job.objects.get(pk=job.pk).log_tail == ["line 0", "line 1", "line 2"]
    assert failed_event(job).effects_done_at is not None


def test_effects_run_twice_change_nothing_more(job, fake_backend):
    jobs_poll_once()
    event = failed_event(job)
    assert event_run_effects(event.pk) and event_run_effects(event.pk)
    assert fake_backend.calls["logs"] == 1


def test_a_failed_effect_is_redriven_by_the_sweep(job, fake_backend):
    jobs_poll_once()
    event = failed_event(job)
    fake_backend.fail_next["logs"] = BackendError("log store unavailable")
    assert not event_run_effects(event.pk)
    assert Job.objects.get(pk=job.pk).log_tail == []
    assert jobs_sweep(now=timezone.now() + timedelta(minutes=1)).effects_redriven == 1
    run_queued("jobs.tasks.run_job_effects")
    assert Job.objects.get(pk=job.pk).log_tail == ["line 0", "line 1", "line 2"]
    assert jobs_sweep(now=timezone.now() + timedelta(minutes=2)).effects_redriven == 0


def test_a_lost_transition_queues_no_effect(job):
    stale = Job.objects.get(pk=job.pk)
    Job.objects.get(pk=job.pk).transition(JobStatus.COMPLETED)
    assert not stale.transition(JobStatus.FAILED, reason="late")
    assert queued_job_ids("jobs.tasks.run_job_effects") == []
    assert not JobEvent.objects.filter(job=job, to_status=JobStatus.FAILED).exists()


def test_edges_without_effects_are_done_at_once(acme, fake_backend):
    job = make_submitted_job(acme, backend="fake")
    job.transition(JobStatus.IN_PROGRESS)
    assert JobEvent.objects.get(job=job).effects_done_at is not None
    assert queued_job_ids("jobs.tasks.run_job_effects") == []
