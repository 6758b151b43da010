"""Short leases kept alive by a heartbeat: a live holder keeps its work however long it takes, and a
dead one's work is taken over within seconds (the poll loop's lease, a submission's claim)."""

import socket
import subprocess
import threading
from datetime import timedelta
from functools import partial

import pytest
from django.conf import settings
from django.db import connection

from jobs.models import Job, Submission, WorkerLease
from jobs.submission import job_claim_submission, job_submit
from tests.support.fake_backend import FakeBackend
from tests.support.jobs import make_job
from tests.support.processes import wait_until
from trainsvc.accounts.services import account_create
from trainsvc.heartbeat import HOST_NAME_LENGTH, heartbeat

pytestmark = pytest.mark.django_db(transaction=True)
LEASE = 3


def held_until(name):
    return WorkerLease.objects.get(name=name).held_until


def test_a_live_holder_keeps_a_short_lease_and_a_dead_one_loses_it_within_seconds():
    assert WorkerLease.acquire("loop", "first", LEASE)
    taken = held_until("loop")
    with heartbeat(partial(WorkerLease.renew, "loop", "first", LEASE), lease_seconds=LEASE, what="test"):
        wait_until(lambda: held_until("loop") > taken, timeout=10, message="a heartbeat")
        assert not WorkerLease.acquire("loop", "second", LEASE)
    # No more heartbeats (the holder died): the lease lapses by itself and another run takes over.
    wait_until(lambda: WorkerLease.acquire("loop", "second", LEASE), timeout=LEASE + 10,
               message="the lapsed lease to be taken over")


def test_a_heartbeat_notices_that_its_lease_was_taken():
    assert WorkerLease.acquire("loop", "first", LEASE)
    with heartbeat(partial(WorkerLease.renew, "loop", "first", LEASE), lease_seconds=LEASE, what="test") as beat:
        WorkerLease.objects.filter(name="loop").update(holder="second")
        wait_until(lambda: beat.lost, timeout=10, message="the heartbeat to notice")


@pytest.fixture
def job(fake_backend):
    return make_job(account_create(account_id="acme"), backend="fake")


def test_a_slow_live_submission_keeps_its_claim_past_the_claim_lease(job, fake_backend, monkeypatch):
    """A create that takes longer than TRAIN_SUBMIT_CLAIM_SECONDS is not taken over while it runs."""
    in_create, finish = threading.Event(), threading.Event()
    original = FakeBackend.submit

    def slow_submit(self, spec, name):
        in_create.set()
        finish.wait(60)
        return original(self, spec, name)

    monkeypatch.setattr(FakeBackend, "submit", slow_submit)

    def submit():
        try:
            job_submit(job.pk)
        finally:
            connection.close()

    submitter = threading.Thread(target=submit)
    submitter.start()
    try:
        assert in_create.wait(30)
        claim = timedelta(seconds=settings.TRAIN_SUBMIT_CLAIM_SECONDS)
        lease_end = Job.objects.get(pk=job.pk).submit_claimed_at + claim
        renewed = wait_until(
            lambda: (row := Job.objects.get(pk=job.pk)).submit_claimed_at > lease_end and row,
            timeout=settings.TRAIN_SUBMIT_CLAIM_SECONDS * 4, message="the claim to outlive its lease")
        assert renewed.submission == Submission.SUBMITTING
        assert job_claim_submission(job.pk) is None, "a live claim is not taken over"
    finally:
        finish.set()
        submitter.join(60)
    row = Job.objects.get(pk=job.pk)
    assert (row.submission, row.submit_attempts) == (Submission.SUBMITTED, 1)
    assert fake_backend.calls[f"create:{job.remote_name}"] == 1


def test_a_lease_whose_holder_is_gone_from_this_host_is_taken_over_at_once():
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert WorkerLease.acquire("loop", f"{socket.gethostname()[:HOST_NAME_LENGTH]}:{gone.pid}:0000", 60)
    assert not WorkerLease.is_held("loop"), "a dead holder's lease counts as free"
    assert WorkerLease.acquire("loop", "second", LEASE), "the dead holder's 60 s lease was waited out"


def test_a_lease_held_from_another_host_is_waited_out():
    assert WorkerLease.acquire("loop", "another-host:1:0000", 60)
    assert WorkerLease.is_held("loop")
    assert not WorkerLease.acquire("loop", "second", LEASE)
