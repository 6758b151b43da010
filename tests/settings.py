"""Settings for the test suite: the service's own settings with short timers and a private data dir.

Subprocesses the tests start (qcluster, gunicorn) use this module too and inherit TRAIN_DATA_DIR
from the environment, so they share files and the test database with the test process."""

import os
import tempfile

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

from trainsvc.settings import *  # noqa: F403
from trainsvc.settings import DATABASES, TRAIN_DATA_DIR

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so worker and server subprocesses see the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(TRAIN_DATA_DIR / "test.sqlite3")}
else:
    # One test database per test run, so runs on the same server never drop each other's database.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user creation in tests
Q_CLUSTER["workers"] = 2  # noqa: F405

if os.environ.get("TRAIN_TEST_FAKE_BACKEND") == "1":
    # A worker started by a test that drives jobs through the fake cloud (tests/support/fake_backend.py).
    INSTALLED_APPS = [*INSTALLED_APPS, "tests.support.fake_backend_app.FakeBackendApp"]  # noqa: F405
