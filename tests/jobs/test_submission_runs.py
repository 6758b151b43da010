"""Submission runs: new jobs are taken by a run that submits every due job, not by a task each, and
runs working at once send each job exactly once."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import queue
from jobs.models import Job, Submission
from jobs.submission import RUN_BATCH, jobs_due_in_turn, jobs_submit_due
from jobs.tasks import submit_due_jobs
from tests.support.concurrency import run_at_once
from tests.support.jobs import job_body, make_job, queued_tasks

RUN = "jobs.tasks.submit_due_jobs"


def due_jobs(account, count: int) -> list[Job]:
    return [make_job(account, backend="fake", next_submit_at=timezone.now()) for _ in range(count)]


def test_many_new_jobs_queue_one_run_that_submits_them_all(api, operator, fake_backend):
    ids = [api.post("/v1/jobs", job_body(backend="fake"), format="json", **operator.headers).json()["id"]
           for _ in range(5)]
    assert [func for func, _args in queued_tasks()] == [RUN], "one queued run serves every new job"
    submit_due_jobs()
    rows = Job.objects.filter(pk__in=ids)
    assert {row.submission for row in rows} == {Submission.SUBMITTED}
    assert all(fake_backend.calls[f"create:{row.remote_name}"] == 1 for row in rows)
    runs = [func for func, _args in queued_tasks() if func == RUN]
    assert runs == [RUN, RUN], "seeing a backlog, the run asked for a helper"


def test_a_started_run_lets_the_next_new_job_queue_another(api, operator, fake_backend):
    api.post("/v1/jobs", job_body(backend="fake"), format="json", **operator.headers)
    queue.submission_run_started()  # a worker took the queued run
    api.post("/v1/jobs", job_body(backend="fake"), format="json", **operator.headers)
    assert [func for func, _args in queued_tasks()] == [RUN, RUN], "under load, runs work in parallel"


def test_a_job_released_after_an_error_waits_for_its_retry_time(acme, fake_backend):
    later = make_job(acme, backend="fake", submission=Submission.WAITING,
                     next_submit_at=timezone.now() + timedelta(minutes=5))
    assert jobs_submit_due(deadline=time.monotonic() + 30) is False
    assert Job.objects.get(pk=later.pk).submission == Submission.WAITING
    assert fake_backend.calls["submit"] == 0


def test_a_run_out_of_time_hands_over_to_a_successor(acme, fake_backend, monkeypatch):
    jobs = due_jobs(acme, 3)
    monkeypatch.setattr("jobs.tasks.SUBMIT_RUN_SECONDS", 0)  # the run's time is up before its first job
    submit_due_jobs()
    assert {row.submission for row in Job.objects.filter(pk__in=[j.pk for j in jobs])} == {Submission.WAITING}
    assert [func for func, _args in queued_tasks()] == [RUN], "the due jobs go to the next run"


def test_a_run_that_fails_still_hands_over(acme, fake_backend, monkeypatch):
    due_jobs(acme, 1)

    def broken(*, deadline):
        raise RuntimeError("database went away")

    monkeypatch.setattr("jobs.tasks.jobs_submit_due", broken)
    with pytest.raises(RuntimeError):
        submit_due_jobs()
    assert [func for func, _args in queued_tasks()] == [RUN]


@pytest.mark.django_db(transaction=True)
def test_runs_at_once_send_each_job_exactly_once(acme, fake_backend):
    jobs = due_jobs(acme, 40)
    run_at_once(lambda: jobs_submit_due(deadline=time.monotonic() + 60), 4)
    rows = Job.objects.filter(pk__in=[j.pk for j in jobs])
    assert {row.submission for row in rows} == {Submission.SUBMITTED}
    assert sorted(fake_backend.calls[f"create:{row.remote_name}"] for row in rows) == [1] * 40
    assert {row.submit_attempts for row in rows} == {1}, "no job was claimed twice"


def test_a_lapsed_claim_is_taken_in_its_turn_under_a_backlog(acme, fake_backend, settings):
    """A job whose worker died a minute ago is due since then: it comes before the backlog of jobs
    that fell due after it, not after all of them (it has no next_submit_at)."""
    now = timezone.now()
    for _ in range(RUN_BATCH + 10):  # a backlog that fell due after the lapsed claim
        make_job(acme, backend="fake", next_submit_at=now - timedelta(seconds=1))
    lapsed = make_job(acme, backend="fake", submission=Submission.SUBMITTING, submit_attempts=1,
                      submit_claimed_at=now - timedelta(seconds=settings.TRAIN_SUBMIT_CLAIM_SECONDS + 60))
    assert list(jobs_due_in_turn().values_list("pk", flat=True)[:1]) == [lapsed.pk]
    jobs_submit_due(deadline=time.monotonic() + 60)
    assert Job.objects.get(pk=lapsed.pk).submission == Submission.SUBMITTED
