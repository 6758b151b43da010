"""Job.transition: the only writer of status."""

import pytest

from jobs.models import ALLOWED_MOVES, TERMINAL_STATUSES, IllegalTransition, Job, JobEvent, JobStatus
from tests.support.jobs import make_job

ALL = list(JobStatus)


@pytest.fixture
def job(acme):
    return make_job(acme)


def allowed_pairs():
    return [(old, new) for old in ALL for new in ALL if new in ALLOWED_MOVES[old]]


def refused_pairs():
    return [(old, new) for old in ALL for new in ALL if new not in ALLOWED_MOVES[old]]


@pytest.mark.parametrize(("old", "new"), allowed_pairs())
def test_allowed_move_updates_row_and_writes_one_event(acme, old, new):
    job = make_job(acme, status=old)
    assert job.transition(new, reason="because", remote_status="Native", actor="tester") is True
    row = Job.objects.get(pk=job.pk)
    assert row.status == new
    assert row.remote_status == "Native"
    event = JobEvent.objects.get(job=job)
    assert (event.from_status, event.to_status, event.reason, event.actor) == (old, new, "because", "tester")
    if new in TERMINAL_STATUSES:
        assert row.finished_at is not None and row.next_poll_at is None
    if new == JobStatus.IN_PROGRESS:
        assert row.started_at is not None


@pytest.mark.parametrize(("old", "new"), refused_pairs())
def test_refused_move_raises_and_changes_nothing(acme, old, new):
    job = make_job(acme, status=old)
    with pytest.raises(IllegalTransition):
        job.transition(new)
    assert Job.objects.get(pk=job.pk).status == old
    assert not JobEvent.objects.exists()


def test_terminal_states_are_final(acme):
    for status in TERMINAL_STATUSES:
        assert ALLOWED_MOVES[status] == frozenset()


def test_lost_race_changes_nothing(job):
    stale = Job.objects.get(pk=job.pk)
    assert job.transition(JobStatus.IN_PROGRESS) is True
    # `stale` still believes the job is PENDING: its move must lose without writing anything.
    assert stale.transition(JobStatus.CANCELED, reason="late") is False
    row = Job.objects.get(pk=job.pk)
    assert row.status == JobStatus.IN_PROGRESS
    assert list(JobEvent.objects.values_list("to_status", flat=True)) == [JobStatus.IN_PROGRESS]
    assert stale.status == JobStatus.PENDING  # the loser's instance is not updated either


def test_expect_guard_makes_move_conditional_on_other_columns(job):
    assert job.transition(JobStatus.CANCELED, expect={"submission": "SUBMITTING"}) is False
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING
    assert job.transition(JobStatus.CANCELED, expect={"submission": "WAITING"}) is True


def test_extra_columns_are_written_in_the_same_update(job):
    job.transition(JobStatus.FAILED, status_message="exit 3", log_tail=["boom"])
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.status_message, row.log_tail) == (JobStatus.FAILED, "exit 3", ["boom"])
