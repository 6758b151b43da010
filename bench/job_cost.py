"""CPU a job costs the host, part by part: what the soak benchmark's throughput comes down to.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/train .venv/bin/python bench/job_cost.py gateway \\
        [--posts 600] [--keyed]
    .venv/bin/python bench/job_cost.py local-chain [--jobs 300] [--sleep 0]

- gateway: the gateway as the Procfile's `web:` line starts it (DEBUG off), on a database of its own;
  `--posts` POST /v1/jobs from 8 client threads, each with a keep-alive session (`--keyed`: each with
  a fresh Idempotency-Key). Reports the CPU per POST of the gateway's processes, of PostgreSQL's and
  of this client, from /proc/<pid>/stat.
- local-chain: `--jobs` local jobs (`sh -c 'sleep N'`) submitted straight to the local backend, as a
  worker does; waits for every result. Reports the machine's CPU per job (/proc/stat) less this
  process's own: the launcher's fork, the supervisor, its isolation (a user id, namespaces, the
  strays' sweeps), the job's processes and the kernel's work for them. Run it as root to measure
  isolated jobs, as deployed on a single-tenant host.

Run it on an otherwise idle machine: it counts everything the host does meanwhile.
"""

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TRAIN_DATA_DIR", tempfile.mkdtemp(prefix="train-job-cost-"))
os.environ.setdefault("DEBUG", "false")
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import django  # noqa: E402

django.setup()

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu(pid: int) -> float:
    from tests.support.processes import child_processes

    return process_cpu(pid) + sum(process_cpu(child) for child, _name in child_processes(pid))


def postgres_cpu() -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                total += process_cpu(int(entry.name))
        except OSError:
            continue
    return total


def machine_busy() -> float:
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / TICK


def own_cpu() -> float:
    return sum(os.times()[:2])


def gateway_cost(options) -> None:
    import requests
    from django.contrib.auth import get_user_model
    from django.db import connection

    from tests.support.processes import gateway
    from trainsvc.accounts.models import Role
    from trainsvc.accounts.services import account_create, api_key_create

    if connection.vendor != "postgresql":
        sys.exit("bench/job_cost.py gateway needs PostgreSQL: set DATABASE_URL=postgres://...")
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"bench_job_cost_{os.getpid()}"
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        account = account_create(account_id="bench")
        get_user_model().objects.get_or_create(username="bench")
        _key, plaintext = api_key_create(account=account, role=Role.ADMIN, username="bench")
        headers = {"x-api-key": plaintext, "x-selected-account-id": account.id}
        body = {"name": "bench", "backend": "local", "image": "python:3.11", "command": ["sh", "-c", "exit 0"]}
        sessions = threading.local()
        with gateway(Path(tempfile.mkdtemp(prefix="job-cost-"))) as (base, proc):

            def post(_index):
                if not hasattr(sessions, "session"):
                    sessions.session = requests.Session()
                keyed = {**headers, "Idempotency-Key": uuid.uuid4().hex} if options.keyed else headers
                response = sessions.session.post(f"{base}/v1/jobs", json=body, headers=keyed, timeout=60)
                assert response.status_code == 201, response.text

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(post, range(50)))  # warm: every gateway thread has imported what it needs
                before = tree_cpu(proc.pid), postgres_cpu(), own_cpu(), time.monotonic()
                list(pool.map(post, range(options.posts)))
                after = tree_cpu(proc.pid), postgres_cpu(), own_cpu(), time.monotonic()
        gateway_s, postgres_s, client_s, wall = (b - a for a, b in zip(before, after, strict=True))
        per = 1000 / options.posts
        print(f"gateway: {options.posts} POSTs{' with an Idempotency-Key each' if options.keyed else ''}, "
              f"{options.posts / wall:.0f}/s: gateway {gateway_s * per:.1f} ms CPU per POST, "
              f"PostgreSQL {postgres_s * per:.1f} ms, client {client_s * per:.1f} ms")
    finally:
        connection.close()
        connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)


def local_chain_cost(options) -> None:
    from backends.base import JobSpec
    from backends.local import LocalBackend

    backend = LocalBackend()

    def spec(index):
        return JobSpec(job_id=f"job_{index:06d}", account_id="bench", name="bench", image="python:3.11",
                       image_digest="", command=("sh", "-c", f"sleep {options.sleep}"), args=(), env={},
                       resources={}, storage_mounts=(), max_runtime_seconds=600, labels={}, backend_options={})

    backend.submit(spec(0), f"warm-{uuid.uuid4().hex}")  # starts the launcher
    time.sleep(2)
    names = [f"bench-{uuid.uuid4().hex}" for _ in range(options.jobs)]
    busy, own = machine_busy(), own_cpu()
    for index, name in enumerate(names):
        backend.submit(spec(index), name)
        time.sleep(0.02)  # a steady stream, as a worker submits under load
    while not all((backend.run_dir(name) / "result.json").exists() for name in names):
        time.sleep(0.5)
    time.sleep(3)  # the kernel's deferred work (namespace teardown) settles
    chain = (machine_busy() - busy) - (own_cpu() - own)
    isolated = "isolated (root)" if os.geteuid() == 0 else "not isolated (not root)"
    print(f"local-chain: {options.jobs} jobs, {isolated}, sleep {options.sleep}: "
          f"{chain * 1000 / options.jobs:.1f} ms of the machine's CPU per job besides the submitter's")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    gateway_mode = modes.add_parser("gateway")
    gateway_mode.add_argument("--posts", type=int, default=600)
    gateway_mode.add_argument("--keyed", action="store_true")
    chain_mode = modes.add_parser("local-chain")
    chain_mode.add_argument("--jobs", type=int, default=300)
    chain_mode.add_argument("--sleep", type=float, default=0)
    options = parser.parse_args()
    (gateway_cost if options.mode == "gateway" else local_chain_cost)(options)


if __name__ == "__main__":
    main()
