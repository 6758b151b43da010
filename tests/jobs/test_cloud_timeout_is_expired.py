"""A cloud that enforces max runtime by cancelling the job (Vertex, Azure) reports CANCELED; the core
records EXPIRED when nobody asked for a cancel and the job had run its max runtime."""

from datetime import timedelta

import pytest
from django.utils import timezone

from backends.base import RemoteStatus
from jobs.models import Job, JobStatus
from jobs.polling import jobs_poll_once
from tests.support.jobs import make_submitted_job


@pytest.fixture
def running(acme, fake_backend):
    return make_submitted_job(acme, backend="fake", status=JobStatus.IN_PROGRESS, max_runtime_seconds=3600,
                              started_at=timezone.now() - timedelta(hours=2))


def cloud_cancels(fake_backend, job, *, after):
    fake_backend.jobs[job.remote_name] = RemoteStatus("CANCELED", "CANCELLED", started_at=job.started_at,
                                                      finished_at=job.started_at + after)


def test_cancel_by_the_cloud_after_max_runtime_is_expired(running, fake_backend):
    cloud_cancels(fake_backend, running, after=timedelta(seconds=3600))
    jobs_poll_once()
    row = Job.objects.get(pk=running.pk)
    assert row.status == JobStatus.EXPIRED and "max_runtime_seconds" in row.status_message


def test_cancel_by_the_cloud_before_max_runtime_stays_canceled(running, fake_backend):
    cloud_cancels(fake_backend, running, after=timedelta(minutes=10))
    jobs_poll_once()
    assert Job.objects.get(pk=running.pk).status == JobStatus.CANCELED


def test_a_requested_cancel_stays_canceled_even_after_max_runtime(running, fake_backend):
    Job.objects.filter(pk=running.pk).update(cancel_requested_at=timezone.now())
    cloud_cancels(fake_backend, running, after=timedelta(hours=2))
    jobs_poll_once()
    assert Job.objects.get(pk=running.pk).status == JobStatus.CANCELED
