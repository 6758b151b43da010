"""Production mode: `check --deploy` is clean, a weak SECRET_KEY, a missing token signing key or
proxies left unnamed stop the process, the local backend is off unless asked for, and the health
endpoints answer without saying more than they must."""

import os
import secrets
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.db import OperationalError

BASE_DIR = Path(__file__).resolve().parent.parent
PRINT_BACKENDS = (
    "import django; django.setup(); "
    "from backends.registry import enabled_backend_names; print(enabled_backend_names())"
)


def signing_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def production_env(tmp_path, **overrides) -> dict:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TRAIN_", "DJANGO_")) and key not in ("SECRET_KEY", "ALLOWED_HOSTS", "DEBUG")}
    key_file = tmp_path / "signing-key.pem"
    if not key_file.exists():
        key_file.write_text(signing_key_pem())
    env.update(TRAIN_ENV="production", SECRET_KEY=secrets.token_urlsafe(48)[:64], ALLOWED_HOSTS="train.example.com",
               DJANGO_SETTINGS_MODULE="trainsvc.settings", TRAIN_DATA_DIR=str(tmp_path),
               TRAIN_REGISTRY_SIGNING_KEY=str(key_file), TRAIN_TRUSTED_PROXIES="10.0.0.0/8")
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def run(args, env):
    return subprocess.run([sys.executable, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_check_deploy_is_clean_in_production(tmp_path):
    env = production_env(tmp_path)
    assert len(env["SECRET_KEY"]) == 64
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


@pytest.mark.parametrize("secret_key", [
    pytest.param(None, id="unset"),
    pytest.param("", id="empty"),
    pytest.param("short-secret", id="short"),
    pytest.param("a" * 64, id="one-character-repeated"),
    pytest.param("dev-insecure-train-secret-key-do-not-use-in-production", id="the-development-key"),
])
def test_production_refuses_to_start_without_a_strong_secret_key(tmp_path, secret_key):
    result = run(["manage.py", "check"], production_env(tmp_path, SECRET_KEY=secret_key))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr


SIGN_A_TOKEN = (
    "import django; django.setup(); from registry.tokens import token_issue, token_verify; "
    "token, _, _ = token_issue(account_id='acme', key_pk=1, access={}); print(token_verify(token).account_id)"
)


@pytest.mark.parametrize("missing", [
    pytest.param({"TRAIN_REGISTRY_SIGNING_KEY": None}, id="unset"),
    pytest.param({"TRAIN_REGISTRY_SIGNING_KEY": "/nonexistent/signing-key.pem"}, id="missing-file"),
])
def test_production_refuses_to_start_without_a_signing_key(tmp_path, missing):
    result = run(["manage.py", "check"], production_env(tmp_path, **missing))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "TRAIN_REGISTRY_SIGNING_KEY" in result.stderr
    assert not (tmp_path / "registry" / "token-signing-key.pem").exists()  # nothing was generated


def test_production_signs_with_the_provided_key_file_or_pem(tmp_path):
    assert run(["-c", SIGN_A_TOKEN], production_env(tmp_path)).stdout.strip() == "acme"
    pem_env = production_env(tmp_path, TRAIN_REGISTRY_SIGNING_KEY=None,
                             TRAIN_REGISTRY_SIGNING_KEY_PEM=signing_key_pem())
    result = run(["-c", SIGN_A_TOKEN], pem_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "acme"
    assert not (tmp_path / "registry" / "token-signing-key.pem").exists()


def test_a_signing_key_that_is_not_p256_is_refused(tmp_path):
    result = run(["-c", SIGN_A_TOKEN], production_env(tmp_path, TRAIN_REGISTRY_SIGNING_KEY_PEM="not a key"))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "TRAIN_REGISTRY_SIGNING_KEY_PEM" in result.stderr


def test_production_behind_a_tls_proxy_needs_the_trusted_proxies(tmp_path):
    result = run(["manage.py", "check"], production_env(tmp_path, TRAIN_TRUSTED_PROXIES=None))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "TRAIN_TRUSTED_PROXIES" in result.stderr
    direct = production_env(tmp_path, TRAIN_TRUSTED_PROXIES=None, TRAIN_BEHIND_TLS_PROXY="0")
    assert run(["manage.py", "check"], direct).returncode == 0


def test_production_refuses_the_cloud_emulator(tmp_path):
    """TRAIN_CLOUD_EMULATOR would send every account's jobs, and Train's cloud calls, to a local fake."""
    result = run(["manage.py", "check", "--deploy"],
                 production_env(tmp_path, TRAIN_CLOUD_EMULATOR="http://127.0.0.1:18080"))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "TRAIN_CLOUD_EMULATOR" in result.stderr


def test_the_local_backend_is_off_in_production(tmp_path):
    result = run(["-c", PRINT_BACKENDS], production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "local" not in result.stdout


def test_the_local_backend_can_be_turned_on_in_production_for_a_single_tenant(tmp_path):
    env = production_env(tmp_path, TRAIN_LOCAL_BACKEND="1", TRAIN_LOCAL_SINGLE_TENANT="1")
    result = run(["-c", PRINT_BACKENDS], env)
    assert result.returncode == 0, result.stderr
    assert "'local'" in result.stdout


def test_production_refuses_the_local_backend_without_the_single_tenant_setting(tmp_path):
    result = run(["-c", PRINT_BACKENDS], production_env(tmp_path, TRAIN_LOCAL_BACKEND="1"))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "TRAIN_LOCAL_SINGLE_TENANT=1" in result.stderr


def test_healthz_answers_200(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_200_when_the_database_does(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_says_unreachable_without_the_drivers_words(client, db):
    from django.db import connection

    def refuse(*args, **kwargs):
        raise OperationalError('connection to server at "db.internal" (10.2.3.4), port 5432 failed: '
                               'FATAL: password authentication failed for user "train"')

    with mock.patch.object(connection, "cursor", refuse):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}


@pytest.mark.parametrize("base", ["0", "1000", "65535", str(2**31)])
def test_local_job_user_ids_may_not_be_system_or_login_users(tmp_path, base):
    result = run(["-c", "import trainsvc.settings"], production_env(tmp_path, TRAIN_LOCAL_JOB_UID_BASE=base))
    assert result.returncode != 0
    assert "TRAIN_LOCAL_JOB_UID_BASE" in result.stderr
