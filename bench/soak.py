"""Soak: two gateways and two workers on PostgreSQL, a steady stream of job submissions, and workers
SIGKILLed every few seconds. Measures how soon Train records what happened, and whether anything was
lost, duplicated or wrong.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/train .venv/bin/python bench/soak.py \\
        [--seconds 90] [--rate 25] [--kill-every 5 10] [--drain 240]

Starts the gateways and workers with the Procfile's command lines (tests/support/processes.py) on a
database of its own (destroyed at the end), with the shipped task and poll timers (not the test suite's
short ones), DEBUG off, and `setup_schedules` run as a deployment would. Posts `--rate` local-backend
jobs per second for `--seconds` (short `sleep` commands, one in ten exiting 3), while a killer SIGKILLs
a task worker in the middle of a task (a submission, a poll run, ...; the cluster replaces the worker)
every 5-10 s.
Then it stops killing and waits for every job to end.

Reports:
- end -> recorded: from a job's process ending (`finished_at` in the local runner's result.json) to
  Train recording it (the terminal JobEvent); p50/p99/max.
- POST -> submitted: from sending the POST to `submitted_at`; p50/p99/max.
- lost (no terminal state, or the process never started), duplicated (the process started more than
  once, or more than one terminal event), wrong (final status other than the exit code implies).
- the peak of django-q's queue (all task rows), and of poll runs waiting in it at once.
Targets: p99 end -> recorded < 10 s, p99 POST -> submitted < 5 s, 0 lost / duplicated / wrong.
Prints a table, then one JSON line.
"""

import argparse
import json
import math
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TRAIN_DATA_DIR", tempfile.mkdtemp(prefix="train-soak-"))
# As deployed: DEBUG off (on, Django keeps every query's SQL and timing in memory, in every process).
os.environ.setdefault("DEBUG", "false")
# The shipped timers, read from the service's own settings before the test settings shorten them.
SHIPPED_TIMERS = ["TRAIN_TASK_TIMEOUT_SECONDS", "TRAIN_TASK_RETRY_SECONDS", "TRAIN_POLL_WINDOW_SECONDS",
                  "TRAIN_POLL_TICK_SECONDS", "TRAIN_POLL_LEASE_SECONDS", "TRAIN_POLL_BATCH_SECONDS",
                  "TRAIN_POLL_LOOP_LEASE_SECONDS", "TRAIN_SUBMIT_CLAIM_SECONDS", "TRAIN_POLL_INTERVAL_SECONDS"]
import trainsvc.settings as shipped  # noqa: E402

for _name in SHIPPED_TIMERS:
    os.environ[_name] = str(getattr(shipped, _name))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import django  # noqa: E402

django.setup()

import requests  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_q.models import OrmQ  # noqa: E402

from jobs.models import TERMINAL_STATUSES, Job, JobEvent  # noqa: E402
from tests.support.processes import gateway, qcluster  # noqa: E402
from trainsvc.accounts.models import Role  # noqa: E402
from trainsvc.accounts.services import account_create, api_key_create  # noqa: E402


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def qcluster_children(pid: int) -> list[int]:
    """Children of `pid` that are processes of the worker (the Procfile's `manage.py worker`)."""
    found = []
    for child in children(pid):
        try:
            if b"manage.py" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue
    return found


# Where an idle task worker waits: reading django-q's task pipe, or for the lock of that pipe.
IDLE_WAITS = ("pipe_read", "futex")
POOL = settings.Q_CLUSTER["workers"] + 2  # task workers, monitor, pusher


class Killer(threading.Thread):
    """SIGKILLs a task worker in the middle of a task every few seconds; the cluster replaces it.

    Only busy task workers are killed. django-q's pusher and monitor, and idle workers, hold the locks of
    the cluster's internal queues: killing one of them leaves the lock taken and the whole cluster
    stalled, a limit of the worker pool rather than of Train. The sentinel spawns its task workers first,
    then the monitor and the pusher, so the two newest processes of a fresh pool are those two."""

    def __init__(self, clusters, every: tuple[float, float], rng: random.Random):
        super().__init__(daemon=True)
        self.clusters, self.every, self.rng = clusters, every, rng
        self.stop, self.kills = threading.Event(), 0
        self.auxiliary = set()
        for cluster in clusters:
            (sentinel,) = wait_for(lambda cluster=cluster: qcluster_children(cluster.pid))
            pool = wait_for(lambda sentinel=sentinel: len(found := qcluster_children(sentinel)) >= POOL and found)
            self.auxiliary.update(sorted(pool)[-2:])
        self.sentinels = [qcluster_children(cluster.pid)[0] for cluster in clusters]

    def busy_workers(self) -> list[int]:
        busy = []
        for sentinel in self.sentinels:
            for pid in set(qcluster_children(sentinel)) - self.auxiliary:
                try:
                    waiting_in = Path(f"/proc/{pid}/wchan").read_text()
                except OSError:
                    continue
                if not any(idle in waiting_in for idle in IDLE_WAITS):
                    busy.append(pid)
        return busy

    def run(self):
        while not self.stop.wait(self.rng.uniform(*self.every)):
            for _try in range(50):  # catch a worker while it runs a task
                busy = self.busy_workers()
                if busy:
                    try:
                        os.kill(self.rng.choice(busy), signal.SIGKILL)
                        self.kills += 1
                    except ProcessLookupError:
                        pass
                    break
                time.sleep(0.05)


