"""Fault scenarios against real worker processes (kills, faults, two pollers, cancel races, for SageMaker):
a worker killed between the create and its commit, 30 % cloud faults, two pollers at once, and a
cancel racing the job's completion. Each ends with the invariants in tests/backends/invariants.py."""


import pytest
from django.conf import settings

from jobs.models import Job, JobStatus, Submission
from jobs.polling import jobs_poll_once
from jobs.services import job_cancel
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
from tests.support.concurrency import run_at_once
from tests.support.processes import qcluster

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

def finish(cloud, jobs: list[Job], outcomes: list[str]) -> dict[str, str]:
    """Finish each job in the fake cloud as told; returns the Train status each outcome means."""
    meaning = {"complete": JobStatus.COMPLETED, "fail": JobStatus.FAILED, "expire": JobStatus.EXPIRED}
    for job, outcome in zip(jobs, outcomes, strict=True):
        cloud.sagemaker.start(job.remote_name)
        if outcome == "expire":
            cloud.sagemaker.set_state(job.remote_name, "Stopped", "MaxRuntimeExceeded")
        else:
            getattr(cloud.sagemaker, outcome)(job.remote_name)
    return {job.id: meaning[outcome] for job, outcome in zip(jobs, outcomes, strict=True)}


def test_worker_killed_between_create_and_commit(acme, sagemaker_config, fake_cloud, tmp_path, fresh_faults):
    configure(acme, sagemaker_config)
    env = {**WORKER_ENV, **QUICK_REDELIVERY, "TRAIN_FAULTS": "submit_after_create:sigkill"}
    with qcluster(tmp_path, **env) as worker:
        ids = create_jobs(acme, 3)
        jobs = wait_submitted(ids, timeout=90)
        expected = finish(fake_cloud, jobs, ["complete", "fail", "complete"])
        wait_terminal(ids, timeout=60)
        stop_now(worker)
    assert (settings.TRAIN_DATA_DIR / "faults-fired" / "submit_after_create").exists(), "a worker was killed"
    killed = [job for job in Job.objects.filter(pk__in=ids) if job.submit_attempts > 1]
    assert len(killed) == 1, "exactly one submission was interrupted and retried"
    name = killed[0].remote_name
    assert fake_cloud.resource_calls[("sagemaker", "CreateTrainingJob", name)] == 1, "the retry found, not created"
    assert len(fake_cloud.sagemaker.creates) == 3
    assert_invariants(fake_cloud.sagemaker, expected)


def test_thirty_percent_cloud_faults(acme, sagemaker_config, fake_cloud, tmp_path):
    configure(acme, sagemaker_config)
    fake_cloud.set_faults(seed=SEED, throttle=0.10, server_error=0.10, timeout=0.05, timeout_after_apply=0.05)
    sweeper = Sweeper()
    with qcluster(tmp_path, **WORKER_ENV) as worker:
        ids = create_jobs(acme, 4)
        jobs = wait_submitted(ids, timeout=120, sweeper=sweeper)
        expected = finish(fake_cloud, jobs[:3], ["complete", "fail", "complete"])
        fake_cloud.sagemaker.start(jobs[3].remote_name)
        job_cancel(job=jobs[3], actor="test")
        expected[jobs[3].id] = JobStatus.CANCELED
        wait_terminal(ids, timeout=120, sweeper=sweeper)
        stop_now(worker)
    injected = sum(fake_cloud.faults.injected.values())
    assert injected >= 3, f"the fault plan injected only {injected} faults"
    assert_invariants(fake_cloud.sagemaker, expected)


def test_two_pollers_at_once(acme, sagemaker_config, fake_cloud, tmp_path):
    configure(acme, sagemaker_config)
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    with qcluster(tmp_path / "one", **WORKER_ENV) as one, qcluster(tmp_path / "two", **WORKER_ENV) as two:
        ids = create_jobs(acme, 6)
        jobs = wait_submitted(ids, timeout=60)
        expected = finish(fake_cloud, jobs, ["complete", "fail", "expire", "complete", "fail", "complete"])
        wait_terminal(ids, timeout=60)
        stop_now(one, two)
    assert_invariants(fake_cloud.sagemaker, expected)


def test_concurrent_poll_cycles_claim_each_job_once(acme, sagemaker_config, fake_cloud):
    configure(acme, sagemaker_config)
    ids = create_jobs(acme, 8)
    from jobs.submission import job_submit

    for job_id in ids:
        job_submit(job_id)
    Job.objects.update(next_poll_at=Job.objects.order_by("created_at").first().created_at)
    reports = run_at_once(jobs_poll_once, 4)
    assert sum(report.claimed for report in reports) == len(ids), "each due job claimed by exactly one poller"


def test_cancel_racing_completion(acme, sagemaker_config, fake_cloud, tmp_path):
    configure(acme, sagemaker_config)
    # The Stop waits at a barrier in the fake cloud; give it time to be released rather than time out.
    with qcluster(tmp_path, **{**WORKER_ENV, "TRAIN_AWS_READ_TIMEOUT_SECONDS": 10}) as worker:
        ids = create_jobs(acme, 4)
        expected = race_cancels_with_completion(fake_cloud.sagemaker, fake_cloud, ids, seed=SEED)
        stop_now(worker)
    assert_invariants(fake_cloud.sagemaker, expected)
    assert Job.objects.filter(pk__in=ids, submission=Submission.SUBMITTED).count() == len(ids)
