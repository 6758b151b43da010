"""Helpers for the process-level backend tests, for every cloud: creating jobs as the API does, driving
the sweeper, and the invariants every fault scenario must leave true.

The invariants read the cloud through its fake's neutral scripting API (`CloudFake` below), which every
fake in tests/fakecloud implements, so one set of checks covers SageMaker, Vertex AI and Azure ML."""

import random
import signal
import threading
import time
from typing import Protocol

from django.contrib.auth import get_user_model

from backends.models import BackendConfig
from jobs.models import TERMINAL_STATUSES, Job, JobEvent, JobStatus, Submission
from jobs.services import job_cancel, job_create
from jobs.sweeping import jobs_sweep
from tests.backends.test_sagemaker_request import ECR_IMAGE
from tests.support.processes import stop_group, wait_until

# The worker polls SageMaker jobs every 1-2 s in these tests; a job the cloud finished must be
# terminal after at most two answers that carried its final state.
MAX_DELIVERIES_BEFORE_TERMINAL = 2


# Redeliver a killed worker's task after 13 s rather than 20 (retry must exceed the task timeout,
# which must exceed the poll window by 10 s).
QUICK_REDELIVERY = {"TRAIN_TASK_TIMEOUT_SECONDS": 12, "TRAIN_TASK_RETRY_SECONDS": 13, "TRAIN_POLL_WINDOW_SECONDS": 1}


def stop_now(*workers) -> None:
    """Kill the workers once the scenario is decided: a graceful qcluster stop waits out its poll loop,
    and nothing the test checks happens after this point."""
    for worker in workers:
        stop_group(worker, signal.SIGKILL)


class CloudFake(Protocol):
    """What the invariants ask of one cloud's fake (tests/fakecloud/<cloud>.py). A job's `key` is how
    the fake names it: what Train stores for it (`remote_key(job)`: the name on SageMaker and Azure ML,
    the resource name on Vertex AI)."""

    backend: str  # the Train backend this fake stands for ("sagemaker", "vertex-ai", "azure-ml")

    def remote_key(self, job: Job) -> str: ...
    def jobs_tagged(self, job_id: str) -> list[str]: ...  # keys of every remote job labelled with job_id
    def finished_at(self, key: str) -> float | None: ...  # when the cloud recorded its end (epoch s)
    def deliveries_between(self, key: str, start: float, end: float) -> int: ...  # answers carrying it
    # For scenarios that script the cloud: the operation a cancel arrives as (the core's call counter
    # names it), gates that hold a cancel until set, and whether a job still runs.
    cancel_operation: str
    cancel_gates: dict

    def start(self, key: str) -> None: ...
    def complete(self, key: str) -> None: ...
    def is_running(self, key: str) -> bool: ...


# What a SageMaker job of the fault scenarios looks like; other clouds pass their own `body`.
SAGEMAKER_BODY = {
    "backend": "sagemaker", "image": f"{ECR_IMAGE}:v1",
    "command": ["python", "train.py"], "args": [], "env": {}, "labels": {"suite": "faults"},
    "resources": {"machine_type": "ml.g5.xlarge", "instance_count": 1},
    "storage_mounts": [{"source": "s3://acme-data/corpus", "mode": "ro"}],
    "max_runtime_seconds": 3600, "backend_options": {},
}


def configure(account, config: dict, backend: str = "sagemaker") -> None:
    BackendConfig.objects.update_or_create(account=account, backend=backend, defaults={"config": config})


def create_jobs(account, count: int, *, body: dict | None = None, **changes) -> list[str]:
    """Jobs created through the service the API uses (validated, submission enqueued)."""
    user, _ = get_user_model().objects.get_or_create(username="faults")
    ids = []
    for index in range(count):
        data = {**(body or SAGEMAKER_BODY), "name": f"faults-{index}", **changes}
        job, _ = job_create(account=account, user=user, data=data)
        ids.append(job.id)
    return ids


class Sweeper:
    """Runs the periodic sweep from the test process every few seconds (the schedule that does it in
    production is not installed in the test database)."""

    def __init__(self, every: float = 5.0):
        self.every, self.last = every, 0.0

    def tick(self) -> None:
        if time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            jobs_sweep()


