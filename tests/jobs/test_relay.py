"""The relay check of the worker's main process: after a task worker died in the middle of a poll or
submission run, the next run is queued within seconds, whether or not new work arrives to ask for one."""

import socket
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Submission, WorkerLease
from jobs.polling import POLL_LOOP_LEASE
from jobs.relay import relay_check
from tests.support.jobs import make_job, make_submitted_job, queued_tasks
from trainsvc.heartbeat import HOST_NAME_LENGTH, holder_name

POLL_RUN, SUBMIT_RUN = "jobs.tasks.poll_due_jobs", "jobs.tasks.submit_due_jobs"
pytestmark = pytest.mark.django_db


def queued() -> list[str]:
    return [func for func, _args in queued_tasks()]


def test_a_due_job_that_no_poll_loop_follows_gets_one_poll_run(acme, fake_backend):
    make_submitted_job(acme, backend="fake", next_poll_at=timezone.now() - timedelta(seconds=1))
    assert relay_check() == ["poll"]
    assert relay_check() == [], "one queued run is enough"
    assert queued() == [POLL_RUN]


def test_a_live_poll_loop_is_left_alone(acme, fake_backend):
    make_submitted_job(acme, backend="fake", next_poll_at=timezone.now() - timedelta(seconds=1))
    assert WorkerLease.acquire(POLL_LOOP_LEASE, holder_name(), 10)  # this process: alive
    assert relay_check() == []
    assert queued() == []


def test_a_poll_loop_whose_process_is_gone_from_this_host_is_replaced_at_once(acme, fake_backend):
    make_submitted_job(acme, backend="fake", next_poll_at=timezone.now() - timedelta(seconds=1))
    gone = subprocess.Popen(["true"])
    gone.wait()
    holder = f"{socket.gethostname()[:HOST_NAME_LENGTH]}:{gone.pid}:0000"
    assert WorkerLease.acquire(POLL_LOOP_LEASE, holder, 60)
    assert relay_check() == ["poll"], "the dead holder's lease was waited out"


def test_a_holder_on_another_host_is_never_presumed_dead(acme, fake_backend):
    make_submitted_job(acme, backend="fake", next_poll_at=timezone.now() - timedelta(seconds=1))
    assert WorkerLease.acquire(POLL_LOOP_LEASE, "another-host:1:0000", 60)
    assert relay_check() == []


def test_a_dead_poll_loop_is_replaced_once_its_lease_lapses(acme, fake_backend):
    make_submitted_job(acme, backend="fake", next_poll_at=timezone.now() - timedelta(seconds=1))
    assert WorkerLease.acquire(POLL_LOOP_LEASE, "a killed loop", 10)
    WorkerLease.objects.filter(name=POLL_LOOP_LEASE).update(held_until=timezone.now() - timedelta(seconds=1))
    assert relay_check() == ["poll"]


def test_jobs_not_yet_due_queue_nothing(acme, fake_backend):
    make_submitted_job(acme, backend="fake", next_poll_at=timezone.now() + timedelta(minutes=5))
    make_job(acme, backend="fake", next_submit_at=timezone.now() + timedelta(minutes=5))
    assert relay_check() == []
    assert queued() == []


def test_a_claim_left_by_a_killed_submission_gets_a_submission_run(acme, fake_backend, settings):
    lapsed = timezone.now() - timedelta(seconds=settings.TRAIN_SUBMIT_CLAIM_SECONDS + 1)
    make_job(acme, backend="fake", submission=Submission.SUBMITTING, submit_attempts=1, submit_claimed_at=lapsed)
    assert relay_check() == ["submit"]
    assert queued() == [SUBMIT_RUN]


def test_a_live_claim_is_left_alone(acme, fake_backend):
    make_job(acme, backend="fake", submission=Submission.SUBMITTING, submit_attempts=1,
             submit_claimed_at=timezone.now())
    assert relay_check() == []


def test_a_flag_is_raised_once_until_it_lapses_or_is_cleared():
    """The one-statement flag every submission and POST raises (an upsert on PostgreSQL and SQLite)."""
    assert WorkerLease.flag_set("a-flag", 60), "a new flag is raised"
    assert not WorkerLease.flag_set("a-flag", 60), "an up flag is not raised again"
    assert WorkerLease.flag_clear("a-flag")
    assert not WorkerLease.flag_clear("a-flag"), "a cleared flag is down"
    assert WorkerLease.flag_set("a-flag", 60), "a cleared flag is raised again"
    WorkerLease.objects.filter(name="a-flag").update(held_until=timezone.now() - timedelta(seconds=1))
    assert WorkerLease.flag_set("a-flag", 60), "a lapsed flag is raised again"
