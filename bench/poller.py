"""Poller scale: one poll cycle over many active SageMaker jobs in the fake cloud.

    .venv/bin/python bench/poller.py [--jobs 5000] [--change 0.02] [--cycles 3]

Seeds N running training jobs (the fake cloud and Job rows), then per cycle lets a fraction change in
the cloud (half finish, half move to another sub-status), makes every job due and runs the poller
(`jobs_poll_once`) until no job is due. Reports per cycle: wall time, cloud calls, database queries.
The baseline, measured in the same run on the same data, is the same cycle with one Describe per job
(client pacing off, so it is not slowed artificially). Uses its own database (SQLite by default,
PostgreSQL when DATABASE_URL says so), destroyed at the end. Prints a table, then one JSON line.
"""

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
# Dummy AWS credentials for the fake cloud (it checks no signature); no instance-metadata lookups.
os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_EC2_METADATA_DISABLED": "true",
                   "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})

import django

django.setup()

from datetime import timedelta  # noqa: E402

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from backends.aws import sagemaker, session  # noqa: E402
from backends.aws.config import validate_config  # noqa: E402
from backends.aws.sagemaker import SageMakerBackend, build_request  # noqa: E402
from backends.models import BackendConfig  # noqa: E402
from jobs.models import ACTIVE_STATUSES, Job, JobStatus, Submission  # noqa: E402
from jobs.polling import jobs_poll_once  # noqa: E402
from jobs.services import job_spec  # noqa: E402
from tests.fakecloud import FakeCloud  # noqa: E402
from tests.fakecloud.sagemaker import FakeSageMaker  # noqa: E402
from trainsvc.accounts.services import account_create  # noqa: E402

IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/acme/trainer:v1"


class QueryCounter:
    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def seed(cloud: FakeCloud, count: int) -> tuple[list[str], dict]:
    account = account_create(account_id="bench")
    config = validate_config({"region": "eu-west-1", "execution_role_arn": "arn:aws:iam::123456789012:role/Exec",
                              "output_s3_uri": "s3://bench-models/out", "endpoint_url": cloud.url,
                              "sts_endpoint_url": cloud.url, "logs_endpoint_url": cloud.url}, previous={})
    BackendConfig.objects.create(account=account, backend="sagemaker", config=config)
    now = timezone.now()
    rows = []
    for _ in range(count):
        job = Job(account=account, name="bench", backend="sagemaker", image=IMAGE, command=["python", "train.py"],
                  resources={"machine_type": "ml.g5.xlarge", "instance_count": 1}, max_runtime_seconds=86400,
                  status=JobStatus.IN_PROGRESS, submission=Submission.SUBMITTED, remote_status="InProgress/Training",
                  status_changed_at=now - timedelta(hours=1), last_seen_at=now - timedelta(minutes=1))
        job.remote_name = SageMakerBackend.remote_name(job.id)
        job.remote_id = f"arn:aws:sagemaker:eu-west-1:123456789012:training-job/{job.remote_name}"
        rows.append(job)
        cloud.sagemaker.insert(build_request(job_spec(job), job.remote_name, config))
    Job.objects.bulk_create(rows, batch_size=500)
    with cloud.lock:  # nothing has changed for an hour
        for record in cloud.sagemaker.jobs.values():
            record["LastModifiedTime"] = time.time() - 3600
    return [job.remote_name for job in rows], config


def cycle(cloud: FakeCloud, names: list[str], change: float, rng: random.Random) -> dict:
    active = [n for n in names if cloud.sagemaker.status_of(n) == "InProgress"]
    changed = rng.sample(active, int(len(names) * change))
    for index, name in enumerate(changed):
        if index % 2:
            cloud.sagemaker.complete(name)
        else:
            cloud.sagemaker.set_state(name, "InProgress", "Uploading")
    due = Job.objects.filter(status__in=ACTIVE_STATUSES)
    due.update(next_poll_at=timezone.now() - timedelta(seconds=1))
    jobs = due.count()
    calls_before = sum(cloud.calls.values())
    counter = QueryCounter()
    started = time.perf_counter()
    with connection.execute_wrapper(counter):
        while jobs_poll_once().claimed:
            pass
    wall = time.perf_counter() - started
    calls = sum(cloud.calls.values()) - calls_before
    return {"active_jobs": jobs, "changed": len(changed), "wall_seconds": round(wall, 2), "cloud_calls": calls,
            "queries": counter.count, "jobs_per_call": round(jobs / max(calls, 1), 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--change", type=float, default=0.02)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    connection.settings_dict.setdefault("TEST", {})
    if connection.vendor == "postgresql":
        connection.settings_dict["TEST"]["NAME"] = "bench_poller"
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    rng = random.Random(options.seed)
    results = {"database": connection.vendor, "batch_size": settings.TRAIN_POLL_BATCH_SIZE, "cycles": []}
    try:
        with FakeCloud(seed=options.seed) as cloud:
            cloud.sagemaker = cloud.add(FakeSageMaker()).bind(cloud)
            names, _ = seed(cloud, options.jobs)
            for _ in range(options.cycles):
                results["cycles"].append(cycle(cloud, names, options.change, rng))
            # Baseline: the same cycle with one Describe per due job, unpaced.
            sagemaker.DESCRIBE_AT_MOST = 10**9
            session.REQUESTS_PER_SECOND, session.REQUEST_BURST = 1e9, 10**9
            session.aws_clients_clear()
            results["baseline_describe_each"] = cycle(cloud, names, options.change, rng)
    finally:
        connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)
    report(results)


def report(results: dict) -> None:
    print(f"poll cycle over active SageMaker jobs ({results['database']}, batch {results['batch_size']})")
    header = f"{'run':<22}{'active':>8}{'changed':>9}{'wall s':>9}{'calls':>8}{'jobs/call':>11}{'queries':>9}"
    print(header)
    print("-" * len(header))
    rows = [(f"search cycle {i + 1}", c) for i, c in enumerate(results["cycles"])]
    rows.append(("baseline describe-each", results["baseline_describe_each"]))
    for label, c in rows:
        print(f"{label:<22}{c['active_jobs']:>8}{c['changed']:>9}{c['wall_seconds']:>9}{c['cloud_calls']:>8}"
              f"{c['jobs_per_call']:>11}{c['queries']:>9}")
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
