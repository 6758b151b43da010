"""Fault scenarios for Azure ML against real worker processes: a worker killed between the job PUT and
its commit, 30 % cloud faults (throttling with Retry-After, 5xx, timeouts, timeouts after the PUT was
applied), two pollers at once, and a cancel racing the job's completion. Each ends with the invariants
in tests/backends/invariants.py, read through the fake's neutral API."""


import pytest
from django.conf import settings

from jobs.models import Job, JobStatus, Submission
from jobs.services import job_cancel
from tests.backends.azureml_support import azure_env
from tests.backends.conftest import SEED, WORKER_ENV
from tests.backends.invariants import (
    QUICK_REDELIVERY,
    Sweeper,
    assert_invariants,
    configure,
    create_jobs,
    race_cancels_with_completion,
    stop_now,
    wait_submitted,
    wait_terminal,
)
from tests.backends.test_azureml_submit import AZURE_BODY
from tests.support.processes import qcluster

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def env(cloud, **changes) -> dict:
    return {**WORKER_ENV, **azure_env(cloud), **changes}


def finish(fake, jobs: list[Job], outcomes: list[str]) -> dict[str, str]:
    meaning = {"complete": JobStatus.COMPLETED, "fail": JobStatus.FAILED, "expire": JobStatus.EXPIRED}
    for job, outcome in zip(jobs, outcomes, strict=True):
        fake.start(job.remote_name)
        getattr(fake, outcome)(job.remote_name)
    return {job.id: meaning[outcome] for job, outcome in zip(jobs, outcomes, strict=True)}


def test_worker_killed_between_create_and_commit(acme, azure_config, fake_cloud, azure, tmp_path, fresh_faults):
    configure(acme, azure_config, "azure-ml")
    with qcluster(tmp_path, **env(fake_cloud, **QUICK_REDELIVERY, TRAIN_FAULTS="submit_after_create:sigkill")) as w:
        ids = create_jobs(acme, 3, body=AZURE_BODY)
        jobs = wait_submitted(ids, timeout=90)
        expected = finish(azure, jobs, ["complete", "fail", "complete"])
        wait_terminal(ids, timeout=60)
        stop_now(w)
    assert (settings.TRAIN_DATA_DIR / "faults-fired" / "submit_after_create").exists(), "a worker was killed"
    killed = [job for job in Job.objects.filter(pk__in=ids) if job.submit_attempts > 1]
    assert len(killed) == 1, "exactly one submission was interrupted and retried"
    assert len(azure.creates) == 3, "the retry found its job instead of creating another"
    assert_invariants(azure, expected)


def test_thirty_percent_cloud_faults(acme, azure_config, fake_cloud, azure, tmp_path):
    configure(acme, azure_config, "azure-ml")
    fake_cloud.set_faults(seed=SEED, throttle=0.10, server_error=0.10, timeout=0.05, timeout_after_apply=0.05)
    sweeper = Sweeper()
    with qcluster(tmp_path, **env(fake_cloud)) as worker:
        ids = create_jobs(acme, 4, body=AZURE_BODY)
        jobs = wait_submitted(ids, timeout=120, sweeper=sweeper)
        expected = finish(azure, jobs[:3], ["complete", "fail", "complete"])
        azure.start(jobs[3].remote_name)
        job_cancel(job=jobs[3], actor="test")
        expected[jobs[3].id] = JobStatus.CANCELED
        wait_terminal(ids, timeout=120, sweeper=sweeper)
        stop_now(worker)
    injected = sum(fake_cloud.faults.injected.values())
    assert injected >= 3, f"the fault plan injected only {injected} faults"
    assert len(azure.creates) == 4
    assert_invariants(azure, expected)


def test_two_pollers_at_once(acme, azure_config, fake_cloud, azure, tmp_path):
    configure(acme, azure_config, "azure-ml")
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    with qcluster(tmp_path / "one", **env(fake_cloud)) as one, qcluster(tmp_path / "two", **env(fake_cloud)) as two:
        ids = create_jobs(acme, 6, body=AZURE_BODY)
        jobs = wait_submitted(ids, timeout=60)
        expected = finish(azure, jobs, ["complete", "fail", "expire", "complete", "fail", "complete"])
        wait_terminal(ids, timeout=60)
        stop_now(one, two)
    assert_invariants(azure, expected)


def test_cancel_racing_completion(acme, azure_config, fake_cloud, azure, tmp_path):
    configure(acme, azure_config, "azure-ml")
    # The cancel waits at a barrier in the fake; give it time to be released rather than time out.
    with qcluster(tmp_path, **env(fake_cloud, TRAIN_AZURE_READ_TIMEOUT_SECONDS="10")) as worker:
        ids = create_jobs(acme, 4, body=AZURE_BODY)
        expected = race_cancels_with_completion(azure, fake_cloud, ids, seed=SEED)
        stop_now(worker)
    assert_invariants(azure, expected)
    assert Job.objects.filter(pk__in=ids, submission=Submission.SUBMITTED).count() == len(ids)