def wait_submitted(ids: list[str], *, timeout: float, sweeper: Sweeper | None = None) -> list[Job]:
    def done():
        if sweeper:
            sweeper.tick()
        jobs = list(Job.objects.filter(pk__in=ids))
        return jobs if all(job.submission == Submission.SUBMITTED for job in jobs) else None

    return wait_until(done, timeout=timeout, interval=0.3, message=f"{len(ids)} jobs to be submitted")


def wait_terminal(ids: list[str], *, timeout: float, sweeper: Sweeper | None = None) -> list[Job]:
    def done():
        if sweeper:
            sweeper.tick()
        jobs = list(Job.objects.filter(pk__in=ids))
        return jobs if all(job.status in TERMINAL_STATUSES for job in jobs) else None

    return wait_until(done, timeout=timeout, interval=0.3, message=f"{len(ids)} jobs to finish")


def assert_invariants(fake: CloudFake, expected: dict[str, str]) -> None:
    """`expected` maps job id -> the Train status the cloud's outcome means; `fake` is the cloud's fake
    (`fake_cloud.sagemaker`, `fake_cloud.vertex`, `fake_cloud.azureml`).

    (i) at most one remote job per Train job; (ii) every job the cloud finished is terminal with
    that outcome, recorded by at most two answers after the cloud finished; (iii) none stuck in
    submission; (iv) exactly one terminal event per job."""
    for job in Job.objects.filter(pk__in=list(expected)):
        tagged = fake.jobs_tagged(job.id)
        key = fake.remote_key(job)
        assert len(tagged) <= 1, f"{job.id}: {len(tagged)} {fake.backend} jobs"
        assert tagged == [key], f"{job.id}: cloud has {tagged}, Train knows {key}"
        assert job.status == expected[job.id], f"{job.id}: Train says {job.status}, cloud {expected[job.id]}"
        assert job.submission == Submission.SUBMITTED, f"{job.id} stuck in {job.submission}"
        terminal = JobEvent.objects.filter(job=job, to_status__in=TERMINAL_STATUSES)
        assert terminal.count() == 1, f"{job.id}: {terminal.count()} terminal events"
        ended = fake.finished_at(key)
        if ended is not None:
            seen = fake.deliveries_between(key, ended, terminal.get().at.timestamp())
            assert seen <= MAX_DELIVERIES_BEFORE_TERMINAL, f"{job.id}: terminal only after {seen} answers"


def race_cancels_with_completion(fake: CloudFake, cloud, ids: list[str], *, seed: int) -> dict[str, str]:
    """Cancel running jobs while the cloud may complete them: each cancel is held at the fake's gate
    as it arrives, and then either the job completes first (completion must win) or the cancel lands
    first. Runs with a worker started by the caller; returns the outcome each job must end with, after
    every job is terminal. Both orders happen (with 4 jobs and this seed)."""
    rng = random.Random(seed)
    jobs = wait_submitted(ids, timeout=60)
    for job in jobs:
        fake.start(fake.remote_key(job))
        fake.cancel_gates[fake.remote_key(job)] = threading.Event()
    wait_until(lambda: all(j.status == JobStatus.IN_PROGRESS for j in Job.objects.filter(pk__in=ids)),
               timeout=30, message="jobs running")
    for job in Job.objects.filter(pk__in=ids):
        job_cancel(job=job, actor="test")
    expected, waiting = {}, list(jobs)
    while waiting:  # take each cancel as it reaches the cloud (two task workers: they arrive in turns)
        job = wait_until(lambda: next((j for j in waiting if cloud.resource_calls[
            (fake.name, fake.cancel_operation, fake.remote_key(j))]), None), timeout=30, message="a cancel to arrive")
        waiting.remove(job)
        key = fake.remote_key(job)
        if rng.random() < 0.5:  # the job completes while its cancel is in flight: completion wins
            fake.complete(key)
            fake.cancel_gates[key].set()
            expected[job.id] = JobStatus.COMPLETED
        else:  # the cancel lands first
            fake.cancel_gates[key].set()
            wait_until(lambda key=key: not fake.is_running(key), timeout=15, message="the cancel to apply")
            expected[job.id] = JobStatus.CANCELED
    wait_terminal(ids, timeout=60)
    assert set(expected.values()) == {JobStatus.COMPLETED, JobStatus.CANCELED}, "both orders exercised"
    assert all(job.cancel_requested_at for job in Job.objects.filter(pk__in=ids))
    return expected
