"""A job's history is complete: creation is its first event, and a job first seen already finished
shows its start, at the cloud's time, before its end."""

from datetime import timedelta

from django.utils import timezone

from backends.base import RemoteStatus
from jobs.models import Job, JobEvent, JobStatus
from jobs.polling import jobs_poll_once
from tests.support.jobs import job_body, make_submitted_job


def test_creation_is_the_first_event_and_names_the_key(api, operator):
    job_id = api.post("/v1/jobs", job_body(), format="json", **operator.headers).json()["id"]
    events = api.get(f"/v1/jobs/{job_id}/events", **operator.headers).json()
    assert len(events) == 1
    first = events[0]
    assert (first["from_status"], first["to_status"]) == ("", JobStatus.PENDING)
    assert first["actor"] == f"api:{operator.key.key_id}"
    assert first["reason"] == f"Created by api:{operator.key.key_id}."
    assert Job.objects.get(pk=job_id).status == JobStatus.PENDING


def test_a_job_first_seen_finished_records_its_start_before_its_end(acme, fake_backend):
    an_hour_ago = timezone.now() - timedelta(hours=1)
    job = make_submitted_job(acme, backend="fake", created_at=an_hour_ago, status_changed_at=an_hour_ago)
    started = timezone.now() - timedelta(minutes=30)
    ended = timezone.now() - timedelta(minutes=1)
    fake_backend.jobs[job.remote_name] = RemoteStatus("COMPLETED", "Completed", started_at=started, finished_at=ended)
    jobs_poll_once()
    events = list(JobEvent.objects.filter(job=job))
    assert [(e.from_status, e.to_status) for e in events] == [
        (JobStatus.PENDING, JobStatus.IN_PROGRESS), (JobStatus.IN_PROGRESS, JobStatus.COMPLETED)]
    assert events[0].at == started, "the start is dated by the cloud"
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.started_at, row.finished_at) == (JobStatus.COMPLETED, started, ended)


def test_the_start_is_never_dated_before_the_job_existed(acme, fake_backend):
    job = make_submitted_job(acme, backend="fake")
    skewed = job.created_at - timedelta(hours=1)  # the cloud's clock is behind
    fake_backend.jobs[job.remote_name] = RemoteStatus("FAILED", "Failed", started_at=skewed)
    jobs_poll_once()
    start = JobEvent.objects.get(job=job, to_status=JobStatus.IN_PROGRESS)
    assert start.at >= job.status_changed_at
    assert Job.objects.get(pk=job.pk).started_at == skewed, "started_at keeps what the cloud said"


def test_a_finished_job_without_a_start_time_moves_once(acme, fake_backend):
    job = make_submitted_job(acme, backend="fake")
    fake_backend.jobs[job.remote_name] = RemoteStatus("FAILED", "Failed", message="image pull failed")
    jobs_poll_once()
    assert list(JobEvent.objects.filter(job=job).values_list("to_status", flat=True)) == [JobStatus.FAILED]
