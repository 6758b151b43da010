"""A local job cannot reach Train: not its data directory, database, signing key or credentials, and
not other jobs. Each attempt is made by a real job, and its own output says what it could do."""

import json
import os
import sqlite3
import uuid

import pytest
from django.conf import settings

from backends.base import BackendError, JobSpec, Mount
from registry.tokens import signing_keys
from tests.support.processes import wait_until

# Run by the job with the host's python3: tries each way into Train and prints one line per try.
PROBE = r"""
import json, os, socket, sys
targets = json.loads(sys.argv[1])

def attempt(name, action):
    try:
        detail = action()
    except OSError as exc:
        print(f"DENIED {name}: {exc.strerror or exc}")
    else:
        print(f"LEAKED {name}: {str(detail)[:60]!r}")

def read(path):
    with open(path, "rb") as fh:
        return fh.read(64)

for name, path in targets["files"].items():
    attempt(f"read {name}", lambda: read(path))
for name, path in targets["dirs"].items():
    attempt(f"list {name}", lambda: os.listdir(path))
attempt("connect to PostgreSQL over TCP", lambda: socket.create_connection(("127.0.0.1", 5432), timeout=3))
def unix_socket():
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(targets["pg_socket"])
    return "connected"
attempt("connect to PostgreSQL's socket", unix_socket)
leaked = sorted(key for key in os.environ if key.startswith(("DATABASE", "SECRET", "AWS_", "DJANGO")))
print(("LEAKED" if leaked else "DENIED") + f" Train's environment: {leaked}")
with open("mine.txt", "w") as fh:
    fh.write("own work")
print("OK own work dir:", open("mine.txt").read(), "uid", os.getuid())
print("OK mount:", open(os.path.join(os.environ["STORAGE_MOUNT_0_PATH"], "data.txt")).read().strip())
"""


@pytest.fixture(autouse=True)
def backend(isolating_local_backend):
    """Every test here needs root (tests/backends/conftest.py)."""
    return isolating_local_backend


@pytest.fixture
def mount(storage_dir):
    """Data the job may read, placed as an operator would (world-readable). The mount root itself was
    created by Train (private): the backend opens it to job users."""
    (storage_dir / "data.txt").write_text("training data\n")
    (storage_dir / "data.txt").chmod(0o644)
    return Mount(source=f"file://{storage_dir}", mode="ro")


@pytest.fixture
def train_secrets():
    """Train's files as an older release may have left them: readable by everyone."""
    signing_keys()  # creates the signing key when missing
    database = settings.TRAIN_DATA_DIR / "train.sqlite3"
    sqlite3.connect(database).execute("CREATE TABLE IF NOT EXISTS t (secret TEXT)").connection.close()
    blob = settings.TRAIN_REGISTRY_DATA_DIR / "blobs" / "sha256" / "secret-blob"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_text("another account's layer")
    for path in (database, blob, settings.TRAIN_REGISTRY_SIGNING_KEY):
        path.chmod(0o644)
    for path in (settings.TRAIN_REGISTRY_DATA_DIR, blob.parent.parent, blob.parent):
        path.chmod(0o755)
    return {"SQLite database": str(database), "signing key": str(settings.TRAIN_REGISTRY_SIGNING_KEY),
            "registry blob": str(blob)}


def spec(*argv, **fields):
    return JobSpec(job_id=f"job_{uuid.uuid4().hex[:8]}", account_id="acme", name="t", image="python:3.11",
                   command=tuple(argv), **fields)


def name():
    return f"train-{uuid.uuid4().hex}"


def final(backend, ref, timeout=30):
    return wait_until(lambda: (seen := backend.poll([ref])[ref]).status not in ("PENDING", "IN_PROGRESS") and seen,
                      timeout=timeout, message=f"{ref.name} to finish")


def start_victim(backend):
    """Another account's job: it writes a secret into its work dir, leaves a daemon behind, and waits."""
    script = "echo victim-secret > secret.txt; echo $$ > pid; setsid sleep 300 & echo $! > daemon; sleep 60"
    ref = backend.submit(spec("sh", "-c", script), name())
    work = backend.run_dir(ref.name) / "work"
    wait_until(lambda: (work / "daemon").exists() and (work / "pid").read_text().strip(), timeout=20,
               message="the victim job to start")
    return ref, work


