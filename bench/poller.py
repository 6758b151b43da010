"""Poller scale: one poll cycle over many active jobs of one cloud backend, in the fake cloud.

    .venv/bin/python bench/poller.py --backend sagemaker [--jobs 5000] [--change 0.02] [--cycles 3]

Seeds N running jobs (in the cloud's fake and as Job rows), then per cycle lets a fraction change in the
cloud (half finish, half move to another running sub-state), makes every job due and runs the poller
(`jobs_poll_once`) until no job is due. Reports per cycle: wall time, cloud calls, database queries,
and the share of the cloud's documented per-minute read quota one cycle spends. The baseline, measured
in the same run on the same data, is the same cycle with one read per due job (client pacing off, so it
is not slowed artificially). Uses its own database (SQLite by default, PostgreSQL when DATABASE_URL says
so), destroyed at the end. Prints a table, then one JSON line.

What a cloud contributes is `bench/pollers/<backend with '-' as '_'>.py`:
    BACKEND, READ_QUOTA_PER_MINUTE (int or None), install(cloud) -> fake, configure(cloud) -> config,
    seed_job(fake, job, config), change(fake, job, finish=), is_active(fake, job), describe_each(), and
    optionally between_cycles() (drop what the adapter caches for less than a poll interval).
`seed_job` gets an unsaved Job row with the neutral fields set; it sets `remote_name`, `remote_id` and
whatever else the cloud's jobs carry (image, resources, remote_status), and inserts the running remote
job into the fake without a create call, unchanged for an hour.
"""

import argparse
import importlib
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from datetime import timedelta  # noqa: E402

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from backends.models import BackendConfig  # noqa: E402
from jobs.models import ACTIVE_STATUSES, Job, JobStatus, Submission  # noqa: E402
from jobs.polling import jobs_poll_once  # noqa: E402
from tests.fakecloud import FakeCloud  # noqa: E402
from trainsvc.accounts.services import account_create  # noqa: E402


class QueryCounter:
    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def load(backend: str):
    return importlib.import_module(f"bench.pollers.{backend.replace('-', '_')}")


def seed(poller, cloud: FakeCloud, fake, count: int) -> list[Job]:
    account = account_create(account_id="bench")
    config = poller.configure(cloud)
    BackendConfig.objects.create(account=account, backend=poller.BACKEND, config=config)
    now = timezone.now()
    rows = []
    for _ in range(count):
        job = Job(account=account, name="bench", backend=poller.BACKEND, command=["python", "train.py"],
                  max_runtime_seconds=86400, status=JobStatus.IN_PROGRESS, submission=Submission.SUBMITTED,
                  backend_config=config, status_changed_at=now - timedelta(hours=1),
                  last_seen_at=now - timedelta(minutes=1))
        poller.seed_job(fake, job, config)
        rows.append(job)
    Job.objects.bulk_create(rows, batch_size=500)
    return rows


def cycle(poller, cloud: FakeCloud, fake, jobs: list[Job], change: float, rng: random.Random) -> dict:
    active = [job for job in jobs if poller.is_active(fake, job)]
    changed = rng.sample(active, int(len(jobs) * change))
    for index, job in enumerate(changed):
        poller.change(fake, job, finish=bool(index % 2))
    # Cycles run back to back here, but in service they are at least the poll interval apart: a
    # plugin may drop what its adapter caches for shorter than that (Vertex AI's active-job list).
    getattr(poller, "between_cycles", lambda: None)()
    due = Job.objects.filter(status__in=ACTIVE_STATUSES)
    due.update(next_poll_at=timezone.now() - timedelta(seconds=1))
    count = due.count()
    calls_before = sum(cloud.calls.values())
    counter = QueryCounter()
    started = time.perf_counter()
    with connection.execute_wrapper(counter):
        while jobs_poll_once().claimed:
            pass
    wall = time.perf_counter() - started
    calls = sum(cloud.calls.values()) - calls_before
    result = {"active_jobs": count, "changed": len(changed), "wall_seconds": round(wall, 2), "cloud_calls": calls,
              "queries": counter.count, "jobs_per_call": round(count / max(calls, 1), 1)}
    if poller.READ_QUOTA_PER_MINUTE:
        result["quota_share"] = round(calls / poller.READ_QUOTA_PER_MINUTE, 3)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="sagemaker", help="sagemaker, vertex-ai or azure-ml")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--change", type=float, default=0.02)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    try:
        poller = load(options.backend)
    except ModuleNotFoundError as exc:
        parser.error(f"no poller benchmark for {options.backend!r} ({exc.name})")
    connection.settings_dict.setdefault("TEST", {})
    if connection.vendor == "postgresql":
        connection.settings_dict["TEST"]["NAME"] = "bench_poller"
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    rng = random.Random(options.seed)
    results = {"backend": poller.BACKEND, "database": connection.vendor, "batch_size": settings.TRAIN_POLL_BATCH_SIZE,
               "read_quota_per_minute": poller.READ_QUOTA_PER_MINUTE, "cycles": []}
    try:
        with FakeCloud(seed=options.seed) as cloud:
            fake = poller.install(cloud)
            jobs = seed(poller, cloud, fake, options.jobs)
            for _ in range(options.cycles):
                results["cycles"].append(cycle(poller, cloud, fake, jobs, options.change, rng))
            poller.describe_each()
            results["baseline_describe_each"] = cycle(poller, cloud, fake, jobs, options.change, rng)
    finally:
        connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)
    report(results)


def report(results: dict) -> None:
    quota = results["read_quota_per_minute"]
    print(f"poll cycle over active {results['backend']} jobs ({results['database']}, batch {results['batch_size']}, "
          f"read quota {f'{quota}/min' if quota else 'not published'})")
    header = (f"{'run':<22}{'active':>8}{'changed':>9}{'wall s':>9}{'calls':>8}{'jobs/call':>11}{'queries':>9}"
              f"{'quota/min':>11}")
    print(header)
    print("-" * len(header))
    rows = [(f"cycle {i + 1}", c) for i, c in enumerate(results["cycles"])]
    rows.append(("baseline describe-each", results["baseline_describe_each"]))
    for label, c in rows:
        share = f"{c['quota_share']:.1%}" if "quota_share" in c else "-"
        print(f"{label:<22}{c['active_jobs']:>8}{c['changed']:>9}{c['wall_seconds']:>9}{c['cloud_calls']:>8}"
              f"{c['jobs_per_call']:>11}{c['queries']:>9}{share:>11}")
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
