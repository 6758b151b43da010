"""Fault scenarios against real worker processes, for Vertex AI (which creates a second job for a repeated
create): a worker killed between the create and its commit, 30 % cloud faults including creates applied
whose answer is lost, two pollers at once, and a cancel racing the job's completion. Each ends with the
invariants in tests/backends/invariants.py."""


import pytest
from django.conf import settings

from jobs.models import Job, JobStatus, Submission
from jobs.services import job_cancel
from tests.backends.conftest import SEED
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
from tests.support.processes import qcluster

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

VERTEX_BODY = {
    "backend": "vertex-ai", "image": "europe-west4-docker.pkg.dev/acme-ml/images/trainer:v1",
    "command": ["python", "train.py"], "args": [], "env": {}, "labels": {"suite": "faults"},
    "resources": {"machine_type": "g2-standard-12", "accelerator_type": "NVIDIA_L4", "accelerator_count": 1,
                  "instance_count": 1},
    "storage_mounts": [{"source": "gs://acme-data/corpus", "mode": "ro"}],
    "max_runtime_seconds": 3600, "backend_options": {},
}
# The Vertex operations faults are drawn for (Train's token calls stay reliable, as google-auth's own
# retries are not what these scenarios test).
VERTEX_OPERATIONS = ("CreateCustomJob", "GetCustomJob", "ListCustomJobs", "CancelCustomJob")


def finish(cloud, jobs: list[Job], outcomes: list[str]) -> dict[str, str]:
    meaning = {"complete": JobStatus.COMPLETED, "fail": JobStatus.FAILED, "expire": JobStatus.EXPIRED}
    for job, outcome in zip(jobs, outcomes, strict=True):
        cloud.vertex.start(job.remote_id)
        getattr(cloud.vertex, outcome)(job.remote_id)
    return {job.id: meaning[outcome] for job, outcome in zip(jobs, outcomes, strict=True)}


def test_worker_killed_between_create_and_commit(acme, vertex_config, google_emulated, fake_cloud, tmp_path,
                                                 fresh_faults):
    configure(acme, vertex_config, "vertex-ai")
    env = {**google_emulated, **QUICK_REDELIVERY, "TRAIN_FAULTS": "submit_after_create:sigkill"}
    with qcluster(tmp_path, **env) as worker:
        ids = create_jobs(acme, 3, body=VERTEX_BODY)
        jobs = wait_submitted(ids, timeout=90)
        expected = finish(fake_cloud, jobs, ["complete", "fail", "complete"])
        wait_terminal(ids, timeout=60)
        stop_now(worker)
    assert (settings.TRAIN_DATA_DIR / "faults-fired" / "submit_after_create").exists(), "a worker was killed"
    killed = [job for job in Job.objects.filter(pk__in=ids) if job.submit_attempts > 1]
    assert len(killed) == 1, "exactly one submission was interrupted and retried"
    assert len(fake_cloud.vertex.creates) == 3, "the retry found the job by its label instead of creating another"
    assert_invariants(fake_cloud.vertex, expected)


def test_thirty_percent_cloud_faults(acme, vertex_config, google_emulated, fake_cloud, tmp_path):
    configure(acme, vertex_config, "vertex-ai")
    fake_cloud.set_faults(seed=SEED, throttle=0.10, server_error=0.10, timeout=0.05, timeout_after_apply=0.05,
                          operations=VERTEX_OPERATIONS)
    sweeper = Sweeper()
    with qcluster(tmp_path, **google_emulated) as worker:
        ids = create_jobs(acme, 5, body=VERTEX_BODY)
        jobs = wait_submitted(ids, timeout=120, sweeper=sweeper)
        expected = finish(fake_cloud, jobs[:4], ["complete", "fail", "complete", "expire"])
        fake_cloud.vertex.start(jobs[4].remote_id)
        job_cancel(job=jobs[4], actor="test")
        expected[jobs[4].id] = JobStatus.CANCELED
        wait_terminal(ids, timeout=120, sweeper=sweeper)
        stop_now(worker)
    injected = sum(fake_cloud.faults.injected.values())
    assert injected >= 3, f"the fault plan injected only {injected} faults"
    assert_invariants(fake_cloud.vertex, expected)


def test_two_pollers_at_once(acme, vertex_config, google_emulated, fake_cloud, tmp_path):
    configure(acme, vertex_config, "vertex-ai")
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    with qcluster(tmp_path / "one", **google_emulated) as one, qcluster(tmp_path / "two", **google_emulated) as two:
        ids = create_jobs(acme, 6, body=VERTEX_BODY)
        jobs = wait_submitted(ids, timeout=60)
        expected = finish(fake_cloud, jobs, ["complete", "fail", "expire", "complete", "fail", "complete"])
        wait_terminal(ids, timeout=60)
        stop_now(one, two)
    assert len(fake_cloud.vertex.creates) == 6
    assert_invariants(fake_cloud.vertex, expected)


def test_cancel_racing_completion(acme, vertex_config, google_emulated, fake_cloud, tmp_path):
    configure(acme, vertex_config, "vertex-ai")
    vertex = fake_cloud.vertex
    # The cancel waits at a barrier in the fake cloud; give it time to be released rather than time out.
    with qcluster(tmp_path, **{**google_emulated, "TRAIN_GOOGLE_READ_TIMEOUT_SECONDS": 10}) as worker:
        ids = create_jobs(acme, 4, body=VERTEX_BODY)
        expected = race_cancels_with_completion(vertex, fake_cloud, ids, seed=SEED)
        stop_now(worker)
    assert_invariants(vertex, expected)
    assert Job.objects.filter(pk__in=ids, submission=Submission.SUBMITTED).count() == len(ids)