def probe(backend, ref_name, mount, files, dirs):
    targets = {"files": files, "dirs": dirs, "pg_socket": "/var/run/postgresql/.s.PGSQL.5432"}
    ref = backend.submit(spec("python3", "-c", PROBE, json.dumps(targets), storage_mounts=(mount,)), ref_name)
    seen = final(backend, ref)
    lines = backend.logs(ref, tail=100)
    print("\n".join(lines))  # shown when a test fails
    assert seen.status == "COMPLETED", (seen, lines)
    return lines


def test_a_job_cannot_read_train_or_another_running_job(backend, mount, train_secrets):
    victim, victim_work = start_victim(backend)
    victim_pid = (victim_work / "pid").read_text().strip()
    victim_run = backend.run_dir(victim.name)
    files = {
        **train_secrets,
        "another job's output": str(victim_run / "output.log"),
        "another job's spec": str(victim_run / "spec.json"),
        "another job's work file": str(victim_work / "secret.txt"),
        "another job's environment": f"/proc/{victim_pid}/environ",
        "Train's environment": f"/proc/{os.getpid()}/environ",
    }
    dirs = {"TRAIN_DATA_DIR": str(settings.TRAIN_DATA_DIR), "the run root": str(backend.run_root),
            "another job's run dir": str(victim_run), "another job's cwd": f"/proc/{victim_pid}/cwd"}
    lines = probe(backend, name(), mount, files, dirs)

    denied = [line for line in lines if line.startswith("DENIED")]
    assert [line for line in lines if line.startswith("LEAKED")] == [], lines
    assert len(denied) == len(files) + len(dirs) + 3, lines
    assert lines[-2].startswith("OK own work dir: own work uid ") and int(lines[-2].split()[-1]) != 0, lines
    assert lines[-1] == "OK mount: training data", lines
    backend.cancel(victim)
    assert final(backend, victim).status == "CANCELED"


def test_a_later_job_with_the_same_user_id_cannot_read_a_finished_job(backend, mount, settings):
    settings.TRAIN_LOCAL_JOB_UID_COUNT = 1  # every job gets the same user id
    victim, victim_work = start_victim(backend)
    daemon_pid = int((victim_work / "daemon").read_text())
    backend.cancel(victim)
    assert final(backend, victim).status == "CANCELED"
    wait_until(lambda: not os.path.exists(f"/proc/{daemon_pid}"), timeout=10,
               message="the daemon the job left behind to be killed")

    lines = probe(backend, name(), mount, {"the finished job's work file": str(victim_work / "secret.txt")},
                  {"the finished job's work dir": str(victim_work)})
    assert [line for line in lines if line.startswith("LEAKED")] == [], lines
    assert lines[0].startswith("DENIED read the finished job's work file"), lines


def live_processes_of(uid: int) -> list[int]:
    """Processes running as `uid`, but for zombies (killed, waiting for init to collect them)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            status = open(f"/proc/{entry}/status").read() if entry.isdigit() else ""
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Uid", "").split()[:1] == [str(uid)] and not fields["State"].strip().startswith("Z"):
            found.append(int(entry))
    return found


def test_a_process_left_forking_as_fast_as_it_can_is_killed_with_all_it_forked(backend):
    script = "id -u > uid; setsid sh -c 'while :; do sleep 300 & done' & sleep 1; exit 0"
    ref = backend.submit(spec("sh", "-c", script), name())
    assert final(backend, ref).status == "COMPLETED"
    uid = int((backend.run_dir(ref.name) / "work" / "uid").read_text())
    assert live_processes_of(uid) == [], "the job's user still has processes after its supervisor finished"


def test_without_root_train_data_dir_is_still_private(backend, monkeypatch):
    import backends.local as local

    monkeypatch.setattr(local, "can_isolate", lambda: False)
    backend._secure()
    assert settings.TRAIN_DATA_DIR.stat().st_mode & 0o777 == 0o700
    assert backend.build_request(spec("true"), name())["isolation"] is None


def test_a_run_root_job_users_cannot_reach_is_refused_at_submission(backend, settings, tmp_path):
    settings.TRAIN_LOCAL_RUN_DIR = tmp_path / "runs"  # pytest's tmp_path sits in private directories
    with pytest.raises(BackendError) as excinfo:
        backend.submit(spec("true"), name())
    assert excinfo.value.permanent
    assert "cannot pass through" in str(excinfo.value)


@pytest.mark.parametrize("uid", [0, 1000, 65535])
def test_a_job_never_runs_as_a_system_or_login_user(uid):
    # The guard in front of setresuid and of kill(-1) (which, as root, would signal every process).
    from backends.local_isolation import _become

    with pytest.raises(PermissionError):
        _become(uid)
