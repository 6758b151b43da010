"""Settings for the test suite: the service's own settings with short timers and a private data dir.

Subprocesses the tests start (qcluster, gunicorn) use this module too and inherit TRAIN_DATA_DIR
from the environment, so they share files and the test database with the test process.

Under pytest-xdist (`make test PYTEST_ARGS="-n 2"`) each worker is a test run of its own: its own
database (named by its pid below), data directory and range of local job user ids. A worker inherits
the environment of the controller, which set TRAIN_DATA_DIR when it imported this module, so a
worker replaces it once (marked by TRAIN_TEST_WORKER); the services a worker starts inherit the
worker's values and keep them."""

import os
import tempfile

XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... in an xdist worker
if XDIST_WORKER and os.environ.get("TRAIN_TEST_WORKER") != XDIST_WORKER:
    os.environ["TRAIN_TEST_WORKER"] = XDIST_WORKER
    os.environ["TRAIN_DATA_DIR"] = tempfile.mkdtemp(prefix=f"train-test-{XDIST_WORKER}-")
    # A job's user id is claimed under the data dir, and a job starts by killing whatever still runs
    # as its id: workers sharing a range would kill each other's jobs.
    os.environ["TRAIN_LOCAL_JOB_UID_BASE"] = str(2_000_000 + 1_000 * (1 + int(XDIST_WORKER.removeprefix("gw"))))
    os.environ["TRAIN_LOCAL_JOB_UID_COUNT"] = "1000"
os.environ.setdefault("TRAIN_DATA_DIR", tempfile.mkdtemp(prefix="train-test-"))
# Short task timers so a killed worker's task is redelivered within seconds (retry > timeout still).
os.environ.setdefault("TRAIN_TASK_TIMEOUT_SECONDS", "15")
os.environ.setdefault("TRAIN_TASK_RETRY_SECONDS", "20")
os.environ.setdefault("TRAIN_POLL_WINDOW_SECONDS", "4")
os.environ.setdefault("TRAIN_POLL_TICK_SECONDS", "1")
os.environ.setdefault("TRAIN_POLL_LEASE_SECONDS", "5")
os.environ.setdefault("TRAIN_POLL_BATCH_SECONDS", "3")
# Heartbeat leases: a killed worker's poll loop or submission is taken over within seconds.
os.environ.setdefault("TRAIN_POLL_LOOP_LEASE_SECONDS", "5")
os.environ.setdefault("TRAIN_SUBMIT_CLAIM_SECONDS", "5")
os.environ.setdefault("TRAIN_LOCAL_KILL_GRACE_SECONDS", "2")
os.environ.setdefault("TRAIN_LOG_LEVEL", "WARNING")
# Local jobs run as host processes unless a test asks for a container engine (tests/e2e/test_local_containers.py).
os.environ.setdefault("TRAIN_LOCAL_RUNTIME", "process")

# The environment above is what these settings read.
from trainsvc.settings import *  # noqa: E402, F403
from trainsvc.settings import DATABASES, TRAIN_DATA_DIR  # noqa: E402

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so worker and server subprocesses see the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(TRAIN_DATA_DIR / "test.sqlite3")}
else:
    # One test database per test run, so runs on the same server never drop each other's database.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
    # Commits return without waiting for the WAL to reach the disk: what they wrote is visible to
    # every other session at once all the same; only a crash of the server itself could lose it.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = f"{_options.get('options', '')} -c synchronous_commit=off".strip()

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user creation in tests
Q_CLUSTER["workers"] = 2  # noqa: F405

if os.environ.get("TRAIN_TEST_FAKE_BACKEND") == "1":
    # A worker started by a test that drives jobs through the fake cloud (tests/support/fake_backend.py).
    INSTALLED_APPS = [*INSTALLED_APPS, "tests.support.fake_backend_app.FakeBackendApp"]  # noqa: F405
