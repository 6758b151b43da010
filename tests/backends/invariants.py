"""Helpers for the process-level SageMaker tests: creating jobs as the API does, driving the sweeper,
and the invariants every fault scenario must leave true."""

import time

from django.contrib.auth import get_user_model

from backends.models import BackendConfig
from jobs.models import TERMINAL_STATUSES, Job, JobEvent, Submission
from jobs.services import job_create
from jobs.sweeping import jobs_sweep
from tests.backends.test_sagemaker_request import ECR_IMAGE
from tests.support.processes import wait_until

# The worker polls SageMaker jobs every 1-2 s in these tests; a job the cloud finished must be
# terminal after at most two answers that carried its final state.
MAX_DELIVERIES_BEFORE_TERMINAL = 2


def configure(account, config: dict) -> None:
    BackendConfig.objects.update_or_create(account=account, backend="sagemaker", defaults={"config": config})


def create_jobs(account, count: int, **changes) -> list[str]:
    """Jobs created through the service the API uses (validated, submission enqueued)."""
    user, _ = get_user_model().objects.get_or_create(username="faults")
    ids = []
    for index in range(count):
        data = {"name": f"faults-{index}", "backend": "sagemaker", "image": f"{ECR_IMAGE}:v1",
                "command": ["python", "train.py"], "args": [], "env": {}, "labels": {"suite": "faults"},
                "resources": {"machine_type": "ml.g5.xlarge", "instance_count": 1},
                "storage_mounts": [{"source": "s3://acme-data/corpus", "mode": "ro"}],
                "max_runtime_seconds": 3600, "backend_options": {}, **changes}
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


def assert_invariants(cloud, expected: dict[str, str]) -> None:
    """`expected` maps job id -> the Train status the cloud's outcome means.

    (i) at most one training job per Train job; (ii) every job the cloud finished is terminal with
    that outcome, recorded by at most two answers after the cloud finished; (iii) none stuck in
    submission; (iv) exactly one terminal event per job."""
    sagemaker = cloud.sagemaker
    for job in Job.objects.filter(pk__in=list(expected)):
        tagged = sagemaker.jobs_tagged(job.id)
        assert len(tagged) <= 1, f"{job.id}: {len(tagged)} training jobs"
        assert tagged == [job.remote_name], f"{job.id}: cloud has {tagged}, Train knows {job.remote_name}"
        assert job.status == expected[job.id], f"{job.id}: Train says {job.status}, cloud {expected[job.id]}"
        assert job.submission == Submission.SUBMITTED, f"{job.id} stuck in {job.submission}"
        terminal = JobEvent.objects.filter(job=job, to_status__in=TERMINAL_STATUSES)
        assert terminal.count() == 1, f"{job.id}: {terminal.count()} terminal events"
        with cloud.lock:
            ended = sagemaker.jobs[job.remote_name].get("TrainingEndTime")
        if ended is not None:
            seen = sagemaker.deliveries_between(job.remote_name, ended, terminal.get().at.timestamp())
            assert seen <= MAX_DELIVERIES_BEFORE_TERMINAL, f"{job.id}: terminal only after {seen} answers"
