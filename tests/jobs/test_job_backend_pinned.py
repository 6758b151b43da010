"""A job is driven with the backend configuration it was created with: submit, poll, cancel and logs
use the snapshot; editing the account's configuration affects new jobs only."""

import pytest

from backends.base import RemoteStatus
from backends.models import BackendConfig
from jobs.models import Job
from jobs.polling import jobs_poll_once
from jobs.services import job_cancel, job_create
from jobs.submission import job_cancel_remote, job_submit
from tests.support.jobs import IMAGE, make_submitted_job

BODY = {"name": "pinned", "backend": "fake", "image": IMAGE, "command": ["python", "train.py"], "args": [],
        "env": {}, "resources": {}, "storage_mounts": [], "max_runtime_seconds": 3600, "labels": {},
        "backend_options": {}}


@pytest.fixture
def configured(acme, fake_backend):
    return BackendConfig.objects.create(account=acme, backend="fake", config={"region": "old"})


def edit(row, **config):
    row.config = config
    row.save()


def test_creation_pins_the_configuration_the_job_was_validated_with(acme, configured):
    job, _ = job_create(account=acme, user=None, data=dict(BODY))
    edit(configured, region="new")
    assert Job.objects.get(pk=job.pk).backend_config == {"region": "old"}


def test_submit_poll_cancel_and_logs_use_the_snapshot(acme, configured, fake_backend, api, operator):
    job, _ = job_create(account=acme, user=None, data=dict(BODY))
    edit(configured, region="new")
    job_submit(job.pk)
    fake_backend.jobs[job.remote_name] = RemoteStatus("IN_PROGRESS", "Training")
    jobs_poll_once()
    job_cancel(job=Job.objects.get(pk=job.pk), actor="admin:olivia")
    job_cancel_remote(job.pk)
    response = api.get(f"/v1/jobs/{job.pk}/logs", **operator.headers)
    assert response.status_code == 200
    assert {op for op, _ in fake_backend.configs} == {"submit", "poll", "cancel", "logs"}
    assert all(config == {"region": "old"} for _, config in fake_backend.configs)


def test_jobs_pinned_to_different_snapshots_are_polled_apart(acme, configured, fake_backend):
    old = make_submitted_job(acme, backend="fake")
    edit(configured, region="new")
    new = make_submitted_job(acme, backend="fake")
    for job in (old, new):
        fake_backend.jobs[job.remote_name] = RemoteStatus("PENDING", "Queued")
    assert jobs_poll_once().claimed == 2
    polled_with = sorted(config["region"] for op, config in fake_backend.configs if op == "poll")
    assert polled_with == ["new", "old"]
