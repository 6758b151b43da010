"""Every cancel path: a job whose create may have been applied is looked up in the cloud first, the
actor reaches the CANCELED event whoever records it, and re-sends back off and stop once terminal."""

from datetime import timedelta

import pytest
from django.utils import timezone

from backends.base import RemoteStatus
from jobs.models import Job, JobEvent, JobStatus, Submission
from jobs.polling import jobs_poll_once
from jobs.retries import CANCEL_RESEND_MIN
from jobs.services import job_cancel
from jobs.submission import job_cancel_remote
from jobs.sweeping import jobs_sweep
from tests.support.jobs import make_job, make_submitted_job, queued_job_ids, run_queued


@pytest.fixture
def released(acme, fake_backend):
    """Released after an ambiguous error: its create may or may not have been applied."""
    return make_job(acme, backend="fake", submission=Submission.WAITING, submit_attempts=1,
                    next_submit_at=timezone.now() + timedelta(minutes=10))


def canceled_event(job) -> JobEvent:
    return JobEvent.objects.get(job=job, to_status=JobStatus.CANCELED)


def test_cancel_of_a_released_job_asks_the_cloud_first(released, fake_backend):
    fake_backend.jobs[released.remote_name] = RemoteStatus("PENDING", "Queued")  # the create was applied
    job = job_cancel(job=released, actor="admin:olivia")
    assert job.status == JobStatus.PENDING, "not CANCELED while a remote copy may run"
    assert queued_job_ids("jobs.tasks.submit_job") == [job.pk]
    run_queued("jobs.tasks.submit_job")
    assert fake_backend.calls["find"] == 1 and fake_backend.calls["submit"] == 0
    run_queued("jobs.tasks.cancel_job")
    assert fake_backend.canceled == [job.remote_name]
    fake_backend.jobs[job.remote_name] = RemoteStatus("CANCELED", "Stopped")
    jobs_poll_once()
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELED
    assert canceled_event(job).actor == "admin:olivia"


def test_cancel_of_a_released_job_the_cloud_never_got_cancels_without_creating(released, fake_backend):
    job_cancel(job=released, actor="admin:olivia")
    run_queued("jobs.tasks.submit_job")
    assert Job.objects.get(pk=released.pk).status == JobStatus.CANCELED
    assert fake_backend.calls["find"] == 1 and fake_backend.calls["submit"] == 0
    assert canceled_event(released).actor == "admin:olivia"


def test_api_cancel_actor_is_on_the_event_the_poller_records(api, operator, acme, fake_backend):
    job = make_submitted_job(acme, backend="fake", status=JobStatus.IN_PROGRESS)
    assert api.post(f"/v1/jobs/{job.pk}/cancel", **operator.headers).status_code == 202
    fake_backend.jobs[job.remote_name] = RemoteStatus("CANCELED", "Stopped")
    jobs_poll_once()
    assert canceled_event(job).actor == f"api:{operator.key.key_id}"
    events = api.get(f"/v1/jobs/{job.pk}/events", **operator.headers).json()
    assert events[-1]["actor"] == f"api:{operator.key.key_id}"


def test_admin_cancel_actor_is_on_the_event_the_poller_records(staff_client, acme, fake_backend):
    job = make_submitted_job(acme, backend="fake", status=JobStatus.IN_PROGRESS)
    staff_client.post("/admin/jobs/job/", {"action": "cancel_selected", "_selected_action": [job.pk]})
    fake_backend.jobs[job.remote_name] = RemoteStatus("CANCELED", "Stopped")
    jobs_poll_once()
    assert canceled_event(job).actor == "admin:root"


def test_cancel_resends_back_off(acme, fake_backend):
    job = make_submitted_job(acme, backend="fake", status=JobStatus.IN_PROGRESS)
    job_cancel(job=job, actor="admin:olivia")
    run_queued("jobs.tasks.cancel_job")
    first = Job.objects.get(pk=job.pk).next_cancel_at
    assert first >= timezone.now() + CANCEL_RESEND_MIN - timedelta(seconds=5)
    assert jobs_sweep().cancels_resent == 0, "not re-sent every sweep"
    # An hour later the cloud still has not confirmed: the next re-send waits longer than the first.
    Job.objects.filter(pk=job.pk).update(cancel_requested_at=timezone.now() - timedelta(hours=1))
    assert jobs_sweep(now=first + timedelta(seconds=1)).cancels_resent == 1
    job_cancel_remote(job.pk)
    assert Job.objects.get(pk=job.pk).next_cancel_at - timezone.now() > 10 * CANCEL_RESEND_MIN


def test_cancel_resends_stop_once_the_job_is_terminal(acme, fake_backend):
    job = make_submitted_job(acme, backend="fake", status=JobStatus.IN_PROGRESS)
    job_cancel(job=job, actor="admin:olivia")
    run_queued("jobs.tasks.cancel_job")
    Job.objects.get(pk=job.pk).transition(JobStatus.COMPLETED)
    assert jobs_sweep(now=timezone.now() + timedelta(days=2)).cancels_resent == 0
    job_cancel_remote(job.pk)
    assert fake_backend.calls["cancel"] == 1
