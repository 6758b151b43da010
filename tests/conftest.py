"""Standard actors and helpers shared by the whole suite.

Actors: `operator` (admin of acme), `member` and `viewer` of acme, and `outsider` (admin of the
other account, globex). Each is a `Caller` whose `.headers` authenticate API requests."""

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from tests.support import database
from trainsvc.accounts.models import Account, ApiKey, Role
from trainsvc.accounts.services import account_create, api_key_create

pytest_plugins = ["tests.support.fake_backend"]
database.install()  # transactional tests end with DELETEs, not TRUNCATE (tests/support/database.py)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """The path of an external tool a test needs. Skips without it locally; fails in CI, where a
    missing real component must never pass silently."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (.ci/run installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@dataclass
class Caller:
    account: Account
    key: ApiKey
    plaintext: str

    @property
    def headers(self) -> dict:
        return {"HTTP_X_API_KEY": self.plaintext, "HTTP_X_SELECTED_ACCOUNT_ID": self.account.id}

    @property
    def http_headers(self) -> dict:
        return {"x-api-key": self.plaintext, "x-selected-account-id": self.account.id}


def make_caller(account_id: str, role: str, username: str) -> Caller:
    from django.contrib.auth import get_user_model

    account = account_create(account_id=account_id)
    get_user_model().objects.get_or_create(username=username)
    key, plaintext = api_key_create(account=account, role=role, username=username)
    return Caller(account=account, key=key, plaintext=plaintext)


@pytest.fixture
def acme(db):
    return account_create(account_id="acme")


@pytest.fixture
def operator(db):
    return make_caller("acme", Role.ADMIN, "olivia")


@pytest.fixture
def member(db):
    return make_caller("acme", Role.MEMBER, "max")


@pytest.fixture
def viewer(db):
    return make_caller("acme", Role.VIEWER, "vera")


@pytest.fixture
def outsider(db):
    return make_caller("globex", Role.ADMIN, "otto")


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def storage_dir(settings):
    """A directory the local backend may mount (under TRAIN_LOCAL_MOUNT_ROOTS)."""
    root = settings.TRAIN_LOCAL_MOUNT_ROOTS[0]
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def staff_client(client, db):
    """The Django test client logged in as a superuser (an operator of the admin)."""
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    return client


@pytest.fixture
def job_scratch():
    """A directory every local job may write markers to. Jobs run as users of their own when the tests
    run as root, and cannot reach a private tmp_path."""
    path = Path(tempfile.mkdtemp(prefix="train-scratch-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Tests that start real processes (marked e2e) run first, each group in its usual order. They
    spend most of their time waiting on those processes; under pytest-xdist (`make test`) the quick
    tests then fill the other workers meanwhile, instead of one worker ending the run alone on them."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)