def wait_for(predicate, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise RuntimeError("the worker pool did not start")
        time.sleep(0.2)
    return value


class QueueSampler(threading.Thread):
    """Peaks of django-q's queue: all task rows (waiting, or taken by a worker and not yet done), and
    poll runs waiting to be taken."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop, self.peak, self.peak_polls_waiting = threading.Event(), 0, 0

    def run(self):
        try:
            while not self.stop.wait(1):
                self.peak = max(self.peak, OrmQ.objects.count())
                waiting = [row.func() for row in OrmQ.objects.filter(lock__lte=timezone.now())]
                self.peak_polls_waiting = max(self.peak_polls_waiting, waiting.count("jobs.tasks.poll_due_jobs"))
        finally:
            connection.close()


def post_jobs(bases, headers, starts: Path, *, rate: float, seconds: float, rng: random.Random) -> list[dict]:
    posts = []
    # One keep-alive session per client thread, as an API client holds one: a new connection and a new
    # requests.Session per POST cost the load generator, which shares the host with the service, about
    # a quarter more CPU.
    sessions = threading.local()

    def post(index):
        token, code = uuid.uuid4().hex, 3 if index % 10 == 9 else 0
        command = f"echo $$ >> {starts}/{token}; sleep {rng.uniform(1, 4):.1f}; exit {code}"
        body = {"name": "soak", "backend": "local", "image": "python:3.11", "command": ["sh", "-c", command]}
        sent = time.time()
        if not hasattr(sessions, "session"):
            sessions.session = requests.Session()
        # A kept-alive connection the gateway closes just as a POST goes out is reset: the client sends
        # the POST again under the same Idempotency-Key, which answers with the job the first one
        # created, if it did.
        keyed = {**headers, "Idempotency-Key": token}
        for _attempt in range(2):
            try:
                response = sessions.session.post(f"{bases[index % len(bases)]}/v1/jobs", json=body, headers=keyed,
                                                 timeout=60)
            except requests.ConnectionError as exc:
                job_id, status = None, repr(exc)
                continue
            except requests.RequestException as exc:
                job_id, status = None, repr(exc)
            else:
                job_id = response.json()["id"] if response.status_code == 201 else None
                status = response.status_code
            break
        posts.append({"token": token, "sent": sent, "job_id": job_id, "status": status,
                      "expected": "COMPLETED" if code == 0 else "FAILED"})

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as pool:
        for index in range(int(rate * seconds)):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(post, index)
    return posts


def wait_for_the_end(job_ids: list[str], drain: float) -> None:
    deadline = time.monotonic() + drain
    while time.monotonic() < deadline:
        if not Job.objects.filter(pk__in=job_ids).exclude(status__in=TERMINAL_STATUSES).exists():
            return
        time.sleep(1)


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    values = sorted(values)

    def pct(p):
        return round(values[max(0, math.ceil(p * len(values)) - 1)], 2)

    return {"n": len(values), "p50": pct(0.5), "p99": pct(0.99), "max": round(values[-1], 2)}


def measure(posts: list[dict], starts: Path) -> dict:
    accepted = [p for p in posts if p["job_id"]]
    jobs = Job.objects.in_bulk([p["job_id"] for p in accepted])
    posts_by_job = {p["job_id"]: p for p in accepted}
    terminal_events = {}
    for event in JobEvent.objects.filter(job_id__in=list(jobs), to_status__in=TERMINAL_STATUSES):
        terminal_events.setdefault(event.job_id, []).append(event)
    end_to_recorded, post_to_submitted = [], []
    slow_records, slow_submissions = [], []
    lost, duplicated, wrong = [], [], []
    for post in accepted:
        job = jobs[post["job_id"]]
        marker = starts / post["token"]
        start_count = len(marker.read_text().split()) if marker.exists() else 0
        events = terminal_events.get(job.pk, [])
        if job.submitted_at:
            post_to_submitted.append(job.submitted_at.timestamp() - post["sent"])
            slow_submissions.append((post_to_submitted[-1], job.pk))
        if not events or start_count == 0:
            lost.append(job.pk)
            continue
        if start_count > 1 or len(events) > 1:
            duplicated.append(job.pk)
        if job.status != post["expected"]:
            wrong.append(job.pk)
        result = settings.TRAIN_LOCAL_RUN_DIR / job.remote_name / "result.json"
        if result.exists():
            ended = datetime.fromisoformat(json.loads(result.read_text())["finished_at"])
            end_to_recorded.append((events[0].at - ended).total_seconds())
            slow_records.append((end_to_recorded[-1], job.pk))
    return {
        "posted": len(posts), "accepted": len(accepted),
        "rejected": sorted({str(p["status"]) for p in posts if not p["job_id"]}),
        "end_to_recorded_s": percentiles(end_to_recorded), "post_to_submitted_s": percentiles(post_to_submitted),
        "lost": len(lost), "duplicated": len(duplicated), "wrong": len(wrong),
        "examples": {"lost": lost[:5], "duplicated": duplicated[:5], "wrong": wrong[:5]},
        "slowest": {"recorded": [history(jobs[pk], posts_by_job[pk]) for _, pk in sorted(slow_records)[-3:]],
                    "submitted": [history(jobs[pk], posts_by_job[pk]) for _, pk in sorted(slow_submissions)[-3:]]},
    }


def history(job: Job, post: dict) -> dict:
    """What happened to one job, in seconds after its POST: to tell a slow path from a stuck one."""
    def since(at):
        return round(at.timestamp() - post["sent"], 2) if at else None

    result = settings.TRAIN_LOCAL_RUN_DIR / job.remote_name / "result.json"
    ended = datetime.fromisoformat(json.loads(result.read_text())["finished_at"]) if result.exists() else None
    return {"job": job.pk, "attempts": job.submit_attempts, "submitted": since(job.submitted_at),
            "process_ended": since(ended),
            "events": [(event.to_status, since(event.at)) for event in job.events.order_by("at", "id")]}


def run(options) -> dict:
    rng = random.Random(options.seed)
    call_command("setup_schedules", verbosity=0)
    account = account_create(account_id="soak")
    get_user_model().objects.get_or_create(username="soak")
    _key, plaintext = api_key_create(account=account, role=Role.ADMIN, username="soak")
    headers = {"x-api-key": plaintext, "x-selected-account-id": account.id}
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    work.chmod(0o711)  # jobs run as users of their own when Train runs as root: let them reach `starts`
    starts = work / "starts"
    starts.mkdir()
    starts.chmod(0o777)  # job processes may run as another user
    with ExitStack() as stack:
        bases = []
        for index in range(2):
            (work / f"gateway{index}").mkdir()
            base, _proc = stack.enter_context(gateway(work / f"gateway{index}"))
            bases.append(base)
        clusters = []
        for index in range(2):
            (work / f"worker{index}").mkdir()
            clusters.append(stack.enter_context(qcluster(work / f"worker{index}")))
        sampler, killer = QueueSampler(), Killer(clusters, tuple(options.kill_every), rng)
        sampler.start()
        killer.start()
        posts = post_jobs(bases, headers, starts, rate=options.rate, seconds=options.seconds, rng=rng)
        killer.stop.set()
        wait_for_the_end([p["job_id"] for p in posts if p["job_id"]], options.drain)
        sampler.stop.set()
        sampler.join()
    results = measure(posts, starts)
    results.update(kills=killer.kills, queue_peak=sampler.peak, queue_peak_poll_runs_waiting=sampler.peak_polls_waiting,
                   rate=options.rate, seconds=options.seconds, kill_every=options.kill_every,
                   timers={name: getattr(settings, name) for name in SHIPPED_TIMERS})
    return results


def report(results: dict) -> None:
    print(f"soak: {results['posted']} POSTs at {results['rate']}/s for {results['seconds']} s, "
          f"{results['kills']} worker SIGKILLs (every {results['kill_every'][0]}-{results['kill_every'][1]} s)")
    rows = (("end -> recorded", "end_to_recorded_s", 10), ("POST -> submitted", "post_to_submitted_s", 5))
    for label, key, target in rows:
        stats = results[key]
        if stats["n"]:
            print(f"  {label:<18} n={stats['n']:<5} p50={stats['p50']:>6} s  p99={stats['p99']:>6} s  "
                  f"max={stats['max']:>6} s  (target p99 < {target} s)")
    print(f"  lost {results['lost']}, duplicated {results['duplicated']}, wrong {results['wrong']}; "
          f"rejected POSTs: {results['rejected'] or 'none'}")
    print(f"  queue peak {results['queue_peak']} tasks; at most {results['queue_peak_poll_runs_waiting']} poll "
          "runs waiting at once")
    print(json.dumps(results, sort_keys=True, default=str))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--rate", type=float, default=25)
    parser.add_argument("--kill-every", type=float, nargs=2, default=[5, 10], metavar=("MIN", "MAX"))
    parser.add_argument("--drain", type=float, default=240, help="how long to wait for the last jobs to end")
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/soak.py needs PostgreSQL: set DATABASE_URL=postgres://...")
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"bench_soak_{os.getpid()}"
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        results = run(options)
    finally:
        connection.close()
        connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)
    report(results)


if __name__ == "__main__":
    main()
